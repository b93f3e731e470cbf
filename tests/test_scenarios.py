"""End-to-end: scenario files run through `kiosk demo --headless --script`, one per flow."""

import os
from pathlib import Path

import pytest

from kiosk.cli import main

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

HERE = Path(__file__).resolve().parent
SCENARIOS = sorted((HERE / "scenarios").glob("*.scenario"))
TOUR = HERE.parent / "kiosk" / "scenarios" / "tour.scenario"


SHIPPED = HERE.parent / "config.toml"
LOCAL = [p for p in SCENARIOS if not p.stem.startswith("ils_")]  # ils_*: check the ILS's own records


@pytest.fixture(scope="module")
def local_config(tmp_path_factory):
    """The shipped config with the kiosk deciding alone (no library system)."""
    path = tmp_path_factory.mktemp("local") / "config.toml"
    text = SHIPPED.read_text(encoding="utf-8")
    assert 'backend = "sip2"' in text
    path.write_text(text.replace('backend = "sip2"', 'backend = "local"', 1), encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_through_the_demo_ils(path, capsys):
    code = main(["demo", "--config", str(SHIPPED), "--headless", "--script", str(path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "steps passed" in out.out


@pytest.mark.parametrize("path", LOCAL, ids=[p.stem for p in LOCAL])
def test_scenario_with_the_local_backend(path, local_config, capsys):
    code = main(["demo", "--config", str(local_config), "--headless", "--script", str(path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "steps passed" in out.out


def test_ils_steps_need_a_library_system(local_config, tmp_path, capsys):
    script = tmp_path / "ils.scenario"
    script.write_text("expect ils-no-loan EM0000000001\n")
    assert main(["demo", "--config", str(local_config), "--headless", "--script", str(script)]) == 1
    assert "runs without a library system" in capsys.readouterr().err


def test_every_flow_has_a_scenario():
    names = {p.stem for p in SCENARIOS}
    assert {"borrow", "borrow_phone", "return", "refusals", "pin", "door_timeout", "door_faults",
            "inactivity", "my_loans", "ils_borrow_renew", "ils_door_timeout", "ils_return_hold", "ils_offline_borrow"} <= names


def test_the_tour_visits_every_screen_and_saves_screenshots(tmp_path, capsys):
    shots = tmp_path / "shots"
    assert main(["demo", "--headless", "--screenshots", str(shots)]) == 0, capsys.readouterr().err
    files = sorted(p.name for p in shots.glob("*.png"))
    assert len(files) == TOUR.read_text().count("\nscreenshot ")
    screens = {line.split()[2] for line in TOUR.read_text().splitlines() if line.startswith("expect screen")}
    assert screens == {"idle", "pin", "menu", "borrow", "open-door", "return", "my-loans", "receipt", "error"}
    import pygame

    image = pygame.image.load(str(shots / files[0]))
    assert image.get_size() == (1280, 800)


def test_a_failing_expectation_names_the_line_and_the_reason(tmp_path, capsys):
    script = tmp_path / "wrong.scenario"
    script.write_text("# borrow without logging in\ncard 04A1B2C3\nexpect screen menu\n")
    assert main(["demo", "--headless", "--script", str(script)]) == 1
    err = capsys.readouterr().err
    assert "wrong.scenario:3: FAILED: expect screen menu" in err
    assert "the screen is 'pin'" in err


def test_tapping_a_button_that_is_not_shown_fails(tmp_path, capsys):
    script = tmp_path / "t.scenario"
    script.write_text("tap borrow\n")
    assert main(["demo", "--headless", "--script", str(script)]) == 1
    err = capsys.readouterr().err
    assert "no button 'borrow' on screen 'idle'" in err and "return" in err


def test_expect_text_failure_lists_what_is_shown(tmp_path, capsys):
    script = tmp_path / "t.scenario"
    script.write_text("expect text 존재하지 않는 문구\n")
    assert main(["demo", "--headless", "--script", str(script)]) == 1
    assert "it shows:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "line, message",
    [
        ("fly away", "unknown step 'fly'"),
        ("door 3 wobble", "open or close"),
        ("expect colour red", "unknown step 'colour'"),
        ("card", "takes 1 argument"),
        ('scan "unterminated', "cannot split"),
    ],
)
def test_malformed_scenarios_are_rejected_before_running(tmp_path, capsys, line, message):
    script = tmp_path / "bad.scenario"
    script.write_text(f"# fine\n{line}\n")
    assert main(["demo", "--headless", "--script", str(script)]) == 2
    err = capsys.readouterr().err
    assert "bad.scenario:2" in err and message in err


def test_bad_input_never_crashes(tmp_path, capsys):
    script = tmp_path / "t.scenario"
    script.write_text("card ZZ\n")
    assert main(["demo", "--headless", "--script", str(script)]) == 1
    assert "not a card UID" in capsys.readouterr().err


def test_missing_scenario_file(tmp_path, capsys):
    assert main(["demo", "--headless", "--script", str(tmp_path / "none.scenario")]) == 2
    assert "cannot read" in capsys.readouterr().err
