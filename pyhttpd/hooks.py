"""Hook registration and running, as httpd's ap_hook_* with APR's ordering."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pyhttpd.module import DECLINED, MIDDLE, OK

# How each hook runs (httpd's RUN_FIRST / RUN_ALL / VOID).
FIRST_RUN = "first"  # stop at the first result that is not DECLINED
ALL_RUN = "all"  # run all while results are OK or DECLINED
VOID_RUN = "void"  # run all, results ignored

HOOKS: dict[str, tuple[str, str]] = {
    "pre_config": (ALL_RUN, "before the config file is read (master)"),
    "check_config": (ALL_RUN, "after the config is read, also under -t (master)"),
    "post_config": (ALL_RUN, "after the config is read and checked (master, before fork)"),
    "child_init": (VOID_RUN, "in each child after fork"),
    "child_stopping": (VOID_RUN, "in a child that starts to stop (argument: graceful)"),
    "child_stopped": (VOID_RUN, "in a child whose connections are all done, before it exits"),
    "monitor": (ALL_RUN, "in the master, about once a second"),
    "pre_connection": (ALL_RUN, "per connection, before the first request is read"),
    "post_read_request": (ALL_RUN, "request line and headers read"),
    "translate_name": (FIRST_RUN, "URI to file name (Alias, DocumentRoot)"),
    "map_to_storage": (FIRST_RUN, "walk <Directory> and <Files> sections"),
    "header_parser": (ALL_RUN, "early header checks after the per-dir config is merged"),
    "access_checker": (ALL_RUN, "access control (Require)"),
    "type_checker": (FIRST_RUN, "content type and handler (mod_mime)"),
    "fixups": (ALL_RUN, "last changes before the handler"),
    "handler": (FIRST_RUN, "produce the response"),
    "log_transaction": (ALL_RUN, "after the response (mod_log_config)"),
    "status_hook": (ALL_RUN, "add to the server-status page"),
}


@dataclass(order=True)
class _Entry:
    order: int
    seq: int
    fn: Callable[..., Any] = field(compare=False)
    module: str = field(compare=False, default="")
    predecessors: tuple[str, ...] = field(compare=False, default=())
    successors: tuple[str, ...] = field(compare=False, default=())


class Hooks:
    """The hook table of one configuration generation."""

    def __init__(self) -> None:
        self._entries: dict[str, list[_Entry]] = {name: [] for name in HOOKS}
        self._sorted: dict[str, tuple[Callable[..., Any], ...]] = {}
        self._seq = 0

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        order: int = MIDDLE,
        *,
        module: str = "",
        predecessors: Iterable[str] = (),
        successors: Iterable[str] = (),
    ) -> None:
        """Register `fn` on hook `name`.

        `order` is one of REALLY_FIRST, FIRST, MIDDLE, LAST, REALLY_LAST (arithmetic allowed);
        `predecessors`/`successors` name modules that must run before/after this one.
        """
        if name not in self._entries:
            raise KeyError(f"unknown hook '{name}'; hooks are: {', '.join(HOOKS)}")
        self._seq += 1
        self._entries[name].append(
            _Entry(order, self._seq, fn, module, tuple(predecessors), tuple(successors))
        )
        self._sorted.pop(name, None)

    def get(self, name: str) -> tuple[Callable[..., Any], ...]:
        """The functions of a hook in run order."""
        fns = self._sorted.get(name)
        if fns is None:
            fns = self._sorted[name] = tuple(e.fn for e in _sort(self._entries[name]))
        return fns

    def table(self) -> dict[str, tuple[Callable[..., Any], ...]]:
        """Every hook's functions in run order, by hook name, for code that runs several
        hooks in a row (the request's path) and loops over them itself."""
        if len(self._sorted) != len(self._entries):
            for name in self._entries:
                self.get(name)
        return self._sorted

    def run_first(self, name: str, *args: Any) -> int:
        """Run until one function returns something other than DECLINED; return that."""
        for fn in self._sorted.get(name) or self.get(name):
            rv = fn(*args)
            if rv != DECLINED:
                return rv
        return DECLINED

    def run_all(self, name: str, *args: Any) -> int:
        """Run every function while they return OK or DECLINED; return the first other value."""
        for fn in self._sorted.get(name) or self.get(name):
            rv = fn(*args)
            if rv != OK and rv != DECLINED:
                return rv
        return OK

    def run_void(self, name: str, *args: Any) -> None:
        """Run every function, ignoring results."""
        for fn in self.get(name):
            fn(*args)


def _sort(entries: list[_Entry]) -> list[_Entry]:
    """Order by `order` (then registration), honouring predecessors/successors as APR does."""
    ordered = sorted(entries)
    by_module: dict[str, list[_Entry]] = {}
    for e in ordered:
        by_module.setdefault(e.module, []).append(e)
    after: dict[int, set[int]] = {id(e): set() for e in ordered}
    for e in ordered:
        for m in e.predecessors:
            after[id(e)].update(id(x) for x in by_module.get(m, ()))
        for m in e.successors:
            for x in by_module.get(m, ()):
                after[id(x)].add(id(e))
    result: list[_Entry] = []
    placed: set[int] = set()
    pending = list(ordered)
    while pending:
        for i, e in enumerate(pending):
            if after[id(e)] <= placed:
                result.append(e)
                placed.add(id(e))
                del pending[i]
                break
        else:  # a cycle: keep the numeric order for the rest
            result.extend(pending)
            break
    return result
