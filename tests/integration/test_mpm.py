"""The pre-fork MPM with real processes: children, signals, restarts, spare maintenance.

Every server writes its scoreboard to a ScoreBoardFile, which the tests read from outside
(Scoreboard.attach) to see pids, generations and worker states as mod_status would.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from pyhttpd.scoreboard import Scoreboard
from tests.integration.session_nodes import Browser, node_conf
from tests.server import PYHTTPD, PyHttpd

BODY = b"hello from pyhttpd\n"
BASE = "ScoreBoardFile logs/scoreboard\nKeepAliveTimeout 10\n"


def serve(factory, conf: str = "", **kwargs) -> PyHttpd:  # noqa: ANN001
    files = {"htdocs/hello.txt": BODY, **kwargs.pop("files", {})}
    return factory(BASE + conf, files=files, **kwargs)


def board(server: PyHttpd) -> Scoreboard:
    return Scoreboard.attach(str(server.root / "logs" / "scoreboard"))


def scoreboard_pids(server: PyHttpd) -> set[int]:
    with board(server) as b:
        return {p["pid"] for p in b.snapshot()["processes"]}


def generation(server: PyHttpd) -> int:
    with board(server) as b:
        return b.generation


def serving(server: PyHttpd) -> set[int]:
    """Children that have taken their worker slots, so accept connections."""
    with board(server) as b:
        return {w["pid"] for w in b.snapshot()["workers"] if w["status"] == "_"} & children(server)


def total_accesses(server: PyHttpd) -> int:
    with board(server) as b:
        return b.snapshot()["total_accesses"]


def quiescing(server: PyHttpd) -> set[int]:
    """Children that are finishing their connections before they exit."""
    with board(server) as b:
        return {p["pid"] for p in b.snapshot()["processes"] if p["quiescing"]}


def children(server: PyHttpd) -> set[int]:
    return {p.pid for p in psutil.Process(server.pid).children()}


def get(server: PyHttpd, path: str = "/hello.txt") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Load:
    """Keep-alive clients that send requests until stopped, counting every failure."""

    port: int
    clients: int = 6
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            t = threading.Thread(target=self.client, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        lock = threading.Lock()
        while not self.stop.is_set():
            try:
                conn.request("GET", "/hello.txt")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200 or body != BODY:
                    raise AssertionError(f"{response.status} {body[:80]!r}")
                with lock:
                    self.ok += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except ConnectionRefusedError:
                self.refused += 1
                conn.close()
            except Exception as e:  # every other error is a failed request
                self.failures.append(f"{type(e).__name__}: {e}")
                conn.close()
            time.sleep(0.002)
        conn.close()


def test_master_starts_start_servers_children_and_writes_its_pid_file(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=3)
    assert server.wait_for(lambda: len(children(server)) == 3, 10)
    assert server.pid_file.read_text().strip() == str(server.pid)
    assert get(server) == (200, BODY)
    assert scoreboard_pids(server) == children(server)
    assert server.stop() == 0
    assert not server.pid_file.exists()


def test_master_never_loads_gevent_and_children_do(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=1)
    assert server.wait_for(lambda: len(serving(server)) == 1, 10)
    (child,) = children(server)
    assert "gevent" not in Path(f"/proc/{server.pid}/maps").read_text()
    assert "gevent" in Path(f"/proc/{child}/maps").read_text()


def test_killed_child_is_replaced_within_two_seconds_while_the_others_serve(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=2)
    assert server.wait_for(lambda: len(serving(server)) == 2, 10)
    victim, survivor = sorted(children(server))
    os.kill(victim, signal.SIGKILL)
    began = time.monotonic()
    assert get(server) == (200, BODY)
    assert server.wait_for(lambda: len(children(server) - {victim}) == 2, 2.0)
    assert time.monotonic() - began < 2.0
    assert survivor in children(server)
    assert victim not in scoreboard_pids(server)
    assert "exit signal Killed (9)" in server.log_text()


def test_ten_graceful_restarts_under_keepalive_load_fail_no_request(pyhttpd_factory):
    server = serve(pyhttpd_factory, "ServerLimit 32\n", start_servers=2)
    assert server.wait_for(lambda: len(children(server)) == 2, 10)
    first = generation(server)
    with Load(server.port) as load:
        time.sleep(0.5)
        for _ in range(10):
            server.signal(signal.SIGUSR1)
            time.sleep(0.6)
        time.sleep(0.5)
    assert load.failures == []
    assert load.refused == 0
    assert load.ok > 100
    assert generation(server) == first + 10
    # The old generations finish and leave; StartServers children of the last one serve.
    assert server.wait_for(lambda: len(children(server)) == 2, 15)
    with board(server) as b:
        assert {p["generation"] for p in b.snapshot()["processes"]} == {first + 10}
    assert server.log_text().count("SIGUSR1 received.  Doing graceful restart") == 10


def test_graceful_restart_keeps_keepalive_connection_until_its_next_request(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=1)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/hello.txt")
    assert conn.getresponse().read() == BODY
    old = children(server)
    server.signal(signal.SIGUSR1)
    assert server.wait_for(lambda: len(serving(server) - old) == 1, 5)
    assert server.wait_for(lambda: quiescing(server) == old, 5)
    # The old child waits for this connection's next request and answers it, then closes.
    conn.request("GET", "/hello.txt")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, BODY)
    assert response.getheader("Connection", "").lower() == "close"
    conn.close()
    assert server.wait_for(lambda: not (children(server) & old), 5)


def test_graceful_restart_keeps_the_old_generation_serving_while_the_new_one_cannot_start(
    pyhttpd_factory,
):
    server = serve(pyhttpd_factory, start_servers=2, files={"crashing.py": CRASHING_MODULE})
    assert server.wait_for(lambda: len(serving(server)) == 2, 10)
    old = serving(server)
    server.write_conf(server.conf_path.read_text() + "LoadModule crashing_module crashing.py\n")
    server.signal(signal.SIGUSR1)
    assert server.wait_for(lambda: "died before it served" in server.log_text(), 10)
    time.sleep(1)
    assert serving(server) == old
    assert get(server) == (200, BODY)


def test_hup_restarts_every_child_in_a_new_generation_and_clears_counters(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=2)
    assert server.wait_for(lambda: len(children(server)) == 2, 10)
    for _ in range(5):
        assert get(server) == (200, BODY)
    old, first = children(server), generation(server)
    assert server.wait_for(lambda: total_accesses(server) >= 5, 5)
    server.signal(signal.SIGHUP)
    assert server.wait_for(lambda: generation(server) == first + 1, 10)
    assert server.wait_for(lambda: len(children(server)) == 2, 10)
    assert not children(server) & old
    assert total_accesses(server) == 0
    assert get(server) == (200, BODY)
    assert "SIGHUP received.  Attempting to restart" in server.log_text()


def test_winch_answers_the_request_in_progress_then_stops_and_refuses_new_ones(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=2)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/hello.txt")
    assert conn.getresponse().read() == BODY
    def keepalive_holders() -> set[int]:
        with board(server) as b:
            return {w["pid"] for w in b.snapshot()["workers"] if w["status"] == "K"}

    assert server.wait_for(lambda: len(keepalive_holders()) == 1, 5)
    (holder,) = keepalive_holders()
    server.signal(signal.SIGWINCH)
    assert server.wait_for(lambda: not server.pid_file.exists(), 5)
    # The idle child exits at once; the one holding the connection waits for its request.
    assert server.wait_for(lambda: holder in quiescing(server), 5)
    conn.request("GET", "/hello.txt")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, BODY)
    assert response.getheader("Connection", "").lower() == "close"
    conn.close()
    assert server.proc.wait(10) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)
    assert "caught SIGWINCH, shutting down gracefully" in server.log_text()


def test_graceful_stop_is_bounded_by_graceful_shutdown_timeout(pyhttpd_factory):
    server = serve(pyhttpd_factory, "KeepAliveTimeout 60\nGracefulShutdownTimeout 1\n", start_servers=1)
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    idle.request("GET", "/hello.txt")
    assert idle.getresponse().read() == BODY
    began = time.monotonic()
    server.signal(signal.SIGWINCH)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - began < 4
    assert "GracefulShutdownTimeout expired" in server.log_text()
    idle.close()


def test_graceful_restart_with_a_broken_config_keeps_serving_and_names_file_and_line(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=2)
    assert server.wait_for(lambda: len(children(server)) == 2, 10)
    before, first = children(server), generation(server)
    good = server.conf_path.read_text()
    server.write_conf(good + "ThreadsPerChild lots\n")
    line = len(good.splitlines()) + 1
    server.signal(signal.SIGUSR1)
    assert server.wait_for(lambda: "stays in use" in server.log_text(), 5)
    assert f"{server.conf_path}:{line}: ThreadsPerChild" in server.log_text()
    assert get(server) == (200, BODY)
    assert children(server) == before
    assert generation(server) == first
    server.write_conf(good)
    server.signal(signal.SIGUSR1)
    assert server.wait_for(lambda: generation(server) == first + 1, 5)
    assert get(server) == (200, BODY)


def test_spare_maintenance_forks_children_under_load_and_retires_them_when_idle(pyhttpd_factory):
    # 4 workers a child; fewer than 2 idle forks children, more than 7 idle retires one.
    server = serve(
        pyhttpd_factory,
        "MinSpareThreads 2\nMaxSpareThreads 7\nKeepAliveTimeout 30\n",
        start_servers=1,
        threads_per_child=4,
    )
    assert server.wait_for(lambda: len(children(server)) == 1, 10)
    held = []
    for _ in range(12):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        conn.request("GET", "/hello.txt")  # each kept-alive connection holds a worker
        assert conn.getresponse().read() == BODY
        held.append(conn)
    # 12 busy workers fill three children: none idle, so a fourth is forked.
    assert server.wait_for(lambda: len(children(server)) >= 4, 15)
    for conn in held:
        conn.close()
    assert server.wait_for(lambda: len(children(server)) == 1, 12)
    assert get(server) == (200, BODY)


def test_max_connections_per_child_recycles_children(pyhttpd_factory):
    server = serve(
        pyhttpd_factory,
        "MaxConnectionsPerChild 5\nMinSpareThreads 8\n",
        start_servers=2,
        threads_per_child=4,
    )
    assert server.wait_for(lambda: len(children(server)) == 2, 10)
    seen = set(children(server))
    for _ in range(30):
        assert get(server) == (200, BODY)
        seen |= children(server)
    # Maintenance keeps MinSpareThreads idle workers: at least two children.
    assert server.wait_for(lambda: len(serving(server)) >= 2, 5)
    seen |= children(server)
    # 30 connections at 5 a child: at least six children served them.
    assert len(seen) >= 6


CRASHING_MODULE = """
from pyhttpd.module import Module

