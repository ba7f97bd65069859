"""The session cluster's status, as HTML, as mod_status's ``?auto`` lines, or as JSON.

The input is the dict :meth:`.agent.SessionAgent.status` (or, in Redis mode,
:meth:`.redis_store.RedisSessionStore.status`) returns; nothing here does I/O.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _ago(when: float | None, now: float) -> str:
    return "never" if when is None else f"{max(0.0, now - when):.1f} s ago"


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} kB"


def render_json(status: dict[str, Any]) -> str:
    """The status as one JSON document."""
    return json.dumps(status, indent=1, sort_keys=True) + "\n"


def render_auto(status: dict[str, Any], now: float | None = None) -> str:
    """``Key: value`` lines for scripts, in the style of mod_status's ``?auto``."""
    now = time.time() if now is None else now
    if "store" in status:
        lines = [f"SessionStore: {status['store']}", f"SessionStoreReachable: {int(status['reachable'])}"]
        if status["reachable"]:
            lines += [f"SessionStorePingMs: {status['ping_ms']}", f"SessionStoreKeys: {status['keys']}"]
        else:
            lines.append(f"SessionStoreError: {status['error']}")
        return "\n".join(lines) + "\n"
    sessions = status["sessions"]
    lines = [
        f"SessionNode: {status['member']}",
        f"SessionReady: {int(status['ready'])}",
        f"SessionReplication: {status['replication']}",
        f"SessionReplicationMode: {status['mode']}",
        f"Sessions: {sessions['sessions']}",
        f"SessionsPrimary: {sessions['primary']}",
        f"SessionsBackup: {sessions['backup']}",
        f"SessionBytes: {sessions['bytes']}",
        f"SessionTombstones: {sessions['tombstones']}",
        f"SessionTransfer: {status['transfer'].get('state')}",
        f"SessionLagP50Ms: {status['lag_p50_ms'] if status['lag_p50_ms'] is not None else ''}",
        f"SessionLagP99Ms: {status['lag_p99_ms'] if status['lag_p99_ms'] is not None else ''}",
    ]
    for member in status["members"]:
        name = member["id"] or member["address"]
        seen = "" if member["last_seen"] is None else f"{max(0.0, now - member['last_seen']):.1f}"
        lines.append(
            f"ClusterMember {name}: state={member['state']} address={member['address']} "
            f"last_seen_s={seen} queue={member['queue']} unacked={member['unanswered']} "
            f"lag_p50_ms={member['lag_p50_ms'] or ''} lag_p99_ms={member['lag_p99_ms'] or ''} "
            f"auth_failures={member['auth_failures']}"
        )
    for name, value in sorted(status["counters"].items()):
        lines.append(f"SessionCounter {name}: {value}")
    return "\n".join(lines) + "\n"


def render_html(status: dict[str, Any], now: float | None = None) -> str:
    """An HTML section (a heading, facts and the member table) for a status page."""
    now = time.time() if now is None else now
    esc = html.escape
    if "store" in status:
        state = (
            f"reachable, {status['ping_ms']:.2f} ms, {status['keys']} keys"
            if status["reachable"]
            else f"<b>unreachable</b>: {esc(status['error'])}"
        )
        return f"<h2>Sessions</h2>\n<dl><dt>Store {esc(status['store'])}: {state}</dt></dl>\n"
    sessions = status["sessions"]
    transfer = status["transfer"]
    transfer_text = esc(str(transfer.get("state")))
    if transfer.get("donor"):
        transfer_text += f" from {esc(transfer['donor'])}"
    if "sessions" in transfer:
        transfer_text += f", {transfer['sessions']} sessions"
    if transfer.get("seconds") is not None:
        transfer_text += f" in {transfer['seconds']:.2f} s"
    where = f", cluster address {esc(status['listen'])}" if status["listen"] else ""
    parts = [
        "<h2>Session cluster</h2>",
        "<dl>",
        f"<dt>Node {esc(status['member'])} ({'ready' if status['ready'] else 'NOT READY'}), "
        f"replication {esc(status['replication'])} {esc(status['mode'])}{where}</dt>",
        f"<dt>Sessions: {sessions['sessions']} ({sessions['primary']} primary, "
        f"{sessions['backup']} backup), {_kb(sessions['bytes'])}; "
        f"{sessions['tombstones']} tombstones</dt>",
        f"<dt>State transfer: {transfer_text}</dt>",
        f"<dt>Replication lag: p50 {_ms(status['lag_p50_ms'])}, "
        f"p99 {_ms(status['lag_p99_ms'])}</dt>",
        "</dl>",
    ]
    if status["members"]:
        parts.append(
            '<table border="0"><tr><th>Member</th><th>Address</th><th>State</th>'
            "<th>Last seen</th><th>Queue</th><th>Unacked</th><th>Lag p50</th><th>Lag p99</th>"
            "<th>Auth failures</th><th>Last error</th></tr>"
        )
        for m in status["members"]:
            parts.append(
                f"<tr><td>{esc(m['id'] or '?')}</td><td>{esc(m['address'])}</td>"
                f"<td>{esc(m['state'])}</td><td>{_ago(m['last_seen'], now)}</td>"
                f"<td>{m['queue']}</td><td>{m['unanswered']}</td>"
                f"<td>{_ms(m['lag_p50_ms'])}</td><td>{_ms(m['lag_p99_ms'])}</td>"
                f"<td>{m['auth_failures']}</td><td>{esc(m['last_error'])}</td></tr>"
            )
        parts.append("</table>")
    if status["counters"]:
        counters = ", ".join(f"{esc(k)} {v}" for k, v in sorted(status["counters"].items()))
        parts.append(f"<p>Counters: {counters}</p>")
    return "\n".join(parts) + "\n"


def render_page(status: dict[str, Any]) -> str:
    """A complete HTML page around :func:`render_html`."""
    return (
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html><head>\n"
        "<title>Session cluster status</title>\n</head><body>\n"
        + render_html(status)
        + "</body></html>\n"
    )
