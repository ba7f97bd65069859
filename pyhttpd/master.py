"""The master process (httpd's parent process, worker MPM): it never serves a request.

It reads the configuration, runs the post_config hooks, binds every Listen, creates the
scoreboard with the segments modules claimed, writes the PidFile and forks StartServers
children (pyhttpd.child) and the modules' helper processes. Then one loop supervises them:
signals arrive through a self-pipe and are dispatched to handle_<signal> methods; dead
children are reaped every turn; once a second the loop starts or retires children to keep
the idle workers between MinSpareThreads and MaxSpareThreads, restarts dead helpers and
runs the monitor hooks. The master never imports gevent.

Signals, as httpd's "Stopping and Restarting":

- TERM (INT): children are told to stop at once (SIGTERM again after 3, 5 and 7 seconds,
  SIGKILL after 9), helpers too; the PidFile is removed and the master exits.
- HUP: the configuration is read again; children and helpers are stopped as for TERM, the
  scoreboard is cleared, and a new generation of children starts. The listening sockets
  stay open, so connections wait in the backlog meanwhile.
- USR1: graceful restart. The configuration is read again and a new generation starts at
  once in the free scoreboard slots. As soon as one of its children accepts, the old
  children are told (SIGUSR1) to stop accepting, finish their requests and exit, each one
  replaced in its slot while StartServers are not yet running; so some child accepts all
  along, and a new generation that cannot start leaves the old one serving. (With no free
  slot the old children are told at once, as httpd does.) Scoreboard counters survive;
  helpers whose name is unchanged keep running.
- WINCH: graceful stop. The master closes its listening sockets and removes the PidFile;
  children finish their requests; after GracefulShutdownTimeout (0: no limit) the rest
  are stopped as for TERM.

A restart whose configuration does not load (or whose post_config fails, or whose
listeners cannot be bound) changes nothing: the error is logged with file and line and
the running generation keeps serving.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyhttpd import SERVER_BASEPRODUCT, __version__
from pyhttpd.child import child_main
from pyhttpd.conftree import ConfigError
from pyhttpd.listeners import Listener, ListenError, close_listeners, open_listeners
from pyhttpd.log import format_line, log_error, open_error_logs, server_log
from pyhttpd.module import DECLINED, OK, Helper
from pyhttpd.mpm_limits import MAX_SPAWN_RATE, MpmLimits, derive_limits
from pyhttpd.scoreboard import SERVER_DEAD, SERVER_READY, SERVER_STARTING, Scoreboard

if TYPE_CHECKING:
    from pyhttpd.cli import Options
    from pyhttpd.config import Config

MODULE = "mpm_worker"

# Seconds after the first SIGTERM at which children that are still alive get another signal
# (httpd's reclaim_child_processes schedule), and when the master stops waiting for them.
RECLAIM_SCHEDULE = ((3.0, signal.SIGTERM), (5.0, signal.SIGTERM), (7.0, signal.SIGTERM), (9.0, signal.SIGKILL))
RECLAIM_GIVE_UP = 10.0

SUCCESSIVE_CRASHES = 3
"""From this many children killed by a signal in a row, the maintenance tick replaces them."""
HOLD_OFF_SPAWNING = 10
"""Maintenance cycles after a graceful restart during which the spawn rate does not double."""
BACKOFF_MAX = 60.0
"""Longest wait before the next attempt after children (or a helper) keep dying at start."""
REPLACEMENT_POLL = 0.02
"""Seconds between looks for the first accepting child of a new generation."""
HELPER_STABLE = 10.0
"""A helper that ran this long is restarted at once when it dies; one that keeps dying
sooner is restarted with back-off."""

IDLE_STATES = frozenset((SERVER_DEAD, SERVER_STARTING, SERVER_READY))
"""Worker states counted as idle by maintenance (a starting child counts, as in httpd)."""

RUNNING, RESTARTING, GRACEFUL_STOP, STOPPING, STOPPED = (
    "running", "restarting", "graceful-stop", "stopping", "stopped"
)

SIGNALS = {
    signal.SIGTERM: "term",
    signal.SIGINT: "int",
    signal.SIGHUP: "hup",
    signal.SIGUSR1: "usr1",
    signal.SIGWINCH: "winch",
    signal.SIGCHLD: "chld",
}


class StartupError(Exception):
    """The server cannot start; the message says why."""


@dataclass
class ChildProcess:
    """The master's record of one child."""

    pid: int
    slot: int
    generation: int
    quiescing: bool = False  # told to stop gracefully
    replaced: bool = False  # of an older generation, retired once the new one accepts
    killed: bool = False  # told to stop at once: its death by signal is no crash


