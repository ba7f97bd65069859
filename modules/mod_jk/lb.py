"""The lb worker's balancing core: member states, load values, sticky routing, recovery.

Pure: no sockets and no clock. Every time is passed in as ``now`` (seconds since the
epoch). The state of the members lives in a :class:`~modules.mod_jk.lb_shm.Balancer`, fixed
size records in a buffer shared by all children, so a failed member is seen by every
child at once and the balancing is fair across them. Every read-modify-write of those
records happens under the balancer's lock; an election only reads them (see
:func:`choose_member`), so a request takes the lock twice: to count its start and its end.
The rules are mod_jk's (``jk_lb_worker.c``).

One request through an lb worker, as the caller drives it (attempt counting, pool
acquisition and the sleeps between passes are the caller's)::

    ids = session_ids(cookie_headers, raw_uri, cookie_name, path_name)
    member = choose_member(lb, find_routes(...), now, exclude=failed_in_this_request)
    record_start(lb, member, session=bool(ids))
    ...forward the request over AJP13...
    record_success(lb, member, read=n, transferred=m)   # or record_error(lb, member, now, kind)

When ``choose_member`` finds nobody, the caller may call :func:`force_recovery` once and try
again (mod_jk's "forcing recovery once"), then answer 503.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from .lb_shm import Balancer, MemberRecord

# mod_jk starts global maintenance up to this many seconds early (JK_LB_MAINTAIN_TOLERANCE).
MAINTAIN_TOLERANCE = 2


class _Named(IntEnum):
    """A numbered mod_jk setting or state whose members carry the name jkstatus shows."""

    text: str

    def __new__(cls, value: int, text: str) -> Self:
        member = int.__new__(cls, value)
        member._value_ = value
        member.text = text
        return member

    @classmethod
    def parse(cls, value: str) -> Self:
        """Read mod_jk's spelling: a member's first letter (any case) or its number."""
        first = value.strip()[:1].upper()
        for member in cls:
            if first and first in (member.name[0], str(member.value)):
                return member
        choices = ", ".join(member.name[0] for member in cls)
        raise ValueError(f"{value!r} is not one of {choices}")


class State(_Named):
    """A member's runtime state. The order matters: the usability tests compare values."""

    IDLE = 0, "OK/IDLE"
    OK = 1, "OK"
    RECOVER = 2, "ERR/REC"
    FORCE = 3, "ERR/FRC"
    BUSY = 4, "OK/BUSY"
    ERROR = 5, "ERR"
    PROBE = 6, "ERR/PRB"


class Activation(_Named):
    """A member's configured activation: Active, Disabled (own sessions only), Stopped."""

    ACTIVE = 0, "ACT"
    DISABLED = 1, "DIS"
    STOPPED = 2, "STP"


class Method(_Named):
    """How an lb worker measures load: Request, Traffic, Busyness, Sessions or Next."""

    REQUESTS = 0, "Request"
    TRAFFIC = 1, "Traffic"
    BUSYNESS = 2, "Busyness"
    SESSIONS = 3, "Sessions"
    NEXT = 4, "Next"


class Lock(_Named):
    """An lb worker's locking: Optimistic or Pessimistic."""

    OPTIMISTIC = 0, "Optimistic"
    PESSIMISTIC = 1, "Pessimistic"


class ErrorKind(Enum):
    """How a request on a member failed, named after mod_jk's service results."""

    CLIENT = "client"  # reading from or writing to the client failed: no failover
    SERVER = "server"  # internal error on our side
    PROTOCOL = "protocol"  # the backend sent an invalid AJP message
    STATUS = "status"  # a negative fail_on_status code: fail the request only
    STATUS_FATAL = "status_fatal"  # a positive fail_on_status code: the member is in error
    REPLY_TIMEOUT = "reply_timeout"  # the backend took longer than reply_timeout
    BACKEND = "backend"  # connect, send or receive failed


