"""A real server process started in the foreground for a test and stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import psutil

#: How much of the end of a peer's log goes into an error message.
LOG_TAIL_CHARS = 4000


class Peer:
    """Base of the peers: a work directory, one foreground process, its logs.

    Subclasses say how to lay out the work directory (``prepare``), which command runs
    (``command``, ``environment``) and when the peer is ready (``wait_ready``). The work
    directory is a fresh temporary directory unless ``workdir`` is given; ``close()``
    removes a temporary one. Used as a context manager, the peer is started on entry and
    stopped and cleaned up on exit.
    """

    #: Name used in messages and for the file that captures stdout and stderr.
    name = "peer"
    #: Seconds from ``start()`` until the peer must be ready.
    start_timeout = 60.0
    #: Seconds a peer may take to exit after SIGTERM before it gets SIGKILL.
    stop_timeout = 20.0

    def __init__(self, workdir: str | os.PathLike[str] | None = None) -> None:
        self._owns_workdir = workdir is None
        self.base = Path(workdir or tempfile.mkdtemp(prefix=f"pyhttpd-{self.name}-"))
        self._process: subprocess.Popen | None = None
        self._prepared = False
        self._closed_log = ""

    @property
    def output_file(self) -> Path:
        """The file that receives the process's stdout and stderr."""
        return self.base / "logs" / f"{self.name}.out"

    @property
    def pid(self) -> int | None:
        """The pid of the running peer, or None when it is not running."""
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        """True while the peer's process is alive."""
        return self._process is not None and self._process.poll() is None

    def prepare(self) -> None:
        """Lay out the work directory; called once, before the first start."""

    def command(self) -> list[str]:
        """The argv of the peer, running in the foreground."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The environment of the peer's process."""
        return dict(os.environ)

    def wait_ready(self, deadline: float) -> None:
        """Return once the peer serves; raise if it does not by ``deadline`` (monotonic)."""
        raise NotImplementedError

    def log_files(self) -> list[Path]:
        """The peer's log files, most useful first, for ``log_text()``."""
        return [self.output_file]

    def start(self) -> None:
        """Start the peer and wait until it serves; on failure stop it and raise with its log."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self._process.pid})")
        if not self._prepared:
            self.base.mkdir(parents=True, exist_ok=True)
            (self.base / "logs").mkdir(exist_ok=True)
            self.prepare()
            self._prepared = True
        deadline = time.monotonic() + self.start_timeout
        with open(self.output_file, "ab") as output:
            self._process = subprocess.Popen(
                self.command(),
                cwd=self.base,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_ready(deadline)
        except (OSError, RuntimeError, TimeoutError) as error:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start: {error}\n"
                f"--- end of its logs ---\n{self.log_text()[-LOG_TAIL_CHARS:]}"
            ) from error

    def stop(self) -> None:
        """Stop the peer: SIGTERM to its pid, SIGKILL to it and its children if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # A parent killed hard leaves its children (httpd's) holding the listening socket.
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass

    def restart(self) -> None:
        """Stop and start again on the same ports and work directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the peer and remove its work directory if it was a temporary one."""
        self.stop()
        if self._owns_workdir and self.base.exists():
            self._closed_log = self.log_text()
            shutil.rmtree(self.base, ignore_errors=True)

    def log_text(self) -> str:
        """All the peer's logs as one text, each file under a header line."""
        if not self.base.exists():
            return self._closed_log
        parts = []
        for path in self.log_files():
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                parts.append(f"==> {path.name} <==\n{text}")
        return "\n".join(parts)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
