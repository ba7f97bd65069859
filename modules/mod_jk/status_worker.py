"""The status worker (jkstatus): mod_jk's ``jk_status.c`` page and actions.

``worker.jkstatus.type=status`` mounted with JkMount shows every lb worker with its members
and every other ajp13 worker, with their URI mappings, and lets an operator change the
balancers at run time. Request parameters are mod_jk's:

- ``cmd``: list (default), show, edit, update, reset, recover, version;
- ``mime``: html (default), xml, prop, txt; ``w`` the worker, ``sw`` the lb member;
- ``re`` auto-refresh seconds (html), ``from`` the command to return to after an action;
- update of an lb: ``vlr`` retries, ``vlri`` retry interval, ``vlt`` recover_time, ``vlee``
  error_escalation_time, ``vlx`` max_reply_timeouts, ``vls`` sticky_session, ``vlf``
  sticky_session_force, ``vlm`` method, ``vll`` lock; of a member: ``vwa`` activation,
  ``vwf`` lbfactor, ``vwn`` route, ``vwr`` redirect, ``vwc`` domain, ``vwd`` distance;
  ``att`` with ``val0``, ``val1``... sets one member attribute for every member.

The balancers' settings and counters live in the shared records, so what one request
changes every child sees at once. The ajp13 connection settings (``va*``) are per child
and cannot be changed here. Output formats follow mod_jk's, so scripts written for
Apache's jkstatus (``cmd=list&mime=prop``: ``worker.node1.activation=ACT``) work unchanged.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from pyhttpd import __version__
from pyhttpd.request import HTTPError
from pyhttpd.server_tokens import server_banner

from . import lb
from .ajp_worker import AjpWorker, Outcome, ServiceResult
from .lb import Activation, Lock, Method, State
from .lb_shm import Balancer, MemberRecord
from .lb_worker import LbWorker
from .service import ServiceRequest

JK_VERSION = f"mod_jk/pyhttpd-{__version__}"
COMMANDS = ("list", "show", "edit", "update", "reset", "recover", "version")
ACTIONS = ("edit", "update", "reset", "recover")  # forbidden with read_only
MIME_TYPES = {
    "html": "text/html; charset=ISO-8859-1",
    "xml": "text/xml; charset=ISO-8859-1",
    "prop": "text/plain; charset=ISO-8859-1",
    "txt": "text/plain; charset=ISO-8859-1",
}
_STATE_LETTERS = {State.IDLE: "i", State.OK: "o", State.RECOVER: "r", State.FORCE: "f",
                  State.BUSY: "b", State.ERROR: "e", State.PROBE: "p"}
_ACTIVATION_LETTERS = {Activation.ACTIVE: "a", Activation.DISABLED: "d", Activation.STOPPED: "s"}
# Member attributes settable with update (and att=... for all members).
MEMBER_ATTRIBUTES = {"vwa": "activation", "vwf": "lbfactor", "vwn": "route", "vwr": "redirect",
                     "vwc": "domain", "vwd": "distance"}
AJP_ATTRIBUTES = ("vahst", "vaprt", "vacpt", "vact", "vapt", "vart", "var", "vari", "vacpi", "varo",
                  "vabl", "vamps", "vapng")
LB_ATTRIBUTES = {"vlr": "retries", "vlri": "retry_interval", "vlt": "recover_time",
                 "vlee": "error_escalation_time", "vlx": "max_reply_timeouts", "vls": "sticky_session",
                 "vlf": "sticky_session_force", "vlm": "method", "vll": "lock"}

# A record is a list of (name, value, quoted in the txt format).
Record = list[tuple[str, str, bool]]


class StatusError(Exception):
    """An action the status worker refuses; the message is mod_jk's Result message."""


@dataclass
class Report:
    """What one status request shows, before it is rendered in a format."""

    server: Record
    time: Record
    software: Record
    balancers: list[tuple[Record, list[Record], list[Record]]] = field(default_factory=list)
    ajps: list[tuple[Record, list[Record]]] = field(default_factory=list)
    show_lists: bool = True  # the Balancer/AJP Workers count lines (cmd=list)
    result: tuple[str, str] = ("OK", "Action finished")


