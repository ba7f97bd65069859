"""Request targets and Host headers: splitting, percent-decoding and normalising (httpd's
ap_parse_uri, ap_normalize_path and ap_unescape_url, with AllowEncodedSlashes Off and
MergeSlashes On).

Order matters for safety: escapes of unreserved characters (so `%2e` is a dot) are decoded
first, then dot segments are removed and a path that climbs above `/` is refused (400),
and only then is everything else decoded. An encoded slash or NUL is refused there (404,
as httpd), so decoding can never produce a new `..` segment or a separator.

Pure functions on strings; the result path is a str whose non-UTF-8 bytes are kept as
surrogates (os.fsdecode's convention), so it maps back to the same bytes on disk.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A host name (letters, digits, '-', '_', dot-separated labels, optional final dot) or an
# IPv6 literal, with an optional port.
_HOST = re.compile(
    r"(?:(?P<name>[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?)|(?P<ip6>\[[0-9a-f:.]+\]))(?::(?P<port>[0-9]{0,5}))?",
    re.ASCII,
)


class UriError(Exception):
    """A request target or Host that cannot be served: `status` is 400 or 404."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Target(NamedTuple):
    """A request target split into its parts: the raw (still encoded) path, the query
    string or None, and the host of an absolute-form target (lowercase) or None."""

    path: str
    args: str | None
    hostname: str | None


def split_target(target: str) -> Target:
    """Split origin-form (`/p?q`), absolute-form (`http://host:port/p?q`) and `*`.

    The fragment, which clients should not send, is ignored as apr_uri_parse does.
    """
    if "#" in target:
        target = target.partition("#")[0]
    hostname = None
    if not target.startswith("/"):
        if target == "*":
            return Target("*", None, None)
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise UriError(400, f"invalid request-URI {target}")
        end = len(rest)
        for stop in "/?":
            at = rest.find(stop)
            if 0 <= at < end:
                end = at
        authority, target = rest[:end], rest[end:]
        hostname = parse_host(authority.rpartition("@")[2])[0]
        if not target.startswith("/"):
            target = "/" + target
    path, sep, query = target.partition("?")
    return Target(path, query if sep else None, hostname)


@lru_cache(maxsize=256)
def parse_host(value: str) -> tuple[str, int | None]:
    """A Host header's name (lowercase, no final dot) and port; UriError(400) if malformed."""
    m = _HOST.fullmatch(value.lower())
    if m is None:
        raise UriError(400, f"Client sent malformed Host header: {value}")
    port_text = m.group("port")
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        raise UriError(400, f"Client sent malformed Host header: {value}")
    name = m.group("name")
    return (name.rstrip(".") if name else m.group("ip6")), port


def decode_path(path: str) -> str:
    """The decoded, normalised form of an encoded path that starts with '/'.

    400 for a bad escape or a path above the root, 404 for an encoded '/' or NUL.
    """
    if not path.startswith("/"):
        raise UriError(400, f"invalid URI path ({path})")
    if "%" not in path and "/." not in path and "//" not in path:
        return path
    if "%" in path:
        path = _decode_unreserved(path)
    if "/." in path or "//" in path:
        path = _remove_dot_segments(path)
    if "%" not in path:
        return path
    lowered = path.lower()
    if "%2f" in lowered:
        raise UriError(404, f"found %2f (encoded '/') in URI path ({path}), returning 404")
    if "%00" in lowered:
        raise UriError(404, f"found %00 (encoded NUL) in URI path ({path}), returning 404")
    return unquote_to_bytes(path).decode("utf-8", "surrogateescape")


def _decode_unreserved(path: str) -> str:
    """Decode %XX of unreserved characters only, checking every escape is well formed."""
    parts = path.split("%")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise UriError(400, f"invalid escape in URI path ({path})")
        char = chr(int(part[:2], 16))
        out.append(char + part[2:] if char in _UNRESERVED else "%" + part[:2].upper() + part[2:])
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """Drop `.` segments and empty ones (merged slashes), resolve `..`; refuse going above `/`."""
    segments = path[1:].split("/")
    last = len(segments) - 1
    out: list[str] = []
    for i, seg in enumerate(segments):
        if seg == ".":
            if i == last:
                out.append("")
        elif seg == "..":
            if not out:
                raise UriError(400, f"invalid URI path ({path})")
            out.pop()
            if i == last:
                out.append("")
        elif seg or i == last:
            out.append(seg)
    return "/" + "/".join(out)
