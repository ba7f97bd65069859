"""The sessions one node holds: its own (primary) and its copies of the peers' (backup).

The store is the session agent's state; it does no I/O and reads no clock.

Versions and conflicts.  Each session has a version, bumped by every commit on
the node that served the request.  A commit is stamped ``(version, writer)``
and so is every attribute it sets or removes; a removed attribute keeps its
stamp as a tombstone.  A replicated delta changes an attribute only when its
stamp is newer than the attribute's, so deltas arriving late, twice or out of
order change nothing, and two nodes that changed the same session at once end
up identical: per attribute, the higher stamp wins, and attributes only one side
touched are kept from both.  That is still last-writer-wins, as in Tomcat, but
deterministic and per attribute rather than per arrival.

Primary and backup.  The primary is the member where a request for the session
last completed (Tomcat's rule); every other copy is a backup.  Expiry follows
Tomcat's DeltaSession: a primary expires after ``max_inactive`` seconds idle, a
backup only after twice that, since its primary may have died without saying so.
Idle time is always measured on this node's clock from the last news received,
so clock skew between nodes does not matter.

An invalidated or expired id leaves a tombstone (kept twice ``max_inactive`` and
at least ``tombstone_min`` seconds) so that a late delta cannot bring it back.
"""

from __future__ import annotations

import enum
import hashlib
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .session import DEFAULT_MAX_INACTIVE, Delta, JSONValue, copy_value
from .session_id import is_valid_session_id, split_route
from .wire import compact_json

Stamp = tuple[int, str]
"""``(version, writer)``: orders every change to a session."""

_NEVER: Stamp = (0, "")
DEFAULT_TOMBSTONE_MIN = 600.0
DEFAULT_ALIAS_TIME = 60.0
_RECORD_FIELDS = frozenset(
    "id version writer primary created idle max_inactive max_inactive_stamp attributes stamps".split()
)


class ApplyResult(enum.Enum):
    """What :meth:`SessionStore.apply_delta` did with a replicated delta."""

    APPLIED = "applied"
    IGNORED = "ignored"  # older than what is held, or the session is gone
    MISSING = "missing"  # unknown here and the delta cannot create it: pull the session
    GAP = "gap"  # applied, but earlier versions never arrived: pull the session


