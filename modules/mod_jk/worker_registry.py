"""The workers of one configuration (mod_jk's worker container, ``jk_worker.c``).

Built from the workers.properties of a generation: one object per worker, lb members
included; only the workers of ``worker.list`` can be mapped to URIs. Maintenance (pool
recycling, interval CPings) runs at most every ``worker.maintain`` seconds, on the request
path or from the JkWatchdogInterval thread.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .ajp_worker import AjpWorker, ServiceResult
from .lb_shm import BalancerState, Buffer
from .lb_worker import LbWorker
from .service import ServiceRequest
from .status_worker import StatusWorker
from .workers import WorkersConfig


class Worker(Protocol):
    """What the handler needs of a worker of any type."""

    name: str
    type: str
    log: Any

    def service(self, s: ServiceRequest) -> ServiceResult: ...

    def maintain(self, now: float) -> None: ...

    def close(self) -> None: ...


class WorkerRegistry:
    """Every worker of a workers.properties, by name."""

    def __init__(self, workers: WorkersConfig, log: Any = None) -> None:
        self.config = workers
        self.log = log
        self.maintain_interval = workers.maintain
        self.last_maintain = time.monotonic()
        self.all: dict[str, Worker] = {}
        for name, spec in workers.workers.items():
            if spec.type == "ajp13":
                self.all[name] = AjpWorker(name, spec.properties, log)
        self.balancers: dict[str, LbWorker] = {}
        for name, spec in workers.workers.items():
            if spec.type == "lb":
                members = {m: self.all[m] for m in spec.properties["balance_workers"]}
                self.all[name] = self.balancers[name] = LbWorker(name, spec.properties, members, log)
        for name, spec in workers.workers.items():
            if spec.type == "status":
                self.all[name] = StatusWorker(name, spec.properties, self, log)
        self.mappable = {name: self.all[name] for name in workers.worker_list if name in self.all}
        self.state: BalancerState | None = None
        if self.balancers:
            # Process-local until a child attaches the shared state.
            self.attach(bytearray(self.shm_size), threading.Lock())

    @property
    def shm_size(self) -> int:
        """Bytes the lb workers' shared state needs (0 without lb workers)."""
        return BalancerState.size_for(self.config) if self.balancers else 0

    def attach(self, buffer: Buffer, lock: AbstractContextManager[Any]) -> None:
        """Keep the lb workers' state in ``buffer`` (shared by every child), guarded by ``lock``."""
        self.state = BalancerState(buffer, self.config, lock)
        for name, worker in self.balancers.items():
            worker.balancer = self.state[name]

    def set_log(self, log: Any) -> None:
        """The JkLogFile the workers write to."""
        self.log = log
        for worker in self.all.values():
            worker.log = log

    def get(self, name: str) -> Worker | None:
        """The worker called ``name`` when it may serve mapped requests (it is in worker.list)."""
        return self.mappable.get(name)

    def maintain_due(self, now: float) -> bool:
        """Run maintenance if worker.maintain seconds passed since the last run (``now`` is
        time.monotonic()); True if it ran."""
        if self.maintain_interval <= 0 or now - self.last_maintain < self.maintain_interval:
            return False
        self.maintain(now)
        return True

    def maintain(self, now: float) -> None:
        """Maintain every worker now."""
        self.last_maintain = now
        for worker in self.all.values():
            worker.maintain(now)

    def close(self) -> None:
        """Close every pooled connection (the child is stopping)."""
        for worker in self.all.values():
            worker.close()
