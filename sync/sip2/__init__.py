"""SIP2, the self-check protocol: a sans-I/O codec (`codec`), the message table (`messages`)."""

from sync.sip2.codec import (
    DEFAULT, Dialect, DecodeError, EncodeError, FrameError, FrameReader, Message, Sip2Error,
    checksum, decode, encode, format_date, make, next_sequence, parse_date,
)

__all__ = [
    "DEFAULT", "Dialect", "DecodeError", "EncodeError", "FrameError", "FrameReader", "Message",
    "Sip2Error", "checksum", "decode", "encode", "format_date", "make", "next_sequence", "parse_date",
]
