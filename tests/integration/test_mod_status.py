"""mod_status on a running server: httpd's ?auto keys, the HTML page, ExtendedStatus."""

from __future__ import annotations

import http.client
import signal

import psutil

STATUS = (
    "LoadModule status_module modules/mod_status\n"
    "<Location /server-status>\n    SetHandler server-status\n</Location>\n"
)
HOOKING_MODULE = """
from pyhttpd.module import Module

class Hooking(Module):
    name = "hooking"

    def register_hooks(self, hooks):
        hooks.register("status_hook", self.status, module=self.name)

    def status(self, r, flags):
        r.write(b"HookedLine: yes\\n" if flags & 1 else b"<p>hooked paragraph</p>\\n")
        return 0

hooking_module = Hooking()
"""

AUTO_KEYS = [
    "ServerVersion", "ServerMPM", "Server Built", "CurrentTime", "RestartTime",
    "ParentServerConfigGeneration", "ParentServerMPMGeneration", "ServerUptimeSeconds",
    "ServerUptime", "Load1", "Load5", "Load15", "Total Accesses", "Total kBytes",
    "Total Duration", "CPUUser", "CPUSystem", "CPUChildrenUser", "CPUChildrenSystem",
]
AUTO_TAIL = ["BusyWorkers", "GracefulWorkers", "IdleWorkers", "Processes", "Stopping", "Scoreboard"]


def fetch(server, path: str, method: str = "GET") -> tuple[int, dict[str, str], str]:  # noqa: ANN001
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers={"Connection": "close"})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read().decode("latin-1")
    finally:
        conn.close()


def auto(server) -> dict[str, str]:  # noqa: ANN001
    status, headers, body = fetch(server, "/server-status?auto")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    lines = body.splitlines()
    return dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in lines[1:])


def children(server) -> list[int]:  # noqa: ANN001
    return [p.pid for p in psutil.Process(server.pid).children()]


def test_auto_gives_httpds_keys_in_httpds_order_and_a_letter_per_worker(pyhttpd_factory):
    server = pyhttpd_factory(STATUS, start_servers=2, threads_per_child=16)
    # Both children have taken their 16 worker slots each.
    assert server.wait_for(lambda: auto(server)["Scoreboard"].count(".") == 32, 10)
    status, _, body = fetch(server, "/server-status?auto")
    assert body.splitlines()[0] == "127.0.0.1"
    values = auto(server)
    keys = list(values)
    assert keys[: len(AUTO_KEYS)] == AUTO_KEYS
    assert keys[-len(AUTO_TAIL) :] == AUTO_TAIL
    assert values["ServerMPM"] == "worker"
    # ServerLimit 4 x ThreadsPerChild 16: the two empty process slots show as open slots.
    letters = values["Scoreboard"]
    assert len(letters) == 64
    assert letters.count(".") == 32
    assert int(values["BusyWorkers"]) >= 1  # this very request
    assert int(values["BusyWorkers"]) + int(values["IdleWorkers"]) == 32


def test_accesses_are_counted_and_survive_a_graceful_restart_that_advances_the_generation(pyhttpd_factory):
    server = pyhttpd_factory(STATUS, files={"htdocs/a.txt": "a" * 2048})
    for _ in range(5):
        assert fetch(server, "/a.txt")[0] == 200
    # A request is counted just after its response went out: give the last one a moment.
    assert server.wait_for(lambda: int(auto(server)["Total Accesses"]) >= 5, 5)
    before = auto(server)
    assert int(before["Total kBytes"]) >= 10
    assert float(before["ReqPerSec"]) > 0 if "ReqPerSec" in before else before["Uptime"] == "0"
    server.signal(signal.SIGUSR1)
    assert server.wait_for(lambda: auto(server)["ParentServerMPMGeneration"] == "1", 10)
    after = auto(server)
    assert after["ParentServerConfigGeneration"] == "2"
    assert int(after["Total Accesses"]) > int(before["Total Accesses"])


def test_extended_status_off_leaves_out_totals_and_the_worker_table(pyhttpd_factory):
    server = pyhttpd_factory(STATUS + "ExtendedStatus Off\n")
    values = auto(server)
    assert "Total Accesses" not in values
    assert "BusyWorkers" in values
    _, _, page = fetch(server, "/server-status")
    assert "ExtendedStatus On" in page
    assert "<th>Srv</th>" not in page


def test_html_page_shows_each_child_with_cpu_and_memory_and_honours_refresh(pyhttpd_factory):
    server = pyhttpd_factory(STATUS, start_servers=2)
    assert server.wait_for(lambda: len(children(server)) == 2, 10)
    status, headers, page = fetch(server, "/server-status?refresh=3")
    assert status == 200
    assert headers["refresh"] == "3"
    assert "Server Status for 127.0.0.1" in page
    assert "RSS MB" in page
    for pid in children(server):
        assert f"<td>{pid}</td>" in page
    assert "GET /server-status?refresh=3 HTTP/1.1" in page
    assert fetch(server, "/server-status?refresh")[1]["refresh"] == "1"


def test_other_modules_add_lines_through_status_hook(pyhttpd_factory):
    server = pyhttpd_factory(
        STATUS + "LoadModule hooking_module hooking.py\n", files={"hooking.py": HOOKING_MODULE}
    )
    assert auto(server)["HookedLine"] == "yes"
    assert "<p>hooked paragraph</p>" in fetch(server, "/server-status")[2]


def test_status_page_refuses_methods_other_than_get(pyhttpd_factory):
    server = pyhttpd_factory(STATUS)
    status, headers, _ = fetch(server, "/server-status", method="POST")
    assert status == 405
    assert "GET" in headers["allow"]
