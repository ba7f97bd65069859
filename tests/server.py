"""Running a real pyhttpd master (bin/pyhttpd -D FOREGROUND) for integration tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.peers.ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parent.parent
PYHTTPD = REPO / "bin" / "pyhttpd"


class PyHttpd:
    """A pyhttpd server with its own ServerRoot in a temp dir.

    `conf` is the text of httpd.conf without Listen/PidFile/ErrorLog/ServerRoot, which are
    added (ports chosen free at run time; `{port}` and `{root}` in `conf` are filled in).
    `extra_listens` adds more listeners: a list of protocols, each on a new free port
    (their ports are in `self.ports`, the first being `self.port`).
    """

    def __init__(
        self,
        conf: str = "",
        *,
        extra_listens: tuple[str, ...] = (),
        files: dict[str, str | bytes] | None = None,
        start_servers: int = 2,
        threads_per_child: int = 16,
        args: tuple[str, ...] = (),
        root: str | None = None,
    ) -> None:
        self._owns_root = root is None  # a temporary ServerRoot, removed by close()
        self._closed_log: str | None = None
        self.root = Path(root or tempfile.mkdtemp(prefix="pyhttpd-"))
        (self.root / "logs").mkdir(exist_ok=True)
        (self.root / "htdocs").mkdir(exist_ok=True)
        self.ports = [free_port() for _ in range(1 + len(extra_listens))]
        self.port = self.ports[0]
        self.protocols = ("http", *extra_listens)
        for name, content in (files or {}).items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        listens = "\n".join(
            f"Listen 127.0.0.1:{port} {proto}" for port, proto in zip(self.ports, self.protocols, strict=True)
        )
        self.conf_path = self.root / "conf" / "httpd.conf"
        self.conf_path.parent.mkdir(exist_ok=True)
        self.write_conf(
            f"ServerRoot {self.root}\n{listens}\nServerName 127.0.0.1:{self.port}\n"
            f"PidFile logs/httpd.pid\nErrorLog logs/error_log\nDocumentRoot htdocs\n"
            f"StartServers {start_servers}\nThreadsPerChild {threads_per_child}\n"
            f"ServerLimit {max(start_servers, 4)}\nThreadLimit {max(threads_per_child, 64)}\n"
            f"MinSpareThreads 1\nMaxSpareThreads {max(start_servers, 4) * threads_per_child}\n"
            + conf.replace("{port}", str(self.port)).replace("{root}", str(self.root))
        )
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def write_conf(self, text: str) -> None:
        self.conf_path.write_text(text)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.root / "logs" / "httpd.pid"

    def start(self, timeout: float = 20.0) -> PyHttpd:
        self.stdout = open(self.root / "logs" / "stdout", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(PYHTTPD), "-f", str(self.conf_path), "-D", "FOREGROUND", *self.args],
            stdout=self.stdout,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        for port in self.ports:
            wait_for_port("127.0.0.1", port, timeout, self.proc)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the master and wait; SIGKILL it (and its process group) if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def close(self) -> None:
        """Stop the server; remove its ServerRoot if it was a temporary one (its logs stay
        readable through log_text(), as the peers'), so that load runs leave no big logs."""
        self.stop()
        if getattr(self, "stdout", None):
            self.stdout.close()
        if self._owns_root and self.root.exists():
            self._closed_log = self.log_text()
            shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        if self._closed_log is not None:
            return self._closed_log
        parts = []
        for name in ("stdout", "error_log"):
            path = self.root / "logs" / name
            if path.exists():
                parts.append(f"--- {name} ---\n" + path.read_text(errors="replace"))
        return "\n".join(parts)

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # noqa: ANN001
        """Poll `predicate()` until it is true or `timeout` passes; return its last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value or time.monotonic() > deadline:
                return bool(value)
            time.sleep(interval)

    def __enter__(self) -> PyHttpd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