class StatusWorker:
    """A status worker of workers.properties."""

    type = "status"

    def __init__(self, name: str, properties: dict[str, Any], registry: Any, log: Any = None) -> None:
        self.name = name
        self.registry = registry
        self.read_only: bool = properties["read_only"]
        self.users: list[str] = properties["user"]
        self.user_case_insensitive: bool = properties["user_case_insensitive"]
        self.good = [_rule(text) for text in properties["good"]]
        self.bad = [_rule(text) for text in properties["bad"]]
        self.prefix: str = properties["prefix"]
        self.ns: str = properties["ns"]
        self.xmlns: str = properties["xmlns"]
        self.doctype: str | None = properties["doctype"]
        self.css: str | None = properties["css"]
        self.log = log

    def __repr__(self) -> str:
        return f"<status worker {self.name}>"

    def maintain(self, now: float) -> None:
        """Nothing to maintain."""

    def close(self) -> None:
        """Nothing to close."""

    # -- serving -------------------------------------------------------------------------

    def service(self, s: ServiceRequest) -> ServiceResult:
        """Answer one jkstatus request."""
        r = s.r
        params = {k: v[-1] for k, v in parse_qs(r.args or "", keep_blank_values=True).items()}
        if self.users and not self._user_allowed(r.user):
            raise HTTPError(403, f"({self.name}) user {r.user!r} may not use the status worker")
        mime = params.get("mime", "html")
        if mime not in MIME_TYPES:
            mime = "html"
        cmd = params.get("cmd", "list")
        report = self._report(r)
        try:
            if cmd not in COMMANDS:
                raise StatusError(f"Invalid command '{cmd}'")
            if cmd in ACTIONS and self.read_only:
                raise StatusError("Command not allowed in read only mode")
            if cmd in ("show", "edit", "update", "reset", "recover") and not params.get("w"):
                raise StatusError("Missing worker name")
            if cmd == "update":
                self._update(params)
            elif cmd == "reset":
                self._reset(params)
            elif cmd == "recover":
                self._recover(params)
            if cmd in ("list", "show", "edit"):
                self._fill(report, r, params.get("w") if cmd != "list" else None, params.get("sw"))
                report.show_lists = cmd == "list"
        except StatusError as e:
            report.result = ("ERROR", str(e))
        if cmd in ("update", "reset", "recover") and report.result[0] == "OK" and self.log is not None:
            self.log.log("info", f"Status worker '{self.name}': {cmd} of {params.get('w')}"
                                 f"{'/' + params['sw'] if params.get('sw') else ''} by "
                                 f"{r.connection.remote_ip}", "status")
        body = self._render(mime, report, cmd, params, r)
        r.content_type = MIME_TYPES[mime]
        r.headers_out.set("Cache-Control", "no-cache")
        r.headers_out.set("Content-Length", str(len(body)))
        r.write(body)
        s.response_started = True
        s.body_bytes = len(body)
        return ServiceResult(Outcome.OK)

    def _user_allowed(self, user: str | None) -> bool:
        if not user:
            return False
        if self.user_case_insensitive:
            return user.lower() in {u.lower() for u in self.users}
        return user in self.users

    # -- the model -----------------------------------------------------------------------

    def _report(self, r: Any) -> Report:
        now = time.time()
        return Report(
            server=[("name", r.server.server_hostname or r.hostname or "", False),
                    ("port", str(r.server.port or r.connection.local_port), False)],
            time=[("datetime", time.strftime("%Y%m%d%H%M%S", time.localtime(now)), False),
                  ("tz", time.strftime("%z", time.localtime(now)), False),
                  ("unix", str(int(now)), False)],
            software=[("web_server", server_banner(r.config), True), ("jk_version", JK_VERSION, False)],
        )

    def _fill(self, report: Report, r: Any, only: str | None, member_name: str | None) -> None:
        registry = self.registry
        if only is not None and only not in registry.mappable and only not in registry.balancers:
            raise StatusError("Could not find given worker")
        now = time.time()
        maps = _maps_by_worker(r.config)
        for name, worker in registry.balancers.items():
            if only is not None and name != only:
                continue
            balancer = worker.balancer
            if balancer is None:
                continue
            members = [m for m in balancer.members if member_name is None or m.name == member_name]
            if member_name is not None and not members:
                raise StatusError("Could not find given member")
            report.balancers.append((self._lb_record(worker, balancer, len(maps.get(name, [])), now),
                                     [self._member_record(worker, m, now) for m in members],
                                     maps.get(name, [])))
        for name, worker in registry.mappable.items():
            if not isinstance(worker, AjpWorker) or (only is not None and name != only):
                continue
            report.ajps.append((self._ajp_record(worker, len(maps.get(name, []))), maps.get(name, [])))

    def _lb_record(self, worker: LbWorker, balancer: Balancer, map_count: int, now: float) -> Record:
        rec = balancer.record
        good = degraded = bad = 0
        for member in balancer.members:
            rating = self.rating(member)
            good += rating == "good"
            degraded += rating == "degraded"
            bad += rating == "bad"
        wait = max(0, int(rec.maintain_time - (now - rec.last_maintain_time))) if rec.last_maintain_time else rec.maintain_time
        return [
            ("name", worker.name, False),
            ("type", "lb", False),
            ("sticky_session", str(rec.sticky_session), False),
            ("sticky_session_force", str(rec.sticky_session_force), False),
            ("retries", str(rec.retries), False),
            ("recover_time", str(rec.recover_time), False),
            ("error_escalation_time", str(rec.error_escalation_time), False),
            ("max_reply_timeouts", str(rec.max_reply_timeouts), False),
            ("method", rec.method.text, False),
            ("lock", rec.lock.text, False),
            ("member_count", str(len(balancer.members)), False),
            ("good", str(good), False),
            ("degraded", str(degraded), False),
            ("bad", str(bad), False),
            ("busy", str(rec.busy), False),
            ("max_busy", str(rec.max_busy), False),
            ("map_count", str(map_count), False),
            ("time_to_maintenance_min", str(wait), False),
            ("time_to_maintenance_max", str(wait + rec.maintain_time), False),
            *_reset_fields(rec.last_reset, now),
        ]

    def _member_record(self, worker: LbWorker, member: MemberRecord, now: float) -> Record:
        ajp = worker.members[member.name]
        recover = 0
        if member.state == State.ERROR:
            recover = max(0, int(worker.balancer.record.recover_time - (now - member.last_error_time)))
        maintain = worker.balancer.record.maintain_time
        return [
            *_ajp_config_fields(ajp),
            ("activation", member.activation.text, False),
            ("lbfactor", str(member.lb_factor), False),
            ("route", member.route, True),
            ("redirect", member.redirect, True),
            ("domain", member.domain, True),
            ("distance", str(member.distance), False),
            ("state", member.state.text, False),
            ("lbmult", str(member.lb_mult), False),
            ("lbvalue", str(member.lb_value), False),
            ("elected", str(member.elected), False),
            ("sessions", str(member.sessions), False),
            ("errors", str(member.errors), False),
            ("client_errors", str(member.client_errors), False),
            ("reply_timeouts", str(member.reply_timeouts), False),
            ("transferred", str(member.transferred), False),
            ("read", str(member.read), False),
            ("busy", str(member.busy), False),
            ("max_busy", str(member.max_busy), False),
            ("connected", str(ajp.pool.connected), False),
            ("max_connected", str(ajp.pool.max_busy), False),
            ("time_to_recover_min", str(recover), False),
            ("time_to_recover_max", str(recover + maintain if recover else 0), False),
            *_reset_fields(member.last_reset, now),
        ]

    def _ajp_record(self, ajp: AjpWorker, map_count: int) -> Record:
        return [
            *_ajp_config_fields(ajp),
            ("used", str(ajp.used), False),
            ("errors", str(ajp.errors), False),
            ("client_errors", str(ajp.client_errors), False),
            ("reply_timeouts", str(ajp.reply_timeouts), False),
            ("transferred", str(ajp.bytes_transferred), False),
            ("read", str(ajp.bytes_read), False),
            ("busy", str(ajp.pool.busy), False),
            ("max_busy", str(ajp.pool.max_busy), False),
            ("connected", str(ajp.pool.connected), False),
            ("max_connected", str(ajp.pool.max_busy), False),
            ("map_count", str(map_count), False),
            *_reset_fields(ajp.last_reset, time.time()),
        ]

    def rating(self, member: MemberRecord) -> str:
        """good, degraded or bad, by the worker's ``good`` and ``bad`` rules."""
        letters = (_ACTIVATION_LETTERS[member.activation], _STATE_LETTERS[member.state])
        if any(_matches(rule, letters) for rule in self.good):
            return "good"
        if any(_matches(rule, letters) for rule in self.bad):
            return "bad"
        return "degraded"

    # -- actions -------------------------------------------------------------------------

    def _balancer(self, params: dict[str, str]) -> LbWorker:
        worker = self.registry.balancers.get(params["w"])
        if worker is None or worker.balancer is None:
            if params["w"] in self.registry.mappable:
                raise StatusError("Only lb workers and their members can be changed here")
            raise StatusError("Could not find given worker")
        return worker

    def _member(self, worker: LbWorker, name: str) -> MemberRecord:
        assert worker.balancer is not None
        try:
            return worker.balancer.member(name)
        except KeyError:
            raise StatusError("Could not find given member") from None

    def _update(self, params: dict[str, str]) -> None:
        worker = self._balancer(params)
        balancer = worker.balancer
        assert balancer is not None
        if any(key in params for key in AJP_ATTRIBUTES) or params.get("att") in AJP_ATTRIBUTES:
            raise StatusError("The ajp13 connection settings cannot be changed at run time here")
        if params.get("att"):
            key = params["att"]
            if key not in MEMBER_ATTRIBUTES:
                raise StatusError(f"Unknown member attribute '{key}'")
            for i, member in enumerate(balancer.members):
                if f"val{i}" in params:
                    _set_member(balancer, member, key, params[f"val{i}"])
            return
        if params.get("sw"):
            member = self._member(worker, params["sw"])
            for key in MEMBER_ATTRIBUTES:
                if key in params:
                    _set_member(balancer, member, key, params[key])
            return
        for key in LB_ATTRIBUTES:
            if key in params:
                _set_lb(balancer, key, params[key])

    def _reset(self, params: dict[str, str]) -> None:
        now = time.time()
        worker = self.registry.balancers.get(params["w"])
        if worker is None:
            ajp = self.registry.mappable.get(params["w"])
            if not isinstance(ajp, AjpWorker):
                raise StatusError("Could not find given worker")
            ajp.reset(now)
            return
        balancer = worker.balancer
        assert balancer is not None
        members = [self._member(worker, params["sw"])] if params.get("sw") else list(balancer.members)
        with balancer.lock:
            if not params.get("sw"):
                balancer.record.max_busy = balancer.record.busy
                balancer.record.last_reset = now
            for member in members:
                for counter in ("elected", "sessions", "errors", "client_errors", "reply_timeouts",
                                "transferred", "read"):
                    setattr(member, counter, 0)
                member.max_busy = member.busy
                member.elected_snapshot = 0
                member.last_reset = now

    def _recover(self, params: dict[str, str]) -> None:
        worker = self._balancer(params)
        if not params.get("sw"):
            raise StatusError("Missing member name")
        member = self._member(worker, params["sw"])
        balancer = worker.balancer
        assert balancer is not None
        with balancer.lock:
            if member.state != State.ERROR:
                raise StatusError("Marking worker for recovery failed")
            if balancer.record.method != Method.BUSYNESS:
                member.lb_value = max(m.lb_value for m in balancer.members)
            member.reply_timeouts = 0
            member.state = State.RECOVER

    # -- rendering -----------------------------------------------------------------------

    def _render(self, mime: str, report: Report, cmd: str, params: dict[str, str], r: Any) -> bytes:
        if mime == "prop":
            text = "".join(f"{line}\n" for line in self._prop(report, cmd))
        elif mime == "txt":
            text = "".join(f"{line}\n" for line in _txt(report, cmd))
        elif mime == "xml":
            text = self._xml(report, cmd)
        else:
            text = self._html(report, cmd, params, r)
        return text.encode("iso-8859-1", "xmlcharrefreplace")

    def _prop(self, report: Report, cmd: str) -> Iterator[str]:
        p = self.prefix
        if cmd in ("list", "show", "edit", "version"):
            yield from (f"{p}.server_{k}={v}" for k, v, _ in report.server)
            yield from (f"{p}.time_{k}={v}" for k, v, _ in report.time)
            yield from (f"{p}.{k}={v}" for k, v, _ in report.software)
        if cmd in ("list", "show", "edit"):
            if report.show_lists:
                yield f"{p}.lb_count={len(report.balancers)}"
            for lb_rec, members, maps in report.balancers:
                name = _name_of(lb_rec)
                yield f"{p}.list={name}"
                yield from (f"{p}.{name}.{k}={v}" for k, v, _ in _without(lb_rec, "name"))
                for member in members:
                    yield f"{p}.{name}.balance_workers={_name_of(member)}"
                    fields = _without(member, "name")
                    # mod_jk prints a member's reset time under the balancer's name.
                    yield from (f"{p}.{_name_of(member)}.{k}={v}" for k, v, _ in fields
                                if not k.startswith("last_reset"))
                    yield from (f"{p}.{name}.{k}={v}" for k, v, _ in fields if k.startswith("last_reset"))
                yield from _prop_maps(p, name, maps)
            if report.show_lists:
                yield f"{p}.ajp_count={len(report.ajps)}"
            for ajp_rec, maps in report.ajps:
                name = _name_of(ajp_rec)
                yield f"{p}.{name}.list={name}"
                yield from (f"{p}.{name}.{k}={v}" for k, v, _ in _without(ajp_rec, "name"))
                yield from _prop_maps(p, name, maps)
        yield f"{p}.result.type={report.result[0]}"
        yield f"{p}.result.message={report.result[1]}"

    def _xml(self, report: Report, cmd: str) -> str:
        ns = self.ns
        out = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n']
        if self.doctype:
            out.append(self.doctype + "\n")
        out.append(f"<{ns}status\n  {self.xmlns}>\n" if self.xmlns else f"<{ns}status>\n")

        def element(tag: str, record: Record, indent: str, close: bool = True) -> None:
            out.append(f"{indent}<{ns}{tag}\n")
            out.extend(f'{indent}  {k}="{html.escape(v)}"\n' for k, v, _ in record)
            out.append(f"{indent}/>\n" if close else f"{indent}>\n")

        if cmd in ("list", "show", "edit", "version"):
            element("server", report.server, "")
            element("time", report.time, "")
            element("software", report.software, "")
        if cmd in ("list", "show", "edit"):
            out.append(f'<{ns}balancers\n  count="{len(report.balancers)}"\n>\n')
            for lb_rec, members, maps in report.balancers:
                element("balancer", lb_rec, "  ", close=False)
                for member in members:
                    element("member", member, "      ")
                for map_rec in maps:
                    element("map", map_rec, "      ")
                out.append(f"  </{ns}balancer>\n")
            out.append(f"</{ns}balancers>\n")
            out.append(f'<{ns}ajp_workers\n  count="{len(report.ajps)}"\n>\n')
            for ajp_rec, maps in report.ajps:
                element("ajp", ajp_rec, "  ", close=False)
                for map_rec in maps:
                    element("map", map_rec, "      ")
                out.append(f"  </{ns}ajp>\n")
            out.append(f"</{ns}ajp_workers>\n")
        element("result", [("type", report.result[0], False), ("message", report.result[1], True)], "")
        out.append(f"</{ns}status>\n")
        return "".join(out)

    def _html(self, report: Report, cmd: str, params: dict[str, str], r: Any) -> str:
        base = r.uri
        esc = html.escape

        def link(label: str, **query: str) -> str:
            target = base + "?" + "&amp;".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
            return f'<a href="{target}">{label}</a>'

        refresh = params.get("re", "")
        head = [
            '<!DOCTYPE html>\n<html><head><meta charset="ISO-8859-1"/><title>JK Status Manager</title>',
            f'<link rel="stylesheet" type="text/css" href="{esc(self.css)}"/>' if self.css else "",
        ]
        back = params.get("from") or "list"
        if cmd in ("update", "reset", "recover") and report.result[0] == "OK":
            target = f"{base}?cmd={back}&mime=html" + (f"&w={quote(params['w'])}" if back != "list" else "")
            head.append(f'<meta http-equiv="Refresh" content="0;url={esc(target)}"/>')
        elif refresh.isdigit() and int(refresh) > 0:
            head.append(f'<meta http-equiv="Refresh" content="{refresh}"/>')
        out = ["".join(head), "</head><body>\n",
               f"<h1>JK Status Manager for {esc(_value(report.server, 'name'))}:{esc(_value(report.server, 'port'))}</h1>\n",
               f"<p>Server Version: {esc(_value(report.software, 'web_server'))}<br/>"
               f"JK Version: {esc(JK_VERSION)}<br/>Server Time: {esc(_value(report.time, 'datetime'))} "
               f"{esc(_value(report.time, 'tz'))}</p>\n",
               f"<p>[{link('List', cmd='list', mime='html')}] [{link('XML', cmd='list', mime='xml')}] "
               f"[{link('Properties', cmd='list', mime='prop')}] [{link('Text', cmd='list', mime='txt')}] "
               f"[{link('Auto refresh', cmd=cmd if cmd in ('list', 'show') else 'list', mime='html', re='10')}]</p><hr/>\n"]
        editable = not self.read_only
        for lb_rec, members, maps in report.balancers:
            name = _name_of(lb_rec)
            actions = link("S", cmd="show", w=name, mime="html")
            if editable:
                actions += "|" + link("E", cmd="edit", w=name, mime="html", **{"from": cmd}) + "|" + \
                    link("R", cmd="reset", w=name, mime="html", **{"from": cmd})
            out.append(f"<h2>[{actions}] Load balancer {esc(name)}</h2>\n")
            out.append(_table(_without(lb_rec, "name")))
            columns = ["name", "activation", "state", "distance", "lbfactor", "lbmult", "lbvalue", "elected",
                       "sessions", "errors", "client_errors", "reply_timeouts", "transferred", "read",
                       "busy", "max_busy", "connected", "max_connected", "route", "redirect", "domain",
                       "time_to_recover_min"]
            rows = []
            for member in members:
                mname = _name_of(member)
                actions = link("S", cmd="show", w=name, sw=mname, mime="html")
                if editable:
                    actions += "|" + link("E", cmd="edit", w=name, sw=mname, mime="html", **{"from": cmd})
                    actions += "|" + link("R", cmd="reset", w=name, sw=mname, mime="html", **{"from": cmd})
                    if _value(member, "state") == State.ERROR.text:
                        actions += "|" + link("T", cmd="recover", w=name, sw=mname, mime="html", **{"from": cmd})
                values = {k: v for k, v, _ in member}
                rows.append(f"<tr><td>[{actions}]</td>" + "".join(f"<td>{esc(values[c])}</td>" for c in columns) + "</tr>\n")
            out.append("<h3>Balancer members</h3>\n<table border=\"1\"><tr><th></th>"
                       + "".join(f"<th>{c}</th>" for c in columns) + "</tr>\n" + "".join(rows) + "</table>\n")
            if cmd == "edit" and editable:
                out.append(self._edit_form(base, name, params.get("sw"), lb_rec, members))
            out.append(_map_table(name, maps))
        for ajp_rec, maps in report.ajps:
            name = _name_of(ajp_rec)
            out.append(f"<h2>[{link('S', cmd='show', w=name, mime='html')}] AJP worker {esc(name)}</h2>\n")
            out.append(_table(_without(ajp_rec, "name")))
            out.append(_map_table(name, maps))
        out.append(f"<hr/><p>Result: {esc(report.result[0])} - {esc(report.result[1])}</p>\n</body></html>\n")
        return "".join(out)

    def _edit_form(self, base: str, lb_name: str, member_name: str | None, lb_rec: Record,
                   members: list[Record]) -> str:
        esc = html.escape
        fields: list[tuple[str, str, str]] = []
        if member_name:
            values = {k: v for k, v, _ in members[0]} if members else {}
            fields = [(key, attr, values.get(attr, "")) for key, attr in MEMBER_ATTRIBUTES.items()]
            hidden = f'<input type="hidden" name="sw" value="{esc(member_name)}"/>'
        else:
            values = {k: v for k, v, _ in lb_rec}
            fields = [(key, attr, values.get(attr, "")) for key, attr in LB_ATTRIBUTES.items() if attr in values]
            hidden = ""
        rows = "".join(f'<tr><td>{esc(attr)}</td><td><input name="{key}" value="{esc(value)}"/></td></tr>\n'
                       for key, attr, value in fields)
        return (f'<form method="get" action="{esc(base)}"><input type="hidden" name="cmd" value="update"/>'
                f'<input type="hidden" name="mime" value="html"/><input type="hidden" name="from" value="list"/>'
                f'<input type="hidden" name="w" value="{esc(lb_name)}"/>{hidden}<table>{rows}</table>'
                '<input type="submit" value="Update"/></form>\n')


