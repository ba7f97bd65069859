"""URI to worker mapping: JkMount, JkUnMount, uriworkermap.properties and ``worker.X.mount``.

The rules are mod_jk's (jk_uri_worker_map.c):

- A rule is ``pattern=worker[;extension=value...]``. A pattern starts with ``/`` after
  optional prefixes: ``-`` disables the rule, ``!`` makes it an exclusion (an unmount).
  ``X|Y`` stands for the two rules ``X`` and ``XY`` (``/app|/*`` mounts ``/app`` and
  ``/app/*``). Patterns are case-sensitive.
- ``*`` matches any run of characters, ``/`` included, and ``?`` exactly one character. A
  pattern with either is a wildcard rule; any other is exact (whole-URI equality).
- Rules are tried most specific first: more ``/`` in the pattern, then a longer pattern,
  then by source (uriworkermap file, JkMount, worker.X.mount). The first enabled mount
  that matches wins; an exclusion that matches the URI then cancels it when it names the
  same worker or ``*``, wherever it sorts.
- The URI matched is the decoded URI normalised as mod_jk does: path parameters (such as
  ``;jsessionid=...``) are removed from every segment, ``//`` collapses, ``.`` and ``..``
  segments are resolved; climbing above the root is an error (400).

A :class:`MountFile` re-reads its uriworkermap.properties when the file's mtime changed,
checked at most every ``JkMountFileReload`` seconds; the time is passed in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property

from pyhttpd.conftree import ConfigError

from .lb import Activation
from .workers import WorkersConfig

DEFAULT_RELOAD = 60  # JkMountFileReload's default, seconds


class UriMapError(ConfigError):
    """A bad mapping rule: ``file:line: message`` (line 0: the file as a whole)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(file, line, "", message)


class UriError(ValueError):
    """A request URI that cannot be mapped safely (the request gets 400)."""


class Source(IntEnum):
    """Where a rule comes from; a higher value wins a tie in precedence."""

    WORKERDEF = 1
    JKMOUNT = 2
    URIMAP = 3

    @property
    def text(self) -> str:
        """The name jkstatus shows."""
        return ("worker definition", "JkMount", "uriworkermap")[self - 1]


@dataclass(frozen=True)
class RuleExtensions:
    """A rule's ``;name=value`` extensions; None or empty means "as the worker says"."""

    reply_timeout: int | None = None  # ms
    sticky_ignore: bool = False
    stateless: bool = False
    active: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    fail_on_status: tuple[int, ...] = ()
    use_server_errors: int = 0
    session_cookie: str | None = None
    session_path: str | None = None
    set_session_cookie: bool = False
    session_cookie_path: str | None = None

    @cached_property
    def activations(self) -> dict[str, Activation]:
        """Member activations this mapping overrides, by member name (do not change it)."""
        overrides = {}
        for names, activation in ((self.active, Activation.ACTIVE),
                                  (self.disabled, Activation.DISABLED),
                                  (self.stopped, Activation.STOPPED)):
            overrides.update(dict.fromkeys(names, activation))
        return overrides


@dataclass(frozen=True)
class MountRule:
    """One mapping rule and where it was written."""

    pattern: str  # without the '-' and '!' prefixes
    worker: str
    source: Source
    file: str = ""
    line: int = 0
    disabled: bool = False
    exclusion: bool = False
    extensions: RuleExtensions = field(default_factory=RuleExtensions)

    @property
    def wildchar(self) -> bool:
        """Whether the pattern has ``*`` or ``?`` (otherwise it is an exact rule)."""
        return "*" in self.pattern or "?" in self.pattern

    def matches(self, uri: str) -> bool:
        """Whether ``uri`` (already normalised) matches the pattern."""
        return self._match(uri)

    @cached_property
    def _match(self) -> Callable[[str], bool]:
        pattern = self.pattern
        if not self.wildchar:
            return pattern.__eq__
        prefix = pattern[:-1]
        if pattern.endswith("/*") and "*" not in prefix and "?" not in prefix:
            return lambda uri: uri.startswith(prefix)  # "/app/*": anything under /app/
        fullmatch = _compiled(pattern).fullmatch
        return lambda uri: fullmatch(uri) is not None

    def precedence(self) -> tuple[int, int, int]:
        """Sort key: more slashes, then longer, then the stronger source come first."""
        return (-self.pattern.count("/"), -len(self.pattern), -self.source)


_patterns: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _patterns.get(pattern)
    if compiled is None:
        parts = (".*" if char == "*" else "." if char == "?" else re.escape(char)
                 for char in pattern)
        compiled = _patterns[pattern] = re.compile("".join(parts), re.DOTALL)
    return compiled