class Crashing(Module):
    name = "crashing"

    def register_hooks(self, hooks):
        hooks.register("child_init", self.child_init, module=self.name)

    def child_init(self, config):
        raise RuntimeError("cannot initialise")

crashing_module = Crashing()
"""


def test_children_that_die_at_start_up_are_backed_off_and_logged(pyhttpd_factory):
    server = serve(
        pyhttpd_factory,
        "LoadModule crashing_module crashing.py\n",
        start_servers=2,
        files={"crashing.py": CRASHING_MODULE},
    )
    time.sleep(5)
    log = server.log_text()
    failures = log.count("died before it served")
    # Without back-off a child would be forked (and die) many times a second.
    assert 2 <= failures <= 6
    assert "cannot initialise" in log
    assert server.proc.poll() is None


HELPER_MODULE = """
import os, time
from pyhttpd.module import Helper, Module

class Helping(Module):
    name = "helping"

    def helpers(self, config):
        return [Helper("pidwriter", lambda: self.run(config))]

    def run(self, config):
        with open(config.resolve("logs/helper.pids"), "a") as f:
            f.write(f"{os.getpid()}\\n")
        while True:
            time.sleep(1)

helping_module = Helping()
"""


def test_helper_process_is_restarted_when_it_dies_and_kept_over_graceful_restart(pyhttpd_factory):
    server = serve(
        pyhttpd_factory,
        "LoadModule helping_module helping.py\n",
        start_servers=1,
        files={"helping.py": HELPER_MODULE},
    )
    pids_file = server.root / "logs" / "helper.pids"

    def helper_pids() -> list[int]:
        return [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []

    assert server.wait_for(lambda: len(helper_pids()) == 1, 5)
    first = helper_pids()[0]
    assert first in children(server)
    os.kill(first, signal.SIGKILL)
    assert server.wait_for(lambda: len(helper_pids()) == 2, 5)
    second = helper_pids()[1]
    server.signal(signal.SIGUSR1)
    time.sleep(1.5)
    assert helper_pids() == [first, second]
    assert second in children(server)
    server.stop()
    assert not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE


def test_single_process_mode_serves_without_children(tmp_path: Path):
    server = PyHttpd(BASE, files={"htdocs/hello.txt": BODY}, args=("-X",), root=str(tmp_path))
    server.start()
    try:
        assert get(server) == (200, BODY)
        assert children(server) == set()
        assert server.pid_file.read_text().strip() == str(server.pid)
    finally:
        server.close()
    assert not server.pid_file.exists()


def test_single_process_mode_runs_the_modules_helpers_and_stops_them(tmp_path: Path):
    server = PyHttpd(
        BASE + "LoadModule helping_module helping.py\n",
        files={"htdocs/hello.txt": BODY, "helping.py": HELPER_MODULE},
        args=("-X",),
        root=str(tmp_path),
    )
    pids_file = server.root / "logs" / "helper.pids"
    server.start()
    try:
        assert server.wait_for(pids_file.exists, 5)
        helper = int(pids_file.read_text().split()[0])
        assert children(server) == {helper}
        assert get(server) == (200, BODY)
    finally:
        server.close()
    assert not psutil.pid_exists(helper) or psutil.Process(helper).status() == psutil.STATUS_ZOMBIE


def test_single_process_mode_keeps_sessions_in_its_session_agent(tmp_path: Path):
    server = PyHttpd(node_conf("node1", None, []), args=("-X",), root=str(tmp_path))
    server.start()
    try:
        browser = Browser(server.port)
        counts = [browser.get("/app/count")["count"] for _ in range(3)]
        assert counts == ["1", "2", "3"]
        assert browser.session_id.endswith(".node1")
    finally:
        server.close()


def test_restart_reopens_the_error_log_so_it_can_be_rotated(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=1)
    log = server.root / "logs" / "error_log"
    log.rename(server.root / "logs" / "error_log.1")
    server.signal(signal.SIGUSR1)
    assert server.wait_for(lambda: log.exists() and "resuming normal operations" in log.read_text(), 5)
    assert "SIGUSR1 received" in (server.root / "logs" / "error_log.1").read_text()


def test_k_graceful_and_k_graceful_stop_signal_the_master_in_the_pid_file(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=1)
    first = generation(server)

    def k(verb: str) -> int:
        command = [sys.executable, str(PYHTTPD), "-f", str(server.conf_path), "-k", verb]
        return subprocess.run(command, cwd=server.root, timeout=30).returncode

    assert k("graceful") == 0
    assert server.wait_for(lambda: generation(server) == first + 1, 5)
    assert k("graceful-stop") == 0
    assert server.proc.wait(10) == 0
    assert not server.pid_file.exists()


def test_children_of_a_master_killed_without_warning_stop_by_themselves(pyhttpd_factory):
    server = serve(pyhttpd_factory, start_servers=2)
    assert server.wait_for(lambda: len(serving(server)) == 2, 10)
    orphans = [psutil.Process(pid) for pid in children(server)]
    server.signal(signal.SIGKILL)
    server.proc.wait(5)
    gone, alive = psutil.wait_procs(orphans, timeout=5)
    assert alive == []
    assert "master process" in server.log_text() and "is gone, stopping" in server.log_text()
