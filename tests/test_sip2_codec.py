"""The SIP2 codec: golden vectors from real servers, round trips in every dialect, hostile input,
the frame reader, dates, and the technician's decode tool."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import string
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kiosk.clock import KST
from sync.sip2.codec import (
    DEFAULT, DecodeError, Dialect, EncodeError, FrameError, FrameReader, Message, RequestEncoder, Sip2Error,
    checksum, decode, encode, format_date, make, next_sequence, parse_date,
)
from sync.sip2.messages import SPECS
from sync.sip2.tools import REDACTED, decode_lines, describe

NFD_TITLE = "Une e\u0301pouse presque parfaite! "

# The table in the protocol notes, markdown escapes undone: (frame without CR, checksum valid).
GOLDEN = [
    ("990 402.00AY1AZFCB4", True),
    ("941AY0AZFDFD", True),
    ("9300CNLoginUserID|COLoginPassword|CPLocationCode|AY5AZEC7B", True),
    ("9300CNLoginUserID|COLoginPassword|CPLocationCode|AY5AZEC78", False),  # the common misquote
    ("9300CNlibrarian@test.com|CO123456|CPselfcheck_location|AY1AZEAEE", True),
    ("941AY1AZFDFC", True),
    ("9300CNinfo@test.org|COtester|CPselfcheck_location|AY0AZEB8C", True),
    ("940AY0AZFDFE", True),
    ("9900401.00AY1AZAAAA", False),  # FOLIO: a bad checksum, answered with 96
    ("96AZFEF6", True),
    ("97AZFEF5", True),
    ("9300CNuser_id|COpassw0rd|AY1AZF594", True),
    ("9300CNuser_id|COpassw0rd|AY1AZF595", False),
    ("11YY20210814    08345520210814    083455AO|AApatronId|ABitemId|AC|AY0AZED4B", True),
    ("09Y20210814    08345520210814    083455AP|AO|ABitemId|AC|AY0AZF0CF", True),
    ("09N20210715    12450120210810    180136APlocation|AO|ABitemId|AC|CHitemProperties|AY1AZE6B3", True),
    ("1804020120110630    110249AB30007008317298|AJ" + NFD_TITLE + "|CK001|AQOSUL|APOSUL|BGOSUL"
     "|AH2011-10-28 23:59:59|CSPB LP COL|AY8AZD852", True),
]

JSIP2_DATE = "20210814    083455"

# Vectors the codec can build: (message, dialect, sequence, the frame without CR).
REBUILT = [
    (make("sc_status", status_code="0", max_print_width=" 40", protocol_version="2.00"), DEFAULT, 1,
     "990 402.00AY1AZFCB4"),
    (make("login_response", ok="1"), DEFAULT, 0, "941AY0AZFDFD"),
    (make("login", [("CN", "LoginUserID"), ("CO", "LoginPassword"), ("CP", "LocationCode")],
          uid_algorithm="0", pwd_algorithm="0"), DEFAULT, 5,
     "9300CNLoginUserID|COLoginPassword|CPLocationCode|AY5AZEC7B"),
    (make("93", [("CN", "librarian@test.com"), ("CO", "123456"), ("CP", "selfcheck_location")],
          uid_algorithm="0", pwd_algorithm="0"), DEFAULT, 1,
     "9300CNlibrarian@test.com|CO123456|CPselfcheck_location|AY1AZEAEE"),
    (make("login_response", ok="0"), DEFAULT, 0, "940AY0AZFDFE"),
    (make("login", [("CN", "user_id"), ("CO", "passw0rd")], uid_algorithm="0", pwd_algorithm="0"),
     DEFAULT, 1, "9300CNuser_id|COpassw0rd|AY1AZF594"),
    (make("request_sc_resend"), DEFAULT, None, "96AZFEF6"),
    (make("request_acs_resend"), DEFAULT, 7, "97AZFEF5"),  # 97 never carries AY, even when given one
    (make("checkout", [("AO", ""), ("AA", "patronId"), ("AB", "itemId"), ("AC", "")],
          sc_renewal_policy=True, no_block=True, transaction_date=dt.datetime(2021, 8, 14, 8, 34, 55),
          nb_due_date=JSIP2_DATE), DEFAULT, 0,
     "11YY20210814    08345520210814    083455AO|AApatronId|ABitemId|AC|AY0AZED4B"),
    (make("checkin", {"AP": "", "AO": "", "AB": "itemId", "AC": ""}, no_block="Y",
          transaction_date=JSIP2_DATE, return_date=JSIP2_DATE), DEFAULT, 0,
     "09Y20210814    08345520210814    083455AP|AO|ABitemId|AC|AY0AZF0CF"),
    (make("checkin", [("AP", "location"), ("AO", ""), ("AB", "itemId"), ("AC", ""), ("CH", "itemProperties")],
          no_block=False, transaction_date=dt.datetime(2021, 7, 15, 12, 45, 1),
          return_date=dt.datetime(2021, 8, 10, 18, 1, 36)), DEFAULT, 11,
     "09N20210715    12450120210810    180136APlocation|AO|ABitemId|AC|CHitemProperties|AY1AZE6B3"),
    # Evergreen's NFD UTF-8: the title is given composed and sent decomposed, byte-summed.
    (make("item_information_response",
          [("AB", "30007008317298"), ("AJ", unicodedata.normalize("NFC", NFD_TITLE)), ("CK", "001"),
           ("AQ", "OSUL"), ("AP", "OSUL"), ("BG", "OSUL"), ("AH", "2011-10-28 23:59:59"), ("CS", "PB LP COL")],
          circulation_status="04", security_marker="02", fee_type="01",
          transaction_date=dt.datetime(2011, 6, 30, 11, 2, 49)),
     Dialect(normal_form="NFD"), 8, GOLDEN[-1][0]),
]


# -- golden vectors


@pytest.mark.parametrize("frame, valid", GOLDEN, ids=[f"{f[:12]}..{'ok' if v else 'bad'}" for f, v in GOLDEN])
@pytest.mark.parametrize("terminator", [b"", b"\r", b"\r\n"])
def test_golden_vectors_decode_with_the_right_checksum_verdict(frame, valid, terminator):
    message = decode(frame.encode("utf-8") + terminator)
    assert message.checksum_ok is valid
    assert message.command == frame[:2]
    assert message.name in {spec.name for spec in SPECS.values()}


@pytest.mark.parametrize("message, dialect, sequence, frame", REBUILT, ids=[r[3][:12] for r in REBUILT])
def test_golden_vectors_are_rebuilt_byte_for_byte(message, dialect, sequence, frame):
    assert encode(message, dialect, sequence=sequence) == frame.encode("utf-8") + b"\r"
    crlf = dataclasses.replace(dialect, terminator="\r\n")
    assert encode(message, crlf, sequence=sequence) == frame.encode("utf-8") + b"\r\n"


def test_golden_vectors_decode_to_their_fields():
    login = decode(b"9300CNLoginUserID|COLoginPassword|CPLocationCode|AY5AZEC7B\r")
    assert (login.name, login.sequence, login.get("CN"), login.get("CO"), login.get("CP")) == \
        ("login", 5, "LoginUserID", "LoginPassword", "LocationCode")
    status = decode(b"990 402.00AY1AZFCB4\r")
    assert status.fixed == {"status_code": "0", "max_print_width": " 40", "protocol_version": "2.00"}
    checkin = decode(GOLDEN[15][0].encode())
    assert checkin.flag("no_block") is False
    assert checkin.fields == (("AP", "location"), ("AO", ""), ("AB", "itemId"), ("AC", ""), ("CH", "itemProperties"))
    item = decode(GOLDEN[-1][0].encode("utf-8"))
    assert item.get("AJ") == "Une épouse presque parfaite! "  # NFD arrives, NFC comes out
    assert item.fixed["circulation_status"] == "04"
    assert parse_date(item.get("AH")) == dt.datetime(2011, 10, 28, 23, 59, 59)
    resend = decode(b"96AZFEF6")
    assert (resend.name, resend.sequence, resend.fields) == ("request_sc_resend", None, ())


@given(st.binary(max_size=2000) | st.integers(0, 3000).map(lambda n: b"\xff" * n))
def test_checksum_is_the_twos_complement_of_the_byte_sum(data):
    assert checksum(data) == f"{-sum(data) & 0xFFFF:04X}"


def test_checksum_and_sequence_helpers():
    assert checksum(b"941AY0AZ") == "FDFD"
    assert checksum(b"") == "0000"
    assert checksum(b"\x01") == "FFFF"  # zero padded, upper case, two's complement
    assert [next_sequence(n) for n in (0, 8, 9)] == [1, 9, 0]


# -- round trips


def _charset(encoding: str) -> list[str]:
    """Every character `encoding` can carry whose NFC form it can carry too (minus CR/LF/NUL)."""
    candidates = [bytes((b,)) for b in range(256)]
    if encoding in ("cp949", "euc-kr"):
        candidates += [bytes((lead, trail)) for lead in range(0x81, 0xFF) for trail in range(0x41, 0xFF)]
    chars = set()
    for raw in candidates:
        try:
            char = raw.decode(encoding)
            unicodedata.normalize("NFC", char).encode(encoding)
        except UnicodeError:
            continue
        if len(char) == 1:
            chars.add(char)
    return sorted(chars - set("\r\n\x00"))


CHARSETS = {encoding: _charset(encoding) for encoding in ("cp949", "cp850", "latin-1", "ascii")}
# Characters a Korean library sees, mixed into arbitrary Unicode so they turn up often.
SPICE = list("김민준한글도서관책이음éèçñüÅ") + ["e\u0301", "\u1112\u1161\u11ab", "😀", "👍🏽", "\u0301", "\u200d"]
DELIMITERS = ["|", "^", "~", "!", "\t"]
DIALECT_SHAPES = [("utf-8", "NFC"), ("utf-8", "NFD"), ("cp949", "NFC"), ("cp850", "NFC"),
                  ("latin-1", "NFC"), ("ascii", "NFC")]
FIELD_ID = st.text(string.ascii_uppercase + string.digits, min_size=2, max_size=2).filter(lambda c: c not in ("AY", "AZ"))


@functools.cache
def _text(encoding: str, delimiter: str) -> st.SearchStrategy[str]:
    banned = "\r\n\x00" + delimiter
    if encoding == "utf-8":
        alphabet = st.one_of(st.characters(exclude_categories=("Cs",), exclude_characters=banned),
                             st.sampled_from(SPICE))
        return st.lists(alphabet, max_size=12).map("".join)
    return st.text(alphabet=[c for c in CHARSETS[encoding] if c not in banned], max_size=12)


@st.composite
def dialects(draw) -> Dialect:
    encoding, form = draw(st.sampled_from(DIALECT_SHAPES))
    send = draw(st.sampled_from(["bytes", "codepoints"]))
    receive = draw(st.sampled_from(["bytes", "either"] if send == "bytes" else ["codepoints", "either"]))
    return Dialect(encoding=encoding, normal_form=form, delimiter=draw(st.sampled_from(DELIMITERS)),
                   terminator=draw(st.sampled_from(["\r", "\r\n"])), error_detection=draw(st.booleans()),
                   send_checksum=send, checksum_mode=receive)


@functools.cache
def _fixed_text(width: int, delimiter: str) -> st.SearchStrategy[str]:
    printable_ascii = [c for c in string.printable[:95] if c != delimiter]
    return st.text(printable_ascii, min_size=width, max_size=width)


@st.composite
def messages(draw, command: str, dialect: Dialect) -> Message:
    spec = SPECS[command]
    fixed = {name: draw(_fixed_text(width, dialect.delimiter)) for name, width in spec.fixed}
    value = _text(dialect.encoding, dialect.delimiter)
    fields = [(code, draw(value)) for code in spec.required]
    fields += draw(st.lists(st.tuples(st.sampled_from(list(spec.required) or ["AF"]) | FIELD_ID, value), max_size=6))
    return make(command, draw(st.permutations(fields)), **fixed)


def _nfc(fields):
    return tuple((code, unicodedata.normalize("NFC", value)) for code, value in fields)


@pytest.mark.parametrize("command", sorted(SPECS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips_in_every_dialect(command, data):
    dialect = data.draw(dialects(), label="dialect")
    message = data.draw(messages(command, dialect), label="message")
    sequence = data.draw(st.none() | st.integers(0, 9), label="sequence")
    frame = encode(message, dialect, sequence=sequence)
    assert frame.endswith(dialect.terminator.encode()) and frame.count(b"\r") == 1
    back = decode(frame, dialect)
    assert back.command == message.command
    assert back.fixed == message.fixed
    assert back.fields == _nfc(message.fields)
    detected = dialect.error_detection
    assert back.checksum_ok is (True if detected else None)
    carries_sequence = detected and sequence is not None and command not in ("96", "97")
    assert back.sequence == (sequence if carries_sequence else None)


@settings(max_examples=60, deadline=None)
@given(dialect=dialects(), data=st.data())
def test_error_detection_can_be_switched_per_message(dialect, data):
    message = data.draw(messages("63", dialect))
    frame = encode(message, dialect, sequence=4, error_detection=not dialect.error_detection)
    assert decode(frame, dialect).checksum_ok is (None if dialect.error_detection else True)


def _outcome(build):
    try:
        return build()
    except EncodeError as exc:
        return EncodeError, str(exc)


@pytest.mark.parametrize("command", [command for command, spec in sorted(SPECS.items()) if spec.reply])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_compiled_request_encoder_sends_what_encode_sends(command, data):
    # Plain ASCII values take the compiled path, the rest encode() itself: the same bytes either way,
    # and the same refusal for a missing required field or a fixed field of the wrong width.
    dialect = data.draw(dialects(), label="dialect")
    spec = SPECS[command]
    codes = data.draw(st.lists(FIELD_ID | st.sampled_from(list(spec.required) or ["AF"]), max_size=6)
                      .map(lambda extra: list(spec.required) + extra).flatmap(st.permutations), label="codes")
    text = _text(dialect.encoding, dialect.delimiter) | st.text("AZ09 |^\r\n\x00", max_size=8)
    values = tuple(data.draw(st.lists(st.none() | text, min_size=len(codes), max_size=len(codes)), label="values"))
    fixed = tuple(data.draw(_fixed_text(width, dialect.delimiter) | st.sampled_from(["", "x" * (width + 1)]))
                  for _, width in spec.fixed)
    sequence = data.draw(st.none() | st.integers(0, 9), label="sequence")
    encoder = RequestEncoder(command, codes, dialect)
    expected = _outcome(lambda: encode(make(command, list(zip(codes, values)),
                                            **dict(zip([name for name, _ in spec.fixed], fixed))),
                                       dialect, sequence=sequence))
    assert _outcome(lambda: encoder.encode(fixed, values, sequence)) == expected


@settings(max_examples=80, deadline=None)
@given(value=st.text(max_size=20), delimiter=st.sampled_from(DELIMITERS),
       form=st.sampled_from(["NFC", "NFD", "NFKC"]))
def test_delimiter_and_line_ends_in_values_become_spaces(value, delimiter, form):
    dialect = Dialect(delimiter=delimiter, normal_form=form)
    message = make("checkout", [("AO", "CPL"), ("AA", "1111"), ("AB", value), ("AC", ""), ("AF", value)],
                   sc_renewal_policy="N", no_block="N", transaction_date=None, nb_due_date=None)
    frame = encode(message, dialect, sequence=3)
    assert frame.count(b"\r") == 1 and b"\n" not in frame and b"\x00" not in frame
    back = decode(frame, dialect)
    assert [code for code, _ in back.fields] == ["AO", "AA", "AB", "AC", "AF"]
    scrubbed = back.get("AB")
    assert not set(scrubbed) & {delimiter, "\r", "\n", "\x00"}
    expected = unicodedata.normalize(form, value)
    for char in (delimiter, "\r", "\n", "\x00"):
        expected = expected.replace(char, " ")
    assert scrubbed == unicodedata.normalize("NFC", expected)


def test_scrubbing_examples():
    message = make("17", [("AO", "a|b"), ("AB", "line\r\nbreak"), ("AF", "nul\x00")], transaction_date=None)
    assert encode(message, error_detection=False) == \
        b"17" + b" " * 18 + b"AOa b|ABline  break|AFnul |\r"
    # A compatibility form could turn a full-width bar into the delimiter: it is scrubbed after.
    frame = encode(make("17", [("AO", "x\uff5cy"), ("AB", "1")], transaction_date=None), Dialect(normal_form="NFKC"))
    assert decode(frame).fields == (("AO", "x y"), ("AB", "1"))


def test_a_leading_combining_mark_never_merges_into_the_field_id():
    for form in ("NFC", "NFD"):
        message = make("17", [("AE", "\u0301x"), ("AO", "\u0301"), ("AB", "e\u0301")], transaction_date=None)
        back = decode(encode(message, Dialect(normal_form=form)))
        assert back.fields == (("AE", "\u0301x"), ("AO", "\u0301"), ("AB", "é"))


HANGUL = make("patron_status", [("AO", "CPL"), ("AA", "11110100000001"), ("AC", ""), ("AD", ""), ("AF", "김민준")],
              language="000", transaction_date=None)


@pytest.mark.parametrize("encoding", ["utf-8", "cp949"])
def test_checksum_modes(encoding):
    by_bytes = encode(HANGUL, Dialect(encoding=encoding), sequence=2)
    by_codepoints = encode(HANGUL, Dialect(encoding=encoding, send_checksum="codepoints"), sequence=2)
    assert by_bytes[-7:] != by_codepoints[-7:]

    def verdict(frame, mode):
        return decode(frame, Dialect(encoding=encoding, checksum_mode=mode)).checksum_ok

    assert [verdict(by_bytes, mode) for mode in ("bytes", "codepoints", "either")] == [True, False, True]
    assert [verdict(by_codepoints, mode) for mode in ("bytes", "codepoints", "either")] == [False, True, True]
    ascii_only = make("login", [("CN", "kiosk"), ("CO", "pw")], uid_algorithm="0", pwd_algorithm="0")
    same = encode(ascii_only, Dialect(send_checksum="codepoints"), sequence=1)
    assert same == encode(ascii_only, sequence=1)
    assert all(verdict(same, mode) for mode in ("bytes", "codepoints", "either"))
    corrupted = by_bytes.replace("김".encode(encoding), "긴".encode(encoding))
    assert verdict(corrupted, "either") is False


def test_text_the_encoding_cannot_carry_becomes_question_marks():
    frame = encode(HANGUL, Dialect(encoding="ascii"), sequence=0)
    back = decode(frame, Dialect(encoding="ascii"))
    assert back.get("AF") == "???" and back.checksum_ok is True
    assert decode(encode(HANGUL, Dialect(encoding="cp850")), Dialect(encoding="cp850")).get("AF") == "???"


# -- hostile input


HOSTILE_DIALECTS = [DEFAULT, Dialect(encoding="cp949"), Dialect(encoding="cp850", checksum_mode="either"),
                    Dialect(encoding="ascii", checksum_mode="codepoints"), Dialect(delimiter="\t")]


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=200) | st.builds(lambda golden, cut, junk: golden.encode("utf-8")[:cut] + junk,
                                                   st.sampled_from([g for g, _ in GOLDEN]), st.integers(0, 200),
                                                   st.binary(max_size=30)),
       dialect=st.sampled_from(HOSTILE_DIALECTS))
def test_arbitrary_bytes_decode_or_raise_decode_error(frame, dialect):
    try:
        message = decode(frame, dialect)
    except DecodeError as exc:
        assert str(exc)
        return
    assert len(message.command) == 2 and message.command.isdigit()
    assert all(isinstance(value, str) for _, value in message.fields)


@pytest.mark.parametrize("frame", [None, "941AY0AZFDFD", 94, [b"94"]])
def test_decode_rejects_what_is_not_bytes(frame):
    with pytest.raises(DecodeError):
        decode(frame)


def test_decode_accepts_bytearray_and_memoryview():
    assert decode(bytearray(b"941AY0AZFDFD")).checksum_ok is True
    assert decode(memoryview(b"941AY0AZFDFD\r")).sequence == 0


@pytest.mark.parametrize("frame", [b"", b"\r", b"\r\n", b"9", b"AB1", b"\xff\xfe", b"\n\n", b"\xef\xbc\x99\xef\xbc\x94"])
def test_not_sip2_at_all(frame):
    with pytest.raises(DecodeError, match="empty|two-digit command"):
        decode(frame)


def test_a_decode_error_does_not_repeat_the_frame():
    with pytest.raises(DecodeError) as caught:
        decode(b"XXCNsecretuser|COsecretpassword|")
    assert "secret" not in str(caught.value)


def test_truncated_fixed_part_says_what_was_cut():
    frame = GOLDEN[13][0].encode()  # a checkout: 38 fixed characters
    for cut in range(2, 40):
        with pytest.raises(DecodeError, match=r"checkout \(11\) cut short: \d+ of 38 fixed"):
            decode(frame[:cut])
    with pytest.raises(DecodeError, match="patron_information_response"):
        decode(b"64" + b" " * 14 + b"000" + b"AY1AZFFFF")
    assert decode(frame[:40]).fields == ()  # the fixed part is whole
    assert decode(frame[:42]).fields == (("AO", ""),)  # fields are lenient


def test_unknown_and_repeated_fields_are_kept_in_order():
    frame = (b"64" + b" " * 14 + b"000" + b"20260305    143000" + b"0000" * 6 +
             b"AOCPL|AA1111|AUEM1|ZZext|AUEM2|AFone|AFtwo|AUEM3|Q|xy1|AY1AZ")
    frame += checksum(frame).encode()
    message = decode(frame)
    assert message.checksum_ok is True
    assert message.all("AU") == ["EM1", "EM2", "EM3"]
    assert message.all("AF") == ["one", "two"]
    assert message.get("ZZ") == "ext" and message.has("ZZ")
    assert [code for code, _ in message.fields] == ["AO", "AA", "AU", "ZZ", "AU", "AF", "AF", "AU", "Q", "xy"]
    assert message.get("BV", "none") == "none" and not message.has("BV")


def test_unknown_command_decodes_without_crashing():
    frame = b"25ABC|DEF|AY3AZ"
    message = decode(frame + checksum(frame).encode() + b"\r")
    assert message.command == "25"
    assert message.name == "unknown_25"
    assert message.fixed == {"raw": "ABC|DEF|"}
    assert message.sequence == 3 and message.checksum_ok is True


def test_bytes_invalid_in_the_encoding_become_replacement_characters():
    frame = b"17" + b" " * 18 + b"AO\xff\xfeCPL|AB\xea\xb9|AJ\xe2\x82|"
    message = decode(frame)
    assert message.get("AO") == "\ufffd\ufffdCPL"
    assert "\ufffd" in message.get("AB") and "\ufffd" in message.get("AJ")
    assert decode(b"17" + b" " * 18 + b"AO\x81|", Dialect(encoding="cp949")).get("AO") == "\ufffd"


@pytest.mark.parametrize("width, version", [(" AZ", "BEEF"), ("   ", "xAY5"), ("AY5", "AZ12")])
def test_fixed_text_that_looks_like_a_checksum_is_not_one(width, version):
    # Without error detection a 99 ends with its fixed part: "AZBEEF" there is text, not a checksum.
    message = make("sc_status", status_code="0", max_print_width=width, protocol_version=version)
    back = decode(encode(message, error_detection=False))
    assert back.fixed == message.fixed and back.checksum_ok is None and back.sequence is None
    back = decode(encode(message, sequence=4))
    assert back.fixed == message.fixed and back.checksum_ok is True and back.sequence == 4


def test_a_tab_delimited_last_field_is_not_taken_for_a_checksum():
    tab = Dialect(delimiter="\t", error_detection=False)
    message = make("17", [("AO", "x"), ("AB", "AZ1234")], transaction_date=None)
    assert decode(encode(message, tab), tab).fields == (("AO", "x"), ("AB", "AZ1234"))


def test_trailing_spaces_after_the_checksum_are_tolerated():
    assert decode(b"941AY0AZFDFD  \r\n").checksum_ok is True
    assert decode(b"941AY0AZfdfd").checksum_ok is True


@pytest.mark.parametrize("build, problem", [
    (lambda: make("sc_status", status_code="00", max_print_width="040", protocol_version="2.00"), "must be 1 characters"),
    (lambda: make("checkout", [("AO", ""), ("AA", "1"), ("AB", "2"), ("AC", "")], sc_renewal_policy="N",
                  no_block="N", transaction_date="2026", nb_due_date=None), "must be 18 characters"),
    (lambda: make("login", [("CN", "u")], uid_algorithm="0", pwd_algorithm="0"), "required field.*CO"),
    (lambda: make("patron_status", [("AO", ""), ("AA", "1")], language="000", transaction_date=None),
     "required field.*AC, AD"),
    (lambda: Message("11", {}), "fixed field 'sc_renewal_policy' is missing"),
    (lambda: Message("94", {"ok": 1}), "must be text"),
    (lambda: Message("94", {"ok": "\r"}), "printable ASCII"),
    (lambda: Message("94", {"ok": "예"}), "printable ASCII"),
    (lambda: Message("94", {"ok": "1"}, (("AF", 5),)), "must be text"),
    (lambda: Message("94", {"ok": "1"}, (("AF",),)), r"\(id, value\) pair"),
    (lambda: Message("94", {"ok": "1"}, "AFx"), r"\(id, value\) pair"),
    (lambda: Message("42", {}), "unknown SIP2 command"),
] + [
    (lambda code=code: make("login_response", [(code, "x")], ok="1"), "bad field id")
    for code in ["A", "AAA", "", "AY", "AZ", "A|", "A\r", "가나", None, 12]
])
def test_encode_rejects_malformed_messages(build, problem):
    with pytest.raises(EncodeError, match=problem):
        encode(build())


def test_make_rejects_unknown_names_fields_and_types():
    with pytest.raises(EncodeError, match="unknown SIP2 message"):
        make("teleport")
    with pytest.raises(EncodeError, match="no fixed field 'colour'"):
        make("checkout", colour="red")
    with pytest.raises(EncodeError, match="not date"):
        make("17", [("AO", ""), ("AB", "1")], transaction_date=dt.date(2026, 3, 5))
    with pytest.raises(EncodeError, match=r"\(id, value\) pairs"):
        make("17", [("AO", "x", "y")])
    with pytest.raises(EncodeError, match=r"\(id, value\) pairs"):
        make("17", 42)
    with pytest.raises(EncodeError, match="sequence number"):
        encode(make("login_response", ok="1"), sequence="1")


def test_make_converts_fixed_values():
    message = make("64", patron_status=None, language=0, transaction_date=dt.datetime(2026, 3, 5, 9, 8, 7),
                   hold_items_count=3, overdue_items_count=-1, charged_items_count=12, fine_items_count=None,
                   recall_items_count=0, unavailable_holds_count=0)
    assert message.fixed["patron_status"] == " " * 14 and message.fixed["language"] == "000"
    assert message.fixed["transaction_date"] == "20260305    090807"
    assert message.number("hold_items_count") == 3 and message.fixed["charged_items_count"] == "0012"
    assert message.fixed["overdue_items_count"] == "    " and message.number("overdue_items_count") == 0
    assert message.number("fine_items_count") == 0


def test_number_and_flag_never_raise_on_odd_text():
    message = Message("64", {"hold_items_count": "²", "overdue_items_count": " 7 ", "ok": "1", "alert": "y"})
    assert message.number("hold_items_count") == 0  # "²".isdigit() is True, int("²") raises
    assert message.number("overdue_items_count") == 7
    assert message.number("missing") == 0
    assert message.flag("ok") and not message.flag("alert") and not message.flag("missing")


@pytest.mark.parametrize("settings_, problem", [
    ({"encoding": "utf-16"}, "ASCII-compatible"),
    ({"encoding": "utf-8-sig"}, "ASCII-compatible"),
    ({"encoding": "utf-7"}, "ASCII-compatible"),
    ({"encoding": "no-such-codec"}, "unknown encoding"),
    ({"delimiter": "A"}, "letter or digit"),
    ({"delimiter": "||"}, "one character"),
    ({"delimiter": "\r"}, "one character"),
    ({"delimiter": "€", "encoding": "cp850"}, "cannot be written"),
    ({"terminator": "\n"}, "CR or CRLF"),
    ({"checksum_mode": "crc"}, "checksum_mode"),
    ({"send_checksum": "either"}, "send_checksum"),
    ({"normal_form": "NFX"}, "normal_form"),
    ({"max_frame": 0}, "max_frame"),
])
def test_dialect_rejects_settings_that_cannot_work(settings_, problem):
    with pytest.raises((ValueError, LookupError), match=problem):
        Dialect(**settings_)


# -- the frame reader


def _run(reader: FrameReader, pieces) -> tuple[list[bytes], int]:
    frames, errors = [], 0
    for piece in pieces:
        try:
            frames += reader.feed(piece)
        except FrameError as exc:
            frames += exc.frames
            errors += 1
    return frames, errors


def _expected(stream: bytes, cap: int) -> tuple[list[bytes], bool]:
    """What the reader should make of a stream: its CR-ended pieces, less the LF and NUL padding
    that may come between frames (a CRLF server's LF, a telnet-style server's CR NUL)."""
    *segments, partial = stream.split(b"\r")
    frames = [s for s in (seg.lstrip(b"\n\x00") for seg in segments) if s and len(s) <= cap]
    oversized = any(len(seg.lstrip(b"\n\x00")) > cap for seg in segments + [partial])
    return frames, oversized


STREAM = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"941AY0AZFDFD", b"|", b"x" * 7]) | st.binary(max_size=12),
                  max_size=30).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=STREAM, cuts=st.lists(st.integers(0, 400), max_size=12), cap=st.integers(1, 40))
def test_frame_reader_gives_the_same_frames_however_the_stream_is_split(stream, cuts, cap):
    bounds = [0, *sorted(c for c in cuts if c <= len(stream)), len(stream)]
    pieces = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    expected, oversized = _expected(stream, cap)
    split_frames, split_errors = _run(FrameReader(cap), pieces)
    whole_frames, whole_errors = _run(FrameReader(cap), [stream])
    byte_frames, byte_errors = _run(FrameReader(cap), [stream[i:i + 1] for i in range(len(stream))])
    assert split_frames == whole_frames == byte_frames == expected
    assert bool(split_errors) == bool(whole_errors) == bool(byte_errors) == oversized


def test_frame_reader_drops_the_lf_of_crlf_servers():
    reader = FrameReader()
    assert reader.feed(b"941AY0AZFDFD\r\n98YYYYNN") == [b"941AY0AZFDFD"]
    assert reader.feed(b"\r\n\r\n") == [b"98YYYYNN"]
    assert reader.pending == 0
    assert reader.feed(bytearray(b"96AZFEF6\r")) == [b"96AZFEF6"]
    assert reader.feed(memoryview(b"\n97AZFEF5\r")) == [b"97AZFEF5"]


def test_frame_reader_drops_nul_padding_between_frames():
    reader = FrameReader()
    assert reader.feed(b"941AY0AZFDFD\r\x00") == [b"941AY0AZFDFD"]  # CR NUL, as telnet-style servers send
    assert reader.pending == 0
    assert reader.feed(b"\x00\x0096AZFEF6\r") == [b"96AZFEF6"]


def test_frame_reader_rejects_text():
    with pytest.raises(FrameError, match="bytes"):
        FrameReader().feed("941AY0AZFDFD\r")


def test_a_flood_without_cr_fails_once_promptly_and_the_stream_recovers():
    reader = FrameReader()  # 64 KiB cap
    chunk = b"x" * 65536
    failed_at = []
    for n in range(160):  # 10 MiB
        try:
            assert reader.feed(chunk) == []
        except FrameError as exc:
            assert "no frame terminator within 65536 bytes" in str(exc)
            failed_at.append(n)
    assert failed_at == [1]  # as soon as the cap is passed, and only once
    assert reader.pending == 0  # the flood is not kept
    assert reader.feed(b"end of the flood\r941AY0AZFDFD\r") == [b"941AY0AZFDFD"]


def test_an_oversized_frame_keeps_the_frames_around_it():
    reader = FrameReader(max_frame=12)
    with pytest.raises(FrameError, match="exceeds the cap of 12") as caught:
        reader.feed(b"941AY0AZFDFD\r" + b"y" * 13 + b"\r96AZFEF6\r")
    assert caught.value.frames == [b"941AY0AZFDFD", b"96AZFEF6"]


def test_frame_reader_work_is_linear_in_the_bytes_fed():
    # A large cap and small reads: a reader that rescanned the whole buffer on every read would
    # make this test take minutes (bench/sip2_codec.py measures the speed).
    reader = FrameReader(max_frame=16 * 1024 * 1024)
    chunk = b"z" * 256
    for _ in range(40960):  # 10 MiB
        assert reader.feed(chunk) == []
    frames = reader.feed(b"\r")
    assert len(frames) == 1 and len(frames[0]) == 10 * 1024 * 1024


def test_frame_reader_clear_and_repr():
    reader = FrameReader()
    reader.feed(b"9410")
    assert reader.pending == 4 and "buffered=4" in repr(reader)
    reader.clear()
    assert reader.feed(b"941AY0AZFDFD\r") == [b"941AY0AZFDFD"]


# -- dates


def test_format_date_local_and_utc():
    assert format_date(dt.datetime(2026, 3, 5, 14, 30, 0)) == "20260305    143000"
    assert format_date(dt.datetime(2026, 3, 5, 14, 30, 0, tzinfo=KST)) == "20260305    143000"
    assert format_date(dt.datetime(2026, 3, 5, 5, 30, 0, tzinfo=dt.timezone.utc)) == "20260305   Z053000"
    assert format_date(None) == " " * 18
    assert format_date(dt.datetime(999, 1, 2, 3, 4, 5)) == "09990102    030405"


_LONDON = pytest.importorskip("zoneinfo").ZoneInfo("Europe/London")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 999_999), st.booleans(),
                          st.sampled_from([None, KST, dt.timezone.utc, _LONDON])), min_size=1, max_size=12))
def test_format_date_of_a_second_just_formatted_is_still_right(moments):
    # The last second's text is reused: never for another second, another zone or the other side
    # of a clock going back (01:30 twice in London on 25 October 2026).
    for second, micros, fold, zone in moments:
        when = dt.datetime(2026, 10, 25, 1, 30, second, micros, tzinfo=zone, fold=int(fold))
        zone_text = "   Z" if zone is not None and when.utcoffset() == dt.timedelta(0) else "    "
        assert format_date(when) == f"20261025{zone_text}0130{second:02d}"


@pytest.mark.parametrize("text, expected", [
    ("20260305    143000", dt.datetime(2026, 3, 5, 14, 30)),
    ("20260305   Z053000", dt.datetime(2026, 3, 5, 5, 30, tzinfo=dt.timezone.utc)),
    ("  20260305    143000\r\n", dt.datetime(2026, 3, 5, 14, 30)),
    ("20261206    023115", dt.datetime(2026, 12, 6, 2, 31, 15)),
    ("2011-10-28 23:59:59", dt.datetime(2011, 10, 28, 23, 59, 59)),
    ("2026-12-06T10:15", dt.datetime(2026, 12, 6, 10, 15)),
    ("2026-12-06", dt.datetime(2026, 12, 6, 23, 59, 59)),
    ("2026/12/6", dt.datetime(2026, 12, 6, 23, 59, 59)),
    ("2026.12.06", dt.datetime(2026, 12, 6, 23, 59, 59)),
    ("2026. 12. 6.", dt.datetime(2026, 12, 6, 23, 59, 59)),
    ("2026년 12월 6일", dt.datetime(2026, 12, 6, 23, 59, 59)),
    ("20261206", dt.datetime(2026, 12, 6, 23, 59, 59)),
    (" " * 18, None),
    ("            Z     ", None),
    ("", None),
    ("garbage", None),
    ("due next week", None),
    ("20261345    999999", None),
    ("20261345", None),
    ("2026-02-30", None),
    ("2026-12-06 25:00:00", None),
    ("00000000    000000", None),
    (None, None),
    (b"20260305    143000", None),
])
def test_parse_date(text, expected):
    assert parse_date(text) == expected


def test_parse_date_places_local_dates_in_the_given_zone():
    assert parse_date("20260305    143000", tz=KST) == dt.datetime(2026, 3, 5, 14, 30, tzinfo=KST)
    utc = parse_date("20260305   Z053000", tz=KST)
    assert utc.astimezone(KST) == dt.datetime(2026, 3, 5, 14, 30, tzinfo=KST)
    assert parse_date("2026-12-06", tz=KST) == dt.datetime(2026, 12, 6, 23, 59, 59, tzinfo=KST)


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31),
                    timezones=st.none() | st.just(dt.timezone.utc)))
def test_dates_round_trip(when):
    assert parse_date(format_date(when)) == when.replace(microsecond=0)


# -- the technician's decode tool


PATRON_INFO = (
    "64Y  Y          00020260305    143000000100020003000100000000AOCPL|AA11110100000001|AE김민준|"
    "AUEM0000000001|AUEM0000000002|BZ0005|CA0003|CB0010|BV1500|AD1234|AFPlease see staff|XXvendor|"
)


def _framed(text: str, sequence: int = 3) -> bytes:
    data = f"{text}AY{sequence}AZ".encode("utf-8")
    return data + checksum(data).encode()


def test_describe_gives_a_json_ready_picture():
    frame = _framed(PATRON_INFO)
    described = describe(decode(frame), frame)
    json.dumps(described)  # nothing that JSON cannot carry
    assert described["command"] == "64" and described["name"] == "patron_information_response"
    assert described["fixed"]["overdue_items_count"] == "0002"
    assert described["fixed"]["charged_items_count"] == "0003"
    assert described["fixed"]["patron_status"] == "Y  Y          "
    assert described["details"]["patron_status_flags"] == ["charge_privileges_denied", "hold_privileges_denied"]
    assert described["fields"][:3] == [
        {"id": "AO", "name": "institution_id", "value": "CPL"},
        {"id": "AA", "name": "patron_identifier", "value": "11110100000001"},
        {"id": "AE", "name": "personal_name", "value": "김민준"},
    ]
    assert {"id": "XX", "name": None, "value": "vendor"} in described["fields"]
    assert [f["value"] for f in described["fields"] if f["id"] == "AU"] == ["EM0000000001", "EM0000000002"]
    assert described["sequence"] == 3 and described["checksum_ok"] is True
    assert described["size"] == len(frame)
    assert "checksum" not in described


def test_describe_redacts_passwords_unless_asked():
    login = decode(b"9300CNkiosk|COs3cret|CPlobby|AY5AZF00D")
    checkout = decode(b"11NN" + b" " * 36 + "AOCPL|AA1111|ABEM1|ACterm1nal|AD1234|".encode())
    shown = {f["id"]: f["value"] for f in describe(login)["fields"]}
    assert shown == {"CN": "kiosk", "CO": REDACTED, "CP": "lobby"}
    shown = {f["id"]: f["value"] for f in describe(checkout)["fields"]}
    assert shown["AC"] == REDACTED and shown["AD"] == REDACTED and shown["AA"] == "1111"
    assert "s3cret" not in json.dumps(describe(login)) and "term1nal" not in json.dumps(describe(checkout))
    revealed = {f["id"]: f["value"] for f in describe(checkout, reveal_secrets=True)["fields"]}
    assert revealed["AC"] == "term1nal" and revealed["AD"] == "1234"
    empty = decode(GOLDEN[13][0].encode())  # AC present but empty: nothing to hide
    assert {"id": "AC", "name": "terminal_password", "value": ""} in describe(empty)["fields"]
    unknown = describe(decode(b"25COpw|AD1234|ABEM1|"))
    assert unknown["fixed"]["raw"] == f"CO{REDACTED}|AD{REDACTED}|ABEM1|"


def test_describe_shows_both_checksums_when_one_fails():
    frame = b"9300CNuser_id|COpassw0rd|AY1AZF595"
    described = describe(decode(frame), frame)
    assert described["checksum_ok"] is False
    assert described["checksum"] == {"received": "F595", "bytes": "F594", "codepoints": "F594"}
    by_codepoints = encode(HANGUL, Dialect(send_checksum="codepoints"), sequence=1)
    described = describe(decode(by_codepoints), by_codepoints)
    assert described["checksum"]["received"] == described["checksum"]["codepoints"] != described["checksum"]["bytes"]


def test_describe_names_the_circulation_status():
    described = describe(decode(GOLDEN[-1][0].encode("utf-8")))
    assert described["details"] == {"circulation_status": "charged"}
    assert {"id": "CS", "name": "call_number", "value": "PB LP COL"} in described["fields"]


def test_decode_lines_reads_a_capture():
    lines = [
        b"941AY0AZFDFD\r\n",
        b"\n",
        b"   \r\n",
        b"9300CNkiosk|COs3cret|CPlobby|AY5AZEC7B\n",  # wrong checksum: still decoded
        b"not a frame\n",
        b"64" + b" " * 10 + b"\r\n",  # cut short
        b"96AZFEF6\r97AZFEF5\r",  # a capture without line feeds: two frames on one line
        "98YYYYNN10000320260305    1430002.00AOCPL|BX" + "Y" * 16 + "|\n",  # text lines are fine too
        _framed(PATRON_INFO),
    ]
    out = list(decode_lines(lines, DEFAULT))
    json.dumps(out)
    assert [entry["line"] for entry in out] == [1, 4, 5, 6, 7, 7, 8, 9]
    assert out[0]["name"] == "login_response" and out[0]["checksum_ok"] is True
    assert out[1]["checksum_ok"] is False and {"id": "CO", "name": "login_password", "value": REDACTED} in out[1]["fields"]
    assert out[2] == {"line": 5, "error": "not a SIP2 message: it must start with a two-digit command, not 'no'"}
    assert out[3]["line"] == 6 and "cut short" in out[3]["error"]
    assert [out[4]["name"], out[5]["name"]] == ["request_sc_resend", "request_acs_resend"]
    assert out[6]["name"] == "acs_status" and out[6]["fixed"]["protocol_version"] == "2.00"
    assert out[7]["fixed"]["hold_items_count"] == "0001"
    assert "s3cret" not in json.dumps(out) and "1234" not in json.dumps(out)
    revealed = list(decode_lines(lines, DEFAULT, reveal_secrets=True))
    assert {"id": "CO", "name": "login_password", "value": "s3cret"} in revealed[1]["fields"]


def test_decode_lines_uses_the_dialect():
    frame = encode(HANGUL, Dialect(encoding="cp949", delimiter="^"), sequence=1)
    (entry,) = decode_lines([frame], Dialect(encoding="cp949", delimiter="^"))
    assert entry["checksum_ok"] is True
    assert {"id": "AF", "name": "screen_message", "value": "김민준"} in entry["fields"]
    (garbled,) = decode_lines([frame], DEFAULT)  # the wrong encoding: replacement characters, no crash
    assert "\ufffd" in json.dumps(garbled, ensure_ascii=False)


def test_every_error_is_a_sip2_error():
    for error in (EncodeError, DecodeError, FrameError):
        assert issubclass(error, Sip2Error)
    assert issubclass(EncodeError, ValueError) and issubclass(DecodeError, ValueError)


@pytest.mark.parametrize("text, expected", [
    ("2026-12-06T15:00:00Z", dt.datetime(2026, 12, 6, 15, 0, tzinfo=dt.timezone.utc)),
    ("2026-12-06T23:59:59-05:00", dt.datetime(2026, 12, 7, 4, 59, 59, tzinfo=dt.timezone.utc)),
    ("2026-12-06 10:00:00.5+0900", dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.timezone.utc)),
    ("06.12.2026", dt.datetime(2026, 12, 6, 23, 59, 59, tzinfo=KST)),  # Koha's dmydot format
    ("6.12.2026 14:30", dt.datetime(2026, 12, 6, 14, 30, tzinfo=KST)),
])
def test_free_text_dates_keep_their_zone_and_read_day_first_dots(text, expected):
    assert parse_date(text, KST) == expected  # aware datetimes compare as instants


@pytest.mark.parametrize("text", ["12/06/2026", "31.02.2026", "2026-12-06T10:00:00+25:00"])
def test_free_text_dates_that_could_be_misread_are_not_read(text):
    assert parse_date(text, KST) is None  # month or day first? no such day; no such zone
