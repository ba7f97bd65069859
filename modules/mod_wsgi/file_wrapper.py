"""wsgi.file_wrapper: lets the server send a file by sendfile instead of iterating it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any


class FileWrapper:
    """Wraps a file-like object for an application to return.

    Iterating it reads `blksize` bytes at a time; the server sends a regular file with a
    real descriptor through the request's sendfile instead, from its current position.
    """

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        while data := self.filelike.read(self.blksize):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendfile_span(self) -> tuple[int, int] | None:
        """(offset, bytes to the end) when the wrapped object is a regular file with a real
        descriptor, else None (then it is iterated)."""
        try:
            fd = self.filelike.fileno()
            info = os.fstat(fd)
            offset = self.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return offset, max(info.st_size - offset, 0)
