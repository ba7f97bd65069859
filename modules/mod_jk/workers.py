"""workers.properties, read the way mod_jk reads it (jk_map.c, jk_util.c) and typed.

The syntax is mod_jk's, not an ini file's:

- Lines are ``name=value``. Everything from ``#`` to the end of a line is a comment, names
  and values are trimmed, and there is no line continuation (jk_map.c has none). A line
  without ``=`` or with an empty value is skipped with a warning, as mod_jk skips it.
- ``worker.list`` and the list properties (``balance_workers``, ``mount``, ``user``,
  ``good``, ``bad``, ``fail_on_status``) accumulate when repeated; their items are
  separated by commas, spaces or tabs. Any other repeated key keeps its last value, with a
  warning.
- A key that does not start with ``worker.`` is a variable (``ps=/``,
  ``workers.tomcat_home=/opt/tomcat``). ``$(name)`` in a value expands to the value of an
  earlier key, else to the environment variable ``name``, else stays as written.
- ``worker.B.reference=worker.A`` gives B every ``worker.A.*`` property that B does not set
  itself. References chain (up to 20 deep) and are resolved before any worker is built.
- The workers are the ``worker.list`` entries (default ``ajp13``) and the members of the lb
  workers among them. A name with no properties at all becomes an ajp13 worker with the
  default values, as mod_jk makes it. A template that is only referenced is not a worker.
- Unknown attributes are errors (mod_jk refuses to start on them); deprecated ones
  (``balanced_workers``, ``jvm_route``, ``cachesize``, ``disabled``...) still work and warn.

configobj's file reader is not used: it refuses repeated keys, gives quotes and commas a
meaning mod_jk does not, and knows neither ``$(name)`` nor ``reference``, so the lines are
read here. The values are typed, range-checked and defaulted by configobj's
:class:`~configobj.validate.Validator` against the spec tables below, which hold mod_jk's
defaults. Defaults that depend on other values (``socket_connect_timeout``,
``connection_pool_minsize``, ``error_escalation_time``...) are derived afterwards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from configobj.validate import (
    ValidateError,
    Validator,
    VdtTypeError,
    VdtValueError,
    VdtValueTooBigError,
    VdtValueTooSmallError,
)

from pyhttpd.conftree import ConfigError

from .lb import Activation, Lock, Method

WORKER_TYPES = ("ajp13", "lb", "status")
LINE_LIMIT = 8192  # jk_map.c's LENGTH_OF_LINE
REFERENCE_DEPTH = 20  # jk_map.c's JK_MAP_RECURSION
NAME_LIMIT = 63  # jk_shm.h's JK_SHM_STR_SIZ: names, routes, domains
_WORKER_NAME = re.compile(r"[A-Za-z0-9_-]+")


class WorkersError(ConfigError):
    """A workers.properties error a user can act on: ``file:line: message`` (line 0: the file)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(file, line, "", message)


@dataclass
class WorkerSpec:
    """One worker: its name, type, typed properties (every one, defaults included) and origin."""

    name: str
    type: str
    properties: dict[str, Any]
    file: str
    line: int


@dataclass
class WorkersConfig:
    """The workers a workers.properties file defines."""

    workers: dict[str, WorkerSpec]
    worker_list: list[str]  # the workers that may be mapped to URIs
    maintain: int  # worker.maintain, seconds (0: no maintenance)
    warnings: list[str] = field(default_factory=list)  # ``file:line: message`` each


def _int(value: Any, min: str | None = None, max: str | None = None) -> int:
    """An integer with mod_jk's optional k/K (1024) or m/M (1024*1024) suffix."""
    text = str(value).strip()
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale > 1 else text
    try:
        number = int(digits) * scale
    except ValueError:
        raise VdtTypeError(value) from None
    if min is not None and number < int(min):
        raise VdtValueTooSmallError(value)
    if max is not None and number > int(max):
        raise VdtValueTooBigError(value)
    return number


def _bool(value: Any) -> bool:
    """mod_jk's booleans: on/1/t.../y..., off/0/f.../n... (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "1") or text[:1] in ("t", "y"):
        return True
    if text in ("off", "0") or text[:1] in ("f", "n"):
        return False
    raise VdtTypeError(value)


def _items(value: Any) -> list[str]:
    """A list property's items, split on commas, spaces and tabs."""
    if isinstance(value, list):
        return [str(item) for item in value]
    return [item for item in re.split(r"[\s,]+", str(value)) if item]