# -- helpers of the model and renderers ----------------------------------------------------


def _rule(text: str) -> tuple[str, str]:
    """A good/bad rule such as ``a.o`` or ``s``: (activation letters, state letters)."""
    letters = text.lower().replace(".", "")
    return ("".join(c for c in letters if c in "ads"), "".join(c for c in letters if c in "iorfbep"))


def _matches(rule: tuple[str, str], letters: tuple[str, str]) -> bool:
    activation, state = rule
    return (not activation or letters[0] in activation) and (not state or letters[1] in state)


def _reset_fields(last_reset: float, now: float) -> Record:
    at = int(last_reset) if last_reset else int(now)
    return [("last_reset_at", str(at), False), ("last_reset_ago", str(max(0, int(now) - at)), False)]


def _ajp_config_fields(ajp: AjpWorker) -> Record:
    def ms(seconds: float | None) -> str:
        return str(int(round(seconds * 1000))) if seconds else "0"

    address = f"{ajp._address[0]}:{ajp._address[1]}" if ajp._address else f"{ajp.host}:{ajp.port}"
    return [
        ("name", ajp.name, False),
        ("type", "ajp13", False),
        ("host", ajp.host, False),
        ("port", str(ajp.port), False),
        ("address", address, False),
        ("source", "undefined", False),
        ("connection_pool_timeout", str(int(ajp.pool_timeout)), False),
        ("ping_timeout", ms(ajp.ping_timeout), False),
        ("connect_timeout", ms(ajp.connect_ping), False),
        ("prepost_timeout", ms(ajp.prepost_ping), False),
        ("reply_timeout", str(ajp.reply_timeout), False),
        ("retries", str(ajp.retries), False),
        ("connection_ping_interval", str(int(ajp.ping_interval)), False),
        ("recovery_options", str(ajp.recovery_options), False),
        ("busy_limit", str(ajp.busy_limit), False),
        ("max_packet_size", str(ajp.max_packet_size), False),
    ]


