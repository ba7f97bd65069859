"""The demo cluster as a new user runs it: bin/demo with the shipped configs."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.peers.ports import free_port

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ["conf/httpd.conf", "conf/cluster/node1.conf", "conf/cluster/node2.conf"]
SECRETS = {"PYHTTPD_AJP_SECRET": "demo-test-ajp-secret", "PYHTTPD_CLUSTER_SECRET": "d" * 64}


@pytest.mark.parametrize("conf", CONFIGS)
def test_demo_configs_pass_the_syntax_check(conf):
    result = subprocess.run(
        [sys.executable, str(REPO / "bin" / "pyhttpd"), "-t", "-f", conf],
        cwd=REPO, env={**os.environ, **SECRETS}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Syntax OK" in result.stderr


def _port_base() -> int:
    """A base port with the six after it free too."""
    for _ in range(50):
        base = free_port()
        if base < 60000 and all(_free(base + i) for i in range(7)):
            return base
    raise RuntimeError("no run of 7 free ports")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Browser:
    """One user: a cookie jar and the parsed /counter page."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def counter(self) -> dict[str, str]:
        with self.opener.open(f"{self.base}/counter", timeout=15) as response:
            assert response.status == 200
            return dict(line.split("=", 1) for line in response.read().decode().splitlines())


@pytest.fixture
def demo():
    base = _port_base()
    (REPO / "logs").mkdir(exist_ok=True)  # a fresh checkout has none yet
    out = open(REPO / "logs" / "demo-test.out", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bin" / "demo"), "--port-base", str(base)],
        cwd=REPO, env={**os.environ, **SECRETS}, stdout=out, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    pids: dict[str, int] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        out.seek(0)
        found = re.search(r"node1=(\d+), node2=(\d+)", out.read())
        if found:
            pids = {"node1": int(found.group(1)), "node2": int(found.group(2))}
            break
        time.sleep(0.2)
    try:
        assert pids, f"the demo did not come up:\n{(REPO / 'logs' / 'demo-test.out').read_text()}"
        yield f"http://127.0.0.1:{base}", pids, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in pids.values():
            try:
                os.killpg(pid, signal.SIGKILL)  # a node the test left behind, by its group
            except ProcessLookupError:
                pass
        out.close()


def test_demo_alternates_new_sessions_keeps_them_sticky_and_survives_a_dead_node(demo):
    base, pids, proc = demo
    first_nodes = [Browser(base).counter()["node"] for _ in range(4)]
    assert sorted(first_nodes) == ["node1", "node1", "node2", "node2"]
    assert first_nodes[0] != first_nodes[1]

    user = Browser(base)
    pages = [user.counter() for _ in range(5)]
    home = pages[0]["node"]
    assert [p["counter"] for p in pages] == ["1", "2", "3", "4", "5"]
    assert {p["node"] for p in pages} == {home}

    os.killpg(pids[home], signal.SIGKILL)  # the whole node: master, children, session agent
    after = user.counter()
    assert after["node"] != home
    assert after["counter"] == "6"
    assert after["first_node"] == home
    assert user.counter()["counter"] == "7"

    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
