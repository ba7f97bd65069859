"""PEP 3333 "native strings": text that stands for bytes, one character per byte.

WSGI wants the bytes of the URL and of header values as str decoded as ISO-8859-1. pyhttpd's
requests carry them decoded as UTF-8, with bytes that are not UTF-8 kept as lone
surrogates, so every byte survives both ways; these two functions convert between the two.
"""

from __future__ import annotations


def to_wsgi(text: str) -> str:
    """A request string as WSGI wants it (the same bytes, decoded as ISO-8859-1)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def from_wsgi(text: str) -> str:
    """A WSGI string (ISO-8859-1 only) as a response string; ValueError if it has other characters."""
    if text.isascii():
        return text
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{text!r} has characters outside ISO-8859-1 (PEP 3333)") from None
    return raw.decode("utf-8", "surrogateescape")