def _maps_by_worker(config: Any) -> dict[str, list[Record]]:
    maps: dict[str, list[Record]] = {}
    for server in config.servers:
        cfg = server.module_config.get("jk_module")
        if cfg is None or cfg.uri_map is None:
            continue
        server_name = server.server_hostname or "_default_"
        if server.is_virtual and server.addrs:
            host, port = server.addrs[0]
            server_name += f" [{host}:{port or '*'}]"
        for rule in cfg.uri_map.rules:
            records = maps.setdefault(rule.worker, [])
            ext = rule.extensions
            kind = "Wildchar" if rule.wildchar else "Exact"
            if rule.exclusion:
                kind = "Unmount " + kind
            if rule.disabled:
                kind = "Disabled " + kind
            records.append([
                ("id", str(len(records) + 1), False),
                ("server", server_name, True),
                ("uri", rule.pattern, True),
                ("type", kind, True),
                ("source", rule.source.text, True),
                ("reply_timeout", str(ext.reply_timeout if ext.reply_timeout is not None else -1), True),
                ("sticky_ignore", str(int(ext.sticky_ignore)), True),
                ("stateless", str(int(ext.stateless)), True),
                ("fail_on_status", ",".join(map(str, ext.fail_on_status)), True),
                ("active", ",".join(ext.active), True),
                ("disabled", ",".join(ext.disabled), True),
                ("stopped", ",".join(ext.stopped), True),
                ("use_server_errors", str(ext.use_server_errors), True),
            ])
    return maps


