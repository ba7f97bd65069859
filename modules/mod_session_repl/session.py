"""The session an application sees as ``environ['pyhttpd.session']``, and its delta.

Values are JSON types only (None, bool, int, finite float, str, list, dict with
str keys, nested), because they travel to other nodes as JSON and are never
pickled.  Anything else raises TypeError at assignment, naming the key, so a
value that cannot replicate fails where it is written and not later on a peer.

Values are copied when set and when read.  Changing a list or dict obtained
from the session therefore changes nothing until it is assigned again::

    cart = session["cart"]
    cart.append(item)          # not in the session yet
    session["cart"] = cart     # now it is, and it replicates

This is the rule of Tomcat's setAttribute: only assignment and deletion are
changes, and only changes replicate.

Every assignment and deletion is recorded.  :meth:`Session.delta` returns what
the request did: the attribute changes in the order of their last action (a name
set twice is sent once, with its final value, like Tomcat's
``recordAllActions=false``), a new max_inactive, invalidation and the access.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Literal, NamedTuple

JSONValue = Any
"""None, bool, int, float, str, list or dict with str keys, nested."""

DEFAULT_MAX_INACTIVE = 1800
MAX_NESTING = 64
_DELTA_FIELDS = frozenset({"changes", "max_inactive", "invalidate", "accessed", "created"})


class Change(NamedTuple):
    """One attribute action: ``("set", name, value)`` or ``("remove", name, None)``."""

    op: Literal["set", "remove"]
    name: str
    value: JSONValue = None


def _json_copy(value: JSONValue, key: str, where: str, depth: int = 0) -> JSONValue:
    """A copy of *value* made of plain JSON types; TypeError naming *key* otherwise."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise TypeError(f"session attribute {key!r}: {value!r} at {where} is not valid in JSON")
        return value
    if depth >= MAX_NESTING:
        raise TypeError(f"session attribute {key!r}: nested deeper than {MAX_NESTING} at {where}")
    if kind is list:
        return [_json_copy(item, key, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if kind is dict:
        copy = {}
        for name, item in value.items():
            if type(name) is not str:
                raise TypeError(
                    f"session attribute {key!r}: dict key {name!r} at {where} is not a str"
                )
            copy[name] = _json_copy(item, key, f"{where}[{name!r}]", depth + 1)
        return copy
    raise TypeError(
        f"session attribute {key!r}: {kind.__name__} at {where} is not a JSON type "
        "(None, bool, int, float, str, list, dict with str keys)"
    )


def copy_value(key: str, value: JSONValue) -> JSONValue:
    """A deep copy of *value* if it may be stored under *key*; TypeError naming the key if not."""
    if type(key) is not str:
        raise TypeError(f"session attribute names are str, not {type(key).__name__}: {key!r}")
    return _json_copy(value, key, key)


class Delta(NamedTuple):
    """What one request did to a session; the unit that is committed and replicated.

    ``changes`` are in the order of each name's last action.  ``max_inactive``
    is set when the request changed it (and always for a new session), so are
    ``created`` (the creation time, new sessions only) and ``invalidate``.
    ``accessed`` says a request used the session, which keeps it alive.
    """

    changes: tuple[Change, ...] = ()
    max_inactive: int | None = None
    invalidate: bool = False
    accessed: bool = False
    created: float | None = None

    @property
    def changed(self) -> bool:
        """Whether the delta does anything besides refreshing the access time."""
        return bool(
            self.changes
            or self.max_inactive is not None
            or self.invalidate
            or self.created is not None
        )

    def to_dict(self) -> dict[str, JSONValue]:
        """The delta as JSON types, leaving out what is unset."""
        out: dict[str, JSONValue] = {}
        if self.changes:
            out["changes"] = [
                [c.op, c.name, c.value] if c.op == "set" else [c.op, c.name] for c in self.changes
            ]
        if self.max_inactive is not None:
            out["max_inactive"] = self.max_inactive
        if self.invalidate:
            out["invalidate"] = True
        if self.accessed:
            out["accessed"] = True
        if self.created is not None:
            out["created"] = self.created
        return out

    @classmethod
    def from_dict(cls, data: object) -> Delta:
        """The delta *data* describes; ValueError if it is malformed (it comes from the network)."""
        if not isinstance(data, dict):
            raise ValueError("delta is not an object")
        if not _DELTA_FIELDS.issuperset(data):
            raise ValueError(f"delta has unknown fields {sorted(set(data) - _DELTA_FIELDS)}")
        raw_changes = data.get("changes", [])
        if not isinstance(raw_changes, list):
            raise ValueError("delta changes are not a list")
        changes = []
        for raw in raw_changes:
            if isinstance(raw, list) and len(raw) == 3 and raw[0] == "set" and type(raw[1]) is str:
                name = raw[1]
                value = raw[2]
                kind = type(value)
                # A str, int, bool or None is its own copy; the rest is checked and copied.
                if not (kind is str or kind is int or kind is bool or value is None):
                    try:
                        value = copy_value(name, value)
                    except TypeError as exc:
                        raise ValueError(str(exc)) from None
                # Interned: thousands of sessions share a few attribute names.
                changes.append(Change("set", sys.intern(name), value))
            elif (
                isinstance(raw, list)
                and len(raw) == 2
                and raw[0] == "remove"
                and isinstance(raw[1], str)
            ):
                changes.append(Change("remove", sys.intern(raw[1])))
            else:
                raise ValueError(
                    f'delta change {raw!r:.80} is not ["set", name, value] or ["remove", name]'
                )
        max_inactive = data.get("max_inactive")
        if max_inactive is not None and type(max_inactive) is not int:
            raise ValueError("delta max_inactive is not an integer")
        for flag in ("invalidate", "accessed"):
            if type(data.get(flag, False)) is not bool:
                raise ValueError(f"delta {flag} is not a boolean")
        created = data.get("created")
        if created is not None and (
            type(created) not in (int, float) or not math.isfinite(created)
        ):
            raise ValueError("delta created is not a number")
        return cls(
            changes=tuple(changes),
            max_inactive=max_inactive,
            invalidate=data.get("invalidate", False),
            accessed=data.get("accessed", False),
            created=None if created is None else float(created),
        )


class InvalidatedSessionError(RuntimeError):
    """Use of a session after :meth:`Session.invalidate` (Tomcat's IllegalStateException)."""


class Session(MutableMapping[str, JSONValue]):
    """An HTTP session as the application sees it: a mapping of JSON values.

    ``creation_time`` and ``last_accessed`` are seconds since the epoch;
    ``last_accessed`` is the previous request that used the session, not the
    current one (a new session reports its creation time).  ``max_inactive`` is
    the idle time in seconds after which the session expires, 0 or less for
    never; it may be changed per session.  ``version`` is the store's version the
    session was loaded at.
    """

    def __init__(
        self,
        session_id: str,
        attributes: Mapping[str, JSONValue] | None = None,
        *,
        creation_time: float,
        last_accessed: float | None = None,
        max_inactive: int = DEFAULT_MAX_INACTIVE,
        is_new: bool = False,
        version: int = 0,
    ) -> None:
        self.id = session_id
        self.is_new = is_new
        self.creation_time = creation_time
        self.last_accessed = creation_time if last_accessed is None else last_accessed
        self.version = version
        self._attributes = {
            name: copy_value(name, value) for name, value in (attributes or {}).items()
        }
        self._loaded_max_inactive = self._max_inactive = self._check_max_inactive(max_inactive)
        # Last action per name; re-inserted on each action so the order is that of last actions.
        self._changes: dict[str, Change] = {}
        self._invalidated = False

    @staticmethod
    def _check_max_inactive(value: int) -> int:
        if type(value) is not int:
            raise TypeError(f"max_inactive is a whole number of seconds, not {value!r}")
        return value

    def _check_valid(self) -> None:
        if self._invalidated:
            raise InvalidatedSessionError(f"session {self.id} has been invalidated")

    def _record(self, change: Change) -> None:
        self._changes.pop(change.name, None)
        self._changes[change.name] = change

    def __getitem__(self, name: str) -> JSONValue:
        self._check_valid()
        return copy_value(name, self._attributes[name])

    def __setitem__(self, name: str, value: JSONValue) -> None:
        self._check_valid()
        copy = copy_value(name, value)
        # Stored values are replaced, never changed in place, so the change may share the copy.
        self._attributes[name] = copy
        self._record(Change("set", name, copy))

    def __delitem__(self, name: str) -> None:
        self._check_valid()
        del self._attributes[name]
        self._record(Change("remove", name))

    def __contains__(self, name: object) -> bool:
        self._check_valid()
        return name in self._attributes

    def __iter__(self) -> Iterator[str]:
        self._check_valid()
        # A snapshot of the names, so deleting while iterating works.
        return iter(tuple(self._attributes))

    def __len__(self) -> int:
        self._check_valid()
        return len(self._attributes)

    def __repr__(self) -> str:
        state = "invalidated" if self._invalidated else f"{len(self._attributes)} attributes"
        return f"<Session {self.id[:8]}... {state}>"

    @property
    def max_inactive(self) -> int:
        """Seconds of inactivity after which the session expires (0 or less: never)."""
        return self._max_inactive

    @max_inactive.setter
    def max_inactive(self, value: int) -> None:
        self._check_valid()
        self._max_inactive = self._check_max_inactive(value)

    @property
    def invalidated(self) -> bool:
        """Whether :meth:`invalidate` was called."""
        return self._invalidated

    def invalidate(self) -> None:
        """End the session on every node; any further use raises InvalidatedSessionError."""
        self._check_valid()
        self._invalidated = True
        self._attributes.clear()
        self._changes.clear()

    def delta(self) -> Delta:
        """What this request changed since the session was loaded."""
        if self._invalidated:
            return Delta(invalidate=True, accessed=True)
        max_inactive_changed = self.is_new or self._max_inactive != self._loaded_max_inactive
        return Delta(
            changes=tuple(self._changes.values()),
            max_inactive=self._max_inactive if max_inactive_changed else None,
            accessed=True,
            created=self.creation_time if self.is_new else None,
        )

    @property
    def changed(self) -> bool:
        """Whether anything but the access time changed: a new session always has."""
        return self.delta().changed