def usable(state: State, activation: Activation) -> bool:
    """Whether a member may take a request without a session of its own."""
    return state <= State.FORCE and activation == Activation.ACTIVE


def usable_sticky(state: State, activation: Activation) -> bool:
    """Whether a member may take a request for one of its sessions (disabled ones may)."""
    return state <= State.BUSY and activation != Activation.STOPPED


def lb_mults(factors: Sequence[int]) -> list[int]:
    """Each member's load multiplier: the lcm of all lbfactors divided by its own factor."""
    common = math.lcm(*factors) if factors else 1
    return [common // factor for factor in factors]


def update_mult(lb: Balancer) -> None:
    """Recompute every member's ``lb_mult`` after an lbfactor changed."""
    with lb.lock:
        for member, mult in zip(lb.members, lb_mults([m.lb_factor for m in lb.members]), strict=True):
            member.lb_mult = mult


def reset_lb_values(lb: Balancer) -> None:
    """Forget the load history (after the method changed); Busyness keeps its live count."""
    with lb.lock:
        if lb.record.method != Method.BUSYNESS:
            for member in lb.members:
                member.lb_value = 0


def session_ids(
    cookie_headers: str | Iterable[str] | None,
    uri: str,
    session_cookie: str = "JSESSIONID",
    session_path: str = ";jsessionid",
) -> list[str]:
    """The session ids of a request, as mod_jk looks for them.

    ``uri`` is the request URI as received (it still carries ``;jsessionid=``). The path
    parameter wins; otherwise every occurrence of the session cookie counts, in order.
    """
    from_path = _path_param(uri, session_path)
    if from_path:
        return [from_path]
    if cookie_headers is None:
        return []
    headers = [cookie_headers] if isinstance(cookie_headers, str) else cookie_headers
    return [value for header in headers for value in _cookie_values(header, session_cookie)]


def route_of(session_id: str) -> str | None:
    """The route a session id carries: everything after its first '.' (mod_jk's rule)."""
    _, dot, route = session_id.partition(".")
    return route if dot and route else None


def find_routes(
    cookie_headers: str | Iterable[str] | None,
    uri: str,
    session_cookie: str = "JSESSIONID",
    session_path: str = ";jsessionid",
) -> list[str]:
    """The routes of all session ids of a request, in the order mod_jk tries them."""
    ids = session_ids(cookie_headers, uri, session_cookie, session_path)
    return [route for route in map(route_of, ids) if route]


def find_route(
    cookie_headers: str | Iterable[str] | None,
    uri: str,
    session_cookie: str = "JSESSIONID",
    session_path: str = ";jsessionid",
) -> str | None:
    """The route of a request's session (``node1`` in ``JSESSIONID=ABC.node1``), or None."""
    routes = find_routes(cookie_headers, uri, session_cookie, session_path)
    return routes[0] if routes else None


def _path_param(uri: str, name: str) -> str | None:
    start = uri.find(name)
    while start >= 0:
        value_at = start + len(name)
        if uri[value_at : value_at + 1] == "=":
            value = uri[value_at + 1 :]
            for stop in "?;/":
                value = value.split(stop, 1)[0]
            if value:
                return value
        start = uri.find(name, start + 1)
    return None


def _cookie_values(header: str, name: str) -> Iterator[str]:
    for match in _cookie_pattern(name).finditer(header):
        value = match[1].strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if value:
            yield value


@functools.cache
def _cookie_pattern(name: str) -> re.Pattern[str]:
    # The name must start a cookie, not end another one (XJSESSIONID); the value ends at the
    # next ';' or ','.
    return re.compile(rf"(?:^|(?<=[;,\s])){re.escape(name)}\s*=([^;,]*)")


# Raw state and activation numbers, compared on the request path without enum lookups.
_OK, _RECOVER, _FORCE, _BUSY, _ERROR = (
    State.OK.value, State.RECOVER.value, State.FORCE.value, State.BUSY.value, State.ERROR.value)
_ACTIVE, _DISABLED, _STOPPED = (
    Activation.ACTIVE.value, Activation.DISABLED.value, Activation.STOPPED.value)
_PESSIMISTIC = Lock.PESSIMISTIC.value


class _Selection:
    """One request's view of the members: shm states, overridden by local failures.

    States and activations are the records' raw numbers (comparable with the enums).
    """

    __slots__ = ("members", "activations", "states", "distances", "values", "next_offset", "_routes")

    def __init__(self, lb: Balancer, exclude: Collection[str],
                 activations: Mapping[str, Activation] | None) -> None:
        self.members = lb.members
        codes: Sequence[int]
        states: Sequence[int]
        codes, states, self.distances, _, _, self.values = zip(*[m.load for m in lb.members],
                                                                 strict=True)
        if exclude:
            states = [_ERROR if name in exclude else state
                      for name, state in zip(lb.names, states, strict=True)]
        if activations:
            codes = [activations.get(name, code) for name, code in zip(lb.names, codes, strict=True)]
        self.states = states
        self.activations = codes
        self.next_offset = 0  # where the next scan starts, once the load decided (1-based)
        self._routes: list[str] | None = None

    def usable(self, i: int) -> bool:
        return self.states[i] <= _FORCE and self.activations[i] == _ACTIVE

    def usable_sticky(self, i: int) -> bool:
        return self.states[i] <= _BUSY and self.activations[i] != _STOPPED

    def by_route(self, route: str) -> int:
        if self._routes is None:
            self._routes = [m.route for m in self.members]
        return self._routes.index(route) if route in self._routes else -1

    def best_in_domain(self, route_or_domain: str) -> int:
        domain = route_or_domain.split(".", 1)[0]
        best = -1
        for i, member in enumerate(self.members):
            if not member.domain or member.domain != domain or not self.usable(i):
                continue
            if best < 0 or self.closer_or_lighter(i, best):
                best = i
        return best

    def closer_or_lighter(self, i: int, best: int) -> bool:
        distances, values = self.distances, self.values
        return distances[i] < distances[best] or (
            distances[i] == distances[best] and values[i] < values[best])


def choose_member(
    lb: Balancer,
    route: str | Sequence[str] | None,
    now: float,
    exclude: Collection[str] = (),
    *,
    activations: Mapping[str, Activation] | None = None,
    stateless: bool = False,
) -> MemberRecord | None:
    """Pick the member that serves a request, or None when no member can.

    ``route`` is the session's route (or several, tried in order); it is ignored unless the
    lb is sticky. ``exclude`` names members that already failed for this request. ``activations``
    are the mapping's ``active=``/``disabled=``/``stopped=`` overrides, and a ``stateless`` request
    ignores load values (round robin). The global maintenance runs first when it is due, as
    mod_jk runs it on the request path. A member waiting for recovery becomes the probe.

    With the Optimistic lock (mod_jk's default) the members are read without the lock, as
    mod_jk's election reads its shm: a state or an activation is one byte, so it is always seen
    whole, and the load values are only a ranking that :func:`record_start` and the end of a
    request update under the lock; an election racing with an update may rank by the value
    before it, which misplaces at most that request and the next elections even out. Making a
    member the probe must be exclusive, so that choice is made again under the lock. The
    Pessimistic lock makes every election under the lock.
    """
    _, lock, sticky, _, interval, next_offset, last_maintain = lb.record.election
    if interval > 0 and now - last_maintain + MAINTAIN_TOLERANCE >= interval:  # _maintain_due, inline
        maintain(lb, now)
    routes = _routes(route) if sticky else []
    if lock != _PESSIMISTIC:
        if not routes and not exclude and not activations and len(lb.members) > 1:
            # The usual request: no session, nothing failed yet, no overrides.
            chosen = _least_loaded(lb, next_offset, stateless)
            if chosen is not None:
                return chosen
        view = _Selection(lb, exclude, activations)
        chosen = _choose(lb, view, routes, stateless)
        if chosen is None or view.states[chosen] != _RECOVER:
            return _elected(lb, view, chosen)
    with lb.lock:
        view = _Selection(lb, exclude, activations)
        chosen = _choose(lb, view, routes, stateless)
        if chosen is not None and view.states[chosen] == _RECOVER:
            lb.members[chosen].state = State.PROBE  # only this request probes it
        return _elected(lb, view, chosen)


def _least_loaded(lb: Balancer, offset: int, stateless: bool) -> MemberRecord | None:
    """_best_by_value over the records as they are, without a _Selection: the member it
    elects, or None when the full election must decide (nobody usable, or a member to probe)."""
    loads = [member.load for member in lb.members]
    count = len(loads)
    best = -1
    best_distance = best_value = 0
    for step in range(count):
        i = (offset + step) % count
        activation, state, distance, _, _, value = loads[i]
        if state > _FORCE or activation != _ACTIVE:
            continue
        if best < 0 or distance < best_distance or (
                not stateless and distance == best_distance and value < best_value):
            best, best_distance, best_value = i, distance, value
    if best < 0 or loads[best][1] == _RECOVER:
        return None
    lb.record.next_offset = best + 1  # a hint, as in _elected
    return lb.members[best]


def _elected(lb: Balancer, view: _Selection, chosen: int | None) -> MemberRecord | None:
    # Only the election that stands moves the start of the next scan: one made again under
    # the lock must scan from where the first one did.
    if view.next_offset:
        lb.record.next_offset = view.next_offset  # a hint: a write lost to a race is harmless
    return None if chosen is None else lb.members[chosen]


def _routes(route: str | Sequence[str] | None) -> list[str]:
    if route is None:
        return []
    return [route] if isinstance(route, str) else list(route)


def _choose(lb: Balancer, view: _Selection, routes: list[str], stateless: bool) -> int | None:
    if len(view.members) == 1:
        if not view.usable_sticky(0):
            return None
        if view.activations[0] != _DISABLED:
            return 0
    for route in routes:
        found = _by_session_route(lb, view, route)
        if found >= 0:
            return found
    if routes and lb.record.sticky_session_force:
        return None
    found = _best_by_value(lb, view, stateless)
    if found < 0:
        found = _failover(lb, view)
    return found if found >= 0 else None


def _by_session_route(lb: Balancer, view: _Selection, route: str) -> int:
    candidate = view.by_route(route)
    uses_domain = candidate < 0
    if uses_domain:
        candidate = view.best_in_domain(route)
    if candidate < 0 or view.usable_sticky(candidate):
        return candidate
    member = view.members[candidate]
    if lb.record.sticky_session_force:
        return -1
    if member.redirect:
        candidate = view.by_route(member.redirect)
    elif member.domain and not uses_domain:
        candidate = view.best_in_domain(member.domain)
    else:
        return -1
    return candidate if candidate >= 0 and view.usable_sticky(candidate) else -1


def _best_by_value(lb: Balancer, view: _Selection, stateless: bool) -> int:
    states, activations, distances, values = view.states, view.activations, view.distances, view.values
    count = len(states)
    offset = lb.record.next_offset
    best = -1
    for step in range(count):
        i = (offset + step) % count
        if states[i] > _FORCE or activations[i] != _ACTIVE:
            continue
        if best < 0 or distances[i] < distances[best] or (
                not stateless and distances[i] == distances[best] and values[i] < values[best]):
            best = i
    if best >= 0:
        view.next_offset = best + 1
    return best


def _failover(lb: Balancer, view: _Selection) -> int:
    redirect = next((m.redirect for m in view.members if m.redirect), "")
    return _by_session_route(lb, view, redirect) if redirect else -1


# Raw method numbers (an enum member compares and hashes as its number).
_TRAFFIC, _BUSYNESS = Method.TRAFFIC.value, Method.BUSYNESS.value
_COUNTS_EVERY_REQUEST = frozenset((Method.REQUESTS.value, _BUSYNESS))
_COUNTS_NEW_SESSIONS = frozenset((Method.SESSIONS.value, Method.NEXT.value))


def record_start(lb: Balancer, member: MemberRecord, *, session: bool, stateless: bool = False) -> None:
    """Count a request the member is about to serve.

    ``session`` says whether the request carried a session id; Sessions and Next count only
    requests without one (new sessions), and a ``stateless`` request is never a new session.
    """
    record = lb.record
    method = record.method
    new_session = not session and not stateless
    counts = method in _COUNTS_EVERY_REQUEST or (new_session and method in _COUNTS_NEW_SESSIONS)
    with lb.lock:
        busy, max_busy = record.busy_counters
        busy += 1
        record.busy_counters = (busy, busy if busy > max_busy else max_busy)
        mult, value, busy, max_busy, elected, snapshot, sessions = member.counters
        busy += 1
        member.counters = (mult, value + mult if counts else value, busy, busy if busy > max_busy else max_busy,
                           elected + 1, snapshot, sessions + 1 if new_session else sessions)


def record_busy(lb: Balancer, member: MemberRecord) -> None:
    """The member had no free connection: it is BUSY (unless already in error)."""
    with lb.lock:
        if member.state != State.ERROR:
            member.state = State.BUSY


def release_busy(lb: Balancer, member: MemberRecord) -> None:
    """The member has a free connection again: a BUSY member goes back to OK."""
    with lb.lock:
        if member.state == State.BUSY:
            member.state = State.OK


def _finish(lb: Balancer, member: MemberRecord, method: Method, read: int, transferred: int,
            served: bool) -> None:
    """Count the end of a request, under the lock: load (Traffic, Busyness), bytes, busy. A
    ``served`` request leaves the member OK with its error times cleared; a failed one leaves
    it OK unless it is in ERROR."""
    (state, distance, factor, mult, value, busy, max_busy, elected, snapshot, sessions, errors,
     client_errors, reply_timeouts, member_transferred, member_read, first_error_time,
     last_error_time) = member.tally
    if method == _TRAFFIC:
        value += (read + transferred) * mult
    elif method == _BUSYNESS:
        value = max(0, value - mult)
    if served:
        state = _OK
        first_error_time = last_error_time = 0.0
    elif state != _ERROR:
        state = _OK
    member.tally = (state, distance, factor, mult, value, busy - 1 if busy > 0 else 0, max_busy, elected,
                    snapshot, sessions, errors, client_errors, reply_timeouts, member_transferred + transferred,
                    member_read + read, first_error_time, last_error_time)
    record = lb.record
    busy, max_busy = record.busy_counters
    record.busy_counters = (busy - 1 if busy > 0 else 0, max_busy)


def record_success(lb: Balancer, member: MemberRecord, read: int = 0, transferred: int = 0) -> None:
    """The member served the request: it is OK and its error times are cleared.

    ``read`` and ``transferred`` are the bytes received from and sent to the backend.
    """
    method = lb.record.method
    with lb.lock:
        _finish(lb, member, method, read, transferred, served=True)


def record_error(
    lb: Balancer,
    member: MemberRecord,
    now: float,
    kind: ErrorKind,
    read: int = 0,
    transferred: int = 0,
) -> State:
    """The request failed on the member; returns the member's new global state.

    The caller treats the member as failed for the rest of this request (``exclude``) in
    every case; whether it also goes to ERROR for everybody follows mod_jk: at once for a
    fatal status, after ``max_reply_timeouts`` reply timeouts, and for connection failures
    when it has no other request in flight, when ``error_escalation_time`` is 0 or when its
    first error is that old. Client, internal, protocol and soft status errors leave it as is.
    """
    method = lb.record.method
    with lb.lock:
        _finish(lb, member, method, read, transferred, served=False)
        if kind in (ErrorKind.CLIENT, ErrorKind.STATUS):
            if kind == ErrorKind.CLIENT:
                member.client_errors += 1
            member.state = State.OK
            member.first_error_time = 0.0
            member.last_error_time = 0.0
        elif kind == ErrorKind.STATUS_FATAL:
            _mark_error(member, now)
        elif kind == ErrorKind.REPLY_TIMEOUT:
            member.reply_timeouts += 1
            if member.reply_timeouts > lb.record.max_reply_timeouts:
                _mark_error(member, now)
        elif kind == ErrorKind.BACKEND:
            member.errors += 1
            escalation = lb.record.error_escalation_time
            if (member.busy == 0 or escalation == 0 or (
                    member.first_error_time > 0 and now - member.first_error_time >= escalation)):
                member.state = State.ERROR
            if member.first_error_time == 0:
                member.first_error_time = now
            member.last_error_time = now
        return member.state


def _mark_error(member: MemberRecord, now: float) -> None:
    member.errors += 1
    member.state = State.ERROR
    member.first_error_time = now
    member.last_error_time = now


def force_recovery(lb: Balancer) -> list[str]:
    """Give every member in ERROR one more chance (ERR/FRC); returns their names."""
    with lb.lock:
        return _force_recovery(lb)


def _force_recovery(lb: Balancer) -> list[str]:
    forced = []
    for member in lb.members:
        if member.state == State.ERROR:
            member.reply_timeouts = 0
            member.state = State.FORCE
            forced.append(member.name)
    return forced


def maintain(lb: Balancer, now: float) -> bool:
    """Run the lb's global maintenance if ``worker.maintain`` seconds passed; True if it ran.

    Only one child runs it per interval (the last run's time is shared). It halves the load
    values once per elapsed interval (Next subtracts the smallest instead, Busyness keeps its
    live count), halves the reply timeout counters, moves members that have been in ERROR
    longer than ``recover_time`` to ERR/REC with the highest load value (so they are not
    flooded), escalates local errors older than ``error_escalation_time``, marks members that
    got no request since the last run as OK/IDLE, and forces recovery if all are in error.
    """
    record = lb.record
    # Seen from outside the lock first, so a request takes it only when a run is due.
    if not _maintain_due(record.maintain_time, record.last_maintain_time, now):
        return False
    with lb.lock:
        interval, last = record.maintain_time, record.last_maintain_time
        if not _maintain_due(interval, last, now):
            return False
        record.last_maintain_time = now
        highest = _decay(lb, int((now - last + MAINTAIN_TOLERANCE) // interval))
        if not _recover(lb, highest, now):
            _force_recovery(lb)
        return True


def _maintain_due(interval: int, last: float, now: float) -> bool:
    return interval > 0 and now - last + MAINTAIN_TOLERANCE >= interval


def _decay(lb: Balancer, exponent: int) -> int:
    method = lb.record.method
    highest = 0
    for member in lb.members:
        if method not in (Method.BUSYNESS, Method.NEXT):
            member.lb_value >>= exponent
        if method != Method.BUSYNESS:
            highest = max(highest, member.lb_value)
        member.reply_timeouts >>= exponent
    if method == Method.NEXT:
        loads = [m.lb_value for m in lb.members if usable(m.state, m.activation)]
        lowest = min(loads, default=0)
        for member in lb.members:
            member.lb_value = max(0, member.lb_value - lowest)
    return highest


def _recover(lb: Balancer, highest: int, now: float) -> int:
    record = lb.record
    not_in_error = 0
    for member in lb.members:
        if member.state == State.ERROR:
            if now - member.last_error_time > record.recover_time:
                if record.method != Method.BUSYNESS:
                    member.lb_value = highest
                member.reply_timeouts = 0
                member.state = State.RECOVER
                not_in_error += 1
        elif (member.first_error_time > 0 and member.state != State.RECOVER
              and now - member.first_error_time >= record.error_escalation_time):
            member.state = State.ERROR
        else:
            not_in_error += 1
            if member.state == State.OK and member.elected == member.elected_snapshot:
                member.state = State.IDLE
        member.elected_snapshot = member.elected
        member.last_maintain_time = now
    return not_in_error
