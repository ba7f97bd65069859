"""The lb workers' state as fixed-size binary records in a shared buffer.

Every child maps the same buffer (an mmap'd scoreboard segment in production, a bytearray
in tests), so every child sees the same member states, load values and counters, as mod_jk
keeps them in its shm file. A field is read and written in place through :mod:`struct` at
its offset; nothing is cached, so a second view over the same buffer sees every change at
once. Read-modify-write sequences must hold the balancer's lock; :mod:`.lb` does.

Layout: a header (magic, fingerprint of the lb settings, size, count), then for each lb worker in the
order of the workers file one :class:`LbRecord` followed by one :class:`MemberRecord` per
member in ``balance_workers`` order. Records are padded to 8 bytes; numbers are
little-endian; strings are UTF-8, NUL padded, at most 63 bytes as in mod_jk.
"""

from __future__ import annotations

import struct
import zlib
from contextlib import AbstractContextManager
from enum import IntEnum
from mmap import mmap
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

from .lb import Activation, Lock, Method, State, lb_mults
from .workers import WorkersConfig, WorkerSpec

_MAGIC = "PYJKLB01"
_BUSY = State.BUSY.value
_TEXT_CACHE_LIMIT = 64
_T = TypeVar("_T")
_E = TypeVar("_E", bound=IntEnum)

Buffer = bytearray | memoryview | mmap


class _Field(Generic[_T]):
    """A value at a fixed offset of a record; offsets follow the order of declaration."""

    def __init__(self, fmt: str) -> None:
        self._struct = struct.Struct("<" + fmt)
        self._unpack = self._struct.unpack_from
        self._pack = self._struct.pack_into
        self.offset = 0

    def __set_name__(self, owner: type[_Record], name: str) -> None:
        self.offset = owner.__dict__.get("_end", 0)
        owner._end = self.offset + self._struct.size

    @overload
    def __get__(self, record: None, owner: type) -> Self: ...
    @overload
    def __get__(self, record: _Record, owner: type) -> _T: ...
    def __get__(self, record: _Record | None, owner: type) -> Self | _T:
        if record is None:
            return self
        return self.decode(self._unpack(record.buffer, record.offset + self.offset)[0])

    def __set__(self, record: _Record, value: _T) -> None:
        self._pack(record.buffer, record.offset + self.offset, self.encode(value))

    def decode(self, raw: Any) -> _T:
        return raw

    def encode(self, value: _T) -> Any:
        return value


class _Number(_Field[_T]):
    """A number stored as it is: read and written without a conversion step (the hot path)."""

    def __get__(self, record: _Record | None, owner: type) -> Any:
        if record is None:
            return self
        return self._unpack(record.buffer, record.offset + self.offset)[0]

    def __set__(self, record: _Record, value: _T) -> None:
        self._pack(record.buffer, record.offset + self.offset, value)


class _Int(_Number[int]):
    pass


class _Float(_Number[float]):
    def __init__(self) -> None:
        super().__init__("d")


class _Bool(_Field[bool]):
    def __init__(self) -> None:
        super().__init__("B")

    def decode(self, raw: int) -> bool:
        return bool(raw)

    def encode(self, value: bool) -> int:
        return int(value)


class _Text(_Field[str]):
    def __init__(self, size: int = 64) -> None:
        super().__init__(f"{size}s")
        self._limit = size - 1  # keep a NUL, as mod_jk's char[64] does
        # Decoded texts by their raw bytes: a field holds one of a few values for its life.
        self._decoded: dict[bytes, str] = {}

    def decode(self, raw: bytes) -> str:
        text = self._decoded.get(raw)
        if text is None:
            text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
            if len(self._decoded) >= _TEXT_CACHE_LIMIT:
                self._decoded.clear()
            self._decoded[raw] = text
        return text

    def encode(self, value: str) -> bytes:
        data = value.encode("utf-8")
        if len(data) > self._limit:
            raise ValueError(f"{value!r} is longer than {self._limit} bytes")
        return data


