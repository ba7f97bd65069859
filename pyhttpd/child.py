"""A child process: one gevent hub serving connections on the listeners it inherited.

The master forks the child and calls run(). Before anything else the child monkey-patches
the standard library for gevent and re-initialises the hub (the master never imports
gevent, so modules that the configuration loaded in the master get the patched socket,
ssl, time and threading from here on; a module should therefore use `import socket` and
`socket.create_connection(...)` rather than binding blocking names with `from socket
import ...` at import time, and should not import ssl at import time).

Then, as a worker MPM child: the child_init hooks run, one StreamServer per listener
accepts (one connection per wake-up, so bursts spread over the children) into one
gevent Pool of ThreadsPerChild greenlets, and each connection is handed to the protocol
handler of its Listen (PROTOCOL_HANDLERS) together with the scoreboard worker column
the greenlet holds while it serves it.

Stopping. SIGUSR1 from the master (graceful restart, retiring an idle child, graceful
stop) or MaxConnectionsPerChild: the child stops accepting, runs the child_stopping
hooks, lets the connections in progress finish and exits. Protocol handlers must call
graceful_stop_requested() whenever they decide whether to keep a connection open after
a response: once it is true they answer with "Connection: close" and end the connection,
so a keep-alive client sends its next request to a new child. A connection waiting in
keep-alive for the next request is not cut (the request may be on its way); it ends
after that request or at KeepAliveTimeout. SIGTERM: the child closes every connection at
once and exits.

Scoreboard. Modules reach the shared scoreboard of the running server as
`config.scoreboard` (a pyhttpd.scoreboard.Scoreboard: `.segment(name)` for the segment a
module claimed in post_config through `config.shm_segments[name] = size`, `.snapshot()`
for status pages). The master sets it before forking, so it is there in child_init.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any

from pyhttpd.log import log_error
from pyhttpd.scoreboard import SERVER_GRACEFUL, SERVER_READY

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.listeners import Listener
    from pyhttpd.mpm_limits import MpmLimits
    from pyhttpd.scoreboard import Scoreboard

PROTOCOL_HANDLERS: dict[str, str] = {
    "http": "pyhttpd.http_protocol:HttpConnection",
    "ajp13": "pyhttpd.ajp_connection:AjpConnection",
}
"""Listen protocol -> "module:Class" of its connection handler, imported in the child.

