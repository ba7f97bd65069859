"""The command line, as httpd's: pyhttpd [-D name] [-d directory] [-f file] [-C "directive"]
[-c "directive"] [-k start|restart|graceful|graceful-stop|stop] [-v] [-V] [-h] [-l] [-L] [-t] [-S] [-M] [-X]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
from dataclasses import dataclass, field

from pyhttpd import SERVER_BASEPRODUCT, __version__
from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError

DEFAULT_CONFIG = "conf/httpd.conf"

# -k verbs and the signal each sends to the master (httpd's "Stopping and Restarting").
SIGNALS = {
    "stop": signal.SIGTERM,
    "restart": signal.SIGHUP,
    "graceful": signal.SIGUSR1,
    "graceful-stop": signal.SIGWINCH,
}


@dataclass
class Options:
    """What the command line asked for; the master re-reads the config with these."""

    config_file: str = DEFAULT_CONFIG
    server_root: str | None = None
    defines: list[str] = field(default_factory=list)
    pre_directives: list[str] = field(default_factory=list)
    post_directives: list[str] = field(default_factory=list)

    def load(self) -> Config:
        """Read the configuration these options name (raises ConfigError)."""
        return Config.load(
            self.config_file,
            server_root=self.server_root,
            defines=self.defines,
            pre_directives=self.pre_directives,
            post_directives=self.post_directives,
        )

    @property
    def foreground(self) -> bool:
        return "FOREGROUND" in self.defines or "NO_DETACH" in self.defines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyhttpd", add_help=False, description="pyhttpd web server")
    p.add_argument("-f", dest="config_file", default=DEFAULT_CONFIG, help="alternate ServerConfigFile")
    p.add_argument("-d", dest="server_root", help="alternate initial ServerRoot")
    p.add_argument("-D", dest="defines", action="append", default=[], help="define a name for <IfDefine name>")
    p.add_argument("-C", dest="pre", action="append", default=[], help='process directive before reading config files')
    p.add_argument("-c", dest="post", action="append", default=[], help='process directive after reading config files')
    p.add_argument("-k", dest="verb", choices=["start", "restart", "graceful", "graceful-stop", "stop"])
    p.add_argument("-t", dest="test", action="store_true", help="run syntax check for config files")
    p.add_argument("-S", dest="show_vhosts", action="store_true", help="show parsed vhost settings")
    p.add_argument("-M", dest="show_modules", action="store_true", help="show all loaded modules")
    p.add_argument("-L", dest="list_directives", action="store_true", help="list available configuration directives")
    p.add_argument("-l", dest="list_compiled", action="store_true", help="list compiled in modules")
    p.add_argument("-v", dest="version", action="store_true", help="show version number")
    p.add_argument("-V", dest="settings", action="store_true", help="show compile settings")
    p.add_argument("-X", dest="debug", action="store_true", help="debug mode: one process, foreground")
    p.add_argument("-h", "-?", dest="help", action="store_true", help="list available command line options")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.help:
        parser.print_help()
        return 0
    if ns.version:
        print(f"Server version: {SERVER_BASEPRODUCT}/{__version__} ({platform.system()})")
        return 0
    if ns.settings:
        print_settings()
        return 0
    if ns.list_compiled:
        print("Compiled in modules:\n  core")
        return 0
    opts = Options(ns.config_file, ns.server_root, ns.defines, ns.pre, ns.post)
    if ns.show_vhosts:
        opts.defines.append("DUMP_VHOSTS")
    if ns.show_modules:
        opts.defines.append("DUMP_MODULES")
    try:
        config = opts.load()
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    if ns.list_directives:
        for d, m in config.directive_table():
            print(f"{d.name} ({m.name})\n\t{d.help}\n\tAllowed in: {d.contexts_text()}")
        return 0
    if ns.show_modules or ns.show_vhosts:
        if ns.show_modules:
            print_modules(config)
        if ns.show_vhosts:
            print_vhosts(config)
        return 0
    if ns.test:
        print("Syntax OK", file=sys.stderr)
        return 0
    if ns.verb and ns.verb != "start":
        return signal_master(config, ns.verb)
    if ns.verb == "start" and running_pid(config) is not None:
        print(f"httpd (pid {running_pid(config)}) already running", file=sys.stderr)
        return 0
    from pyhttpd.master import Master

    if ns.debug:
        return Master(opts, config, single_process=True).run()
    if not opts.foreground:
        daemonize()
    return Master(opts, config).run()


def print_settings() -> None:
    print(f"Server version: {SERVER_BASEPRODUCT}/{__version__} ({platform.system()})")
    print("Server MPM:     worker (gevent children)")
    print(f"Python:         {platform.python_implementation()} {platform.python_version()}")
    print(f"Architecture:   {platform.machine()}")
    print("Server compiled with....")
    print(f' -D SERVER_CONFIG_FILE="{DEFAULT_CONFIG}"')
    print(' -D DEFAULT_PIDLOG="logs/httpd.pid"')
    print(' -D DEFAULT_ERRORLOG="logs/error_log"')


def print_modules(config: Config) -> None:
    print("Loaded Modules:")
    for m in config.modules:
        kind = "static" if m.name == "core" else "shared"
        print(f" {m.name} ({kind})")


def print_vhosts(config: Config) -> None:
    print("VirtualHost configuration:")
    for v in config.vhosts:
        addrs = " ".join(f"{h}:{p or '*'}" for h, p in v.addrs)
        print(f"{addrs:<22} {v.server_hostname or '(unnamed)'} ({v.file}:{v.line})")
        for alias in v.aliases:
            print(f"{'':<22}   alias {alias}")
    main = config.main_server
    print(f"ServerRoot: \"{config.server_root}\"")
    print(f"Main DocumentRoot: \"{main.core.document_root or config.resolve('htdocs')}\"")
    print(f"Main ErrorLog: \"{config.resolve(main.core.error_log)}\"")
    print(f"PidFile: \"{config.resolve(config.global_config.pid_file)}\"")
    for listen in config.global_config.listens:
        print(f"Listen: {listen.address} {listen.protocol}")


def running_pid(config: Config) -> int | None:
    """The pid in PidFile when that process is alive."""
    path = config.resolve(config.global_config.pid_file)
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def signal_master(config: Config, verb: str) -> int:
    """-k stop|restart|graceful|graceful-stop: signal the pid in PidFile (config already checked)."""
    pid = running_pid(config)
    if pid is None:
        print("httpd (no pid file) not running", file=sys.stderr)
        return 0 if verb in ("stop", "graceful-stop") else 1
    os.kill(pid, SIGNALS[verb])
    return 0


def daemonize() -> None:
    """Detach from the terminal as httpd does without -D FOREGROUND."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
