"""The lb worker at run time: mod_jk's ``jk_lb_worker.c`` service loop over the shared
balancer state of :mod:`.lb` and :mod:`.lb_shm`.

Each request: find the session's route (``.route`` at the end of the JSESSIONID cookie or
``;jsessionid=`` path parameter, or JK_ROUTE), let :func:`.lb.choose_member` pick the
member (its own for a sticky session, its redirect or domain when it cannot serve, else
the least loaded by the lb method), and serve the request on that member's ajp13 worker.
A member that fails is left out for the rest of the request and the next one is tried,
``min(members, lb_retries)`` per pass and ``retries`` passes ``retry_interval`` ms apart;
when none is usable, the members in error get one forced chance. The client gets 503 only
when no member could serve.

The balancer records live in the scoreboard segment "jk" (or the JkShmFile), so every
child sees a member go into error, and the load is spread over all children.
"""

from __future__ import annotations

import time
from typing import Any

from . import lb
from .ajp_worker import AjpWorker, Outcome, ServiceResult
from .lb import Activation, ErrorKind, State
from .lb_shm import Balancer, MemberRecord
from .service import ServiceRequest

_ERROR_KINDS = {
    Outcome.CLIENT_ERROR: ErrorKind.CLIENT,
    Outcome.SERVER_ERROR: ErrorKind.SERVER,
    Outcome.PROTOCOL_ERROR: ErrorKind.PROTOCOL,
    Outcome.STATUS_ERROR: ErrorKind.STATUS,
    Outcome.STATUS_FATAL_ERROR: ErrorKind.STATUS_FATAL,
    Outcome.REPLY_TIMEOUT: ErrorKind.REPLY_TIMEOUT,
    Outcome.BACKEND_ERROR: ErrorKind.BACKEND,
}
# The JK_LB_FIRST_* and JK_LB_LAST_* notes, in the order _note_values gives their values.
_NOTES = ("NAME", "TYPE", "VALUE", "ACCESSED", "READ", "TRANSFERRED", "ERRORS", "BUSY", "ACTIVATION",
          "STATE")
_FIRST_NOTES = tuple("JK_LB_FIRST_" + note for note in _NOTES)
_LAST_NOTES = tuple("JK_LB_LAST_" + note for note in _NOTES)
_BOTH_NOTES = _FIRST_NOTES + _LAST_NOTES
# jkstatus's names by the records' raw numbers, so a note needs no enum lookup.
_ACTIVATION_TEXTS = {activation.value: activation.text for activation in Activation}
_STATE_TEXTS = {state.value: state.text for state in State}
_NO_MEMBER = ServiceResult(Outcome.BACKEND_ERROR, 503, False,
                           "All tomcat instances failed, no more workers left")


