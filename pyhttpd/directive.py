"""Directive declarations: a directive is data (name, argument kind, contexts, help).

Parsing, validation, error messages and docs/directives.md all read these declarations,
as httpd's command_rec tables drive both the server and `httpd -L`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyhttpd.config import Config, Node
    from pyhttpd.sections import Section
    from pyhttpd.server import Server


class Args(enum.Enum):
    """How a directive takes its arguments (httpd's `cmd_how`)."""

    RAW_ARGS = "raw"  # the handler gets the rest of the line as one string
    TAKE1 = "1"
    TAKE2 = "2"
    TAKE3 = "3"
    TAKE12 = "1-2"
    TAKE13 = "1,3"
    TAKE23 = "2-3"
    TAKE123 = "1-3"
    ITERATE = "iterate"  # the handler is called once per argument
    ITERATE2 = "iterate2"  # called with the first argument and each of the rest
    FLAG = "flag"  # On or Off, passed as bool
    NO_ARGS = "0"
    TAKE_ARGV = "argv"  # the handler gets every argument


_COUNTS: dict[Args, tuple[int, ...]] = {
    Args.TAKE1: (1,),
    Args.TAKE2: (2,),
    Args.TAKE3: (3,),
    Args.TAKE12: (1, 2),
    Args.TAKE13: (1, 3),
    Args.TAKE23: (2, 3),
    Args.TAKE123: (1, 2, 3),
    Args.NO_ARGS: (0,),
}


class Context(enum.IntFlag):
    """Where a directive may appear (httpd's RSRC_CONF / ACCESS_CONF / GLOBAL_ONLY)."""

    SERVER = 1  # the main server config, outside every section
    VIRTUALHOST = 2
    DIRECTORY = 4  # <Directory>, <DirectoryMatch>
    LOCATION = 8  # <Location>, <LocationMatch>
    FILES = 16  # <Files>, <FilesMatch>
    GLOBAL_ONLY = SERVER
    RSRC_CONF = SERVER | VIRTUALHOST
    ACCESS_CONF = DIRECTORY | LOCATION | FILES
    OR_ALL = SERVER | VIRTUALHOST | DIRECTORY | LOCATION | FILES


CONTEXT_WORDS = {
    Context.SERVER: "server config",
    Context.VIRTUALHOST: "virtual host",
    Context.DIRECTORY: "directory",
    Context.LOCATION: "location",
    Context.FILES: "files",
}


class DirectiveError(Exception):
    """Raised by a directive handler for a bad value; the config reader adds file:line."""


Handler = Callable[..., None]


@dataclass(frozen=True)
class Directive:
    """One configuration directive of a module.

    `handler(cmd, cfg, *args)` is called for each use. `cfg` is the module's per-server
    config (scope "server") or the per-directory config of the enclosing section (scope
    "dir"). A handler raises DirectiveError with a message the user can act on.
    """

    name: str
    how: Args
    context: Context
    help: str
    handler: Handler
    syntax: str = ""
    default: str | None = None
    scope: str = "server"

    def check_args(self, args: Sequence[str]) -> str | None:
        """Return an error message when `args` does not fit this directive's kind."""
        n = len(args)
        if self.how in _COUNTS:
            allowed = _COUNTS[self.how]
            if n not in allowed:
                if self.how is Args.NO_ARGS:
                    return f"{self.name} takes no arguments"
                words = " or ".join(str(a) for a in allowed)
                return f"{self.name} takes {words} argument{'s' if allowed != (1,) else ''}, {self.help}"
        elif self.how is Args.FLAG:
            if n != 1 or args[0].lower() not in ("on", "off"):
                return f"{self.name} must be On or Off"
        elif self.how is Args.ITERATE and n == 0:
            return f"{self.name} requires at least one argument, {self.help}"
        elif self.how is Args.ITERATE2 and n < 2:
            return f"{self.name} requires at least two arguments, {self.help}"
        return None

    def contexts_text(self) -> str:
        """The allowed contexts in httpd's documentation words."""
        return ", ".join(w for c, w in CONTEXT_WORDS.items() if c in self.context)


@dataclass
class CmdParms:
    """What a directive handler knows about where it is being used (httpd's cmd_parms)."""

    directive: Directive
    node: Node
    config: Config
    server: Server
    section: Section | None

    @property
    def server_root(self) -> str:
        return self.config.server_root

    def resolve(self, path: str) -> str:
        """A path relative to ServerRoot, as httpd's ap_server_root_relative."""
        return self.config.resolve(path)

    def server_config(self, module_name: str) -> Any:
        """The per-server config object of a module for the server being configured."""
        return self.server.module_config[module_name]

    def where(self) -> str:
        return f"{self.node.file}:{self.node.line}"


# Slot setters, like httpd's ap_set_int_slot / ap_set_flag_slot: most directives only
# store one typed value in a config field.


def set_str(attr: str, *, path: bool = False) -> Handler:
    """Store the argument as a string (resolved against ServerRoot when `path`)."""

    def handler(cmd: CmdParms, cfg: Any, value: str) -> None:
        setattr(cfg, attr, cmd.resolve(value) if path else value)

    return handler


def set_int(attr: str, minimum: int | None = None, maximum: int | None = None) -> Handler:
    """Store the argument as an int, checking its range."""

    def handler(cmd: CmdParms, cfg: Any, value: str) -> None:
        setattr(cfg, attr, parse_int(cmd.directive.name, value, minimum, maximum))

    return handler


def set_seconds(attr: str) -> Handler:
    """Store a duration in seconds (a non-negative number, fractions allowed)."""

    def handler(cmd: CmdParms, cfg: Any, value: str) -> None:
        try:
            seconds = float(value)
        except ValueError:
            raise DirectiveError(f"'{value}' is not a number of seconds") from None
        if seconds < 0:
            raise DirectiveError(f"'{value}' must not be negative")
        setattr(cfg, attr, seconds)

    return handler


def set_flag(attr: str) -> Handler:
    """Store On/Off as a bool."""

    def handler(cmd: CmdParms, cfg: Any, value: bool) -> None:
        setattr(cfg, attr, value)

    return handler


def set_choice(attr: str, choices: Sequence[str]) -> Handler:
    """Store one of a fixed set of words (case-insensitive), as the canonical spelling."""
    canonical = {c.lower(): c for c in choices}

    def handler(cmd: CmdParms, cfg: Any, value: str) -> None:
        if value.lower() not in canonical:
            raise DirectiveError(f"'{value}' is not one of {', '.join(choices)}")
        setattr(cfg, attr, canonical[value.lower()])

    return handler


def append_to(attr: str) -> Handler:
    """Append the arguments (one tuple per use, or one string for a single argument)."""

    def handler(cmd: CmdParms, cfg: Any, *values: str) -> None:
        current = getattr(cfg, attr)
        item = values[0] if len(values) == 1 else tuple(values)
        setattr(cfg, attr, [*(current or []), item])

    return handler


def parse_int(name: str, value: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """Parse an integer argument or raise DirectiveError naming the bad value."""
    try:
        number = int(value, 10)
    except ValueError:
        raise DirectiveError(f"'{value}' is not an integer") from None
    if minimum is not None and number < minimum:
        raise DirectiveError(f"{number} is below the minimum of {minimum}")
    if maximum is not None and number > maximum:
        raise DirectiveError(f"{number} is above the maximum of {maximum}")
    return number


def merge_set(base: Any, add: Any) -> Any:
    """Merge two dataclass configs: fields `add` set (not None) override `base`.

    The usual httpd merge rule ("add overrides base where set"); neither input is changed.
    """
    if base is None:
        return add
    if add is None:
        return base
    changes = {}
    for f in fields(add):
        value = getattr(add, f.name)
        if value is not None:
            changes[f.name] = value
    return replace(base, **changes)