def _status_list(value: Any) -> list[int]:
    """fail_on_status: HTTP status codes, negative for "fail the request only"."""
    codes = []
    for item in _items(value):
        try:
            code = int(item)
        except ValueError:
            raise VdtTypeError(item) from None
        if not 100 <= abs(code) <= 999:
            raise VdtValueError(item)
        codes.append(code)
    return codes


def _enum_parser(enum: type[Activation] | type[Method] | type[Lock]) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, enum):
            return value
        try:
            return enum.parse(str(value))
        except ValueError:
            raise VdtValueError(value) from None
    return check


def _ping_mode(value: Any) -> str:
    """ping_mode letters C (connect), P (prepost), I (interval), A (all), in canonical order."""
    letters = set(str(value).strip().upper())
    if not letters <= set("CPIA"):
        raise VdtValueError(value)
    if "A" in letters:
        letters |= set("CPI")
    return "".join(letter for letter in "CPI" if letter in letters)


_VALIDATOR = Validator({
    "jk_int": _int,
    "jk_bool": _bool,
    "jk_list": _items,
    "jk_status_list": _status_list,
    "jk_activation": _enum_parser(Activation),
    "jk_method": _enum_parser(Method),
    "jk_lock": _enum_parser(Lock),
    "jk_ping_mode": _ping_mode,
})

# Every worker attribute by worker type, as configobj Validator checks with mod_jk's defaults.
# None means "derived from other values" (see _derive_*). Times: *_timeout of sockets and
# pools and recover/escalation times in seconds, the other timeouts and intervals in ms.
_COMMON = {
    "mount": "jk_list(default=list())",
}
_AJP13 = {
    "host": "string(default='localhost')",
    "port": "jk_int(min=0, max=65535, default=8009)",
    "source": "string(default=None)",
    "socket_timeout": "jk_int(min=0, default=0)",
    "socket_connect_timeout": "jk_int(min=0, default=None)",
    "socket_keepalive": "jk_bool(default=False)",
    "socket_buffer": "jk_int(min=0, default=0)",
    "ping_mode": "jk_ping_mode(default='')",
    "ping_timeout": "jk_int(min=0, default=10000)",
    "connect_timeout": "jk_int(min=0, default=0)",
    "prepost_timeout": "jk_int(min=0, default=0)",
    "connection_ping_interval": "jk_int(min=0, default=0)",
    "reply_timeout": "jk_int(min=0, default=0)",
    "connection_pool_size": "jk_int(min=1, default=None)",
    "connection_pool_minsize": "jk_int(min=0, default=None)",
    "connection_pool_timeout": "jk_int(min=0, default=0)",
    "connection_acquire_timeout": "jk_int(min=0, default=None)",
    "retries": "jk_int(default=2)",
    "retry_interval": "jk_int(min=0, default=100)",
    "recovery_options": "jk_int(min=0, max=31, default=0)",
    "fail_on_status": "jk_status_list(default=list())",
    "busy_limit": "jk_int(min=0, default=0)",
    "max_packet_size": "jk_int(min=0, default=8192)",
    "prefer_ipv6": "jk_bool(default=False)",
    "secret": "string(default=None)",
    "lbfactor": "jk_int(default=1)",
    "route": f"string(max={NAME_LIMIT}, default=None)",
    "domain": f"string(max={NAME_LIMIT}, default=None)",
    "redirect": f"string(max={NAME_LIMIT}, default='')",
    "activation": "jk_activation(default='A')",
    "distance": "jk_int(min=0, default=0)",
}
_LB = {
    "balance_workers": "jk_list(default=list())",
    "sticky_session": "jk_bool(default=True)",
    "sticky_session_force": "jk_bool(default=False)",
    "method": "jk_method(default='R')",
    "lock": "jk_lock(default='O')",
    "retries": "jk_int(default=2)",
    "lb_retries": "jk_int(default=2)",
    "retry_interval": "jk_int(min=0, default=100)",
    "recover_time": "jk_int(default=60)",
    "error_escalation_time": "jk_int(min=0, default=None)",
    "max_reply_timeouts": "jk_int(min=0, default=0)",
    "session_cookie": f"string(min=1, max={NAME_LIMIT}, default='JSESSIONID')",
    "session_path": f"string(min=1, max={NAME_LIMIT}, default=';jsessionid')",
    "set_session_cookie": "jk_bool(default=False)",
    "session_cookie_path": "string(default='/')",
    "secret": "string(default=None)",
}
_STATUS = {
    "css": "string(default=None)",
    "read_only": "jk_bool(default=False)",
    "user": "jk_list(default=list())",
    "user_case_insensitive": "jk_bool(default=False)",
    # jk_status.c's default masks; its docs print a.n for a.i.
    "good": "jk_list(default=list('a.o', 'a.i', 'a.b', 'a.r'))",
    "bad": "jk_list(default=list('s', 'e'))",
    "prefix": "string(default='worker')",
    "ns": "string(default='jk:')",
    "xmlns": "string(default=None)",
    "doctype": "string(default=None)",
}
_SPECS = {
    "ajp13": _COMMON | _AJP13,
    "lb": _COMMON | _LB,
    "status": _COMMON | _STATUS,
}
_RENAMED = {
    "balanced_workers": "balance_workers",
    "jvm_route": "route",
    "cachesize": "connection_pool_size",
    "cache_timeout": "connection_pool_timeout",
}
_DEPRECATED_FLAGS = {"disabled", "stopped"}  # replaced by activation
_IGNORED = {  # accepted by mod_jk for old worker types and since removed
    "recycle_timeout", "local_worker", "local_worker_only", "secretkey", "sysprops",
    "stdout", "stderr", "mx", "ms", "class_path", "bridge", "jvm_lib", "ld_path",
    "cmd_line", "native_lib",
}
_LIST_PROPERTIES = {"list", "balance_workers", "balanced_workers", "mount", "user", "good",
                    "bad", "fail_on_status"}
