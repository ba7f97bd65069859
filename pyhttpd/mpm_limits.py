"""The worker MPM's sizing, derived from its directives with httpd's checks.

httpd does not refuse odd combinations of ServerLimit, ThreadLimit, ThreadsPerChild and
MaxRequestWorkers: it corrects them and says so. derive_limits() does the same corrections
in the same order and returns the warnings for the error log:

- ServerLimit and ThreadLimit are kept between 1 and 20000; they size the scoreboard, so a
  restart cannot change them (the running values stay, with a warning).
- ThreadsPerChild is at least 1 and at most ThreadLimit.
- MaxRequestWorkers (default ServerLimit x ThreadsPerChild) is raised to ThreadsPerChild if
  smaller and rounded down to a multiple of it; the quotient is the number of children that
  may serve at once, capped at ServerLimit.
- StartServers is at least 1 and at most that number of children.
- MinSpareThreads is at least 1; MaxSpareThreads is raised to at least MinSpareThreads +
  ThreadsPerChild + 1, so that retiring one child never drops below the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyhttpd.core import GlobalConfig

MAX_SERVER_LIMIT = 20000
MAX_THREAD_LIMIT = 20000
MAX_SPAWN_RATE = 32
"""Most children forked in one maintenance second (the rate doubles 1, 2, 4 ... 32)."""


@dataclass(frozen=True)
class MpmLimits:
    """The sizing the master and the children run with."""

    server_limit: int
    thread_limit: int
    threads_per_child: int
    max_request_workers: int
    daemons_limit: int  # children serving at once: MaxRequestWorkers / ThreadsPerChild
    start_servers: int
    min_spare_threads: int
    max_spare_threads: int
    max_connections_per_child: int
    graceful_shutdown_timeout: float


def derive_limits(
    g: GlobalConfig, running: MpmLimits | None = None
) -> tuple[MpmLimits, list[str]]:
    """The limits the directives in `g` amount to, and warnings about every correction.

    `running` is the sizing of the running server on a restart: its ServerLimit and
    ThreadLimit stay.
    """
    warnings: list[str] = []

    server_limit = _bounded("ServerLimit", g.server_limit, MAX_SERVER_LIMIT, warnings)
    thread_limit = _bounded("ThreadLimit", g.thread_limit, MAX_THREAD_LIMIT, warnings)
    if running is not None:
        if server_limit != running.server_limit:
            warnings.append(
                f"changing ServerLimit to {server_limit} from original value of "
                f"{running.server_limit} not allowed during restart"
            )
            server_limit = running.server_limit
        if thread_limit != running.thread_limit:
            warnings.append(
                f"changing ThreadLimit to {thread_limit} from original value of "
                f"{running.thread_limit} not allowed during restart"
            )
            thread_limit = running.thread_limit

    threads_per_child = g.threads_per_child
    if threads_per_child > thread_limit:
        warnings.append(
            f"ThreadsPerChild of {threads_per_child} exceeds ThreadLimit of {thread_limit}, "
            f"decreasing to {thread_limit}; to increase it, raise ThreadLimit"
        )
        threads_per_child = thread_limit
    elif threads_per_child < 1:
        warnings.append(f"ThreadsPerChild of {threads_per_child} is below 1, setting to 1")
        threads_per_child = 1

    max_workers = g.max_request_workers
    if max_workers is None:
        max_workers = server_limit * threads_per_child
    if max_workers < threads_per_child:
        warnings.append(
            f"MaxRequestWorkers of {max_workers} is less than ThreadsPerChild of "
            f"{threads_per_child}, increasing to {threads_per_child}: MaxRequestWorkers must "
            "be at least the number of workers of one child"
        )
        max_workers = threads_per_child
    daemons_limit = max_workers // threads_per_child
    if max_workers % threads_per_child:
        rounded = daemons_limit * threads_per_child
        warnings.append(
            f"MaxRequestWorkers of {max_workers} is not a multiple of ThreadsPerChild of "
            f"{threads_per_child}, decreasing to {rounded}, for at most {daemons_limit} children"
        )
        max_workers = rounded
    if daemons_limit > server_limit:
        capped = server_limit * threads_per_child
        warnings.append(
            f"MaxRequestWorkers of {max_workers} would need {daemons_limit} children and "
            f"exceed ServerLimit of {server_limit}, decreasing to {capped}; to increase it, "
            "raise ServerLimit"
        )
        daemons_limit, max_workers = server_limit, capped

    start_servers = g.start_servers
    if start_servers < 1:
        warnings.append(f"StartServers of {start_servers} is below 1, setting to 1")
        start_servers = 1
    start_servers = min(start_servers, daemons_limit)

    min_spare = g.min_spare_threads
    if min_spare < 1:
        warnings.append(f"MinSpareThreads of {min_spare} is below 1, setting to 1")
        min_spare = 1
    max_spare = max(g.max_spare_threads, min_spare + threads_per_child + 1)

    limits = MpmLimits(
        server_limit=server_limit,
        thread_limit=thread_limit,
        threads_per_child=threads_per_child,
        max_request_workers=max_workers,
        daemons_limit=daemons_limit,
        start_servers=start_servers,
        min_spare_threads=min_spare,
        max_spare_threads=max_spare,
        max_connections_per_child=max(g.max_connections_per_child, 0),
        graceful_shutdown_timeout=max(g.graceful_shutdown_timeout, 0.0),
    )
    return limits, warnings


def _bounded(name: str, value: int, maximum: int, warnings: list[str]) -> int:
    if value > maximum:
        warnings.append(f"{name} of {value} exceeds the compiled-in limit of {maximum}, decreasing to {maximum}")
        return maximum
    if value < 1:
        warnings.append(f"{name} of {value} is below 1, setting to 1")
        return 1
    return value
