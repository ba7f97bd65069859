"""The scoreboard: shared memory in which every child reports what it is doing.

The master creates it once, before the first fork, and children inherit the mapping. Its size
is fixed at creation from ServerLimit x ThreadLimit plus the named segments that modules
claimed beforehand; it is never resized or recreated, so ServerLimit changes need a full stop.

Layout (little-endian, fixed offsets; an outside reader of a ScoreBoardFile can rely on it):

    global record         64 bytes: magic, layout version, limits, generation, restart time,
                          running flag
    segment directory     48 bytes per named segment (name, offset, size), padded to 64
    process records       ServerLimit x 64 bytes
    worker records        ServerLimit x ThreadLimit x 384 bytes, process-major
    named segments        each aligned to 64 bytes

Write discipline, as in httpd: a worker record is written only by the greenlet that owns it
(and by the master to mark it dead after reaping its process). In a process record the master
writes pid, generation and start time, the child its heartbeat, connection count, quiescing
and not_accepting (the master clears those only once the child is reaped). Nothing needs a
lock. Readers (mod_status, the master) may see a record that is being updated: a
counter may be one request behind another or a string may mix two requests; no reader relies
on two fields of one record being consistent. Named segments are different: several children
update the same bytes, so they come with a process-shared lock.

The backing store is a memfd (anonymous shared memory) or, with ScoreBoardFile, a regular
file. Either way there is a file descriptor, which the segment locks need: they are POSIX
record locks on the segment's first byte. Those belong to the process, so children sharing
the inherited descriptor still exclude each other, and the kernel drops them when a holder
dies, so a child killed inside a critical section cannot wedge the others.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
import time
import weakref
from types import TracebackType
from typing import TypedDict

SERVER_DEAD = "."
SERVER_STARTING = "S"
SERVER_READY = "_"
SERVER_BUSY_READ = "R"
SERVER_BUSY_WRITE = "W"
SERVER_BUSY_KEEPALIVE = "K"
SERVER_BUSY_LOG = "L"
SERVER_BUSY_DNS = "D"
SERVER_CLOSING = "C"
SERVER_GRACEFUL = "G"
SERVER_IDLE_KILL = "I"

STATUS_LETTERS = ".S_RWKLDCGI"
"""Every worker status letter, in the order of httpd's numeric status values."""

_STATUS_CODES = {letter: ord(letter) for letter in STATUS_LETTERS}
_DEAD_CODE = ord(SERVER_DEAD)
_READY_CODE = ord(SERVER_READY)
_BUSY_WRITE_CODE = ord(SERVER_BUSY_WRITE)
# Besides ready (idle) and graceful, the states mod_status does not count as busy.
_NOT_BUSY = frozenset((SERVER_DEAD, SERVER_STARTING, SERVER_IDLE_KILL))

_MAGIC = b"PYHTTPSB"
_LAYOUT_VERSION = 1
_ALIGN = 64

_GLOBAL = struct.Struct("<8sIIIIqdB23x")
_GENERATION_AT = 24
_RESTART_TIME_AT = 32
_RUNNING_AT = 40

_SEGMENT_ENTRY = struct.Struct("<32sQQ")
SEGMENT_NAME_MAX = 32
"""Longest segment name, in UTF-8 bytes."""

_PROCESS = struct.Struct("<iBBxxqddQ24x")
_PROCESS_START = struct.Struct("<iBBxxqdd")  # up to the connection count
_PROC_PID_AT = 0
_PROC_QUIESCING_AT = 4
_PROC_NOT_ACCEPTING_AT = 5
_PROC_GENERATION_AT = 8
_PROC_START_TIME_AT = 16
_PROC_HEARTBEAT_AT = 24
_PROC_CONNECTIONS_AT = 32