@dataclass
class HelperProcess:
    """A supervised helper process of a module."""

    helper: Helper
    pid: int = 0
    started: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    stopping: bool = False


class Master:
    """The supervising process; `run()` returns the exit status."""

    def __init__(self, opts: Options, config: Config, single_process: bool = False) -> None:
        self.opts = opts
        self.config = config
        self.single_process = single_process
        self.generation = 0
        self.limits: MpmLimits | None = None
        self.listeners: list[Listener] = []
        self.board: Scoreboard | None = None
        self.children: dict[int, ChildProcess] = {}
        self.helpers: dict[str, HelperProcess] = {}
        self.state = RUNNING
        self.pid_file: str | None = None
        self.spawn_rate = 1
        self.hold_off = 0
        self.remaining_children_to_start = 0
        self.successive_crashes = 0
        self.reaped_since_tick = False
        self.startup_failures = 0
        self.spawn_hold_until = 0.0
        self.reported: set[str] = set()
        self.stop_deadline: float | None = None
        self._pipe: tuple[int, int] | None = None

    # -- logging ------------------------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        log_error(self.config.main_server, level, MODULE, message)

    def notice(self, message: str) -> None:
        """Start-up and shutdown notices are written whatever the LogLevel, as httpd's."""
        server_log(self.config.main_server).write(format_line("notice", MODULE, message))

    def report_once(self, level: str, message: str) -> None:
        """Log a capacity message once per generation."""
        if message not in self.reported:
            self.reported.add(message)
            self.log(level, message)

    # -- start --------------------------------------------------------------------------

    def run(self) -> int:
        """Start the server and supervise it until it stops."""
        try:
            self.setup()
        except StartupError as e:
            self.log("emerg", str(e))
            if server_log(self.config.main_server).fd != 2:
                print(e, file=sys.stderr)
            return 1
        if self.single_process:
            return self.run_single()
        self.install_signals()
        self.write_pid_file()
        self.start_helpers()
        self.start_children(self.limits.start_servers)
        self.notice(f"{SERVER_BASEPRODUCT}/{__version__} configured -- resuming normal operations")
        try:
            self.loop()
        finally:
            signal.set_wakeup_fd(-1)
        return 0

    def setup(self) -> None:
        """Everything before the first fork: logs, post_config, limits, sockets, scoreboard."""
        config = self.config
        try:
            open_error_logs(config.servers)
        except OSError as e:
            raise StartupError(f"cannot open the error log: {e}") from None
        for warning in config.warnings:
            self.log("warn", warning)
        config.shm_segments = {}
        try:
            rv = config.hooks.run_all("post_config", config)
        except Exception:
            raise StartupError(f"post_config failed:\n{traceback.format_exc().rstrip()}") from None
        if rv not in (OK, DECLINED):
            raise StartupError(f"post_config failed with status {rv}")
        self.limits, warnings = derive_limits(config.global_config)
        for warning in warnings:
            self.log("warn", warning)
        g = config.global_config
        if not g.listens:
            raise StartupError("no listening sockets available, shutting down (add a Listen)")
        try:
            self.listeners, _ = open_listeners(g.listens, g.listen_backlog)
        except ListenError as e:
            raise StartupError(f"{e}; no listening sockets available, shutting down") from None
        try:
            self.board = Scoreboard.create(
                self.limits.server_limit,
                self.limits.thread_limit,
                segments=config.shm_segments,
                path=g.scoreboard_file,
            )
        except (OSError, ValueError) as e:
            close_listeners(self.listeners)
            raise StartupError(f"cannot create the scoreboard: {e}") from None
        config.scoreboard = self.board

    def run_single(self) -> int:
        """-X: serve in this very process, without a master (for debugging)."""
        from pyhttpd.child import run

        assert self.board is not None and self.limits is not None
        self.write_pid_file()
        # The modules' helpers (a session agent, say) are part of serving: they run under -X
        # too, started before this process turns into the child and stopped when it is done,
        # but nobody restarts them while it serves.
        self.start_helpers()
        self.board.process(0).start(os.getpid(), 0)
        self.notice(f"{SERVER_BASEPRODUCT}/{__version__} configured -- serving in one process (-X)")
        try:
            return run(self.config, self.listeners, self.board, 0, 0, self.limits, single_process=True)
        finally:
            self.state = STOPPING
            self.stop_helpers(list(self.helpers.values()))
            self.remove_pid_file()

    def install_signals(self) -> None:
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe = (rfd, wfd)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        for signum in SIGNALS:
            # The handler does nothing: the signal number arrives through the pipe.
            signal.signal(signum, lambda *_: None)

    # -- the loop -----------------------------------------------------------------------

    def loop(self) -> None:
        next_tick = time.monotonic() + 1.0
        while self.state != STOPPED:
            timeout = max(0.0, next_tick - time.monotonic())
            if any(c.replaced and not c.quiescing for c in self.children.values()):
                timeout = min(timeout, REPLACEMENT_POLL)
            try:
                for signum in self.wait_for_signals(timeout):
                    getattr(self, f"handle_{SIGNALS[signum]}")()
                    if self.state == STOPPED:
                        return
                self.reap()
                if self.state == RUNNING:
                    self.retire_replaced()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + 1.0
                    self.tick()
            except Exception:
                # The supervisor outlives its own bugs: the children keep serving.
                self.log("crit", f"master loop failed:\n{traceback.format_exc().rstrip()}")
                time.sleep(0.1)

    def wait_for_signals(self, timeout: float) -> list[int]:
        assert self._pipe is not None
        rfd = self._pipe[0]
        readable, _, _ = select.select([rfd], [], [], timeout)
        if not readable:
            return []
        try:
            data = os.read(rfd, 256)
        except BlockingIOError:
            return []
        # A repeated signal is one request (and handle_chld only wakes the loop).
        return list(dict.fromkeys(b for b in data if b in SIGNALS))

    def tick(self) -> None:
        """Once a second."""
        if self.state == RUNNING:
            if not self.reaped_since_tick:
                self.successive_crashes = 0
            self.reaped_since_tick = False
            self.note_children_started()
            if self.remaining_children_to_start:
                self.start_remaining()
            else:
                self.perform_idle_server_maintenance()
            self.supervise_helpers()
        elif self.state == GRACEFUL_STOP:
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                self.log("warn", "GracefulShutdownTimeout expired, stopping the remaining children")
                self.shutdown()
                return
        try:
            self.config.hooks.run_all("monitor", self.config)
        except Exception:
            self.log("error", f"monitor hook failed:\n{traceback.format_exc().rstrip()}")

    # -- signals ------------------------------------------------------------------------

    def handle_term(self) -> None:
        """SIGTERM: stop now."""
        self.notice("caught SIGTERM, shutting down")
        self.shutdown()

    def handle_int(self) -> None:
        """SIGINT (Ctrl-C in the foreground): as SIGTERM."""
        self.notice("caught SIGINT, shutting down")
        self.shutdown()

    def handle_hup(self) -> None:
        """SIGHUP: re-read the configuration and restart every child and helper."""
        if self.state != RUNNING:
            return
        self.notice("SIGHUP received.  Attempting to restart")
        loaded = self.reload()
        if loaded is None:
            return
        self.state = RESTARTING
        self.stop_children()
        self.stop_helpers(list(self.helpers.values()))
        assert self.board is not None
        self.board.reset()
        self.activate(*loaded)
        self.state = RUNNING
        self.start_helpers()
        self.start_children(self.limits.start_servers)
        self.notice(f"{SERVER_BASEPRODUCT}/{__version__} configured -- resuming normal operations")

    def handle_usr1(self) -> None:
        """SIGUSR1: graceful restart."""
        if self.state != RUNNING:
            return
        self.notice("SIGUSR1 received.  Doing graceful restart")
        loaded = self.reload()
        if loaded is None:
            return
        old = [c for c in self.children.values() if not c.quiescing]
        self.activate(*loaded)
        self.reconcile_helpers()
        self.remaining_children_to_start = self.limits.start_servers
        self.hold_off = HOLD_OFF_SPAWNING
        if self.start_remaining():
            # The old generation keeps accepting until a new child does.
            for child in old:
                child.replaced = True
        else:
            # No free slot: old children must make room, as in httpd.
            for child in old:
                self.retire(child)
        self.notice(f"{SERVER_BASEPRODUCT}/{__version__} configured -- resuming normal operations")

    def handle_winch(self) -> None:
        """SIGWINCH: graceful stop."""
        if self.state != RUNNING:
            return
        self.notice("caught SIGWINCH, shutting down gracefully")
        self.state = GRACEFUL_STOP
        close_listeners(self.listeners)
        self.listeners = []
        self.remove_pid_file()
        for child in list(self.children.values()):
            self.retire(child)
        timeout = self.limits.graceful_shutdown_timeout
        self.stop_deadline = time.monotonic() + timeout if timeout > 0 else None
        self.finish_graceful_stop_when_done()

    def handle_chld(self) -> None:
        """SIGCHLD: nothing to do, the loop reaps every turn."""

    # -- restarts -----------------------------------------------------------------------

    def reload(self) -> tuple[Config, MpmLimits, list[Listener], list[Listener]] | None:
        """Read and prepare the next generation's configuration; None (logged) when it
        cannot be used, and then nothing has changed."""
        try:
            new = self.opts.load()
        except ConfigError as e:
            self.log("error", f"{e} -- the running configuration (generation {self.generation}) stays in use")
            return None
        try:
            open_error_logs(new.servers)
        except OSError as e:
            self.log("error", f"cannot open the error log: {e} -- the running configuration stays in use")
            return None
        try:
            loaded = self.prepare(new)
        except StartupError as e:
            _close_error_logs(new)
            self.log("error", f"{e} -- the running configuration (generation {self.generation}) stays in use")
            return None
        for warning in new.warnings:
            log_error(new.main_server, "warn", MODULE, warning)
        return loaded

    def prepare(self, new: Config) -> tuple[Config, MpmLimits, list[Listener], list[Listener]]:
        assert self.board is not None
        new.shm_segments = {}
        new.scoreboard = self.board
        try:
            rv = new.hooks.run_all("post_config", new)
        except Exception:
            raise StartupError(f"post_config failed:\n{traceback.format_exc().rstrip()}") from None
        if rv not in (OK, DECLINED):
            raise StartupError(f"post_config failed with status {rv}")
        for name, size in new.shm_segments.items():
            try:
                have = self.board.segment(name).size
            except KeyError:
                have = 0
            if size > have:
                raise StartupError(
                    f"scoreboard segment {name!r} needs {size} bytes but the running scoreboard "
                    f"has {have}; the scoreboard keeps its size until a full stop and start"
                )
        limits, warnings = derive_limits(new.global_config, self.limits)
        for warning in warnings:
            log_error(new.main_server, "warn", MODULE, warning)
        g = new.global_config
        if not g.listens:
            raise StartupError("no listening sockets available (add a Listen)")
        try:
            listeners, vanished = open_listeners(g.listens, g.listen_backlog, self.listeners)
        except ListenError as e:
            raise StartupError(str(e)) from None
        return new, limits, listeners, vanished

    def activate(
        self, new: Config, limits: MpmLimits, listeners: list[Listener], vanished: list[Listener]
    ) -> None:
        """Make a prepared configuration the running generation."""
        assert self.board is not None
        old = self.config
        self.config, self.limits, self.listeners = new, limits, listeners
        close_listeners(vanished)
        if old is not new:
            _close_error_logs(old, keep=new)
        self.generation += 1
        self.board.generation = self.generation
        self.spawn_rate = 1
        self.remaining_children_to_start = 0
        # A new configuration deserves a new chance to start children at once.
        self.startup_failures = 0
        self.spawn_hold_until = 0.0
        self.reported.clear()
        self.write_pid_file()

    # -- children -----------------------------------------------------------------------

    def make_child(self, slot: int) -> bool:
        """Fork a child of the current generation into a free scoreboard slot."""
        assert self.board is not None and self.limits is not None
        if time.monotonic() < self.spawn_hold_until:
            return False
        try:
            pid = self.fork()
        except OSError as e:
            self.log("alert", f"fork: unable to fork a new process: {e}")
            return False
        if pid == 0:
            child_main(self.config, self.listeners, self.board, slot, self.generation, self.limits)
        self.board.process(slot).start(pid, self.generation)
        self.children[pid] = ChildProcess(pid, slot, self.generation)
        return True

    def fork(self) -> int:
        """os.fork(), with the new process rid of the master's signal plumbing.

        Signals stay blocked across the fork until the new process has dropped the
        master's wake-up pipe, so a signal meant for it cannot reach the master's loop;
        a signal that arrived meanwhile is delivered once the process unblocks them (a
        child installs its own handlers first).
        """
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            raise
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            return pid
        signal.set_wakeup_fd(-1)
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        return 0

    def active_children(self) -> list[ChildProcess]:
        """Children of the current generation that are not stopping."""
        return [
            c for c in self.children.values() if c.generation == self.generation and not c.quiescing
        ]

    def start_children(self, count: int) -> int:
        """Start up to `count` children in free slots, within MaxRequestWorkers."""
        assert self.board is not None and self.limits is not None
        started = 0
        active = len(self.active_children())
        while started < count and active + started < self.limits.daemons_limit:
            slot = self.board.find_free_process_slot()
            if slot is None or not self.make_child(slot):
                break
            started += 1
        return started

    def start_remaining(self) -> int:
        """After a graceful restart: start the new generation's StartServers children as
        slots become free; returns how many started."""
        assert self.limits is not None
        started = self.start_children(self.remaining_children_to_start)
        self.remaining_children_to_start -= started
        if len(self.active_children()) >= self.limits.daemons_limit:
            self.remaining_children_to_start = 0
        return started

    def retire_replaced(self) -> None:
        """Retire the previous generations once a child of the new one accepts, so that
        some child accepts connections throughout a graceful restart."""
        assert self.board is not None
        replaced = [c for c in self.children.values() if c.replaced and not c.quiescing]
        if replaced and any(
            self.board.worker(c.slot, 0).pid == c.pid for c in self.active_children()
        ):
            for child in replaced:
                self.retire(child)

    def retire(self, child: ChildProcess) -> None:
        """Tell a child to stop gracefully."""
        if child.quiescing or child.killed:
            return
        child.quiescing = True
        _signal(child.pid, signal.SIGUSR1)

    def perform_idle_server_maintenance(self) -> None:
        """httpd's spare-worker rule, once a second: retire one child when more than
        MaxSpareThreads workers are idle; fork 1, 2, 4 ... 32 children a second while fewer
        than MinSpareThreads are."""
        assert self.board is not None and self.limits is not None
        limits, board = self.limits, self.board
        active = self.active_children()
        idle = 0
        for child in active:
            for thread in range(limits.threads_per_child):
                if board.worker(child.slot, thread).status in IDLE_STATES:
                    idle += 1
        if idle > limits.max_spare_threads and active:
            self.retire(max(active, key=lambda c: c.slot))
            self.spawn_rate = 1
        elif idle < limits.min_spare_threads:
            if time.monotonic() < self.spawn_hold_until:
                return
            if len(active) >= limits.daemons_limit:
                if idle == 0:
                    self.report_once(
                        "error",
                        "server reached MaxRequestWorkers setting, consider raising the "
                        "MaxRequestWorkers setting",
                    )
                else:
                    self.report_once(
                        "error",
                        "server is within MinSpareThreads of MaxRequestWorkers, consider "
                        "raising the MaxRequestWorkers setting",
                    )
                return
            if board.find_free_process_slot() is None:
                self.report_once("error", "scoreboard is full, not at MaxRequestWorkers")
                return
            if self.spawn_rate >= 8:
                self.log(
                    "info",
                    f"server seems busy (you may need to increase StartServers, ThreadsPerChild "
                    f"or Min/MaxSpareThreads), spawning {self.spawn_rate} children, there are "
                    f"around {idle} idle threads, and {len(active)} total children",
                )
            self.start_children(self.spawn_rate)
            if self.hold_off:
                self.hold_off -= 1
            elif self.spawn_rate < MAX_SPAWN_RATE:
                self.spawn_rate *= 2
        else:
            self.spawn_rate = 1

    def note_children_started(self) -> None:
        """A child of this generation serving shows that children can start again."""
        assert self.board is not None
        if self.startup_failures and any(
            self.board.worker(c.slot, 0).pid == c.pid for c in self.active_children()
        ):
            self.startup_failures = 0

    def reap(self) -> None:
        """Collect every dead child and helper."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                self.child_exited(child, status)
            else:
                self.helper_exited(pid, status)

    def child_exited(self, child: ChildProcess, status: int) -> None:
        assert self.board is not None
        started = self.board.worker(child.slot, 0).pid == child.pid
        self.board.clear_process(child.slot)
        self.reaped_since_tick = True
        if self.state == GRACEFUL_STOP:
            self.finish_graceful_stop_when_done()
        if self.state != RUNNING:
            return
        crashed = os.WIFSIGNALED(status) and not child.killed
        failed = crashed or (os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0)
        if failed:
            self.log("error", f"child pid {child.pid} {_describe(status)}")
        if failed and not started:
            self.startup_failures += 1
            delay = min(2.0 ** (self.startup_failures - 1), BACKOFF_MAX)
            self.spawn_hold_until = time.monotonic() + delay
            self.log(
                "error",
                f"child pid {child.pid} died before it served ({self.startup_failures} in a "
                f"row); starting no new child for {delay:g} s",
            )
            if child.generation == self.generation and not child.quiescing:
                self.remaining_children_to_start += 1
            return
        current = child.generation == self.generation
        if crashed and current and not child.quiescing:
            self.successive_crashes += 1
            if self.successive_crashes < SUCCESSIVE_CRASHES:
                self.make_child(child.slot)
            return
        if self.remaining_children_to_start and not current:
            if self.make_child(child.slot):
                self.remaining_children_to_start -= 1

    def stop_children(self) -> None:
        """Stop every child at once and wait for them (TERM, HUP)."""
        for child in self.children.values():
            child.killed = True
            _signal(child.pid, signal.SIGTERM)
        self.reclaim(lambda: list(self.children), "child")
        self.children.clear()

    def reclaim(self, alive: Callable[[], list[int]], what: str) -> None:
        """Wait for processes that were sent SIGTERM, insisting on httpd's schedule."""
        began = time.monotonic()
        schedule = list(RECLAIM_SCHEDULE)
        while True:
            self.reap()
            pids = alive()
            if not pids:
                return
            elapsed = time.monotonic() - began
            if elapsed >= RECLAIM_GIVE_UP:
                for pid in pids:
                    self.log("error", f"could not make {what} process {pid} exit, attempting to continue anyway")
                return
            while schedule and elapsed >= schedule[0][0]:
                _, signum = schedule.pop(0)
                for pid in pids:
                    if signum == signal.SIGKILL:
                        self.log("error", f"{what} process {pid} still did not exit, sending a SIGKILL")
                    else:
                        self.log("warn", f"{what} process {pid} still did not exit, sending a SIGTERM")
                    _signal(pid, signum)
            time.sleep(0.02)

    def shutdown(self) -> None:
        """Stop everything now (TERM, or GracefulShutdownTimeout expired)."""
        self.state = STOPPING
        self.stop_children()
        self.stop_helpers(list(self.helpers.values()))
        close_listeners(self.listeners)
        self.listeners = []
        self.remove_pid_file()
        self.finish()

    def finish_graceful_stop_when_done(self) -> None:
        if self.state == GRACEFUL_STOP and not self.children:
            self.stop_helpers(list(self.helpers.values()))
            self.finish()

    def finish(self) -> None:
        if self.board is not None:
            self.board.running = False
        self.state = STOPPED

    # -- helpers ------------------------------------------------------------------------

    def collect_helpers(self, config: Config) -> list[Helper]:
        helpers: list[Helper] = []
        for module in config.modules:
            try:
                helpers.extend(module.helpers(config))
            except Exception:
                self.log("error", f"{module.name}: helpers() failed:\n{traceback.format_exc().rstrip()}")
        return helpers

    def start_helpers(self) -> None:
        for helper in self.collect_helpers(self.config):
            process = HelperProcess(helper)
            self.helpers[helper.name] = process
            self.fork_helper(process)

    def reconcile_helpers(self) -> None:
        """Graceful restart: keep helpers whose name is unchanged, stop removed ones,
        start new ones."""
        wanted = {h.name: h for h in self.collect_helpers(self.config)}
        self.stop_helpers([p for name, p in self.helpers.items() if name not in wanted])
        for name, helper in wanted.items():
            if name not in self.helpers:
                process = HelperProcess(helper)
                self.helpers[name] = process
                self.fork_helper(process)

    def fork_helper(self, process: HelperProcess) -> None:
        try:
            pid = self.fork()
        except OSError as e:
            self.log("alert", f"fork: unable to fork helper {process.helper.name}: {e}")
            process.next_start = time.monotonic() + 1.0
            return
        if pid == 0:
            status = 0
            try:
                for signum in SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
                close_listeners(self.listeners)
                process.helper.run()
            except BaseException:
                traceback.print_exc()
                status = 1
            finally:
                os._exit(status)
        process.pid = pid
        process.started = time.monotonic()

    def helper_exited(self, pid: int, status: int) -> None:
        process = next((p for p in self.helpers.values() if p.pid == pid), None)
        if process is None:
            return
        process.pid = 0
        if self.state != RUNNING or process.stopping:
            return
        lived = time.monotonic() - process.started
        process.failures = 0 if lived >= HELPER_STABLE else process.failures + 1
        # The first early death restarts at once; then 1, 2, 4 ... s while it keeps dying.
        delay = min(2.0 ** (process.failures - 2), BACKOFF_MAX) if process.failures > 1 else 0.0
        self.log(
            "error",
            f"helper {process.helper.name} (pid {pid}) {_describe(status)}; "
            + (f"restarting it in {delay:g} s" if delay else "restarting it"),
        )
        process.next_start = time.monotonic() + delay
        if not delay:
            self.fork_helper(process)

    def supervise_helpers(self) -> None:
        now = time.monotonic()
        for process in self.helpers.values():
            if not process.pid and not process.stopping and now >= process.next_start:
                self.fork_helper(process)

    def stop_helpers(self, processes: list[HelperProcess]) -> None:
        for process in processes:
            process.stopping = True
            if process.pid:
                _signal(process.pid, signal.SIGTERM)
        self.reclaim(lambda: [p.pid for p in processes if p.pid], "helper")
        for process in processes:
            self.helpers.pop(process.helper.name, None)

    # -- PidFile ------------------------------------------------------------------------

    def write_pid_file(self) -> None:
        path = self.config.resolve(self.config.global_config.pid_file)
        if self.pid_file is None and os.path.exists(path):
            try:
                with open(path) as f:
                    previous = f.read().strip()
            except OSError:
                previous = ""
            if previous and previous != str(os.getpid()):
                self.log("warn", f"pid file {path} overwritten -- Unclean shutdown of previous run?")
        if self.pid_file is not None and self.pid_file != path:
            self.remove_pid_file()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        temp = f"{path}.{os.getpid()}.tmp"
        with open(temp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(temp, path)
        self.pid_file = path

    def remove_pid_file(self) -> None:
        if self.pid_file is None:
            return
        try:
            os.unlink(self.pid_file)
        except FileNotFoundError:
            pass
        self.pid_file = None


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        name = signal.strsignal(signum) or f"signal {signum}"
        return f"exit signal {name} ({signum})"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _close_error_logs(config: Config, keep: Config | None = None) -> None:
    """Close a configuration's error log files (not those `keep` shares)."""
    kept = {id(getattr(s, "error_log", None)) for s in keep.servers} if keep else set()
    closed: set[int] = set()
    for server in config.servers:
        log = getattr(server, "error_log", None)
        if log is None or id(log) in kept or id(log) in closed:
            continue
        closed.add(id(log))
        log.close()
