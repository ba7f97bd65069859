"""The core's default handler: serving a file as httpd's default_handler does.

Validators are httpd's defaults: `ETag` from size and mtime (FileETag MTime Size, weak when
the file changed within the last second) and `Last-Modified`. Conditional requests follow
ap_meets_conditions (412 for If-Match / If-Unmodified-Since, 304 for If-None-Match /
If-Modified-Since); byte ranges follow the byterange filter (206, multipart/byteranges,
416 with `Content-Range: bytes */size`, If-Range). Bodies go out with r.sendfile.
"""

from __future__ import annotations

import email.utils
import os
import stat
from typing import TYPE_CHECKING

from pyhttpd.log import log_rerror
from pyhttpd.module import DECLINED, OK, REALLY_LAST

if TYPE_CHECKING:
    from pyhttpd.hooks import Hooks
    from pyhttpd.request import Request

ALLOW = "GET,POST,OPTIONS,HEAD"
MAX_RANGES = 200  # httpd's MaxRanges default: more ranges than this get the whole file
# Methods httpd knows (ap_method_registry); others are answered 501 Not Implemented.
KNOWN_METHODS = frozenset(
    "GET HEAD PUT POST DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE "
    "LOCK UNLOCK VERSION-CONTROL CHECKOUT UNCHECKOUT CHECKIN UPDATE LABEL REPORT MKWORKSPACE "
    "MKACTIVITY BASELINE-CONTROL MERGE".split()
)

_dates: dict[int, str] = {}

KEPT_FILE_SIZE = 128 * 1024
"""Files up to this size are sent from memory, read once while they stay unchanged (larger
ones with sendfile)."""
KEPT_FILES_BYTES = 4 << 20
"""What the kept contents may occupy in a child; the oldest go first."""
# path -> (identity of the file's version, its contents); see _kept_file.
_kept_files: dict[str, tuple[tuple[int, ...], bytes]] = {}
_kept_files_bytes = 0


