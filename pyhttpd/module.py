"""The module API: what a pyhttpd module is, as httpd's `module` structure.

A module is an object with a `name` (httpd's identifier, e.g. ``status_module``), a table
of directives, constructors and merge functions for its per-server and per-directory
configs, and a `register_hooks` method. A plugin needs nothing but this file,
`pyhttpd.directive`, `pyhttpd.hooks` and `pyhttpd.request`.

Hook functions return OK, DECLINED, DONE or an HTTP status (an error response).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyhttpd.directive import Directive, merge_set

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.hooks import Hooks
    from pyhttpd.server import Server

OK = 0
DECLINED = -1
DONE = -2

# Hook order values, as APR_HOOK_*; arithmetic such as FIRST - 2 is allowed.
REALLY_FIRST = -10
FIRST = 0
MIDDLE = 10
LAST = 20
REALLY_LAST = 30


class Module:
    """Base class of every module; override what the module needs.

    Config objects are whatever the module likes; the default merge treats dataclass
    fields left at None as unset, so the more specific config overrides the other where set.
    """

    name: str = ""
    directives: tuple[Directive, ...] = ()

    def create_server_config(self, server: Server) -> Any:
        """A fresh per-server config for the main server or a virtual host."""
        return None

    def merge_server_config(self, base: Any, add: Any) -> Any:
        """The config of a virtual host (`add`) merged over the main server's (`base`)."""
        return merge_set(base, add)

    def create_dir_config(self, path: str | None) -> Any:
        """A fresh per-directory config for a section (`path` is its pattern) or the server."""
        return None

    def merge_dir_config(self, base: Any, add: Any) -> Any:
        """A more specific section's config (`add`) merged over the less specific (`base`)."""
        return merge_set(base, add)

    def register_hooks(self, hooks: Hooks) -> None:
        """Register this module's hook functions."""

    def helpers(self, config: Config) -> list[Helper]:
        """Long-lived helper processes this module asks the master to run and supervise."""
        return []

    def __repr__(self) -> str:
        return f"<module {self.name}>"


class Helper:
    """A process the master forks and restarts when it dies, as httpd's mod_cgid daemon.

    `run()` is called in the new process after fork and should not return while the
    server runs; the master sends SIGTERM at stop.
    """

    def __init__(self, name: str, run: Any) -> None:
        self.name = name
        self.run = run

    def __repr__(self) -> str:
        return f"<helper {self.name}>"