def normalize_uri(uri: str) -> str:
    """mod_jk's normalisation of a decoded URI before mapping (see the module docstring).

    Raises :class:`UriError` for a URI that does not start with ``/`` or climbs above the root.
    """
    if not uri.startswith("/"):
        raise UriError(f"{uri!r} does not start with '/'")
    if "//" not in uri and "/." not in uri and ";" not in uri:
        return uri  # nothing to collapse, resolve or strip
    kept: list[str] = []
    trailing_slash = False
    for segment in uri[1:].split("/"):
        segment = segment.split(";", 1)[0]
        trailing_slash = segment in ("", ".", "..")
        if segment == "..":
            if not kept:
                raise UriError(f"{uri!r} climbs above the root")
            kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    if not kept:
        return "/"
    return "/" + "/".join(kept) + ("/" if trailing_slash else "")


def parse_rule(pattern: str, worker: str, source: Source, file: str = "",
               line: int = 0) -> list[MountRule]:
    """The rules one ``pattern=worker;extensions`` line means (two for ``X|Y``)."""
    text = pattern.strip()
    disabled = text.startswith("-")
    text = text.removeprefix("-")
    exclusion = text.startswith("!")
    text = text.removeprefix("!")
    name, extensions = _parse_extensions(worker.strip(), file, line)
    if not name:
        raise UriMapError(file, line, f"{pattern}: no worker named")
    head, bar, tail = text.partition("|")
    patterns = [head, head + tail] if bar else [text]
    for each in patterns:
        if not each.startswith("/"):
            raise UriMapError(file, line, f"invalid mapping rule {pattern}={worker}: the URI "
                                          "pattern must start with '/'")
    return [MountRule(each, name, source, file, line, disabled, exclusion, extensions)
            for each in patterns]


_FLAGS = {"sticky_ignore", "stateless", "set_session_cookie"}
_NUMBERS = {"reply_timeout", "use_server_errors"}
_NAME_LISTS = {"active", "disabled", "stopped"}
_TEXTS = {"session_cookie", "session_path", "session_cookie_path"}


def _parse_extensions(value: str, file: str, line: int) -> tuple[str, RuleExtensions]:
    name, *params = value.split(";")
    found: dict[str, object] = {}
    params.reverse()
    while params:
        param = params.pop().strip()
        if not param:
            continue
        key, equals, raw = param.partition("=")
        if not equals or key not in _FLAGS | _NUMBERS | _NAME_LISTS | _TEXTS | {"fail_on_status"}:
            raise UriMapError(file, line, f"unknown rule extension '{param}'")
        if key in found:
            raise UriMapError(file, line, f"rule extension '{key}' is only allowed once")
        if key == "session_path" and not raw and params:
            raw = ";" + params.pop()  # session_path=;jsessionid: its value has the ';'
        try:
            if key in _FLAGS:
                found[key] = int(raw) != 0
            elif key in _NUMBERS:
                found[key] = int(raw)
            elif key == "fail_on_status":
                found[key] = tuple(int(code) for code in re.split(r"[\s,]+", raw) if code)
            elif key in _NAME_LISTS:
                found[key] = tuple(item for item in re.split(r"[\s,]+", raw) if item)
            else:
                found[key] = raw
        except ValueError:
            raise UriMapError(file, line, f"rule extension '{param}': not a number") from None
    return name.strip(), RuleExtensions(**found)  # type: ignore[arg-type]


