"""The session of one request: what ``environ['pyhttpd.session']`` is.

A :class:`RequestSession` is a mutable mapping that does nothing until the
application touches it.  The first use loads the session the request names
(cookie or ``;jsessionid=``) from the node's store, or creates a new one, and
then behaves as that :class:`~.session.Session`: JSON values only, ``.id``,
``.is_new``, ``.invalidate()``, ``.max_inactive``.  A new id, or an id the store
rebound to this node's route, is sent back in a ``Set-Cookie`` header.

At the end of the request :meth:`finish` stores what changed: a commit if an
attribute, the max inactive time or the session's existence changed, nothing
for a request that only read it (the store noted the access when it loaded it).

If the store cannot be reached, touching the session raises
:class:`SessionUnavailable`, an HTTPError 503: an application never gets a
fresh empty session in place of the one the client has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING

from pyhttpd.request import HTTPError

from .backend import SessionBackend, SessionGone, SessionStoreUnavailable, SessionTooLarge
from .session import JSONValue, Session
from .session_id import new_session_id

if TYPE_CHECKING:
    from pyhttpd.request import Request

    from .settings import SessionReplConfig


class SessionUnavailable(HTTPError):
    """The session store is unreachable: the request ends with 503."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


class RequestSession(MutableMapping[str, JSONValue]):
    """The lazily loaded session of one request (see the module docstring)."""

    def __init__(
        self,
        r: Request,
        backend: SessionBackend,
        cfg: SessionReplConfig,
        *,
        route: str | None,
        requested_id: str | None,
        sync: bool,
        log: Callable[[str, str], None],
    ) -> None:
        self._r = r
        self._backend = backend
        self._cfg = cfg
        self._route = route
        self.requested_id = requested_id
        self._sync = sync
        self._log = log
        self._session: Session | None = None
        self._cookie: str | None = None
        self._looked_up = False
        self._found: Session | None = None
        self.failure: str | None = None

    # -- loading -----------------------------------------------------------------------------

    @property
    def touched(self) -> bool:
        """Whether the application used the session, or tried to and the store failed."""
        return self._session is not None or self.failure is not None

    def _lookup(self) -> Session | None:
        if not self._looked_up:
            if self.failure is not None:
                raise SessionUnavailable(self.failure)
            if self.requested_id is not None:
                try:
                    self._found = self._backend.load(self.requested_id)
                except SessionStoreUnavailable as exc:
                    self.failure = str(exc)
                    self._log("error", f"session {self.requested_id}: {exc}")
                    raise SessionUnavailable(self.failure) from None
            self._looked_up = True
        return self._found

    def _get(self) -> Session:
        session = self._session
        if session is None:
            session = self._lookup()
            if session is None:
                session = Session(
                    new_session_id(self._route),
                    creation_time=time.time(),
                    max_inactive=self._cfg.effective_max_inactive,
                    is_new=True,
                )
            if session.id != self.requested_id:
                self._set_cookie(session.id)
            self._session = session
        return session

    def _set_cookie(self, session_id: str) -> None:
        cfg = self._cfg
        parts = [f"{cfg.effective_cookie_name}={session_id}", f"Path={cfg.cookie_path or '/'}"]
        secure = self._r.is_https if cfg.cookie_secure is None else cfg.cookie_secure
        if secure:
            parts.append("Secure")
        parts.append("HttpOnly")
        parts.append(f"SameSite={cfg.cookie_same_site or 'Lax'}")
        self._cookie = "; ".join(parts)
        self._r.err_headers_out.add("Set-Cookie", self._cookie)

    def adopt(self, r: Request) -> None:
        """Serve *r*, an internal redirect of this session's request, from now on (the
        response, and so the session cookie, is now that request's)."""
        if self._cookie is not None:
            r.err_headers_out.add("Set-Cookie", self._cookie)
        self._r = r

    @property
    def exists(self) -> bool:
        """Whether the request came with a live session; never creates one."""
        if self._session is not None:
            return not self._session.invalidated
        return self._lookup() is not None

    # -- the session's own attributes ----------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id (``<random>.<route>``)."""
        return self._get().id

    @property
    def is_new(self) -> bool:
        """Whether the session was created by this request."""
        return self._get().is_new

    @property
    def creation_time(self) -> float:
        """When the session was created (seconds since the epoch)."""
        return self._get().creation_time

    @property
    def last_accessed(self) -> float:
        """When a request last used the session before this one."""
        return self._get().last_accessed

    @property
    def max_inactive(self) -> int:
        """Idle seconds after which the session expires (0 or less: never)."""
        return self._get().max_inactive

    @max_inactive.setter
    def max_inactive(self, value: int) -> None:
        self._get().max_inactive = value

    @property
    def invalidated(self) -> bool:
        """Whether :meth:`invalidate` was called."""
        return self._session is not None and self._session.invalidated

    def invalidate(self) -> None:
        """End the session on every node once the request completes."""
        self._get().invalidate()

    # -- mapping -------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> JSONValue:
        return self._get()[name]

    def __setitem__(self, name: str, value: JSONValue) -> None:
        self._get()[name] = value

    def __delitem__(self, name: str) -> None:
        del self._get()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        if self._session is None:
            return "<RequestSession not loaded>"
        return f"<RequestSession {self._session!r}>"

    # -- end of request ------------------------------------------------------------------------

    def finish(self) -> None:
        """Store what the request changed.

        Raises SessionUnavailable when the store could not take a change, so the
        response can say so instead of claiming success.
        """
        session = self._session
        if session is None:
            return
        try:
            if session.invalidated:
                if not session.is_new:
                    self._backend.invalidate(session.id, self._sync)
                return
            delta = session.delta()
            if delta.changed:
                session.version = self._backend.commit(session, delta, self._sync)
        except SessionGone:
            self._log("info", f"session {session.id} ended while a request was using it")
        except SessionTooLarge as exc:
            self._log("error", f"session {session.id} not stored: {exc}")
            raise HTTPError(500, str(exc)) from None
        except SessionStoreUnavailable as exc:
            self.failure = str(exc)
            self._log("error", f"session {session.id} not stored: {exc}")
            raise SessionUnavailable(self.failure) from None