def http_date(seconds: int) -> str:
    """An RFC 9110 IMF-fixdate (cached: the same few mtimes come back all the time)."""
    text = _dates.get(seconds)
    if text is None:
        if len(_dates) > 4096:
            _dates.clear()
        text = _dates[seconds] = email.utils.formatdate(seconds, usegmt=True)
    return text


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch of an HTTP date (any of the three RFC forms), or None."""
    parsed = email.utils.parsedate_tz(text)
    if parsed is None:
        return None
    try:
        return int(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def make_etag(st: os.stat_result, request_time: float) -> str:
    """httpd's FileETag MTime Size: "size-mtime" in hex, mtime in microseconds; weak when the
    file changed less than a second before the request, as it may change again that second."""
    tag = f'"{st.st_size:x}-{st.st_mtime_ns // 1000:x}"'
    return tag if request_time - st.st_mtime > 1 else "W/" + tag


def _etag_in(etag: str, header: str, strong: bool) -> bool:
    """Whether `etag` is in an If-Match / If-None-Match list (strong or weak comparison)."""
    if strong and etag.startswith("W/"):
        return False
    opaque = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            if strong:
                continue
            candidate = candidate[2:]
        if candidate == opaque:
            return True
    return False


def meets_conditions(r: Request, etag: str, mtime: int) -> int:
    """OK, 304 or 412 for the request's conditional headers (ap_meets_conditions)."""
    headers = r.headers_in
    if_match = headers.get("If-Match")
    if if_match is not None:
        if if_match.strip() != "*" and not _etag_in(etag, if_match, strong=True):
            return 412
    else:
        ius = headers.get("If-Unmodified-Since")
        if ius is not None:
            since = parse_http_date(ius)
            if since is not None and mtime > since:
                return 412
    not_modified = 304 if r.method in ("GET", "HEAD") else 412
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        if if_none_match.strip() == "*" or _etag_in(etag, if_none_match, strong=False):
            return not_modified
    elif not_modified == 304:
        ims = headers.get("If-Modified-Since")
        if ims is not None:
            since = parse_http_date(ims)
            if since is not None and mtime <= since <= r.request_time:
                return 304
    return OK


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """The (first, last) byte ranges a Range header asks of `size` bytes, merged where they
    overlap or touch. None means "ignore the header" (not bytes=, malformed, too many);
    an empty list means nothing is satisfiable (416)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    specs = spec.split(",")
    if len(specs) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for item in specs:
        first_text, dash, last_text = item.strip().partition("-")
        first_text, last_text = first_text.strip(), last_text.strip()
        if not dash or not (first_text.isdigit() or first_text == "") or not (last_text.isdigit() or last_text == ""):
            return None
        if first_text == "":
            if last_text == "":
                return None
            suffix = int(last_text)
            if suffix == 0 or size == 0:
                continue
            first, last = max(size - suffix, 0), size - 1
        else:
            first = int(first_text)
            if last_text and int(last_text) < first:
                return None
            if first >= size:
                continue
            last = min(int(last_text), size - 1) if last_text else size - 1
        if ranges and first <= ranges[-1][1] + 1 and last >= ranges[-1][0] - 1:
            prev = ranges[-1]
            ranges[-1] = (min(prev[0], first), max(prev[1], last))
        else:
            ranges.append((first, last))
    return ranges


def _if_range_allows(r: Request, etag: str, mtime: int) -> bool:
    """If-Range: ranges only while the validator still matches (strong etag or exact date)."""
    value = r.headers_in.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return not etag.startswith("W/") and value == etag
    return parse_http_date(value) == mtime


def handler(r: Request) -> int:
    """Serve r.filename (GET and HEAD), answer OPTIONS, refuse other methods."""
    if r.handler is not None and r.handler != "default-handler":
        return DECLINED
    method = r.method
    if method != "GET" and method != "HEAD":
        if method == "OPTIONS":
            r.headers_out.set("Allow", ALLOW)
            r.headers_out.set("Content-Length", "0")
            r.send_headers()
            return OK
        if method not in KNOWN_METHODS:
            return 501
        if method != "POST":
            r.err_headers_out.set("Allow", ALLOW)
            return 405
    st = r.finfo
    if st is None:
        log_rerror(r, "info", "core", f"File does not exist: {r.filename}")
        return 404
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        log_rerror(r, "info", "core", f"Attempt to serve directory: {r.filename}")
        return 404
    if r.path_info:
        log_rerror(r, "info", "core", f"File does not exist: {r.filename}{r.path_info}")
        return 404
    if not stat.S_ISREG(mode):
        log_rerror(r, "error", "core", f"not a regular file: {r.filename}")
        return 403
    if method == "POST":
        log_rerror(r, "info", "core", "This resource does not accept the POST method.")
        r.err_headers_out.set("Allow", ALLOW)
        return 405
    return _send_file(r, st)  # an unread request body is the protocol's to discard


def _send_file(r: Request, st: os.stat_result) -> int:
    size = st.st_size
    mtime = min(int(st.st_mtime), int(r.request_time))
    etag = make_etag(st, r.request_time)
    headers = r.headers_out
    ranges = None
    # An ErrorDocument page keeps its error status: no 304 or 206. One pass over the
    # request headers spares the lookups when none is conditional (If-*) or a Range.
    conditional = False
    if r.status == 200:
        for name, _ in r.headers_in:
            if name[0] in "iIrR":
                conditional = True
                break
    if conditional:
        status = meets_conditions(r, etag, mtime)
        if status == 304:
            r.status = 304
            headers.set("ETag", etag)
            r.send_headers()
            return OK
        if status != OK:
            return status
        range_header = r.headers_in.get("Range")
        if range_header is not None and _if_range_allows(r, etag, mtime):
            ranges = parse_ranges(range_header, size)
            if ranges == []:
                r.err_headers_out.set("Content-Range", f"bytes */{size}")
                return 416
    validators = (("Last-Modified", http_date(mtime)), ("ETag", etag), ("Accept-Ranges", "bytes"))
    if not ranges:
        validators += (("Content-Length", str(size)),)
    if headers:
        for name, value in validators:
            headers.set(name, value)
    else:
        headers.extend(validators)  # nothing to replace in an empty table
    if not ranges:
        if r.header_only or not size:
            r.send_headers()
            return OK
        if size <= KEPT_FILE_SIZE:
            data = _kept_file(r.filename, st, r.request_time)  # type: ignore[arg-type]
            if data is not None:
                r.write(data)
                return OK
        with open(r.filename, "rb", buffering=0) as f:  # type: ignore[arg-type]
            r.sendfile(f, 0, size)
        return OK
    r.status = 206
    if len(ranges) == 1:
        first, last = ranges[0]
        headers.set("Content-Range", f"bytes {first}-{last}/{size}")
        headers.set("Content-Length", str(last - first + 1))
        if r.header_only:
            r.send_headers()
            return OK
        with open(r.filename, "rb", buffering=0) as f:  # type: ignore[arg-type]
            r.sendfile(f, first, last - first + 1)
        return OK
    return _send_multipart(r, size, ranges)


def _kept_file(filename: str, st: os.stat_result, now: float) -> bytes | None:
    """The contents of a file as `st` describes it; None leaves it to the general path
    (unreadable, changed while read).

    Contents are kept under the file's device, inode, size, mtime and ctime, once its ctime
    is more than a second old: any later change to the file (write, truncate, utime,
    chmod, rename over it) gives it a new ctime or inode, so what is kept is never served
    for a different version of the file. Sending from memory also beats sendfile on
    files of this size: one write of head and body, no open and close.
    """
    global _kept_files_bytes
    version = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    kept = _kept_files.get(filename)
    if kept is not None and kept[0] == version:
        return kept[1]
    try:
        fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.pread(fd, st.st_size, 0)
    finally:
        os.close(fd)
    if len(data) != st.st_size:
        return None
    if now - st.st_ctime > 1:
        if kept is not None:
            del _kept_files[filename]
            _kept_files_bytes -= len(kept[1])
        while _kept_files and _kept_files_bytes + len(data) > KEPT_FILES_BYTES:
            _kept_files_bytes -= len(_kept_files.pop(next(iter(_kept_files)))[1])
        _kept_files[filename] = (version, data)
        _kept_files_bytes += len(data)
    return data


def _send_multipart(r: Request, size: int, ranges: list[tuple[int, int]]) -> int:
    """multipart/byteranges, with the part headers httpd writes."""
    boundary = f"{int(r.request_time * 1_000_000):x}{os.getpid():x}"
    part_type = f"Content-type: {r.content_type}\r\n" if r.content_type else ""
    heads = [
        f"\r\n--{boundary}\r\n{part_type}Content-range: bytes {first}-{last}/{size}\r\n\r\n".encode()
        for first, last in ranges
    ]
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = sum(len(h) for h in heads) + sum(last - first + 1 for first, last in ranges) + len(tail)
    r.content_type = f"multipart/byteranges; boundary={boundary}"
    r.headers_out.set("Content-Length", str(length))
    if r.header_only:
        r.send_headers()
        return OK
    with open(r.filename, "rb", buffering=0) as f:  # type: ignore[arg-type]
        for head, (first, last) in zip(heads, ranges, strict=True):
            r.write(head)
            r.sendfile(f, first, last - first + 1)
        r.write(tail)
    return OK


def register_hooks(hooks: Hooks) -> None:
    """The default handler runs after every other handler has declined."""
    hooks.register("handler", handler, REALLY_LAST, module="core")