class LbWorker:
    """An lb worker of workers.properties: its members' ajp13 workers and its shared state."""

    type = "lb"

    def __init__(self, name: str, properties: dict[str, Any], members: dict[str, AjpWorker],
                 log: Any = None) -> None:
        self.name = name
        self.properties = properties
        self.members = members  # by name, in balance_workers order
        self.set_session_cookie: bool = properties["set_session_cookie"]
        self.session_cookie_path: str = properties["session_cookie_path"]
        self.log = log
        self._balancer: Balancer | None = None
        self._member_workers: dict[int, tuple[str, AjpWorker]] = {}  # by id() of a member's record

    @property
    def balancer(self) -> Balancer | None:
        """The shared state, attached in each child (WorkerRegistry.attach)."""
        return self._balancer

    @balancer.setter
    def balancer(self, balancer: Balancer | None) -> None:
        self._balancer = balancer
        self._member_workers = {} if balancer is None else {
            id(member): (name, self.members[name])
            for member, name in zip(balancer.members, balancer.names, strict=True)}

    def __repr__(self) -> str:
        return f"<lb worker {self.name} {list(self.members)}>"

    def service(self, s: ServiceRequest) -> ServiceResult:
        """Serve ``s`` on the members (see the module docstring)."""
        balancer = self._balancer
        assert balancer is not None, "the lb worker's shared state is not attached"
        record = balancer.record
        r = s.r
        ext = s.extensions
        routes: list[str] = []
        session_ids: list[str] = []
        if s.route:
            routes = [s.route]  # JK_ROUTE
        elif record.sticky_session and not s.sticky_ignore:
            cookie, path = record.session_names
            cookie = ext.session_cookie or cookie
            path = ext.session_path or path
            session_ids = lb.session_ids(r.headers_in.get_all("Cookie"), r.unparsed_uri, cookie, path)
            routes = [route for route in map(lb.route_of, session_ids) if route]
        if balancer.any_busy():
            self._release_busy(balancer)
        activations = ext.activations or None
        per_pass = min(len(balancer.members), record.lb_retries)
        passes = attempts = 0
        excluded: set[str] = set()
        forced = False
        first: MemberRecord | None = None
        result = _NO_MEMBER
        while True:
            now = time.time()
            member = lb.choose_member(balancer, routes, now, excluded, activations=activations,
                                      stateless=s.stateless)
            if member is None:
                if not forced and lb.force_recovery(balancer):
                    forced = True
                    self._log("info", f"({self.name}) all members are in error, forcing recovery once")
                    continue
                break
            name, worker = self._member_workers[id(member)]
            busy = worker.reserve()
            if busy is not None:
                lb.record_busy(balancer, member)
                excluded.add(name)
                result = busy
                continue
            first = first or member
            route, domain = member.routing
            sticky = bool(routes) and (route in routes or domain in routes)
            s.route = route or domain
            activation = activations.get(name, member.activation) if activations else member.activation
            s.activation = activation.text
            s.session_cookie = None
            if self.set_session_cookie and not sticky:
                s.session_cookie = self._session_cookie(s, ext.session_cookie or record.session_cookie,
                                                        member)
            read, transferred = worker.bytes_read, worker.bytes_transferred
            try:
                lb.record_start(balancer, member, session=bool(session_ids or routes), stateless=s.stateless)
            except BaseException:
                worker.pool.release(None)
                raise
            result = worker.serve_reserved(s)
            read, transferred = worker.bytes_read - read, worker.bytes_transferred - transferred
            if result.ok:
                lb.record_success(balancer, member, read, transferred)
                self._notes(r, first, member)
                return result
            state = lb.record_error(balancer, member, now, _ERROR_KINDS[result.outcome], read, transferred)
            excluded.add(name)
            self._log("info" if result.outcome is Outcome.CLIENT_ERROR else "error",
                      f"({self.name}) member {name} failed ({result.message}); it is now "
                      f"{state.text}")
            if not result.recoverable:
                break
            attempts += 1
            if attempts >= per_pass:
                passes += 1
                if passes >= record.retries:
                    break
                attempts = 0
                excluded.clear()
                time.sleep(record.retry_interval / 1000.0)
        if first is not None and member is not None:
            self._notes(r, first, member)
        if result is _NO_MEMBER:
            self._log("error", f"({self.name}) {_NO_MEMBER.message}")
        return result

    def _release_busy(self, balancer: Balancer) -> None:
        """Members marked BUSY go back to OK once this child has a free connection to them."""
        for member in balancer.members:
            if member.state == State.BUSY:
                pool = self.members[member.name].pool
                if pool.busy < pool.size:
                    lb.release_busy(balancer, member)

    def _session_cookie(self, s: ServiceRequest, cookie: str, member: MemberRecord) -> str:
        """set_session_cookie: the cookie that tells the client its route (a non-sticky pick)."""
        path = s.extensions.session_cookie_path or self.session_cookie_path
        value = f"{cookie}=.{member.route}"
        if path:
            value += f";PATH={path}"
        value += ";HttpOnly"
        if s.r.is_https:
            value += ";Secure"
        return value

    def _notes(self, r: Any, first: MemberRecord, last: MemberRecord) -> None:
        """JK_LB_FIRST_* / JK_LB_LAST_* notes for the access log."""
        values = self._note_values(first)
        if last is first:
            r.notes.update(zip(_BOTH_NOTES, values + values, strict=True))
        else:
            r.notes.update(zip(_FIRST_NOTES, values, strict=True))
            r.notes.update(zip(_LAST_NOTES, self._note_values(last), strict=True))

    def _note_values(self, member: MemberRecord) -> tuple[str, ...]:
        activation, state, lb_value, busy, elected, errors, transferred, read = member.notes
        return (self._member_workers[id(member)][0], "ajp13", str(lb_value), str(elected), str(read),
                str(transferred), str(errors), str(busy), _ACTIVATION_TEXTS[activation],
                _STATE_TEXTS[state])

    def maintain(self, now: float) -> None:
        """Decay, recovery and idle marking (once per worker.maintain over all children)."""
        if self.balancer is not None:
            lb.maintain(self.balancer, time.time())

    def close(self) -> None:
        """The members' connections are closed by their own workers."""

    def _log(self, level: str, message: str) -> None:
        if self.log is not None:
            self.log.log(level, message, "service")

