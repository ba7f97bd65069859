"""Where a node's sessions live, as the request side sees it: the session agent or Redis.

Both :class:`.client.AgentClient` and :class:`.redis_store.RedisSessionStore`
implement :class:`SessionBackend` and raise the errors below.  This file loads
neither gevent nor redis, so the master can read the module's configuration
without them.
"""

from __future__ import annotations

from typing import Any, Protocol

from .session import Delta, Session


class SessionStoreUnavailable(Exception):
    """The node's session store cannot be reached; the request gets a 503."""


class SessionGone(Exception):
    """The session ended (invalidated or expired) while the request was using it."""


class SessionTooLarge(Exception):
    """A session's changes do not fit in one frame."""


class SessionBackend(Protocol):
    """The operations a request needs from its node's session store."""

    def load(self, session_id: str) -> Session | None:
        """The session (its id may come back rebound to this node's route), or None."""
        ...

    def commit(self, session: Session, delta: Delta, sync: bool) -> int:
        """Store a request's changes; the new version.  SessionGone if it ended meanwhile."""
        ...

    def invalidate(self, session_id: str, sync: bool) -> None:
        """End the session everywhere."""
        ...

    def change_id(self, old_id: str, new_id: str) -> bool:
        """Give the session a new id; False if it is gone."""
        ...

    def status(self) -> dict[str, Any]:
        """What the status page shows about the store."""
        ...