class _Code(_Field[_E]):
    def __init__(self, enum: type[_E]) -> None:
        super().__init__("B")
        self._enum = enum
        # By value, so a read is an index, not an Enum lookup.
        self._members = [enum(value) if value in enum._value2member_map_ else None
                         for value in range(max(enum) + 1)]

    def __get__(self, record: _Record | None, owner: type) -> Any:
        if record is None:
            return self
        raw = self._unpack(record.buffer, record.offset + self.offset)[0]
        member = self._members[raw] if raw < len(self._members) else None
        return member if member is not None else self._enum(raw)

    def encode(self, value: _E) -> int:
        return int(value)


class _Group:
    """Several fields of a record read with one struct call, as a tuple of their raw values
    (codes and flags as numbers); a group of adjacent fields is also written with one.

    Writing a group rewrites every field in it, so do it under the balancer's lock with
    values read under the same lock: every writer of those fields holds that lock (the one
    field written without it, ``LbRecord.next_offset``, is in no group that is written).
    """

    def __init__(self, *names: str) -> None:
        self._names = names
        self._struct = struct.Struct("<")
        self._offset = 0
        self._adjacent = False

    def __set_name__(self, owner: type[_Record], name: str) -> None:
        fields: list[_Field[Any]] = [owner.__dict__[field] for field in self._names]
        fmt = "<"
        end = self._offset = fields[0].offset
        for field in fields:
            if field.offset < end:
                raise TypeError(f"{owner.__name__}.{name}: fields out of order")
            fmt += f"{field.offset - end}x" if field.offset > end else ""
            fmt += field._struct.format.lstrip("<")
            end = field.offset + field._struct.size
        self._struct = struct.Struct(fmt)
        self._adjacent = self._struct.size == sum(field._struct.size for field in fields)
        self._unpack = self._struct.unpack_from
        self._pack = self._struct.pack_into

    def __get__(self, record: _Record | None, owner: type) -> Any:
        if record is None:
            return self
        return self._unpack(record.buffer, record.offset + self._offset)

    def __set__(self, record: _Record, values: tuple[Any, ...]) -> None:
        if not self._adjacent:
            raise AttributeError("only a group of adjacent fields can be written")
        self._pack(record.buffer, record.offset + self._offset, *values)


class _Texts(_Group):
    """Several text fields read with one struct call, decoded: a tuple of str, taken from a
    cache by their raw bytes (they hold one of a few values for their life)."""

    def __init__(self, *names: str) -> None:
        super().__init__(*names)
        self._decoded: dict[tuple[bytes, ...], tuple[str, ...]] = {}

    def __get__(self, record: _Record | None, owner: type) -> Any:
        if record is None:
            return self
        raw = self._unpack(record.buffer, record.offset + self._offset)
        texts = self._decoded.get(raw)
        if texts is None:
            texts = tuple(text.split(b"\0", 1)[0].decode("utf-8", "replace") for text in raw)
            if len(self._decoded) >= _TEXT_CACHE_LIMIT:
                self._decoded.clear()
            self._decoded[raw] = texts
        return texts

    def __set__(self, record: _Record, values: tuple[Any, ...]) -> None:
        raise AttributeError("texts are written one field at a time")


class _Record:
    """A view of one record: its fields live in ``buffer`` at ``offset``."""

    __slots__ = ("buffer", "offset")

    SIZE: ClassVar[int] = 0
    _end: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.SIZE = (cls.__dict__.get("_end", 0) + 7) // 8 * 8

    def __init__(self, buffer: Buffer, offset: int) -> None:
        self.buffer = buffer
        self.offset = offset


class _Header(_Record):
    magic = _Text(9)
    fingerprint = _Int("I")
    size = _Int("Q")
    balancers = _Int("I")


