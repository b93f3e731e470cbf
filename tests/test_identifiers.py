import pytest
from hypothesis import given, strategies as st

from kiosk.identifiers import (
    IdentifierRules, Kind, chaekieum_library_code, classify, format_uid, isbn13_valid, mask, parse_uid_hex,
)

RULES = IdentifierRules()


@pytest.mark.parametrize(
    "text, kind, normalised",
    [
        ("11110100000001", Kind.MEMBER, "11110100000001"),
        ("  11110100000001\r\n", Kind.MEMBER, "11110100000001"),
        ("EM0000000003", Kind.ITEM, "EM0000000003"),
        ("em0000000003", Kind.ITEM, "EM0000000003"),
        ("9788936434120", Kind.ISBN, "9788936434120"),  # 채식주의자
        ("9788936434121", Kind.UNKNOWN, "9788936434121"),  # wrong check digit
        ("1111010000000", Kind.UNKNOWN, "1111010000000"),  # 13 digits
        ("EM00000000031", Kind.UNKNOWN, "EM00000000031"),
        ("", Kind.UNKNOWN, ""),
        ("https://example.org/?q=1", Kind.UNKNOWN, "https://example.org/?q=1"),
    ],
)
def test_classify(text, kind, normalised):
    scanned = classify(text, RULES)
    assert scanned.kind is kind
    assert scanned.text == normalised


def test_patterns_come_from_config():
    rules = IdentifierRules(member_patterns=(r"M\d{6}",), item_patterns=(r"\d{8}",), accept_isbn=False)
    assert classify("M123456", rules).kind is Kind.MEMBER
    assert classify("12345678", rules).kind is Kind.ITEM
    assert classify("11110100000001", rules).kind is Kind.UNKNOWN
    assert classify("9788936434120", rules).kind is Kind.UNKNOWN


def test_chaekieum_library_code():
    assert chaekieum_library_code("11110100000001") == "111101"
    assert chaekieum_library_code("1111010000000") is None
    assert chaekieum_library_code("1111010000000X") is None


def test_isbn13():
    assert isbn13_valid("9788937460449")
    assert isbn13_valid("9791190090018")
    assert not isbn13_valid("9780000000000")
    assert not isbn13_valid("1234567890123")  # not a book prefix


@pytest.mark.parametrize(
    "rules, expected",
    [
        (IdentifierRules(), "04A1B2C3"),
        (IdentifierRules(uid_byte_order="reversed"), "C3B2A104"),
        (IdentifierRules(uid_format="decimal"), "0077705923"),
        (IdentifierRules(uid_format="decimal", uid_byte_order="reversed"), "3283263748"),
        (IdentifierRules(uid_format="decimal", uid_decimal_digits=0), "77705923"),
    ],
)
def test_uid_formats(rules, expected):
    assert format_uid(bytes.fromhex("04A1B2C3"), rules) == expected


def test_seven_byte_uid():
    assert format_uid(bytes.fromhex("04112233445566"), IdentifierRules()) == "04112233445566"


def test_empty_uid_is_an_error():
    with pytest.raises(ValueError):
        format_uid(b"", RULES)


@pytest.mark.parametrize("text", ["04:a1:b2:c3", "04A1B2C3", "04 A1 B2 C3"])
def test_parse_uid_hex(text):
    assert parse_uid_hex(text) == bytes.fromhex("04A1B2C3")


@pytest.mark.parametrize("text", ["", "04A", "XYZ1", "04-A1-B2-C"])
def test_parse_uid_hex_rejects(text):
    with pytest.raises(ValueError):
        parse_uid_hex(text)


@given(st.binary(min_size=1, max_size=10))
def test_hex_uid_round_trip(uid):
    assert parse_uid_hex(format_uid(uid, RULES)) == uid


@given(st.text())
def test_classify_never_crashes(text):
    assert classify(text, RULES).kind in Kind


def test_mask_keeps_only_the_tail():
    assert mask("11110100000001") == "…0001"
    assert "1111" not in mask("11110100000001")
