"""A real redis-server on a loopback port, without persistence."""

from __future__ import annotations

import os
import shutil
import time

from tests.peers.peer import Peer
from tests.peers.ports import free_port, wait_for_port


def redis_server_binary() -> str:
    """Path of the redis-server binary."""
    return shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis(Peer):
    """redis-server on a free port; a restart starts empty (nothing is saved)."""

    name = "redis"

    def __init__(self, *, workdir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(workdir)
        self.host = "127.0.0.1"
        self.port = free_port(self.host)

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0."""
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.base),
            "--daemonize", "no",
        ]  # fmt: skip

    def wait_ready(self, deadline: float) -> None:
        wait_for_port(self.host, self.port, deadline - time.monotonic(), self._process)