def read_uriworkermap(path: str | os.PathLike[str],
                      environ: Mapping[str, str] | None = None) -> list[MountRule]:
    """The rules of a uriworkermap.properties file (``#`` comments, ``$(name)`` expansion).

    Raises :class:`UriMapError` naming the file and line of the first bad rule.
    """
    file = os.fspath(path)
    env = os.environ if environ is None else environ
    try:
        with open(file, encoding="utf-8", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError as exc:
        raise UriMapError(file, 0, f"cannot read the mount file: {exc.strerror}") from None
    defined: dict[str, str] = {}
    entries: dict[str, list[MountRule]] = {}
    for number, text in enumerate(lines, start=1):
        text = text.split("#", 1)[0].strip()
        if not text:
            continue
        pattern, equals, worker = text.partition("=")
        pattern, worker = pattern.strip(), _expand(worker.strip(), defined, env)
        if not equals or not pattern or not worker:
            raise UriMapError(file, number, f"expected /uri=worker, got {text!r}")
        # A repeated pattern replaces the earlier rule (mod_jk leaves the outcome undefined).
        entries.pop(pattern, None)
        entries[pattern] = parse_rule(pattern, worker, Source.URIMAP, file, number)
        defined[pattern] = worker
    return [rule for rules in entries.values() for rule in rules]


def _expand(value: str, defined: Mapping[str, str], environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return defined.get(name, environ.get(name, match.group(0)))
    return re.sub(r"\$\(([^)]*)\)", replace, value)


class MountFile:
    """A JkMountFile: its rules, re-read when the file changes.

    The mtime is checked at most every ``reload`` seconds (0: never). A reload that finds a
    bad rule keeps the previous rules and puts the reason in :attr:`error`.
    """

    def __init__(self, path: str | os.PathLike[str], reload: int = DEFAULT_RELOAD,
                 environ: Mapping[str, str] | None = None) -> None:
        self.path = os.fspath(path)
        self.reload = reload
        self.environ = environ
        self.rules: list[MountRule] = []
        self.error: str | None = None
        self.modified: float | None = None
        self.checked = 0.0

    def load(self, now: float) -> list[MountRule]:
        """Read the file now (at start-up); raises :class:`UriMapError` on a bad rule."""
        try:
            modified = os.stat(self.path).st_mtime
        except OSError as exc:
            raise UriMapError(self.path, 0, f"cannot read the mount file: {exc.strerror}") from None
        self.rules = read_uriworkermap(self.path, self.environ)
        self.modified = modified
        self.checked = now
        self.error = None
        return self.rules

    def check(self, now: float) -> bool:
        """Re-read the file if the check interval passed and it changed; True if re-read."""
        if self.reload <= 0 or now - self.checked <= self.reload:
            return False
        self.checked = now
        try:
            modified = os.stat(self.path).st_mtime
        except OSError as exc:
            self.error = f"{self.path}: cannot stat the mount file: {exc.strerror}"
            return False
        if modified == self.modified:
            return False
        self.modified = modified
        try:
            self.rules = read_uriworkermap(self.path, self.environ)
        except UriMapError as exc:
            self.error = str(exc)
            return False
        self.error = None
        return True


class UriWorkerMap:
    """The mapping of URIs to workers of one server (global or a virtual host).

    ``reject_unsafe`` is JkOptions +RejectUnsafeURI: a URI with ``%`` or ``\\`` after
    decoding is never mapped.
    """

    def __init__(self, mount_file: MountFile | None = None, reject_unsafe: bool = False) -> None:
        self.mount_file = mount_file
        self.reject_unsafe = reject_unsafe
        self._rules: list[MountRule] = []
        if mount_file is not None:
            self.replace_source(Source.URIMAP, mount_file.rules)

    @property
    def rules(self) -> list[MountRule]:
        """Every rule, in the order they are tried."""
        return list(self._rules)

    def add(self, pattern: str, worker: str, *, source: Source = Source.JKMOUNT,
            file: str = "", line: int = 0) -> list[MountRule]:
        """Add a rule (``JkMount /app/* lb``; JkUnMount passes ``"!" + path``)."""
        rules = parse_rule(pattern, worker, source, file, line)
        self._insert(rules)
        return rules

    def add_worker_mounts(self, workers: WorkersConfig) -> None:
        """Add the ``worker.X.mount`` rules of the workers in ``worker.list``."""
        for name in workers.worker_list:
            spec = workers.workers[name]
            for pattern in spec.properties["mount"]:
                self.add(pattern, name, source=Source.WORKERDEF, file=spec.file, line=spec.line)

    def replace_source(self, source: Source, rules: Iterable[MountRule]) -> None:
        """Replace every rule of ``source`` at once (a reloaded mount file)."""
        kept = [rule for rule in self._rules if rule.source != source]
        self._rules = []
        self._insert([*kept, *rules])

    def _insert(self, rules: Iterable[MountRule]) -> None:
        self._rules = sorted([*self._rules, *rules], key=MountRule.precedence)

    def refresh(self, now: float) -> bool:
        """Pick up a changed mount file (when its check is due); True if the rules changed."""
        if self.mount_file is None or not self.mount_file.check(now):
            return False
        self.replace_source(Source.URIMAP, self.mount_file.rules)
        return True

    def lookup(self, uri: str, now: float | None = None) -> MountRule | None:
        """The rule that maps a decoded URI, or None; ``now`` lets the mount file reload.

        Raises :class:`UriError` for a URI that climbs above the root.
        """
        if now is not None:
            self.refresh(now)
        if not uri.startswith("/") or (self.reject_unsafe and ("%" in uri or "\\" in uri)):
            return None
        path = normalize_uri(uri)
        rules = self._rules
        for found in rules:
            if not found.disabled and not found.exclusion and found.matches(path):
                break
        else:
            return None
        for rule in rules:
            if (rule.exclusion and not rule.disabled and rule.worker in (found.worker, "*")
                    and rule.matches(path)):
                return None
        return found

    def match(self, uri: str, now: float | None = None) -> str | None:
        """The name of the worker that serves a decoded URI, or None."""
        rule = self.lookup(uri, now)
        return rule.worker if rule else None

    def check_workers(self, defined: Collection[str], workers_file: str) -> None:
        """Raise :class:`UriMapError` for the first rule naming a worker that is not defined."""
        for rule in self._rules:
            if rule.worker not in defined and not (rule.exclusion and rule.worker == "*"):
                directive = {Source.JKMOUNT: "JkUnMount" if rule.exclusion else "JkMount",
                             Source.URIMAP: "JkMountFile",
                             Source.WORKERDEF: "mount"}[rule.source]
                raise UriMapError(rule.file, rule.line, f"{directive}: worker '{rule.worker}' "
                                                        f"is not defined in {workers_file}")