class MemberRecord(_Record):
    """One lb member's shared state: configuration mirror, runtime state and counters."""

    sequence = _Int("I")  # bumped when the configuration part changes
    activation = _Code(Activation)
    state = _Code(State)
    distance = _Int("I")
    lb_factor = _Int("I")
    lb_mult = _Int("Q")
    lb_value = _Int("Q")
    busy = _Int("I")
    max_busy = _Int("I")
    elected = _Int("Q")
    elected_snapshot = _Int("Q")  # elected at the last maintenance, to spot idle members
    sessions = _Int("Q")
    errors = _Int("I")
    client_errors = _Int("I")
    reply_timeouts = _Int("I")
    transferred = _Int("Q")
    read = _Int("Q")
    first_error_time = _Float()
    last_error_time = _Float()
    last_maintain_time = _Float()
    last_reset = _Float()
    name = _Text()
    route = _Text()
    domain = _Text()
    redirect = _Text()
    # What a request reads and updates, a group at a time: the election reads ``load``, the
    # start of a request rewrites ``counters``, its end ``tally`` (state to last_error_time).
    load = _Group("activation", "state", "distance", "lb_factor", "lb_mult", "lb_value")
    counters = _Group("lb_mult", "lb_value", "busy", "max_busy", "elected", "elected_snapshot", "sessions")
    tally = _Group("state", "distance", "lb_factor", "lb_mult", "lb_value", "busy", "max_busy", "elected",
                   "elected_snapshot", "sessions", "errors", "client_errors", "reply_timeouts",
                   "transferred", "read", "first_error_time", "last_error_time")
    notes = _Group("activation", "state", "lb_value", "busy", "elected", "errors", "transferred", "read")
    routing = _Texts("route", "domain")

    def __repr__(self) -> str:
        return f"<MemberRecord {self.name} {self.activation.text} {self.state.text} lb_value={self.lb_value}>"


class LbRecord(_Record):
    """One lb worker's shared state: its settings and the lb-wide counters."""

    sequence = _Int("I")
    method = _Code(Method)
    lock = _Code(Lock)
    sticky_session = _Bool()
    sticky_session_force = _Bool()
    retries = _Int("I")
    lb_retries = _Int("I")
    retry_interval = _Int("I")  # ms
    recover_time = _Int("I")  # s
    error_escalation_time = _Int("I")  # s
    max_reply_timeouts = _Int("I")
    maintain_time = _Int("I")  # s, worker.maintain
    busy = _Int("I")
    max_busy = _Int("I")
    next_offset = _Int("I")  # where the next scan for the least loaded member starts
    member_count = _Int("I")
    last_maintain_time = _Float()
    last_reset = _Float()
    name = _Text()
    session_cookie = _Text()
    session_path = _Text()
    busy_counters = _Group("busy", "max_busy")
    session_names = _Texts("session_cookie", "session_path")
    # What an election reads: its rules, whether maintenance is due and where the scan starts.
    election = _Group("method", "lock", "sticky_session", "sticky_session_force", "maintain_time",
                      "next_offset", "last_maintain_time")


class Balancer:
    """One lb worker as :mod:`.lb` works on it: its record, its members' records and the lock."""

    def __init__(self, name: str, record: LbRecord, members: list[MemberRecord],
                 lock: AbstractContextManager[Any]) -> None:
        self.name = name
        self.record = record
        self.members = members
        self.lock = lock
        # A member's name is part of the layout (a renamed member is a new layout), so it is
        # read once rather than decoded from the buffer on every request.
        self.names = [member.name for member in members]
        # Where each member's state byte is, for any_busy.
        self._state_at = [member.offset + MemberRecord.state.offset for member in members]

    def any_busy(self) -> bool:
        """Whether some member is BUSY: a byte per member, as cheap as a look can be."""
        buffer = self.record.buffer
        for at in self._state_at:
            if buffer[at] == _BUSY:
                return True
        return False

    def member(self, name: str) -> MemberRecord:
        """The member called ``name`` (KeyError if there is none)."""
        for member, member_name in zip(self.members, self.names, strict=True):
            if member_name == name:
                return member
        raise KeyError(name)


def _layout(workers: WorkersConfig) -> list[tuple[WorkerSpec, list[WorkerSpec]]]:
    return [(spec, [workers.workers[name] for name in spec.properties["balance_workers"]])
            for spec in workers.workers.values() if spec.type == "lb"]


