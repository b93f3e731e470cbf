"""Key events to text (the keyboard-wedge readers' and HID scanners' decoder), and card UIDs in
the forms readers type and libraries register."""

import pytest
from evdev import ecodes
from hypothesis import given
from hypothesis import strategies as st

from drivers.keyboard_wedge import _KEYS, KeyDecoder
from fake_evdev import typed
from kiosk.identifiers import IdentifierRules, format_uid, parse_uid_text


def decode(events, decoder=None):
    decoder = decoder or KeyDecoder()
    return [line for e in events if (line := decoder.feed_event(e)) is not None]


def test_the_key_table_agrees_with_the_kernels_codes():
    names = {"1": "1", "!": "1", "a": "A", "A": "A", "-": "MINUS", "_": "MINUS", "/": "SLASH", ".": "DOT",
             " ": "SPACE", "0": "0", ")": "0", "z": "Z", ";": "SEMICOLON"}
    for ch, name in names.items():
        plain, shifted = _KEYS[ecodes.ecodes["KEY_" + name]]
        assert ch in (plain, shifted)
    for n in range(10):
        assert _KEYS[ecodes.ecodes[f"KEY_KP{n}"]] == (str(n), str(n))


@pytest.mark.parametrize("text", ["3283263748", "EM0000000001", "Hello, World!", "a-b_c/d.e", "11110100000001"])
def test_typed_lines_come_back_as_typed(text):
    assert decode(typed(text)) == [text]


def test_keypad_enter_also_ends_a_line_and_lines_follow_each_other():
    assert decode(typed("123", enter="KPENTER") + typed("456")) == ["123", "456"]


def test_caps_lock_flips_letters_not_digits():
    from evdev import InputEvent

    caps = [InputEvent(0, 0, ecodes.EV_KEY, ecodes.KEY_CAPSLOCK, 1), InputEvent(0, 0, ecodes.EV_KEY, ecodes.KEY_CAPSLOCK, 0)]
    assert decode(caps + typed("em1")) == ["EM1"]


def test_a_held_key_repeating_types_nothing_more():
    from evdev import InputEvent

    events = typed("12")
    down = next(i for i, e in enumerate(events) if e.type == ecodes.EV_KEY and e.value == 1)
    events[down + 1:down + 1] = [InputEvent(0, 0, ecodes.EV_KEY, events[down].code, 2)] * 5
    assert decode(events) == ["12"]


def test_a_line_longer_than_the_limit_is_dropped_whole_and_counted():
    decoder = KeyDecoder(max_length=64)
    assert decode(typed("9" * 4000) + typed("42"), decoder) == ["42"]
    assert decoder.overflows == 1


def test_keys_without_a_character_are_counted_not_typed():
    from evdev import InputEvent

    decoder = KeyDecoder()
    f1 = [InputEvent(0, 0, ecodes.EV_KEY, ecodes.KEY_F1, 1), InputEvent(0, 0, ecodes.EV_KEY, ecodes.KEY_F1, 0)]
    assert decode(f1 + typed("7"), decoder) == ["7"]
    assert decoder.unknown_keys == 1


def test_the_decoder_takes_plain_numbers_too():
    decoder = KeyDecoder()
    assert decoder.feed(1, 30, 1) is None and decoder.feed(1, 30, 0) is None
    assert decoder.feed(1, 28, 1) == "a"


# -- UIDs as typed by wedge readers


@pytest.mark.parametrize("text, fmt, order, uid", [
    ("3283263748", "decimal", "reversed", "04A1B2C3"),  # the usual 10-digit card number
    ("0077705923", "decimal", "as-read", "04A1B2C3"),
    ("04a1b2c3", "hex", "as-read", "04A1B2C3"),
    ("C3:B2:A1:04", "hex", "reversed", "04A1B2C3"),
    ("04112233445566", "hex", "as-read", "04112233445566"),
])
def test_typed_uids_become_the_plain_uid(text, fmt, order, uid):
    assert parse_uid_text(text, fmt=fmt, byte_order=order) == bytes.fromhex(uid)


@pytest.mark.parametrize("text, fmt", [("", "decimal"), ("12ab", "decimal"), ("９９", "decimal"), ("ERR?!", "hex"),
                                       ("04A1B2", "hex"), ("9" * 30, "decimal")])
def test_typed_nonsense_is_refused(text, fmt):
    with pytest.raises(ValueError):
        parse_uid_text(text, fmt=fmt, byte_order="as-read")


@given(st.sampled_from([4, 7]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
       st.sampled_from(["hex", "decimal"]), st.sampled_from(["as-read", "reversed"]))
def test_what_a_reader_types_parses_back_to_the_same_card(uid, fmt, order):
    rules = IdentifierRules(uid_format=fmt, uid_byte_order=order, uid_decimal_digits=0)
    typed_text = format_uid(uid, rules)
    parsed = parse_uid_text(typed_text, fmt=fmt, byte_order=order)
    assert format_uid(parsed, rules) == typed_text  # the same member, whatever the reader
    if fmt == "hex" or len(uid) == 4 or int(typed_text) >= 1 << 32:
        assert parsed == uid  # (a small decimal number cannot say it had 7 bytes)


def test_the_check_byte_is_appended_to_four_byte_uids_only():
    rules = IdentifierRules(uid_check_byte=True)
    assert format_uid(bytes.fromhex("04A1B2C3"), rules) == "04A1B2C3D4"  # 04^A1^B2^C3 = D4
    assert format_uid(bytes.fromhex("04112233445566"), rules) == "04112233445566"


def test_the_card_numbers_the_readme_gives_for_one_card():
    uid = bytes.fromhex("04A1B2C3")
    assert format_uid(uid, IdentifierRules()) == "04A1B2C3"
    assert format_uid(uid, IdentifierRules(uid_format="decimal", uid_byte_order="reversed")) == "3283263748"
    assert format_uid(uid, IdentifierRules(uid_format="decimal", uid_decimal_digits=0, uid_check_byte=True)) == "19892716500"
