from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.config import Config, ConfigError, load, parse

ROOT = Path(__file__).resolve().parent.parent


def problems(text):
    with pytest.raises(ConfigError) as info:
        parse(text)
    return {p.key: p.message for p in info.value.problems}


def test_shipped_config_is_valid_and_simulated():
    config = load(ROOT / "config.toml")
    assert config.devices.card_reader.driver == "simulated"
    assert config.devices.locks.slots == 24
    assert config.kiosk.library_code == "111101"
    assert config.data_dir == ROOT / "var"


def test_every_shipped_key_is_commented():
    for line in (ROOT / "config.toml").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line, f"uncommented setting: {line}"


def test_empty_file_means_defaults():
    assert parse("") == Config()


def test_config_objects_are_frozen():
    config = parse("")
    with pytest.raises(AttributeError):
        config.kiosk.name = "x"  # type: ignore[misc]


def test_all_errors_at_once_with_key_value_and_expectation():
    found = problems(
        """
        [kiosk]
        library_code = "11-1101"
        [doors]
        open_timeout_s = -5
        [ui]
        language = "jp"
        fullscreen = "yes"
        [session]
        pin_tries = 2.5
        """
    )
    assert set(found) == {"kiosk.library_code", "doors.open_timeout_s", "ui.language", "ui.fullscreen", "session.pin_tries"}
    assert "'11-1101'" in found["kiosk.library_code"] and "6-digit" in found["kiosk.library_code"]
    assert "-5" in found["doors.open_timeout_s"] and "greater than 0" in found["doors.open_timeout_s"]
    assert "'ko', 'en'" in found["ui.language"]
    assert "true or false" in found["ui.fullscreen"]
    assert "whole number" in found["session.pin_tries"]


def test_unknown_keys_get_did_you_mean():
    found = problems("[doors]\nopen_timout_s = 10\n[devicez]\n")
    assert "did you mean 'open_timeout_s'" in found["doors.open_timout_s"]
    assert "did you mean 'devices'" in found["devicez"]


def test_bad_regex_and_timezone():
    found = problems("[identifiers]\nitem_patterns = ['EM(']\n[kiosk]\ntimezone = 'Mars/Olympus'\n")
    assert "regular expression" in found["identifiers.item_patterns"]
    assert "IANA" in found["kiosk.timezone"]


def test_cross_checks():
    found = problems("[session]\npin_min_digits = 6\npin_max_digits = 4\n[circulation]\nlibrary_limit = 5\nnetwork_limit = 3\n")
    assert "session.pin_min_digits" in found and "circulation.network_limit" in found


def test_syntax_error_names_the_line():
    found = problems("[kiosk\nname = 1\n")
    assert "line 1" in found["(syntax)"]


def test_section_that_is_not_a_table():
    assert "expected a table" in problems("doors = 5\n")["doors"]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "nope.toml")


def test_settings_carry_the_config_through():
    config = parse("[circulation]\nlibrary_limit = 7\nnetwork_limit = 20\n[doors]\nopen_timeout_s = 12\n"
                   "[identifiers]\nuid_format = 'decimal'\n")
    settings = config.settings()
    assert settings.policy.library_limit == 7 and settings.policy.network_limit == 20
    assert settings.door_open_timeout_s == 12.0
    assert settings.ids.uid_format == "decimal"


def test_config_check_command(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text((ROOT / "config.toml").read_text())
    assert main(["config", "check", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[doors]\nopen_timeout_s = 'soon'\n[ui]\nwidth = 0\n")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "doors.open_timeout_s" in err and "ui.width" in err
    assert str(bad) in err


# -- the SIP2 connection and its secrets file

from kiosk.config import SecretsError, load_secrets  # noqa: E402


def sip2_config(tmp_path, extra=""):
    path = tmp_path / "kiosk.toml"
    path.write_text('[library]\nbackend = "sip2"\nseed = ""\n[sip2]\nhost = "ils.example"\n' + extra)
    return load(path)


def test_sip2_settings_are_checked_all_at_once():
    found = problems('[sip2]\nport = 70000\nterminator = "LF"\nencoding = "klingon"\nchecksum_receive = "sum"\n'
                     'backoff_initial_s = 10\nbackoff_max_s = 5\ndelimiter = "||"\nresponse_timout_s = 3\n')
    assert "TCP port" in found["sip2.port"]
    assert "'CR', 'CRLF'" in found["sip2.terminator"]
    assert "cp949" in found["sip2.encoding"]
    assert "either" in found["sip2.checksum_receive"]
    assert "backoff_initial_s" in found["sip2.backoff_max_s"]
    assert "one character" in found["sip2.delimiter"]
    assert "did you mean 'response_timeout_s'" in found["sip2.response_timout_s"]


def test_tls_files_must_exist(tmp_path):
    with pytest.raises(ConfigError) as info:
        sip2_config(tmp_path, 'tls = true\nca_file = "ca.pem"\ncert_file = "me.pem"\n')
    keys = {p.key for p in info.value.problems}
    assert {"sip2.ca_file", "sip2.key_file"} <= keys


def test_the_password_comes_from_a_private_secrets_file(tmp_path):
    config = sip2_config(tmp_path)
    secret = tmp_path / "sip2-secrets.toml"
    secret.write_text('password = "s3cret"\nterminal_password = "t3rm"\n')
    secret.chmod(0o600)
    secrets = load_secrets(config)
    assert (secrets.password, secrets.terminal_password) == ("s3cret", "t3rm")
    assert "s3cret" not in repr(secrets) and "t3rm" not in repr(secrets)


def test_a_secrets_file_others_can_read_is_refused_with_the_fix(tmp_path):
    config = sip2_config(tmp_path)
    secret = tmp_path / "sip2-secrets.toml"
    secret.write_text('password = "s3cret"\n')
    secret.chmod(0o644)
    with pytest.raises(SecretsError) as info:
        load_secrets(config)
    assert "chmod 600" in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ('password = "x"\npasword = "y"\n', "did you mean 'password'"),
    ('terminal_password = "x"\n', "missing: the SIP2 login password"),
    ("password = 12\n", "a text in quotes"),
    ("password = \n", "not valid TOML"),
])
def test_broken_secrets_files_say_what_is_wrong(tmp_path, content, expected):
    config = sip2_config(tmp_path)
    if content is not None:
        secret = tmp_path / "sip2-secrets.toml"
        secret.write_text(content)
        secret.chmod(0o600)
    with pytest.raises(SecretsError) as info:
        load_secrets(config)
    assert expected in str(info.value)


@pytest.mark.parametrize("text, key", [
    ('[sip2]\nencoding = "utf-16"\n', "sip2.encoding"),
    ('[sip2]\ndelimiter = "A"\n', "sip2.delimiter"),
    ('[sip2]\nencoding = "ascii"\ndelimiter = "é"\n', "sip2.delimiter"),
])
def test_a_character_set_or_delimiter_sip2_cannot_frame_is_refused(text, key):
    assert key in problems(text)