class BalancerState:
    """Every lb worker of a configuration, laid out in one shared buffer.

    The first view over a buffer (or over one written for other lb settings) writes the
    configured values; later views over the same buffer attach to the state already
    there, as mod_jk's children attach to its shm. ``lock`` is any context manager; it
    must be shared by every process that uses the buffer. ``now`` starts the maintenance
    clock, as mod_jk's init does.
    """

    def __init__(self, buffer: Buffer, workers: WorkersConfig,
                 lock: AbstractContextManager[Any], now: float = 0.0) -> None:
        layout = _layout(workers)
        size = self.size_for(workers)
        if len(buffer) < size:
            raise ValueError(f"the buffer holds {len(buffer)} bytes, the balancers need {size}")
        fingerprint = _fingerprint(layout, workers.maintain)
        self.balancers: dict[str, Balancer] = {}
        header = _Header(buffer, 0)
        with lock:
            fresh = (header.magic != _MAGIC or header.fingerprint != fingerprint
                     or header.size != size)
            offset = _Header.SIZE
            for spec, member_specs in layout:
                record = LbRecord(buffer, offset)
                offset += LbRecord.SIZE
                members = [MemberRecord(buffer, offset + i * MemberRecord.SIZE)
                           for i in range(len(member_specs))]
                offset += len(members) * MemberRecord.SIZE
                if fresh:
                    _configure(record, spec, workers.maintain, members, member_specs, now)
                self.balancers[spec.name] = Balancer(spec.name, record, members, lock)
            if fresh:
                header.fingerprint = fingerprint
                header.size = size
                header.balancers = len(layout)
                header.magic = _MAGIC  # last, so a half-written layout is never attached to

    @staticmethod
    def size_for(workers: WorkersConfig) -> int:
        """The bytes needed for every lb worker of ``workers`` and their members."""
        return _Header.SIZE + sum(LbRecord.SIZE + len(members) * MemberRecord.SIZE
                                  for _, members in _layout(workers))

    def __getitem__(self, name: str) -> Balancer:
        return self.balancers[name]


_LB_SETTINGS = ("method", "lock", "sticky_session", "sticky_session_force", "retries",
                "lb_retries", "retry_interval", "recover_time", "error_escalation_time",
                "max_reply_timeouts", "session_cookie", "session_path")
_MEMBER_SETTINGS = ("route", "domain", "redirect", "activation", "distance")


def _fingerprint(layout: list[tuple[WorkerSpec, list[WorkerSpec]]], maintain: int) -> int:
    settings = [(lb.name, [lb.properties[s] for s in _LB_SETTINGS],
                 [(m.name, m.properties["lbfactor"], [m.properties[s] for s in _MEMBER_SETTINGS])
                  for m in members])
                for lb, members in layout]
    return zlib.crc32(repr((maintain, settings)).encode())


def _configure(record: LbRecord, spec: WorkerSpec, maintain: int,
               members: list[MemberRecord], member_specs: list[WorkerSpec], now: float) -> None:
    props = spec.properties
    record.buffer[record.offset:record.offset + LbRecord.SIZE] = bytes(LbRecord.SIZE)
    record.name = spec.name
    for setting in _LB_SETTINGS:
        setattr(record, setting, props[setting])
    record.maintain_time = maintain
    record.member_count = len(members)
    record.last_maintain_time = record.last_reset = now
    record.sequence = 1
    mults = lb_mults([m.properties["lbfactor"] for m in member_specs])
    for member, member_spec, mult in zip(members, member_specs, mults, strict=True):
        member.buffer[member.offset:member.offset + MemberRecord.SIZE] = bytes(MemberRecord.SIZE)
        member.name = member_spec.name
        for setting in _MEMBER_SETTINGS:
            setattr(member, setting, member_spec.properties[setting])
        member.lb_factor = member_spec.properties["lbfactor"]
        member.lb_mult = mult
        member.state = State.IDLE
        member.last_maintain_time = member.last_reset = now
        member.sequence = 1