CLIENT_SIZE = 64
VHOST_SIZE = 64
PROTOCOL_SIZE = 16
REQUEST_SIZE = 128
_WORKER = struct.Struct(f"<c3xiq6Q4d{CLIENT_SIZE}s{VHOST_SIZE}s{PROTOCOL_SIZE}s{REQUEST_SIZE}s16x")
_W_PID_AT = 4
_W_GENERATION_AT = 8
_W_ACCESS_AT = 16  # first of six counters, then four times: _COUNTERS_AND_TIMES
_W_MY_ACCESS_AT = 24
_W_CONN_COUNT_AT = 32
_W_BYTES_AT = 40
_W_MY_BYTES_AT = 48
_W_CONN_BYTES_AT = 56
_W_START_TIME_AT = 64
_W_STOP_TIME_AT = 72
_W_LAST_USED_AT = 80
_W_DURATION_AT = 88
_W_CLIENT_AT = 96
_W_VHOST_AT = _W_CLIENT_AT + CLIENT_SIZE
_W_PROTOCOL_AT = _W_VHOST_AT + VHOST_SIZE
_W_REQUEST_AT = _W_PROTOCOL_AT + PROTOCOL_SIZE

# Precompiled pieces of the records, so the per-request calls only pack and unpack.
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_PID_GENERATION = struct.Struct("<iq")
_TWO_U64 = struct.Struct("<QQ")
_COUNTERS_AND_TIMES = struct.Struct("<6Q4d")
_WHO = struct.Struct(f"<{CLIENT_SIZE}s{VHOST_SIZE}s{PROTOCOL_SIZE}s")
_WHO_AND_REQUEST = struct.Struct(f"<{_WHO.size}s{REQUEST_SIZE}s")


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _fixed(text: str, width: int) -> bytes:
    """Encode text as UTF-8 cut to at most width bytes, never inside a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= width:
        return data
    end = width
    # A continuation byte (10xxxxxx) at the cut means its character started before it.
    while end and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[:end]


def _text(raw: bytes) -> str:
    # "replace": a torn read can catch a string half overwritten.
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class ProcessRecord(TypedDict):
    """One process slot in a snapshot."""

    slot: int
    pid: int
    generation: int
    quiescing: bool
    not_accepting: bool
    start_time: float
    heartbeat: float
    connections: int


class WorkerRecord(TypedDict):
    """One worker slot in a snapshot."""

    slot: int
    thread: int
    status: str
    pid: int
    generation: int
    access_count: int
    my_access_count: int
    conn_count: int
    bytes_served: int
    my_bytes_served: int
    conn_bytes: int
    start_time: float
    stop_time: float
    last_used: float
    duration: float
    client: str
    vhost: str
    protocol: str
    request: str


class ScoreboardSnapshot(TypedDict):
    """Plain-data copy of the scoreboard, for mod_status and the master.

    processes lists the slots that have a pid; workers lists every worker slot except the
    disabled ones (see Scoreboard.snapshot). Counting follows mod_status: only workers of
    processes that have a pid and are not quiescing count; idle = SERVER_READY workers of the
    process's current generation, graceful = SERVER_GRACEFUL, busy = any other state except
    dead, starting and idle-kill. Totals sum every worker slot, dead ones included, since a
    slot keeps its access_count and bytes_served across processes.
    """

    server_limit: int
    thread_limit: int
    generation: int
    restart_time: float
    running: bool
    processes: list[ProcessRecord]
    workers: list[WorkerRecord]
    total_accesses: int
    total_bytes: int
    total_duration: float
    busy_workers: int
    idle_workers: int
    graceful_workers: int
    scoreboard: str


_fork_sensitive_locks: weakref.WeakSet[SegmentLock] = weakref.WeakSet()


def _renew_locks_after_fork() -> None:
    for lock in _fork_sensitive_locks:
        lock._renew()


os.register_at_fork(after_in_child=_renew_locks_after_fork)


class SegmentLock:
    """Lock shared by every process that inherited the scoreboard; a context manager.

    Across processes it is a POSIX record lock on one byte of the scoreboard's descriptor;
    within a process, a thread lock taken first serialises threads (record locks do not, as
    they belong to the whole process). Waiting blocks the calling OS thread, gevent hub
    included, so keep critical sections to a few field updates and never yield inside one.
    On a read-only (attached) scoreboard it is a shared lock: holders see no half-done
    update but do not exclude each other.
    """

    __slots__ = ("_fd", "_offset", "_command", "_local", "__weakref__")

    def __init__(self, fd: int, offset: int, exclusive: bool = True) -> None:
        self._fd = fd
        self._offset = offset
        self._command = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        self._local = threading.Lock()
        _fork_sensitive_locks.add(self)

    def _renew(self) -> None:
        # A fork taken while another thread held the lock would leave the child's copy held.
        self._local = threading.Lock()

    def acquire(self) -> SegmentLock:
        """Wait until this process holds the lock; returns the lock."""
        local = self._local
        local.acquire()
        try:
            fcntl.lockf(self._fd, self._command, 1, self._offset)
        except BaseException:
            local.release()
            raise
        return self

    def release(self) -> None:
        """Release the lock taken by acquire()."""
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset)
        self._local.release()

    # A with block takes and drops the lock straight away: it guards every balancer update.
    __enter__ = acquire

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset)
        self._local.release()


class Segment:
    """A named block of the scoreboard that a module claimed before it was created.

    buf is a memoryview of exactly the claimed size, writable by every process that
    inherited the scoreboard; the module defines its layout. Hold lock while updating
    anything other processes read or update too.
    """

    __slots__ = ("name", "size", "buf", "lock")

    def __init__(self, name: str, buf: memoryview, lock: SegmentLock) -> None:
        self.name = name
        self.size = len(buf)
        self.buf = buf
        self.lock = lock


def _field(struct_: struct.Struct, offset: int, doc: str, writable: bool = False) -> property:
    def get(self: _SlotView | Scoreboard) -> int | float:
        return struct_.unpack_from(self._mm, self._base + offset)[0]

    def set_(self: _SlotView | Scoreboard, value: int | float) -> None:
        struct_.pack_into(self._mm, self._base + offset, value)

    return property(get, set_ if writable else None, doc=doc)


def _flag(offset: int, doc: str) -> property:
    def get(self: _SlotView | Scoreboard) -> bool:
        return bool(self._mm[self._base + offset])

    def set_(self: _SlotView | Scoreboard, value: bool) -> None:
        self._mm[self._base + offset] = 1 if value else 0

    return property(get, set_, doc=doc)


def _string(offset: int, width: int, doc: str) -> property:
    def get(self: _SlotView) -> str:
        start = self._base + offset
        return _text(self._mm[start : start + width])

    return property(get, doc=doc)


class _SlotView:
    __slots__ = ("_mm", "_base", "slot")

    def __init__(self, mm: mmap.mmap, base: int, slot: int) -> None:
        self._mm = mm
        self._base = base
        self.slot = slot


class ProcessSlot(_SlotView):
    """View of one process record (one child, one row of the scoreboard)."""

    __slots__ = ()

    pid = _field(
        _I32, _PROC_PID_AT, "Pid of the child in this slot; 0 when the slot is free.", True
    )
    generation = _field(_I64, _PROC_GENERATION_AT, "Generation the child was started in.", True)
    quiescing = _flag(_PROC_QUIESCING_AT, "The child is finishing its requests and will exit.")
    not_accepting = _flag(_PROC_NOT_ACCEPTING_AT, "The child has stopped accepting connections.")
    start_time = _field(
        _F64, _PROC_START_TIME_AT, "When the child was started (time.time()).", True
    )
    heartbeat = _field(
        _F64, _PROC_HEARTBEAT_AT, "Last beat() of the child, on the time.monotonic() clock.", True
    )
    connections = _field(_U64, _PROC_CONNECTIONS_AT, "Connections this child has accepted.")

    def start(self, pid: int, generation: int) -> None:
        """Record a newly forked child in this slot (the master calls this after fork).

        The connection count is the child's from its start (the slot's was zeroed when it was
        freed): the child may have counted a connection before the master gets here."""
        _PROCESS_START.pack_into(
            self._mm, self._base, pid, 0, 0, generation, time.time(), time.monotonic()
        )

    def beat(self) -> None:
        """Show the master the child is alive: store time.monotonic() in heartbeat."""
        _F64.pack_into(self._mm, self._base + _PROC_HEARTBEAT_AT, time.monotonic())

    def count_connection(self) -> int:
        """Count one accepted connection; returns the new total (for MaxConnectionsPerChild)."""
        at = self._base + _PROC_CONNECTIONS_AT
        total = _U64.unpack_from(self._mm, at)[0] + 1
        _U64.pack_into(self._mm, at, total)
        return total

    def record(self) -> ProcessRecord:
        """Copy this slot into plain data."""
        pid, quiescing, not_accepting, generation, start_time, heartbeat, connections = (
            _PROCESS.unpack_from(self._mm, self._base)
        )
        return {
            "slot": self.slot,
            "pid": pid,
            "generation": generation,
            "quiescing": bool(quiescing),
            "not_accepting": bool(not_accepting),
            "start_time": start_time,
            "heartbeat": heartbeat,
            "connections": connections,
        }


class WorkerSlot(_SlotView):
    """View of one worker record: one greenlet column of one child.

    The HTTP core keeps the view of its column and calls set_status(), start_request() and
    end_request() on it; they cost a few struct packs each. Times are time.time().
    """

    __slots__ = ("thread", "_who", "_who_fields")

    def __init__(self, mm: mmap.mmap, base: int, slot: int, thread: int) -> None:
        super().__init__(mm, base, slot)
        self.thread = thread
        # The last client, vhost and protocol and their encoded fields: they change per
        # connection, not per request, so most requests reuse the encoding.
        self._who: tuple[str, str, str] = ("", "", "")
        self._who_fields = bytes(_WHO.size)

    pid = _field(_I32, _W_PID_AT, "Pid of the process that last owned this worker.")
    generation = _field(_I64, _W_GENERATION_AT, "Generation of that process.")
    access_count = _field(_U64, _W_ACCESS_AT, "Requests served by this slot, across processes.")
    my_access_count = _field(_U64, _W_MY_ACCESS_AT, "Requests served by this slot in this child.")
    conn_count = _field(_U64, _W_CONN_COUNT_AT, "Requests served on the current connection.")
    bytes_served = _field(_U64, _W_BYTES_AT, "Bytes sent by this slot, across processes.")
    my_bytes_served = _field(_U64, _W_MY_BYTES_AT, "Bytes sent by this slot in this child.")
    conn_bytes = _field(_U64, _W_CONN_BYTES_AT, "Bytes sent on the current connection.")
    start_time = _field(_F64, _W_START_TIME_AT, "When the last request started.")
    stop_time = _field(_F64, _W_STOP_TIME_AT, "When the last request ended.")
    last_used = _field(_F64, _W_LAST_USED_AT, "Last request start or end.")
    duration = _field(_F64, _W_DURATION_AT, "Seconds spent in requests, summed.")
    client = _string(_W_CLIENT_AT, CLIENT_SIZE, "Client address of the last request.")
    vhost = _string(_W_VHOST_AT, VHOST_SIZE, "host:port of the last request.")
    protocol = _string(_W_PROTOCOL_AT, PROTOCOL_SIZE, "Protocol of the last request.")
    request = _string(_W_REQUEST_AT, REQUEST_SIZE, "Start of the last request line.")

    @property
    def status(self) -> str:
        """Status letter (one of STATUS_LETTERS)."""
        code = self._mm[self._base]
        return chr(code) if code else SERVER_DEAD

    def claim(self, pid: int, generation: int) -> None:
        """Take this column for a new child: record its pid and generation, zero the
        per-child and per-connection counters and mark it SERVER_READY."""
        mm, base = self._mm, self._base
        _PID_GENERATION.pack_into(mm, base + _W_PID_AT, pid, generation)
        _TWO_U64.pack_into(mm, base + _W_MY_ACCESS_AT, 0, 0)
        _TWO_U64.pack_into(mm, base + _W_MY_BYTES_AT, 0, 0)
        mm[base] = _READY_CODE

    def set_status(self, letter: str) -> None:
        """Set the status letter. SERVER_READY (waiting for a new connection) also zeroes
        the per-connection counters, as httpd does."""
        code = _STATUS_CODES.get(letter)
        if code is None:
            raise ValueError(
                f"unknown scoreboard status {letter!r}; expected one of {STATUS_LETTERS!r}"
            )
        if code == _READY_CODE:
            mm, base = self._mm, self._base
            _U64.pack_into(mm, base + _W_CONN_COUNT_AT, 0)
            _U64.pack_into(mm, base + _W_CONN_BYTES_AT, 0)
        self._mm[self._base] = code

    def start_request(self, client: str, vhost: str, request_line: str, protocol: str = "") -> None:
        """Mark SERVER_BUSY_WRITE (request read, now being processed) and record who asked
        what. Strings longer than their field are cut at a character boundary."""
        who = (client, vhost, protocol)
        if who != self._who:
            self._who = who
            self._who_fields = _WHO.pack(
                _fixed(client, CLIENT_SIZE), _fixed(vhost, VHOST_SIZE), _fixed(protocol, PROTOCOL_SIZE)
            )
        mm, base = self._mm, self._base
        mm[base] = _BUSY_WRITE_CODE
        now = time.time()
        _F64.pack_into(mm, base + _W_START_TIME_AT, now)
        _F64.pack_into(mm, base + _W_LAST_USED_AT, now)
        _WHO_AND_REQUEST.pack_into(
            mm, base + _W_CLIENT_AT, self._who_fields, _fixed(request_line, REQUEST_SIZE)
        )

    def end_request(self, bytes_sent: int) -> None:
        """Count the finished request and its bytes; record stop time and duration. The
        status is left as it is: the caller moves on to L, K, C or _."""
        mm, at = self._mm, self._base + _W_ACCESS_AT
        access, my_access, conn, served, my_served, conn_bytes, start, _, _, duration = (
            _COUNTERS_AND_TIMES.unpack_from(mm, at)
        )
        now = time.time()
        _COUNTERS_AND_TIMES.pack_into(
            mm,
            at,
            access + 1,
            my_access + 1,
            conn + 1,
            served + bytes_sent,
            my_served + bytes_sent,
            conn_bytes + bytes_sent,
            start,
            now,
            now,
            duration + (now - start if start else 0.0),
        )

    def record(self) -> WorkerRecord:
        """Copy this slot into plain data."""
        (
            status,
            pid,
            generation,
            access,
            my_access,
            conn,
            served,
            my_served,
            conn_bytes,
            start,
            stop,
            last_used,
            duration,
            client,
            vhost,
            protocol,
            request,
        ) = _WORKER.unpack_from(self._mm, self._base)
        return {
            "slot": self.slot,
            "thread": self.thread,
            "status": status.decode("latin-1") if status != b"\0" else SERVER_DEAD,
            "pid": pid,
            "generation": generation,
            "access_count": access,
            "my_access_count": my_access,
            "conn_count": conn,
            "bytes_served": served,
            "my_bytes_served": my_served,
            "conn_bytes": conn_bytes,
            "start_time": start,
            "stop_time": stop,
            "last_used": last_used,
            "duration": duration,
            "client": _text(client),
            "vhost": _text(vhost),
            "protocol": _text(protocol),
            "request": _text(request),
        }


class Scoreboard:
    """The shared scoreboard: global record, process slots, worker slots, named segments.

    Create it with Scoreboard.create() in the master before forking; children use the
    inherited object. Scoreboard.attach() opens a ScoreBoardFile read-only from outside.
    """

    def __init__(
        self,
        fd: int,
        mm: mmap.mmap,
        server_limit: int,
        thread_limit: int,
        segments: dict[str, tuple[int, int]],
        writable: bool,
    ) -> None:
        self._fd = fd
        self._mm = mm
        self.server_limit = server_limit
        self.thread_limit = thread_limit
        self.size = len(mm)
        self._processes_at = _align(_GLOBAL.size + _SEGMENT_ENTRY.size * len(segments))
        self._workers_at = self._processes_at + server_limit * _PROCESS.size
        self._segments = {
            name: Segment(
                name,
                memoryview(mm)[offset : offset + size],
                SegmentLock(fd, offset, exclusive=writable),
            )
            for name, (offset, size) in segments.items()
        }

    @classmethod
    def create(
        cls,
        server_limit: int,
        thread_limit: int,
        segments: dict[str, int] | None = None,
        path: str | None = None,
    ) -> Scoreboard:
        """Create the scoreboard: anonymous shared memory, or the file at path
        (ScoreBoardFile), truncated and laid out afresh.

        segments maps each name a module claimed to its size in bytes; segments start
        zeroed. Raises ValueError for limits below 1 or bad segment names or sizes.
        """
        if server_limit < 1 or thread_limit < 1:
            raise ValueError(
                f"ServerLimit and ThreadLimit must be at least 1 (got {server_limit}, {thread_limit})"
            )
        claims = dict(segments or {})
        for name, size in claims.items():
            encoded = name.encode("utf-8")
            if not encoded or len(encoded) > SEGMENT_NAME_MAX or b"\0" in encoded:
                raise ValueError(
                    f"scoreboard segment name {name!r} must be 1 to {SEGMENT_NAME_MAX} bytes, no NUL"
                )
            if size < 1:
                raise ValueError(
                    f"scoreboard segment {name!r} must have a positive size, not {size}"
                )
        offset = _align(_GLOBAL.size + _SEGMENT_ENTRY.size * len(claims))
        offset += server_limit * _PROCESS.size + server_limit * thread_limit * _WORKER.size
        placed = {}
        for name, size in claims.items():
            offset = _align(offset)
            placed[name] = (offset, size)
            offset += size
        total = _align(offset)

        if path is None:
            fd = os.memfd_create("pyhttpd-scoreboard")
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, total)
            mm = mmap.mmap(fd, total, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        _GLOBAL.pack_into(
            mm,
            0,
            _MAGIC,
            _LAYOUT_VERSION,
            server_limit,
            thread_limit,
            len(placed),
            0,
            time.time(),
            1,
        )
        for i, (name, (seg_offset, size)) in enumerate(placed.items()):
            _SEGMENT_ENTRY.pack_into(
                mm, _GLOBAL.size + i * _SEGMENT_ENTRY.size, name.encode("utf-8"), seg_offset, size
            )
        board = cls(fd, mm, server_limit, thread_limit, placed, writable=True)
        board._mark_all_workers_dead()
        return board

    @classmethod
    def attach(cls, path: str) -> Scoreboard:
        """Open the ScoreBoardFile of a running (or stopped) server read-only.

        Every read works as on the server's own scoreboard; writes raise TypeError.
        Closing it drops any segment lock this process holds on the file, as POSIX record
        locks go with any close of the file, so do not attach from inside the server.
        Raises ValueError if the file is not a scoreboard of this layout.
        """
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            mm = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        except BaseException:
            os.close(fd)
            raise
        try:
            if len(mm) < _GLOBAL.size:
                raise ValueError(f"{path}: too short to be a scoreboard")
            magic, version, server_limit, thread_limit, count, *_ = _GLOBAL.unpack_from(mm, 0)
            if magic != _MAGIC or version != _LAYOUT_VERSION:
                raise ValueError(f"{path}: not a pyhttpd scoreboard (layout {_LAYOUT_VERSION})")
            segments = {}
            for i in range(count):
                raw, offset, size = _SEGMENT_ENTRY.unpack_from(
                    mm, _GLOBAL.size + i * _SEGMENT_ENTRY.size
                )
                segments[raw.rstrip(b"\0").decode("utf-8")] = (offset, size)
        except BaseException:
            mm.close()
            os.close(fd)
            raise
        return cls(fd, mm, server_limit, thread_limit, segments, writable=False)

    _base = 0  # the global record starts the mapping (see _field)
    generation = _field(
        _I64, _GENERATION_AT,
        "The running generation; read without a lock by children to spot a restart.", True,
    )
    restart_time = _field(
        _F64, _RESTART_TIME_AT, "When the server was last (re)started, time.time().", True
    )
    running = _flag(
        _RUNNING_AT, "Whether the master is running; cleared at shutdown for outside readers."
    )

    def process(self, slot: int) -> ProcessSlot:
        """View of process slot 0 <= slot < server_limit."""
        if not 0 <= slot < self.server_limit:
            raise IndexError(f"process slot {slot} outside 0..{self.server_limit - 1}")
        return ProcessSlot(self._mm, self._processes_at + slot * _PROCESS.size, slot)

    def worker(self, slot: int, thread: int) -> WorkerSlot:
        """View of worker column thread (0 <= thread < thread_limit) of process slot."""
        if not 0 <= slot < self.server_limit:
            raise IndexError(f"process slot {slot} outside 0..{self.server_limit - 1}")
        if not 0 <= thread < self.thread_limit:
            raise IndexError(f"worker {thread} outside 0..{self.thread_limit - 1}")
        index = slot * self.thread_limit + thread
        return WorkerSlot(self._mm, self._workers_at + index * _WORKER.size, slot, thread)

    def segment(self, name: str) -> Segment:
        """The named segment a module claimed at creation; KeyError if none was."""
        try:
            return self._segments[name]
        except KeyError:
            claimed = ", ".join(sorted(self._segments)) or "none"
            raise KeyError(
                f"no scoreboard segment {name!r} (claimed: {claimed}); "
                "segments must be claimed before the scoreboard is created"
            ) from None

    def find_free_process_slot(self) -> int | None:
        """Lowest process slot with no pid, or None when every slot is taken."""
        at = self._processes_at + _PROC_PID_AT
        for slot in range(self.server_limit):
            if not _I32.unpack_from(self._mm, at + slot * _PROCESS.size)[0]:
                return slot
        return None

    def clear_process(self, slot: int) -> None:
        """Free a slot once its process is reaped: no pid, and every worker column marked
        SERVER_DEAD with its per-child and per-connection counters zeroed. A column keeps
        its slot totals and last request, which mod_status still shows."""
        process = self.process(slot)
        process.pid = 0
        process.quiescing = False
        process.not_accepting = False
        mm = self._mm
        _U64.pack_into(mm, process._base + _PROC_CONNECTIONS_AT, 0)
        for thread in range(self.thread_limit):
            base = self._workers_at + (slot * self.thread_limit + thread) * _WORKER.size
            _TWO_U64.pack_into(mm, base + _W_MY_ACCESS_AT, 0, 0)
            _TWO_U64.pack_into(mm, base + _W_MY_BYTES_AT, 0, 0)
            mm[base] = _DEAD_CODE

    def reset(self) -> None:
        """Forget every process and worker and restamp restart_time, as httpd does on a
        non-graceful restart. The generation and the named segments are kept."""
        start, end = self._processes_at, self._workers_at + self._worker_count() * _WORKER.size
        self._mm[start:end] = bytes(end - start)
        self._mark_all_workers_dead()
        self.restart_time = time.time()

    def snapshot(
        self, max_servers: int | None = None, threads_per_child: int | None = None
    ) -> ScoreboardSnapshot:
        """Copy the scoreboard into plain data (see ScoreboardSnapshot).

        Worker slots in a process slot >= max_servers or a column >= threads_per_child
        that are dead are disabled, as in mod_status: left out of workers and of the
        scoreboard letters. Without limits no slot is disabled. The letters string has one
        letter per remaining worker, process by process, as mod_status prints it.
        """
        max_servers = self.server_limit if max_servers is None else max_servers
        threads_per_child = self.thread_limit if threads_per_child is None else threads_per_child
        processes: list[ProcessRecord] = []
        workers: list[WorkerRecord] = []
        letters: list[str] = []
        total_accesses = total_bytes = busy = idle = graceful = 0
        total_duration = 0.0
        generation = self.generation
        for slot in range(self.server_limit):
            process = self.process(slot).record()
            live = process["pid"] != 0
            if live:
                processes.append(process)
            counted = live and not process["quiescing"]
            for thread in range(self.thread_limit):
                worker = self.worker(slot, thread).record()
                status = worker["status"]
                total_accesses += worker["access_count"]
                total_bytes += worker["bytes_served"]
                total_duration += worker["duration"]
                if status == SERVER_DEAD and (slot >= max_servers or thread >= threads_per_child):
                    continue
                workers.append(worker)
                letters.append(status)
                if not counted:
                    continue
                if status == SERVER_READY:
                    if process["generation"] == generation:
                        idle += 1
                elif status == SERVER_GRACEFUL:
                    graceful += 1
                elif status not in _NOT_BUSY:
                    busy += 1
        return {
            "server_limit": self.server_limit,
            "thread_limit": self.thread_limit,
            "generation": self.generation,
            "restart_time": self.restart_time,
            "running": self.running,
            "processes": processes,
            "workers": workers,
            "total_accesses": total_accesses,
            "total_bytes": total_bytes,
            "total_duration": total_duration,
            "busy_workers": busy,
            "idle_workers": idle,
            "graceful_workers": graceful,
            "scoreboard": "".join(letters),
        }

    def close(self) -> None:
        """Unmap the scoreboard and close its descriptor; safe to call twice. Views
        derived from a segment's buf must be released first (BufferError otherwise).
        A ScoreBoardFile stays on disk for outside readers."""
        if self._mm.closed:
            return
        for segment in self._segments.values():
            segment.buf.release()
        self._mm.close()
        os.close(self._fd)

    def __enter__(self) -> Scoreboard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _worker_count(self) -> int:
        return self.server_limit * self.thread_limit

    def _mark_all_workers_dead(self) -> None:
        mm, at = self._mm, self._workers_at
        for index in range(self._worker_count()):
            mm[at + index * _WORKER.size] = _DEAD_CODE
