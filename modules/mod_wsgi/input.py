"""wsgi.input: the request body as a file, streamed from the request as it is read."""

from __future__ import annotations

from collections.abc import Callable, Iterator

BLOCK = 8192


class ClientGone(ConnectionError):
    """The client's connection failed while its request was read or answered; the request
    ends without an error response (there is nobody to send it to)."""


class WsgiInput:
    """A read-only binary stream over `read(n)` (the request's): read, readline,
    readlines and iteration. Reads past the end return b""; a chunked body works the same
    as one with a Content-Length, since the protocol below de-frames it."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = b""
        self._eof = False

    def _fill(self, size: int) -> bool:
        """Read up to `size` more bytes into the buffer; False at the end of the body."""
        if self._eof:
            return False
        try:
            data = self._read(size)
        except OSError as e:
            raise ClientGone(f"reading the request body failed: {e}") from e
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when size is None or negative)."""
        if size is None or size < 0:
            while self._fill(65536):
                pass
            data, self._buf = self._buf, b""
            return data
        while len(self._buf) < size and self._fill(max(size - len(self._buf), BLOCK)):
            pass
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """One line, with its b"\\n" (at most `size` bytes when size >= 0)."""
        limit = size if size is not None and size >= 0 else None
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if limit is not None and len(self._buf) >= limit:
                end = limit
                break
            start = len(self._buf)
            if not self._fill(BLOCK):
                end = len(self._buf)
                break
        if limit is not None:
            end = min(end, limit)
        line, self._buf = self._buf[:end], self._buf[end:]
        return line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines; stop once `hint` bytes are read when hint > 0."""
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