@dataclass(slots=True)
class StoredSession:
    """One session as the store holds it.  Read it; change it only through the store."""

    id: str
    version: int
    writer: str
    primary: str | None
    creation_time: float
    last_accessed: float
    max_inactive: int
    max_inactive_stamp: Stamp = _NEVER
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    # Per attribute name, including removed ones (their tombstones).
    stamps: dict[str, Stamp] = field(default_factory=dict)
    _size: int | None = field(default=None, repr=False, compare=False)
    # At least size: the size last measured plus the JSON bytes of every delta since.
    _bound: int | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Bytes of the attributes as compact JSON: the estimate shown in status."""
        if self._size is None:
            self._size = len(compact_json(self.attributes))
        return self._size

    def size_at_most(self) -> int:
        """An upper bound of :attr:`size`, kept up to date without encoding the
        attributes on every change (measured again only when a change did not
        say how large it was)."""
        if self._bound is None:
            self._bound = self.size
        return self._bound

    def measure(self) -> int:
        """The exact :attr:`size`, which :meth:`size_at_most` returns from now on."""
        self._bound = self.size
        return self._bound

    def to_dict(self, now: float) -> dict[str, JSONValue]:
        """The session as JSON types for state transfer.

        Idle time goes instead of the access time so the receiver can rebase it
        on its own clock.  Attribute values are shared with the store: encode
        the result, do not change it.
        """
        return {
            "id": self.id,
            "version": self.version,
            "writer": self.writer,
            "primary": self.primary,
            "created": self.creation_time,
            "idle": max(0.0, now - self.last_accessed),
            "max_inactive": self.max_inactive,
            "max_inactive_stamp": list(self.max_inactive_stamp),
            "attributes": self.attributes,
            "stamps": {name: list(stamp) for name, stamp in self.stamps.items()},
        }

    @classmethod
    def from_dict(cls, data: object, now: float) -> StoredSession:
        """The session a :meth:`to_dict` record describes; ValueError if it is malformed."""
        if not isinstance(data, dict):
            raise ValueError("session record is not an object")
        if set(data) != _RECORD_FIELDS:
            raise ValueError(
                f"session record fields are {sorted(data)}, expected {sorted(_RECORD_FIELDS)}"
            )
        if not is_valid_session_id(data["id"]):
            raise ValueError("session record has an invalid id")
        session_id = data["id"]
        version = data["version"]
        if type(version) is not int or version < 0:
            raise ValueError(f"session {session_id}: version is not a non-negative integer")
        if not isinstance(data["writer"], str):
            raise ValueError(f"session {session_id}: writer is not a string")
        if data["primary"] is not None and not isinstance(data["primary"], str):
            raise ValueError(f"session {session_id}: primary is not a string")
        for name in ("created", "idle"):
            if type(data[name]) not in (int, float) or not math.isfinite(data[name]):
                raise ValueError(f"session {session_id}: {name} is not a number")
        if type(data["max_inactive"]) is not int:
            raise ValueError(f"session {session_id}: max_inactive is not an integer")
        stamps_in, attributes_in = data["stamps"], data["attributes"]
        if not isinstance(stamps_in, dict) or not isinstance(attributes_in, dict):
            raise ValueError(f"session {session_id}: attributes and stamps must be objects")
        # Interned: thousands of sessions share a few attribute names.
        stamps = {sys.intern(name): _stamp(raw, session_id) for name, raw in stamps_in.items()}
        attributes = {}
        for name, value in attributes_in.items():
            if name not in stamps:
                raise ValueError(f"session {session_id}: attribute {name!r} has no stamp")
            try:
                attributes[sys.intern(name)] = copy_value(name, value)
            except TypeError as exc:
                raise ValueError(f"session {session_id}: {exc}") from None
        return cls(
            id=session_id,
            version=version,
            writer=data["writer"],
            primary=data["primary"],
            creation_time=float(data["created"]),
            last_accessed=now - max(0.0, float(data["idle"])),
            max_inactive=data["max_inactive"],
            max_inactive_stamp=_stamp(data["max_inactive_stamp"], session_id),
            attributes=attributes,
            stamps=stamps,
        )


def _stamp(raw: object, session_id: str) -> Stamp:
    if (
        isinstance(raw, list)
        and len(raw) == 2
        and type(raw[0]) is int
        and raw[0] >= 0
        and isinstance(raw[1], str)
    ):
        return raw[0], raw[1]
    raise ValueError(f"session {session_id}: stamp {raw!r:.60} is not [version, writer]")


def _merge(session: StoredSession, delta: Delta, stamp: Stamp, length: int | None) -> bool:
    """Apply the parts of *delta* newer than what *session* holds; whether any were.

    *length* is at least the bytes of the delta as JSON, if known."""
    took = False
    for change in delta.changes:
        if stamp > session.stamps.get(change.name, _NEVER):
            session.stamps[change.name] = stamp
            if change.op == "set":
                session.attributes[change.name] = change.value
            else:
                session.attributes.pop(change.name, None)
            took = True
    if delta.max_inactive is not None and stamp > session.max_inactive_stamp:
        session.max_inactive = delta.max_inactive
        session.max_inactive_stamp = stamp
        took = True
    if took:
        session._size = None
        if session._bound is not None:
            session._bound = None if length is None else session._bound + length
    return took


def _merge_record(session: StoredSession, other: StoredSession) -> bool:
    """Take from *other* every attribute whose stamp is newer; whether anything changed."""
    took = False
    for name, stamp in other.stamps.items():
        if stamp > session.stamps.get(name, _NEVER):
            session.stamps[name] = stamp
            if name in other.attributes:
                session.attributes[name] = other.attributes[name]
            else:
                session.attributes.pop(name, None)
            took = True
    if other.max_inactive_stamp > session.max_inactive_stamp:
        session.max_inactive = other.max_inactive
        session.max_inactive_stamp = other.max_inactive_stamp
        took = True
    if (other.version, other.writer) > (session.version, session.writer):
        session.version, session.writer = other.version, other.writer
        session.primary = other.primary
        took = True
    session.last_accessed = max(session.last_accessed, other.last_accessed)
    if took:
        session._size = session._bound = None
    return took


class SessionStore:
    """All sessions this node holds, keyed by id; *member* is this node's member id."""

    def __init__(
        self,
        member: str,
        *,
        default_max_inactive: int = DEFAULT_MAX_INACTIVE,
        tombstone_min: float = DEFAULT_TOMBSTONE_MIN,
    ) -> None:
        self.member = member
        self.default_max_inactive = default_max_inactive
        self.tombstone_min = tombstone_min
        self._sessions: dict[str, StoredSession] = {}
        self._tombstones: dict[str, float] = {}  # id -> kept until
        self._aliases: dict[str, tuple[str, float]] = {}  # old id -> (new id, kept until)

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return isinstance(session_id, str) and self._resolve(session_id) in self._sessions

    def ids(self) -> list[str]:
        """The ids of every session held."""
        return list(self._sessions)

    def _resolve(self, session_id: str) -> str:
        alias = self._aliases.get(session_id)
        return session_id if alias is None or session_id in self._sessions else alias[0]

    def get(self, session_id: str) -> StoredSession | None:
        """The session, following an id changed by :meth:`change_id`; None if unknown."""
        return self._sessions.get(self._resolve(session_id))

    def is_primary(self, session_id: str) -> bool:
        """Whether this node is the session's primary."""
        session = self.get(session_id)
        return session is not None and session.primary == self.member

    def is_gone(self, session_id: str) -> bool:
        """Whether the id was invalidated or expired here and may not come back."""
        return session_id in self._tombstones

    def _new(
        self,
        session_id: str,
        now: float,
        creation_time: float,
        max_inactive: int | None,
        writer: str,
    ) -> StoredSession:
        if session_id in self._sessions:
            raise ValueError(f"session {session_id} already exists")
        if session_id in self._tombstones:
            raise ValueError(f"session {session_id} was invalidated and cannot be created again")
        session = StoredSession(
            id=session_id,
            version=0,
            writer=writer,
            primary=writer,
            creation_time=creation_time,
            last_accessed=now,
            max_inactive=self.default_max_inactive if max_inactive is None else max_inactive,
        )
        self._sessions[session_id] = session
        return session

    def create(
        self,
        session_id: str,
        now: float,
        *,
        max_inactive: int | None = None,
        origin: str | None = None,
        creation_time: float | None = None,
    ) -> StoredSession:
        """A new empty session at version 0, primary on *origin* (default: this node).

        Raises ValueError if the id exists or was invalidated.
        """
        return self._new(
            session_id,
            now,
            now if creation_time is None else creation_time,
            max_inactive,
            self.member if origin is None else origin,
        )

    def commit(self, session_id: str, delta: Delta, now: float, length: int | None = None) -> int:
        """Apply a delta from a request served here and return the session's new version.

        *length*, if known, is at least the bytes of the delta as JSON (say, the
        length of the frame it came in): it keeps :meth:`StoredSession.size_at_most`
        up to date.

        Commits made here win over everything the store holds, whatever version
        the request loaded.  A delta with ``created`` creates the session.
        Raises KeyError if the session does not exist (expired, invalidated).
        """
        resolved = self._resolve(session_id)
        session = self._sessions.get(resolved)
        if session is None:
            if delta.created is None or resolved in self._tombstones:
                raise KeyError(session_id)
            session = self._new(resolved, now, delta.created, delta.max_inactive, self.member)
        version = session.version + 1
        if delta.invalidate:
            self.invalidate(resolved, now)
            return version
        stamp = (version, self.member)
        _merge(session, delta, stamp, length)
        session.version, session.writer = stamp
        session.primary = self.member
        if delta.accessed:
            session.last_accessed = max(session.last_accessed, now)
        return version

    def apply_delta(
        self,
        session_id: str,
        delta: Delta,
        version: int,
        now: float,
        origin: str,
        length: int | None = None,
    ) -> ApplyResult:
        """Apply a delta that *origin* committed as *version* (*length* as for :meth:`commit`).

        Changes older than what the store holds are ignored, so deltas may arrive
        late, twice or out of order.  MISSING and GAP ask the caller to pull the
        whole session from *origin*.
        """
        resolved = self._resolve(session_id)
        if delta.invalidate:
            self.invalidate(resolved, now)
            return ApplyResult.APPLIED
        if resolved in self._tombstones:
            return ApplyResult.IGNORED
        session = self._sessions.get(resolved)
        if session is None:
            if delta.created is None:
                return ApplyResult.MISSING
            session = self._new(resolved, now, delta.created, None, origin)
        stamp = (version, origin)
        gap = version > session.version + 1
        newer = stamp > (session.version, session.writer)
        took = _merge(session, delta, stamp, length)
        if not newer and not took:
            return ApplyResult.IGNORED
        if newer:
            session.version, session.writer = stamp
            session.primary = origin
        if delta.accessed:
            session.last_accessed = max(session.last_accessed, now)
        return ApplyResult.GAP if gap else ApplyResult.APPLIED

    def access(self, session_id: str, now: float, origin: str | None = None) -> bool:
        """Record a request that used the session without changing it, served on
        *origin* (default: this node), which becomes its primary.  False if unknown."""
        session = self.get(session_id)
        if session is None:
            return False
        session.last_accessed = max(session.last_accessed, now)
        session.primary = self.member if origin is None else origin
        return True

    def invalidate(self, session_id: str, now: float) -> bool:
        """Remove the session and leave a tombstone; whether it existed here."""
        resolved = self._resolve(session_id)
        session = self._sessions.pop(resolved, None)
        max_inactive = self.default_max_inactive if session is None else session.max_inactive
        keep = max(self.tombstone_min, 2.0 * max_inactive)
        self._tombstones[resolved] = max(self._tombstones.get(resolved, now), now + keep)
        return session is not None

    def change_id(
        self,
        old_id: str,
        new_id: str,
        now: float,
        origin: str | None = None,
        alias_for: float = DEFAULT_ALIAS_TIME,
    ) -> bool:
        """Move a session to *new_id* (a failover rebind or a rotation at login).

        For *alias_for* seconds the old id still finds the session, so requests
        already in flight with it are not split off.  True if the session is
        held here under either id afterwards.
        """
        if new_id in self._tombstones:
            return False
        session = self._sessions.pop(old_id, None)
        if session is not None and new_id not in self._sessions:
            session.id = new_id
            session.primary = self.member if origin is None else origin
            self._sessions[new_id] = session
        if new_id not in self._sessions:
            return False
        self._aliases[old_id] = (new_id, now + alias_for)
        return True

    def expire(self, now: float) -> list[str]:
        """Remove the sessions idle too long and return their ids.

        Also forgets tombstones and aliases past their time.
        """
        expired = []
        for session in self._sessions.values():
            if session.max_inactive <= 0:
                continue
            factor = 1 if session.primary == self.member else 2
            if now - session.last_accessed >= factor * session.max_inactive:
                expired.append(session.id)
        for session_id in expired:
            self.invalidate(session_id, now)
        self._tombstones = {sid: until for sid, until in self._tombstones.items() if until > now}
        self._aliases = {old: alias for old, alias in self._aliases.items() if alias[1] > now}
        return expired

    def snapshot(self, now: float, ids: Iterable[str] | None = None) -> list[dict[str, JSONValue]]:
        """Records of every session (or of *ids*, where held) for state transfer."""
        if ids is None:
            sessions = list(self._sessions.values())
        else:
            sessions = [s for s in (self.get(sid) for sid in ids) if s is not None]
        return [session.to_dict(now) for session in sessions]

    def load_snapshot(self, records: Iterable[object], now: float) -> int:
        """Merge records from :meth:`snapshot`, received from a peer; how many changed the store.

        Every record is checked before any is loaded: a malformed one raises
        ValueError and loads nothing.  Ids invalidated here stay gone.
        """
        incoming = [StoredSession.from_dict(record, now) for record in records]
        changed = 0
        for other in incoming:
            if other.id in self._tombstones:
                continue
            session = self._sessions.get(other.id)
            if session is None:
                self._sessions[other.id] = other
                changed += 1
            elif _merge_record(session, other):
                changed += 1
        return changed

    def stats(self) -> dict[str, int]:
        """Counts for status pages: sessions, primary, backup, bytes (estimate), tombstones."""
        return {**self.counts(), "bytes": self.size()}

    def counts(self) -> dict[str, int]:
        """The cheap part of :meth:`stats`: everything but the bytes."""
        primary = sum(1 for s in self._sessions.values() if s.primary == self.member)
        return {
            "sessions": len(self._sessions),
            "primary": primary,
            "backup": len(self._sessions) - primary,
            "tombstones": len(self._tombstones),
        }

    def size(self) -> int:
        """Bytes of every session's attributes as JSON (sessions changed since the last
        call are encoded again, so this costs as much as those sessions hold)."""
        return sum(s.size for s in self._sessions.values())


def backup_member_for(
    session_id: str, members: Sequence[str], primary: str | None = None
) -> str | None:
    """The member that holds the backup of a session in ``backup`` mode, or None.

    Rendezvous hashing of the id without its route over *members* other than
    *primary*: every node computes the same answer from the same member list, a
    rebind to another route keeps the backup where it is, and a member that
    leaves moves only the backups it held.
    """
    base, _ = split_route(session_id)
    candidates = [m for m in members if m != primary]
    if not candidates:
        return None

    def weight(member: str) -> tuple[bytes, str]:
        digest = hashlib.blake2b(f"{member}\0{base}".encode(), digest_size=8).digest()
        return digest, member

    return max(candidates, key=weight)
