import json
import math
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.clock import FakeClock
from kiosk.config import Config, ConfigError, load, parse
from steps import login, sip2_kiosk
from sync.sip2.client import Client, ClientSettings
from sync.sip2.codec import Sip2Error

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


def sip2_config_file(tmp_path, extra="", password=None):
    """kiosk.toml for a SIP2 library, `extra` lines in its [sip2]; with `password`, the private
    secrets file beside it too."""
    path = tmp_path / "kiosk.toml"
    path.write_text('[library]\nbackend = "sip2"\nseed = ""\n[sip2]\nhost = "ils.example"\n' + extra,
                    encoding="utf-8")
    if password is not None:
        secret = tmp_path / "sip2-secrets.toml"
        secret.write_text(f"password = {json.dumps(password, ensure_ascii=False)}\n", encoding="utf-8")
        secret.chmod(0o600)
    return path


def sip2_config(tmp_path, extra=""):
    return load(sip2_config_file(tmp_path, extra))


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


@pytest.mark.parametrize("section, line, key", [
    ("sip2", "response_timeout_s = inf", "sip2.response_timeout_s"),
    ("sip2", "connect_timeout_s = 1e10", "sip2.connect_timeout_s"),
    ("offline", "cache_days = 1000000", "offline.cache_days"),
    ("offline", "due_days = 3000000", "offline.due_days"),
    ("offline", "delivered_retention_days = 1000000", "offline.delivered_retention_days"),
])
def test_config_check_refuses_endless_timeouts_and_day_counts(section, line, key):
    """A timeout or a number of days meant as "for ever" is no number the kiosk can wait or
    count with (the kernel takes whole seconds, a date cannot be a million days away): config
    check names it, rather than the kiosk failing on it later."""
    assert key in problems(f"[{section}]\n{line}\n")


def test_an_endless_timeout_never_fails_a_request_with_an_overflow(ils):
    """A response timeout of inf is positive, but no timeout a socket can take. The client's
    settings refuse it; or else a request with it ends as a SIP2 failure the kiosk handles,
    never an OverflowError that no caller takes for the library being unavailable."""
    try:
        settings = ClientSettings(ils.address[0], ils.address[1], user="kiosk", password="kiosk-demo",
                                  response_timeout_s=math.inf, connect_timeout_s=0.5)
    except ValueError:
        return  # refused up front
    with Client(settings, clock=FakeClock()) as client:
        try:
            client.sc_status()
        except Sip2Error:
            pass


def test_offline_sign_in_with_a_long_cache_days_still_judges_from_the_cache(tmp_path, clock, ils):
    """cache_days = 1000000 ("keep them for ever"): config check refuses it; or else a member
    seen online signs in from the cache while the library is down, as with cache_days = 30,
    instead of every offline sign-in ending on the error screen."""
    try:
        parse("[offline]\ncache_days = 1000000\n")
    except ConfigError:
        return  # refused: the kiosk never runs with it
    k = sip2_kiosk(tmp_path, clock, ils, cache_days=1_000_000)
    try:
        login(k)
        assert k.state.screen == "menu"
        k.tap("logout")
        ils.faults.down = True
        clock.advance(60)
        login(k)
        assert k.state.screen == "menu"
    finally:
        k.close()


@pytest.mark.parametrize("extra, password, named", [
    ("", "pass|word", "password"),                       # "|" ends a field: the library would get "pass word"
    ('encoding = "ascii"\n', "비밀번호1234", "password"),  # not writable in ascii: "????1234"
    ('user = "kiosk|2"\n', "plain", "sip2.user"),          # the login's CN, cut the same way
    ('institution = "111101|"\n', "plain", "sip2.institution"),
])
def test_config_check_names_a_login_value_sip2_cannot_carry(tmp_path, capsys, extra, password, named):
    """A login value holding the field delimiter, or characters the configured character set
    cannot write, would reach the library as another value than the file's, and the library
    would refuse the login. config check names the value instead of saying OK."""
    config = sip2_config_file(tmp_path, extra, password=password)
    status = main(["config", "check", str(config)])
    captured = capsys.readouterr()
    assert status != 0, captured.out
    assert named in captured.err


def test_config_check_names_a_tls_ca_file_that_holds_no_certificate(tmp_path, capsys):
    """tls = true with a ca_file that exists but holds no certificate (a copy of the wrong file,
    an error page a browser saved): the kiosk could never connect and would lend offline only.
    config check names the file instead of saying OK."""
    (tmp_path / "ils-ca.pem").write_text("<html>404 Not Found</html>\n")
    config = sip2_config_file(tmp_path, 'tls = true\nca_file = "ils-ca.pem"\n', password="plain")
    status = main(["config", "check", str(config)])
    captured = capsys.readouterr()
    assert status != 0, captured.out
    assert "sip2.ca_file" in captured.err