def _name_of(record: Record) -> str:
    return _value(record, "name")


def _value(record: Record, key: str) -> str:
    return next((v for k, v, _ in record if k == key), "")


def _without(record: Record, key: str) -> Record:
    return [item for item in record if item[0] != key]


def _prop_maps(prefix: str, name: str, maps: list[Record]) -> Iterator[str]:
    for map_rec in maps:
        number = _value(map_rec, "id")
        yield from (f"{prefix}.{name}.map.{number}.{k}={v}" for k, v, _ in _without(map_rec, "id"))


def _txt_fields(record: Record) -> str:
    return " ".join(f'{k}="{v}"' if quoted else f"{k}={v}" for k, v, quoted in record)


def _txt(report: Report, cmd: str) -> Iterator[str]:
    if cmd in ("list", "show", "edit", "version"):
        yield f"Server: {_txt_fields(report.server)}"
        yield f"Time: {_txt_fields(report.time)}"
        yield f"Software: {_txt_fields(report.software)}"
    if cmd in ("list", "show", "edit"):
        if report.show_lists:
            yield f"Balancer Workers: count={len(report.balancers)}"
        for lb_rec, members, maps in report.balancers:
            yield f"Balancer Worker: {_txt_fields(lb_rec)}"
            yield from (f"Member: {_txt_fields(member)}" for member in members)
            yield from (f"Map: {_txt_fields(map_rec)}" for map_rec in maps)
        if report.show_lists:
            yield f"AJP Workers: count={len(report.ajps)}"
        for ajp_rec, maps in report.ajps:
            yield f"AJP Worker: {_txt_fields(ajp_rec)}"
            yield from (f"Map: {_txt_fields(map_rec)}" for map_rec in maps)
    yield f'Result: type={report.result[0]} message="{report.result[1]}"'


