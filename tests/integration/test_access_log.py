"""The access log of a real server: fields, whole lines from every child under load, and no
line lost across graceful restarts (the old generation keeps its descriptors; the new one
reopens the file, so a rotated log is picked up)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

from tests.integration.raw_http import Client, fetch

MODULES = "LoadModule log_config_module modules/mod_log_config\nLoadModule mime_module modules/mod_mime\n"
TIMED = MODULES + (
    'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\" %D %v %p %P %{Host}i %U%q" full\n'
    "CustomLog logs/access_log full\n"
)
LINE = re.compile(
    r'(?P<host>\S+) - - \[(?P<time>[^]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\S+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)" (?P<micros>\d+) (?P<vhost>\S+) (?P<port>\d+) (?P<pid>\d+) '
    r"(?P<host_header>\S+) (?P<url>\S+)"
)
FILES = {"htdocs/hello.txt": b"hello\n", "htdocs/index.html": "<p>i</p>"}


def log_lines(server, name: str = "access_log") -> list[str]:
    path = server.root / "logs" / name
    return path.read_text().splitlines() if path.exists() else []


def test_log_lines_field_by_field(pyhttpd_factory):
    server = pyhttpd_factory(TIMED, files=FILES, start_servers=1)
    before = time.time()
    fetch(server.port, "/hello.txt?x=1", headers={"Referer": "http://r.example/", "User-Agent": "tester/1.0"})
    fetch(server.port, "/missing", host="h.example")
    assert server.wait_for(lambda: len(log_lines(server)) == 2)
    first, second = (LINE.fullmatch(line) for line in log_lines(server))
    assert first is not None and second is not None
    assert first["host"] == "127.0.0.1"
    stamp = time.mktime(time.strptime(first["time"], "%d/%b/%Y:%H:%M:%S %z"))
    assert before - 2 <= stamp <= time.time() + 1
    assert first["request"] == "GET /hello.txt?x=1 HTTP/1.1"
    assert (first["status"], first["bytes"]) == ("200", "6")
    assert (first["referer"], first["agent"]) == ("http://r.example/", "tester/1.0")
    assert 0 <= int(first["micros"]) < 5_000_000
    assert (first["vhost"], first["port"]) == ("127.0.0.1", str(server.port))
    assert int(first["pid"]) != server.pid and int(first["pid"]) > 0
    assert (first["host_header"], first["url"]) == ("localhost", "/hello.txt?x=1")
    assert (second["status"], second["referer"], second["agent"]) == ("404", "-", "-")
    assert second["host_header"] == "h.example"


class Load:
    """Clients that each send `count` uniquely numbered requests over keep-alive,
    reconnecting when a connection is closed; records the numbers answered with 200."""

    def __init__(self, port: int, clients: int, count: int) -> None:
        self.port, self.clients, self.count = port, clients, count
        self.answered: set[str] = set()
        self.progress = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def _run(self, n: int) -> None:
        client = Client(self.port)
        for i in range(self.count):
            tag = f"{n}-{i}"
            for _ in range(5):
                try:
                    response = client.request(f"/hello.txt?id={tag}")
                    break
                except OSError:
                    client.close()
                    client = Client(self.port)
            else:
                continue
            if response.status == 200:
                with self.lock:
                    self.answered.add(tag)
                    self.progress += 1
            if response.headers.get("connection", "").lower() == "close":
                client.close()
                client = Client(self.port)
        client.close()

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        for t in self.threads:
            t.join(120)


def logged_ids(lines: list[str]) -> list[str]:
    ids = []
    for line in lines:
        match = LINE.fullmatch(line)
        assert match is not None, f"torn or malformed line: {line!r}"
        ids.append(match["url"].partition("?id=")[2])
    return ids


def test_keepalive_count_and_connection_status_follow_the_connection(pyhttpd_factory):
    server = pyhttpd_factory(
        MODULES + 'LogFormat "%k %X %U" ka\nCustomLog logs/access_log ka\nMaxKeepAliveRequests 3\n',
        files=FILES, start_servers=1,
    )
    with Client(server.port) as client:
        for _ in range(3):
            assert client.request("/hello.txt").status == 200
    assert server.wait_for(lambda: len(log_lines(server)) == 3)
    assert log_lines(server) == ["0 + /hello.txt", "1 + /hello.txt", "2 + /hello.txt"]


def test_lines_from_all_children_under_load_are_whole_and_none_is_missing(pyhttpd_factory):
    server = pyhttpd_factory(TIMED, files=FILES, start_servers=2)
    load = Load(server.port, clients=12, count=150).start()
    load.join()
    assert len(load.answered) == 12 * 150
    assert server.wait_for(lambda: len(log_lines(server)) >= 12 * 150)
    ids = logged_ids(log_lines(server))
    assert sorted(ids) == sorted(load.answered)
    pids = {LINE.fullmatch(line)["pid"] for line in log_lines(server)}
    assert len(pids) >= 1


def test_no_line_is_lost_across_graceful_restarts(pyhttpd_factory):
    server = pyhttpd_factory(TIMED + "KeepAliveTimeout 10\n", files=FILES, start_servers=2)
    load = Load(server.port, clients=8, count=400).start()
    for target in (800, 1600, 2400):
        assert server.wait_for(lambda t=target: load.progress >= t, 60)
        server.signal(signal.SIGUSR1)
    load.join()
    assert server.log_text().count("Doing graceful restart") == 3
    assert len(load.answered) == 8 * 400
    assert server.wait_for(lambda: len(log_lines(server)) >= len(load.answered))
    ids = logged_ids(log_lines(server))
    assert set(ids) >= load.answered
    assert len(ids) == len(set(ids))


def test_restarts_do_not_pile_up_open_log_files_in_the_master(pyhttpd_factory):
    server = pyhttpd_factory(TIMED, files=FILES, start_servers=1)

    def master_log_fds() -> int:
        fd_dir = f"/proc/{server.pid}/fd"
        count = 0
        for fd in os.listdir(fd_dir):
            try:
                count += os.readlink(f"{fd_dir}/{fd}").endswith("/logs/access_log")
            except OSError:
                pass
        return count

    assert master_log_fds() == 1
    for restarts in range(1, 4):
        server.signal(signal.SIGUSR1)
        assert server.wait_for(lambda n=restarts: server.log_text().count("Doing graceful restart") == n, 10)
        assert fetch(server.port, "/hello.txt").status == 200
        assert server.wait_for(lambda: master_log_fds() == 1, 5)


def test_a_graceful_restart_reopens_a_rotated_log(pyhttpd_factory):
    server = pyhttpd_factory(TIMED, files=FILES, start_servers=1)
    assert fetch(server.port, "/hello.txt?id=before").status == 200
    os.rename(server.root / "logs" / "access_log", server.root / "logs" / "access_log.1")
    with Client(server.port) as old_connection:
        assert old_connection.request("/hello.txt?id=old-1").status == 200
        server.signal(signal.SIGUSR1)
        # The new generation writes to a new file; requests keep being answered meanwhile.
        assert server.wait_for(
            lambda: fetch(server.port, "/hello.txt?id=probe").status == 200 and bool(log_lines(server)), 15
        )
        # The old child finishes the kept-alive connection and logs to the rotated file.
        response = old_connection.request("/hello.txt?id=old-2")
        assert response.status == 200
    # A line is written once its response has gone out.
    assert server.wait_for(
        lambda: "old-2" in logged_ids(log_lines(server, "access_log.1") + log_lines(server)), 5
    )
    rotated = logged_ids(log_lines(server, "access_log.1"))
    current = logged_ids(log_lines(server))
    assert rotated[:2] == ["before", "old-1"]
    assert "old-2" in rotated + current
    assert set(rotated + current) == {"before", "old-1", "old-2", "probe"}
    assert "probe" in current


def test_buffered_logs_reach_the_file_within_a_second_or_two(pyhttpd_factory):
    server = pyhttpd_factory(TIMED + "BufferedLogs On\n", files=FILES, start_servers=1)
    fetch(server.port, "/hello.txt?id=quiet")
    assert server.wait_for(lambda: len(log_lines(server)) == 1, 5)
    assert logged_ids(log_lines(server)) == ["quiet"]


def test_buffered_logs_lose_no_line_when_the_children_stop(pyhttpd_factory):
    server = pyhttpd_factory(TIMED + "BufferedLogs On\n", files=FILES, start_servers=2)
    load = Load(server.port, clients=4, count=100).start()
    load.join()
    assert len(load.answered) == 4 * 100
    server.signal(signal.SIGUSR1)  # a graceful restart: the old children write what they hold
    assert server.wait_for(lambda: server.log_text().count("Doing graceful restart") == 1)
    assert server.wait_for(lambda: len(log_lines(server)) >= 400, 10)
    first = logged_ids(log_lines(server))
    assert sorted(first) == sorted(load.answered)
    load = Load(server.port, clients=2, count=50).start()
    load.join()
    assert len(load.answered) == 2 * 50
    assert server.stop() == 0  # and so do the children of a stopping server
    assert sorted(logged_ids(log_lines(server))) == sorted(first + list(load.answered))

