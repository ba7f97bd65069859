"""wsgi.errors: what an application writes there goes to the error log, a line at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pyhttpd.log import log_rerror

if TYPE_CHECKING:
    from pyhttpd.request import Request


class ErrorStream:
    """A text stream whose lines become error log entries of the request (module wsgi)."""

    def __init__(self, r: Request, level: str = "error") -> None:
        self.r = r
        self.level = level
        self._partial = ""

    def write(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            log_rerror(self.r, self.level, "wsgi", line)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log a pending partial line."""
        if self._partial:
            partial, self._partial = self._partial, ""
            log_rerror(self.r, self.level, "wsgi", partial)