_KNOWN = (set().union(*_SPECS.values()) | set(_RENAMED) | _DEPRECATED_FLAGS | _IGNORED
          | {"type", "reference"})
_DEFAULT_XMLNS = 'xmlns:jk="http://tomcat.apache.org"'


@dataclass
class _Setting:
    """One key's value and where it was written; list keys keep each item's origin."""

    value: str
    file: str
    line: int
    items: list[tuple[str, str, int]] = field(default_factory=list)


class _Reader:
    """Accumulates lines into settings, with mod_jk's duplicate and substitution rules."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.flat: dict[str, str] = {}  # every key's current value, for $(name)
        self.variables: dict[str, _Setting] = {}
        self.globals: dict[str, _Setting] = {}
        self.workers: dict[str, dict[str, _Setting]] = {}
        self.origins: dict[str, tuple[str, int]] = {}  # where each worker is first mentioned
        self.warnings: list[str] = []

    def feed(self, file: str, line: int, text: str) -> None:
        if len(text) > LINE_LIMIT:
            raise WorkersError(file, line, f"line longer than {LINE_LIMIT} characters")
        text = text.split("#", 1)[0].strip()
        if not text:
            return
        key, equals, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key or not value:
            self.warnings.append(f"{file}:{line}: ignoring {text!r}: expected name=value")
            return
        value = self._substitute(value)
        if not key.startswith("worker."):
            self._put(self.variables, key, key, value, file, line, listed=False)
            return
        rest = key[len("worker."):]
        if rest in ("list", "maintain"):
            self._put(self.globals, key, rest, value, file, line, listed=rest == "list")
            return
        name, dot, prop = rest.rpartition(".")
        if not dot or not name:
            raise WorkersError(file, line, f"{key}: expected worker.<name>.<attribute>")
        _check_name(name, file, line)
        if prop not in _KNOWN:
            raise WorkersError(file, line, f"{key}: the attribute '{prop}' is not supported")
        if prop in _RENAMED:
            self.warnings.append(f"{file}:{line}: {key} is deprecated; use "
                                 f"worker.{name}.{_RENAMED[prop]}")
        elif prop in _DEPRECATED_FLAGS:
            self.warnings.append(f"{file}:{line}: {key} is deprecated; use "
                                 f"worker.{name}.activation")
        elif prop in _IGNORED:
            self.warnings.append(f"{file}:{line}: {key} is deprecated and ignored")
        self.origins.setdefault(name, (file, line))
        self._put(self.workers.setdefault(name, {}), key, prop, value, file, line,
                  listed=prop in _LIST_PROPERTIES)

    def _substitute(self, value: str) -> str:
        start = 0
        for _ in range(REFERENCE_DEPTH):
            begin = value.find("$(", start)
            end = value.find(")", begin)
            if begin < 0 or end < 0:
                break
            name = value[begin + 2:end]
            found = self.flat.get(name, self.environ.get(name))
            if found is None:
                start = end
                continue
            value = value[:begin] + found + value[end + 1:]
            start = begin + len(found)  # the expansion itself is not expanded again
        return value

    def _put(self, table: dict[str, _Setting], key: str, prop: str, value: str, file: str,
             line: int, *, listed: bool) -> None:
        old = table.get(prop)
        if listed:
            items = (old.items if old else []) + [(item, file, line) for item in _items(value)]
            setting = _Setting(",".join(item for item, _, _ in items), file, line, items)
        else:
            if old is not None and old.value != value:
                self.warnings.append(f"{file}:{line}: duplicate key {key}: {old.value!r} "
                                     f"(from line {old.line}) is replaced by {value!r}")
            setting = _Setting(value, file, line)
        table[prop] = setting
        self.flat[key] = setting.value


def _check_name(name: str, file: str, line: int) -> None:
    if not _WORKER_NAME.fullmatch(name):
        raise WorkersError(file, line, f"invalid worker name '{name}': use letters, digits, "
                                       "'_' and '-'")
    if len(name) > NAME_LIMIT:
        raise WorkersError(file, line, f"worker name '{name}' is longer than {NAME_LIMIT} "
                                       "characters")


def _resolve_references(workers: dict[str, dict[str, _Setting]]) -> None:
    done: set[str] = set()

    def resolve(name: str, chain: list[str]) -> None:
        if name in done:
            return
        settings = workers[name]
        reference = settings.get("reference")
        if reference is not None:
            where = (reference.file, reference.line)
            target = reference.value[len("worker."):] if reference.value.startswith(
                "worker.") else ""
            if not target:
                raise WorkersError(*where, f"worker.{name}.reference={reference.value}: "
                                           "name the template as worker.<name>")
            if target in chain or target == name:
                loop = " -> ".join([*chain, name, target])
                raise WorkersError(*where, f"worker.{name}.reference: reference loop {loop}")
            if len(chain) >= REFERENCE_DEPTH:
                raise WorkersError(*where, f"worker.{name}.reference: references nest deeper "
                                           f"than {REFERENCE_DEPTH}")
            if target not in workers:
                raise WorkersError(*where, f"worker.{name}.reference: reference "
                                           f"'{reference.value}' not found")
            resolve(target, [*chain, name])
            for prop, setting in workers[target].items():
                settings.setdefault(prop, setting)
        done.add(name)

    for name in list(workers):
        resolve(name, [])


class _Builder:
    """Builds typed WorkerSpecs from resolved settings."""

    def __init__(self, reader: _Reader, threads_per_child: int) -> None:
        self.settings = reader.workers
        self.origins = reader.origins
        self.warnings = reader.warnings
        self.threads_per_child = threads_per_child
        self.built: dict[str, WorkerSpec] = {}

    def build(self, name: str, file: str, line: int) -> WorkerSpec:
        if name in self.built:
            return self.built[name]
        settings = self.settings.get(name)
        if settings is None:
            self.warnings.append(f"{file}:{line}: worker '{name}' has no properties; it is an "
                                 "ajp13 worker with the default values (localhost:8009)")
            settings = {}
        type_setting = settings.get("type")
        wtype = type_setting.value if type_setting else "ajp13"
        origin = self.origins.get(name, (file, line))
        if wtype not in WORKER_TYPES:
            where = (type_setting.file, type_setting.line) if type_setting else origin
            raise WorkersError(*where, f"worker.{name}.type: unknown worker type '{wtype}' "
                                       f"(supported: {', '.join(WORKER_TYPES)})")
        properties = self._typed(name, wtype, settings)
        spec = WorkerSpec(name, wtype, properties, *origin)
        self.built[name] = spec
        if wtype == "ajp13":
            self._derive_ajp13(spec, settings)
        elif wtype == "lb":
            self._derive_lb(spec, settings, origin)
        else:
            self._derive_status(spec)
        return spec

    def _typed(self, name: str, wtype: str, settings: dict[str, _Setting]) -> dict[str, Any]:
        spec = _SPECS[wtype]
        renamed = {new: old for old, new in _RENAMED.items()}
        properties: dict[str, Any] = {}
        for prop, check in spec.items():
            setting = settings.get(prop) or settings.get(renamed.get(prop, ""))
            try:
                if setting is None:
                    properties[prop] = _VALIDATOR.check(check, None, missing=True)
                else:
                    properties[prop] = _VALIDATOR.check(check, setting.value)
            except ValidateError as exc:
                assert setting is not None  # the defaults are valid
                raise WorkersError(setting.file, setting.line,
                                   f"worker.{name}.{prop}={setting.value}: {exc}") from None
        used = set(spec) | {old for old, new in _RENAMED.items() if new in spec}
        for prop, setting in settings.items():
            if prop not in used | _IGNORED | _DEPRECATED_FLAGS | {"type", "reference"}:
                self.warnings.append(f"{setting.file}:{setting.line}: worker.{name}.{prop} "
                                     f"does not apply to a worker of type {wtype}; ignored")
        return properties

    def _flag(self, name: str, settings: dict[str, _Setting], prop: str) -> bool:
        setting = settings.get(prop)
        if setting is None:
            return False
        try:
            return _bool(setting.value)
        except ValidateError as exc:
            raise WorkersError(setting.file, setting.line,
                               f"worker.{name}.{prop}={setting.value}: {exc}") from None

    def _derive_ajp13(self, spec: WorkerSpec, settings: dict[str, _Setting]) -> None:
        p = spec.properties
        if p["socket_connect_timeout"] is None:
            p["socket_connect_timeout"] = p["socket_timeout"] * 1000
        mode = set(p["ping_mode"])
        # Each probe has its own timeout, taken from ping_timeout when the mode asks for it;
        # the legacy timeouts switch their probe on by themselves.
        for letter, timeout in (("C", "connect_timeout"), ("P", "prepost_timeout")):
            if letter in mode and p[timeout] == 0:
                p[timeout] = p["ping_timeout"]
            if p[timeout] > 0:
                mode.add(letter)
        if "I" in mode and p["connection_ping_interval"] == 0:
            p["connection_ping_interval"] = p["ping_timeout"] // 100
        if p["connection_ping_interval"] > 0:
            mode.add("I")
        p["ping_mode"] = "".join(letter for letter in "CPI" if letter in mode)
        if p["retries"] < 1:
            p["retries"] = 2
        if p["connection_pool_size"] is None:
            p["connection_pool_size"] = self.threads_per_child
        if p["connection_pool_minsize"] is None:
            p["connection_pool_minsize"] = (p["connection_pool_size"] + 1) // 2
        p["connection_pool_minsize"] = min(p["connection_pool_minsize"],
                                           p["connection_pool_size"])
        if p["connection_acquire_timeout"] is None:
            p["connection_acquire_timeout"] = p["retries"] * p["retry_interval"]
        size = -(-p["max_packet_size"] // 1024) * 1024
        p["max_packet_size"] = min(max(size, 8192), 65536)
        if 0 < p["socket_buffer"] < p["max_packet_size"]:
            p["socket_buffer"] = p["max_packet_size"]
        p["lbfactor"] = max(p["lbfactor"], 1)
        if p["route"] is None:
            p["route"] = spec.name
        if p["domain"] is None:
            head, dot, _ = p["route"].partition(".")
            p["domain"] = head if dot else ""
        if "activation" not in settings:
            if self._flag(spec.name, settings, "stopped"):
                p["activation"] = Activation.STOPPED
            elif self._flag(spec.name, settings, "disabled"):
                p["activation"] = Activation.DISABLED

    def _derive_lb(self, spec: WorkerSpec, settings: dict[str, _Setting],
                   origin: tuple[str, int]) -> None:
        p = spec.properties
        p["retries"] = max(p["retries"], 1)
        p["lb_retries"] = max(p["lb_retries"], 1)
        p["recover_time"] = max(p["recover_time"], 1)
        if p["error_escalation_time"] is None:
            p["error_escalation_time"] = p["recover_time"] // 2
        members = settings.get("balance_workers") or settings.get("balanced_workers")
        if members is None or not members.items:
            raise WorkersError(*origin, f"worker.{spec.name}.balance_workers: an lb worker "
                                        "needs at least one member")
        names: list[str] = []
        routes: dict[str, str] = {}
        for member_name, file, line in members.items:
            _check_name(member_name, file, line)
            if member_name in names:
                raise WorkersError(file, line, f"worker.{spec.name}.balance_workers: member "
                                               f"'{member_name}' is listed twice")
            if member_name == spec.name:
                raise WorkersError(file, line, f"worker.{spec.name}.balance_workers: an lb "
                                               "worker cannot balance itself")
            member = self.build(member_name, file, line)
            if member.type != "ajp13":
                raise WorkersError(file, line, f"worker.{spec.name}.balance_workers: member "
                                               f"'{member_name}' is a worker of type "
                                               f"{member.type}; members must be ajp13 workers")
            mp = member.properties
            if mp["secret"] is None:
                mp["secret"] = p["secret"]
            if mp["port"] == 0:
                mp["activation"] = Activation.STOPPED  # mod_jk: activated later via jkstatus
            if mp["route"] in routes:
                raise WorkersError(file, line, f"worker.{spec.name}.balance_workers: members "
                                               f"'{routes[mp['route']]}' and '{member_name}' "
                                               f"share the route '{mp['route']}'")
            routes[mp["route"]] = member_name
            names.append(member_name)
        for member_name in names:
            redirect = self.built[member_name].properties["redirect"]
            if redirect and redirect not in routes:
                member = self.built[member_name]
                self.warnings.append(f"{member.file}:{member.line}: worker.{member_name}."
                                     f"redirect: no member of '{spec.name}' has the route "
                                     f"'{redirect}'")
        p["balance_workers"] = names

    def _derive_status(self, spec: WorkerSpec) -> None:
        p = spec.properties
        if p["xmlns"] is None:
            p["xmlns"] = _DEFAULT_XMLNS
        for prop in ("ns", "xmlns"):
            if p[prop] == "-":
                p[prop] = ""


def parse_workers_properties(
    lines: Iterable[tuple[str, int, str]],
    *,
    environ: Mapping[str, str] | None = None,
    threads_per_child: int = 1,
) -> WorkersConfig:
    """Build the workers from ``(file, line number, text)`` lines in workers.properties syntax.

    JkWorkerProperty lines and the JkWorkersFile can be fed together this way.
    ``threads_per_child`` is the default ``connection_pool_size`` (httpd's ThreadsPerChild,
    as mod_jk asks the MPM); ``environ`` answers ``$(name)`` for names not defined earlier.
    Raises :class:`WorkersError` naming the file and line of the first error.
    """
    reader = _Reader(os.environ if environ is None else environ)
    first_file = ""
    for file, number, text in lines:
        first_file = first_file or file
        reader.feed(file, number, text)
    _resolve_references(reader.workers)
    builder = _Builder(reader, threads_per_child)

    listed = reader.globals.get("list")
    entries = listed.items if listed else [("ajp13", first_file, 0)]
    worker_list: list[str] = []
    for name, file, line in entries:
        _check_name(name, file, line)
        if name not in worker_list:
            worker_list.append(name)
            builder.build(name, file, line)

    maintain_setting = reader.globals.get("maintain")
    maintain = 60
    if maintain_setting is not None:
        try:
            maintain = max(_int(maintain_setting.value), 0)
        except ValidateError as exc:
            raise WorkersError(maintain_setting.file, maintain_setting.line,
                               f"worker.maintain={maintain_setting.value}: {exc}") from None
    return WorkersConfig(builder.built, worker_list, maintain, reader.warnings)


def read_workers_properties(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    threads_per_child: int = 1,
) -> WorkersConfig:
    """Read a workers.properties file (see :func:`parse_workers_properties`)."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8", errors="replace") as stream:
            text = stream.read()
    except OSError as exc:
        raise WorkersError(file, 0, f"cannot read the workers file: {exc.strerror}") from None
    lines = [(file, number, line) for number, line in enumerate(text.splitlines(), start=1)]
    return parse_workers_properties(lines, environ=environ, threads_per_child=threads_per_child)