The class is called as Class(config, sock, addr, listen, slot) and its serve() method
serves the connection until it is done. A module may add a protocol here at import time.
"""

CHILD_EXIT_OK = 0
CHILD_EXIT_INIT = 3
"""Exit status of a child that could not start serving (a child_init hook failed...)."""

_CHILD_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP, signal.SIGWINCH, signal.SIGCHLD)

_graceful_stop = False
_early_stop: list[bool] = []
_master_pid = 0


def graceful_stop_requested() -> bool:
    """True once this child has begun to stop: end keep-alive connections after the
    current response (answer it with "Connection: close")."""
    return _graceful_stop


def master_pid() -> int:
    """Pid of the master of this child (this process itself with -X; 0 outside a child)."""
    return _master_pid


def run(
    config: Config,
    listeners: list[Listener],
    board: Scoreboard,
    slot: int,
    generation: int,
    limits: MpmLimits,
    single_process: bool = False,
) -> int:
    """Serve until told to stop; returns the exit status. Runs in the forked child (or,
    with -X, in the only process)."""
    global _master_pid
    _master_pid = os.getpid() if single_process else os.getppid()
    _reset_signals(single_process)
    from gevent import monkey

    monkey.patch_all()
    import gevent

    gevent.reinit()
    return _Child(config, listeners, board, slot, generation, limits, single_process).serve()


def _reset_signals(single_process: bool) -> None:
    # The master's wake-up pipe and handlers are not this process's business; the terminal's
    # Ctrl-C, hang-up and resize go to the master, which decides.
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # A graceful stop asked for while the child is still starting is honoured once it serves.
    signal.signal(signal.SIGUSR1, lambda *_: _early_stop.append(True))
    for sig in (signal.SIGHUP, signal.SIGWINCH, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL if single_process else signal.SIG_IGN)
    # The master forks with its signals blocked; what arrived since is delivered now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHILD_SIGNALS)


def _handler_class(protocol: str) -> Any:
    module_name, _, class_name = PROTOCOL_HANDLERS[protocol].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


class _Child:
    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        board: Scoreboard,
        slot: int,
        generation: int,
        limits: MpmLimits,
        single_process: bool,
    ) -> None:
        import gevent.event
        import gevent.pool

        self.config = config
        self.listeners = listeners
        self.board = board
        self.slot = slot
        self.generation = generation
        self.limits = limits
        self.single_process = single_process
        self.pid = os.getpid()
        self.parent = _master_pid
        self.process = board.process(slot)
        self.pool = gevent.pool.Pool(limits.threads_per_child)
        # Free worker columns; a greenlet holds one while it serves a connection.
        self.columns = list(range(limits.threads_per_child - 1, -1, -1))
        self.servers: list[Any] = []
        self.stop_event = gevent.event.Event()
        self.graceful = True

    def log(self, level: str, message: str) -> None:
        log_error(self.config.main_server, level, "mpm_worker", message)

    def serve(self) -> int:
        import gevent
        from gevent.server import StreamServer

        try:
            self.config.hooks.run_void("child_init", self.config)
            handlers = {}
            for listener in self.listeners:
                protocol = listener.listen.protocol
                if protocol not in handlers:
                    try:
                        handlers[protocol] = _handler_class(protocol)
                    except (ImportError, AttributeError, KeyError) as e:
                        handlers[protocol] = None
                        self.log("error", f"no connection handler for protocol {protocol}: {e}")
                cls = handlers[protocol]
                if cls is None:
                    continue
                listener.sock.setblocking(False)
                server = StreamServer(
                    listener.sock, self._connection_handler(cls, listener), spawn=self.pool
                )
                server.max_accept = 1
                self.servers.append(server)
            if not self.servers:
                raise RuntimeError("no listener has a protocol handler")
        except Exception:
            self.log("crit", f"child init failed:\n{traceback.format_exc().rstrip()}")
            return CHILD_EXIT_INIT

        # What the child inherited and set up lives as long as the child: keep it out of
        # the cyclic collector's full passes, which would otherwise walk it again and again.
        gc.freeze()
        for thread in range(self.limits.threads_per_child):
            self.board.worker(self.slot, thread).claim(self.pid, self.generation)
        for server in self.servers:
            server.start()
        gevent.signal_handler(signal.SIGUSR1, self.stop, True)
        gevent.signal_handler(signal.SIGTERM, self.stop, False)
        if self.single_process:
            gevent.signal_handler(signal.SIGINT, self.stop, False)
        gevent.spawn(self._watch)
        if _early_stop:
            self.stop(True)
        self.stop_event.wait()
        while self.graceful and len(self.pool):
            self.pool.join(timeout=0.2)
        if len(self.pool):
            self.pool.kill(block=True, timeout=1)
        try:
            self.config.hooks.run_void("child_stopped", self.config)
        except Exception:
            self.log("error", f"child_stopped hook failed:\n{traceback.format_exc().rstrip()}")
        return CHILD_EXIT_OK

    def _connection_handler(self, cls: Any, listener: Listener) -> Any:
        config, board, slot, process = self.config, self.board, self.slot, self.process
        columns, listen = self.columns, listener.listen
        max_connections = self.limits.max_connections_per_child

        def handle(sock: Any, addr: Any) -> None:
            if process.count_connection() == max_connections:
                self.stop(True)
            thread = columns.pop()
            worker = board.worker(slot, thread)
            connection = None
            try:
                connection = cls(config, sock, addr, listen, worker)
                connection.serve()
            except Exception:
                self.log("error", f"connection from {addr} failed:\n{traceback.format_exc().rstrip()}")
            finally:
                # A connection's parser, watchers and callbacks refer back to it: dropping its
                # attributes frees its buffers now instead of at the next full collection, so
                # a child's memory stays flat however many connections come and go.
                if connection is not None:
                    vars(connection).clear()
                worker.set_status(SERVER_GRACEFUL if _graceful_stop else SERVER_READY)
                columns.append(thread)

        return handle

    def stop(self, graceful: bool) -> None:
        """Begin to stop: gracefully (finish the connections) or at once."""
        global _graceful_stop
        if not graceful:
            self.graceful = False
        if _graceful_stop:
            if not graceful:
                self.stop_event.set()
                self.pool.kill(block=False)
            return
        _graceful_stop = True
        self.process.not_accepting = True
        self.process.quiescing = True
        for server in self.servers:
            server.close()
        for thread in self.columns:
            self.board.worker(self.slot, thread).set_status(SERVER_GRACEFUL)
        try:
            self.config.hooks.run_void("child_stopping", self.config, graceful)
        except Exception:
            self.log("error", f"child_stopping hook failed:\n{traceback.format_exc().rstrip()}")
        if not graceful:
            self.pool.kill(block=False)
        self.stop_event.set()

    def _watch(self) -> None:
        import gevent

        # A child whose master is gone (killed without a chance to stop it) stops too.
        while not _graceful_stop:
            self.process.beat()
            if not self.single_process and os.getppid() != self.parent:
                self.log("error", f"master process {self.parent} is gone, stopping")
                self.stop(True)
                return
            gevent.sleep(1.0)


def child_main(*args: Any, **kwargs: Any) -> None:
    """Entry point after fork: run() and leave without unwinding the master's stack."""
    status = CHILD_EXIT_INIT
    try:
        status = run(*args, **kwargs)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
