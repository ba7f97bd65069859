"""A real Apache httpd 2.4 (worker MPM), optionally with mod_jk, on a loopback port."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from tests.peers.peer import Peer
from tests.peers.ports import free_port, wait_for_port

MODULES_DIR = Path("/usr/lib/apache2/modules")
MOD_JK = MODULES_DIR / "mod_jk.so"
#: Modules the generated config needs beyond those compiled into Debian's apache2.
MODULES = {
    "mpm_worker_module": "mod_mpm_worker.so",
    "authz_core_module": "mod_authz_core.so",
    "mime_module": "mod_mime.so",
    "dir_module": "mod_dir.so",
    "alias_module": "mod_alias.so",
    "status_module": "mod_status.so",
}
#: Small worker MPM sizing; ``mpm`` entries override these by directive name.
MPM_DEFAULTS = {
    "StartServers": 1,
    "ServerLimit": 4,
    "ThreadLimit": 64,
    "ThreadsPerChild": 25,
    "MaxRequestWorkers": 100,
    "MinSpareThreads": 25,
    "MaxSpareThreads": 75,
    "MaxConnectionsPerChild": 0,
}
#: The user httpd's children switch to when it is started as root.
RUN_USER = "www-data"


def apache2_binary() -> str:
    """Path of Debian's httpd binary (in /usr/sbin, which a non-root PATH may lack)."""
    return shutil.which("apache2") or "/usr/sbin/apache2"


class Apache(Peer):
    """Apache httpd serving ``document_root`` (default: ``<base>/htdocs``) on a free port.

    ``mpm`` overrides worker MPM directives by name (``{"ThreadsPerChild": 50}``).
    ``workers_properties`` (the text of a workers.properties) loads mod_jk, with
    ``jk_conf`` (``JkMount`` lines and other Jk directives) after the JkWorkersFile,
    JkShmFile, JkLogFile and JkLogLevel ``jk_log_level`` lines. ``extra_conf`` is
    appended to httpd.conf as is. ``/server-status`` is served by mod_status.

    Started as root, the children run as www-data: the document root must be reachable
    by that user, and the files already under it are made world-readable on first start.
    """

    name = "httpd"

    def __init__(
        self,
        document_root: str | os.PathLike[str] | None = None,
        *,
        mpm: Mapping[str, int | str] | None = None,
        workers_properties: str | None = None,
        jk_conf: str = "",
        jk_log_level: str = "info",
        extra_conf: str = "",
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(workdir)
        self.document_root = Path(document_root) if document_root else self.base / "htdocs"
        self.mpm = {**MPM_DEFAULTS, **(mpm or {})}
        self.workers_properties = workers_properties
        self.jk_conf = jk_conf
        self.jk_log_level = jk_log_level
        self.extra_conf = extra_conf
        self.host = "127.0.0.1"
        self.port = free_port(self.host)

    @property
    def conf_file(self) -> Path:
        """The generated httpd.conf."""
        return self.base / "conf" / "httpd.conf"

    @property
    def error_log(self) -> Path:
        """httpd's ErrorLog."""
        return self.base / "logs" / "error_log"

    @property
    def jk_log(self) -> Path:
        """mod_jk's JkLogFile."""
        return self.base / "logs" / "mod_jk.log"

    def url(self, path: str = "/") -> str:
        """The URL of ``path`` on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def httpd_conf(self) -> str:
        """The text of the httpd.conf this server runs with."""
        base = self.base
        lines = [f'ServerRoot "{base}"', "ServerName 127.0.0.1", f"Listen {self.host}:{self.port}"]
        lines += [f"LoadModule {name} {MODULES_DIR / file}" for name, file in MODULES.items()]
        if os.geteuid() == 0:
            lines += [f"User {RUN_USER}", f"Group {RUN_USER}"]
        lines += [
            f'DefaultRuntimeDir "{base}/run"',
            f'PidFile "{base}/run/httpd.pid"',
            f"Mutex file:{base}/run default",
            f'ErrorLog "{self.error_log}"',
            "LogLevel warn",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed',
            f'CustomLog "{base}/logs/access_log" timed',
            "TypesConfig /etc/mime.types",
            "KeepAlive On",
            "ExtendedStatus On",
            f'DocumentRoot "{self.document_root}"',
            f'<Directory "{self.document_root}">',
            "    Require all granted",
            "</Directory>",
            "DirectoryIndex index.html",
            "<Location /server-status>",
            "    SetHandler server-status",
            "</Location>",
        ]
        lines += [f"{name} {value}" for name, value in self.mpm.items()]
        if self.workers_properties is not None:
            lines += [
                f"LoadModule jk_module {MOD_JK}",
                f'JkWorkersFile "{base}/conf/workers.properties"',
                f'JkShmFile "{base}/run/jk.shm"',
                f'JkLogFile "{self.jk_log}"',
                f"JkLogLevel {self.jk_log_level}",
                self.jk_conf,
            ]
        lines.append(self.extra_conf)
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        for name in ("conf", "run", "htdocs"):
            (self.base / name).mkdir(exist_ok=True)
        if self.workers_properties is not None:
            (self.base / "conf" / "workers.properties").write_text(
                self.workers_properties, encoding="utf-8"
            )
        self.conf_file.write_text(self.httpd_conf(), encoding="utf-8")
        if os.geteuid() == 0:
            _make_readable(self.base)
            _make_readable(self.document_root)
            _check_reachable(self.document_root)

    def command(self) -> list[str]:
        return [apache2_binary(), "-f", str(self.conf_file), "-D", "FOREGROUND"]

    def wait_ready(self, deadline: float) -> None:
        wait_for_port(self.host, self.port, deadline - time.monotonic(), self._process)

    def log_files(self) -> list[Path]:
        return [self.error_log, self.jk_log, self.output_file]


def _make_readable(root: Path) -> None:
    """Let every user read ``root``'s files and enter its directories."""
    if not root.exists():
        return
    paths = [root, *root.rglob("*")]
    for path in paths:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = stat.S_IRGRP | stat.S_IROTH
        if path.is_dir():
            extra |= stat.S_IXGRP | stat.S_IXOTH
        path.chmod(mode | extra)


def _check_reachable(root: Path) -> None:
    for directory in root.resolve().parents:
        if not directory.stat().st_mode & stat.S_IXOTH:
            raise PermissionError(
                f"{RUN_USER} cannot enter {directory}, so httpd cannot serve {root}; "
                "put the files under Apache.document_root's default (<base>/htdocs)"
            )