def _table(record: Record) -> str:
    esc = html.escape
    return ('<table border="1"><tr>' + "".join(f"<th>{esc(k)}</th>" for k, _, _ in record) + "</tr><tr>"
            + "".join(f"<td>{esc(v)}</td>" for _, v, _ in record) + "</tr></table>\n")


def _map_table(name: str, maps: list[Record]) -> str:
    if not maps:
        return ""
    esc = html.escape
    head = "".join(f"<th>{esc(k)}</th>" for k, _, _ in maps[0])
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for _, v, _ in m) + "</tr>\n" for m in maps)
    return f"<h3>URI mappings for {esc(name)}</h3>\n<table border=\"1\"><tr>{head}</tr>\n{rows}</table>\n"


def _set_member(balancer: Balancer, member: MemberRecord, key: str, value: str) -> None:
    attr = MEMBER_ATTRIBUTES[key]
    try:
        if attr == "activation":
            parsed: Any = Activation.parse(value)
        elif attr in ("lbfactor", "distance"):
            parsed = int(value)
            if parsed < (1 if attr == "lbfactor" else 0):
                raise ValueError(value)
        else:
            parsed = value.strip()
    except ValueError:
        raise StatusError(f"Invalid value '{value}' for {attr}") from None
    with balancer.lock:
        if attr == "activation":
            member.activation = parsed
        elif attr == "lbfactor":
            member.lb_factor = parsed
        elif attr == "distance":
            member.distance = parsed
        else:
            try:
                setattr(member, attr, parsed)
            except ValueError as e:
                raise StatusError(str(e)) from None
        member.sequence += 1
    if attr == "lbfactor":
        lb.update_mult(balancer)


def _set_lb(balancer: Balancer, key: str, value: str) -> None:
    attr = LB_ATTRIBUTES[key]
    rec = balancer.record
    try:
        if attr in ("sticky_session", "sticky_session_force"):
            parsed: Any = value.strip().lower() in ("1", "true", "on", "yes") or value[:1].lower() in ("t", "y")
        elif attr == "method":
            parsed = Method.parse(value)
        elif attr == "lock":
            parsed = Lock.parse(value)
        else:
            parsed = int(value)
            if parsed < 0:
                raise ValueError(value)
    except ValueError:
        raise StatusError(f"Invalid value '{value}' for {attr}") from None
    with balancer.lock:
        old_method = rec.method
        setattr(rec, attr, parsed)
        rec.sequence += 1
    if attr == "method" and parsed != old_method:
        lb.reset_lb_values(balancer)
