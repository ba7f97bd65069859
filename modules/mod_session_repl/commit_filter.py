"""The output filter that makes a response wait for its session to be stored.

In sync replication a client must not see a complete response before the
session changes it made are on the other nodes; otherwise a node that dies
right after answering would take them along.  So, for a request that touched
its session, this filter (wrapped around the request's transport, as an httpd
output filter) holds back:

- the last piece of the body written so far, and
- the headers, until something before that last piece goes out (so a
  Set-Cookie for a session created late still makes it, and a response
  written in one piece can still be replaced).

When the request ends (the ``log_transaction`` hook, before anything is
logged) the session is committed (in sync mode: applied by every alive
member), then the held bytes go out.  The client therefore receives the end of
the response only after the commit.  A streaming response sees each piece one
write late; a request that did not touch its session passes straight through.
A file sent with sendfile (``wsgi.file_wrapper``) is not held: the commit
still happens before the request ends, but the client may have the whole
file first.

If the commit fails, the client must not believe it succeeded: a response
nothing of which has left yet becomes a 503, and one already under way is cut
short (its last piece is never sent and the connection is closed).
"""

from __future__ import annotations

from typing import BinaryIO

from pyhttpd.headers import Headers
from pyhttpd.http_request import send_error_response
from pyhttpd.request import HTTPError, Request, Transport

from .request_session import RequestSession, SessionUnavailable


class CommitFilter:
    """A Transport around *inner* for one request whose session is *session*."""

    def __init__(self, inner: Transport, session: RequestSession, cookie_name: str) -> None:
        self.inner = inner
        self.session = session
        self.cookie_name = cookie_name
        self._headers_of: Request | None = None
        self._held: bytes | None = None
        self.emitted = False  # the headers have gone out
        self.finished = False

    def _holding(self) -> bool:
        return self.session.touched and not self.finished

    def _emit_headers(self) -> None:
        r, self._headers_of = self._headers_of, None
        if r is not None:
            self.inner.send_headers(r)
            self.emitted = True

    def _release(self) -> bool:
        """Send the headers and the held bytes, if any; whether anything went out."""
        sent = self._headers_of is not None or self._held is not None
        self._emit_headers()
        held, self._held = self._held, None
        if held is not None:
            self.inner.write(held)
        return sent

    # -- Transport -----------------------------------------------------------------------------

    def read_body(self, size: int) -> bytes:
        return self.inner.read_body(size)

    def send_headers(self, r: Request) -> None:
        self._headers_of = r

    def write(self, data: bytes) -> None:
        if self._holding():
            if self._held is not None:
                self._release()
            self._held = data
        else:
            self._release()
            self.inner.write(data)

    def sendfile(self, file: BinaryIO, offset: int, count: int) -> None:
        self._release()
        self.inner.sendfile(file, offset, count)

    def flush(self) -> None:
        if not self._holding():
            self._release()
        if self.emitted:
            self.inner.flush()

    # -- end of request ------------------------------------------------------------------------

    def finish(self, r: Request) -> None:
        """Commit the session, then let the rest of the response out (see the module docstring)."""
        self.finished = True
        failure: HTTPError | None = None
        try:
            self.session.finish()
        except HTTPError as exc:
            failure = exc
        if failure is None and self.session.failure is not None and r.status == 500:
            # The application let SessionUnavailable escape and got a 500 for it.
            failure = SessionUnavailable(self.session.failure)
        try:
            if failure is None:
                if self._release():
                    self.inner.flush()
            elif not self.emitted:
                self._replace(r, failure.status)
            else:
                self._held = None
                r.keepalive = False
                r.connection.aborted = True
        except OSError:
            r.keepalive = False
            r.connection.aborted = True

    def _replace(self, r: Request, status: int) -> None:
        self._headers_of = self._held = None
        prefix = f"{self.cookie_name}="
        r.err_headers_out = Headers(
            (name, value)
            for name, value in r.err_headers_out
            if not (name.lower() == "set-cookie" and value.startswith(prefix))
        )
        r.transport = self.inner
        r.status_line = None  # the application's, which would override the status
        r.headers_sent = False
        r.bytes_sent = 0
        send_error_response(r, status)
        self.emitted = True
        self.inner.flush()
