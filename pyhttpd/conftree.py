"""Reading httpd-syntax files into a tree of nodes that remember their file and line.

Syntax as httpd's: one directive a line, a backslash as the last character joins the next
line, `#` starts a comment only as the first non-blank character, arguments split on
whitespace with "..." or '...' quoting, `${VAR}` replaced from Define then the environment,
`<Section args>` ... `</Section>` blocks. Directives that change the config itself while it
is read (Define, Include, IfDefine, IfModule, LoadModule, ServerRoot) are carried out here
through the `ReadContext` callbacks, as httpd's EXEC_ON_READ directives.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class ConfigError(Exception):
    """A configuration error that names file, line and directive."""

    def __init__(self, file: str, line: int, directive: str, message: str) -> None:
        super().__init__(f"{file}:{line}: {directive}: {message}" if directive else f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.directive = directive
        self.message = message


@dataclass
class Node:
    """One directive or section of a config file."""

    name: str
    args: list[str]
    file: str
    line: int
    raw: str = ""  # the argument text as written (after ${VAR}), for RAW_ARGS directives
    children: list[Node] | None = None  # None for a directive, a list for a section

    @property
    def is_section(self) -> bool:
        return self.children is not None

    def error(self, message: str) -> ConfigError:
        """A ConfigError at this node."""
        return ConfigError(self.file, self.line, self.display_name, message)

    @property
    def display_name(self) -> str:
        return f"<{self.name}>" if self.is_section else self.name


class ReadContext(Protocol):
    """What the reader asks of the configuration being built."""

    defines: dict[str, str]
    warn: Callable[[str], None]

    def resolve(self, path: str) -> str: ...

    def has_module(self, name: str) -> bool: ...

    def exec_on_read(self, node: Node) -> None: ...


_VAR = re.compile(r"\$\{([^}:]+)\}")
# Directives carried out while reading; IfDefine/IfModule/Include are handled by the reader.
EXEC_ON_READ = {"define", "undefine", "loadmodule", "serverroot"}
CONDITIONALS = {"ifdefine", "ifmodule"}


def split_args(text: str) -> list[str]:
    """Split an argument string as httpd's ap_getword_conf does.

    Quoted arguments may hold spaces; inside quotes a backslash before the quote character
    or before a backslash escapes it, other backslashes stay.
    """
    args: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return args
        quote = text[i]
        if quote in "\"'":
            i += 1
            out: list[str] = []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n and text[i + 1] in (quote, "\\"):
                    i += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise ValueError(f"missing closing {quote} in arguments")
            i += 1
            args.append("".join(out))
        else:
            out = []
            while i < n and text[i] not in " \t\r\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\\":
                    i += 1
                out.append(text[i])
                i += 1
            args.append("".join(out))


def quote_arg(arg: str) -> str:
    """Quote an argument so split_args gives it back unchanged."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continued lines; yield (first line number, text) for non-blank, non-comment lines."""
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = "".join(pending).strip()
        pending = []
        if joined and not joined.startswith("#"):
            result.append((start, joined))
    if pending:
        joined = "".join(pending).strip()
        if joined and not joined.startswith("#"):
            result.append((start, joined))
    return result


class Reader:
    """Reads config files into a list of nodes, carrying out read-time directives."""

    def __init__(self, ctx: ReadContext, environ: dict[str, str] | None = None) -> None:
        self.ctx = ctx
        self.environ = dict(os.environ if environ is None else environ)
        self._depth = 0

    def read_file(self, path: str, shown: str | None = None) -> list[Node]:
        """Read one file; `shown` is how the file is named in messages."""
        shown = shown or path
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(shown, 0, "", f"could not open configuration file: {e.strerror}") from None
        return self.read_text(text, shown)

    def read_text(self, text: str, file: str) -> list[Node]:
        """Read config text; `file` names it in nodes and messages."""
        lines = logical_lines(text)
        pos = 0
        root: list[Node] = []
        # Each open section: (node, children list, active)
        stack: list[tuple[Node | None, list[Node], bool]] = [(None, root, True)]
        while pos < len(lines):
            number, line = lines[pos]
            pos += 1
            parent, children, active = stack[-1]
            if line.startswith("</"):
                name = line[2:].rstrip(">").strip()
                if parent is None:
                    raise ConfigError(file, number, f"</{name}>", f"</{name}> without matching <{name}> section")
                if not line.endswith(">"):
                    raise ConfigError(file, number, f"</{name}>", "directive missing closing '>'")
                if name.lower() != parent.name.lower():
                    raise ConfigError(file, number, f"</{name}>", f"Expected </{parent.name}> but saw </{name}>")
                stack.pop()
                if parent.name.lower() not in CONDITIONALS:
                    continue
                # A conditional section splices its children into its parent when true.
                if active and stack[-1][2]:
                    stack[-1][1].extend(parent.children or [])
                continue
            if not active:
                if line.startswith("<"):
                    name = line[1:].split(None, 1)[0].rstrip(">") if len(line) > 1 else ""
                    stack.append((Node(name, [], file, number, children=[]), [], False))
                continue
            node = self._parse_line(line, file, number)
            if node.is_section:
                lname = node.name.lower()
                cond = self._condition(node) if lname in CONDITIONALS else True
                stack.append((node, node.children, cond))
                if lname not in CONDITIONALS:
                    children.append(node)
                continue
            lname = node.name.lower()
            if lname in ("include", "includeoptional"):
                children.extend(self._include(node, optional=lname == "includeoptional"))
                continue
            if lname in EXEC_ON_READ:
                self.ctx.exec_on_read(node)
            children.append(node)
        if len(stack) > 1:
            open_node = stack[-1][0]
            assert open_node is not None
            raise ConfigError(
                file, open_node.line, f"<{open_node.name}>", f"<{open_node.name}> was not closed"
            )
        return root

    def substitute(self, text: str, file: str, line: int) -> str:
        """Replace ${VAR} from Define first, then the environment; unknown ones stay, with a warning."""

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in self.ctx.defines:
                return self.ctx.defines[name]
            if name in self.environ:
                return self.environ[name]
            self.ctx.warn(f"{file}:{line}: config variable ${{{name}}} is not defined")
            return m.group(0)

        return _VAR.sub(repl, text) if "${" in text else text

    def _parse_line(self, line: str, file: str, number: int) -> Node:
        line = self.substitute(line, file, number)
        if line.startswith("<"):
            if not line.endswith(">"):
                name = line[1:].split(None, 1)[0]
                raise ConfigError(file, number, f"<{name}>", f"<{name}> directive missing closing '>'")
            inner = line[1:-1].strip()
            name, _, rest = inner.partition(" ") if " " in inner else inner.partition("\t")
            try:
                args = split_args(rest)
            except ValueError as e:
                raise ConfigError(file, number, f"<{name}>", str(e)) from None
            return Node(name, args, file, number, raw=rest.strip(), children=[])
        parts = line.split(None, 1)
        name = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        try:
            args = split_args(rest)
        except ValueError as e:
            raise ConfigError(file, number, name, str(e)) from None
        return Node(name, args, file, number, raw=rest.strip())

    def _condition(self, node: Node) -> bool:
        if len(node.args) != 1:
            raise node.error(f"<{node.name}> takes one argument")
        arg = node.args[0]
        negate = arg.startswith("!")
        name = arg[1:] if negate else arg
        if node.name.lower() == "ifdefine":
            found = name in self.ctx.defines
        else:
            found = self.ctx.has_module(name)
        return found != negate

    def _include(self, node: Node, optional: bool) -> list[Node]:
        if len(node.args) != 1:
            raise node.error(f"{node.name} takes one argument, the file or wildcard to include")
        pattern = self.ctx.resolve(node.args[0])
        if glob.has_magic(pattern):
            paths = sorted(glob.glob(pattern))
            if not paths and not optional:
                raise node.error(f"No matches for the wildcard '{node.args[0]}'")
        elif os.path.isdir(pattern):
            paths = sorted(
                os.path.join(d, f) for d, _, files in os.walk(pattern) for f in files
            )
        elif os.path.exists(pattern):
            paths = [pattern]
        elif optional:
            paths = []
        else:
            raise node.error(f"could not open '{node.args[0]}': no such file or directory")
        self._depth += 1
        try:
            if self._depth > 32:
                raise node.error("Include nested too deeply (a file including itself?)")
            nodes: list[Node] = []
            for path in paths:
                if os.path.isfile(path):
                    nodes.extend(self.read_file(path, path))
            return nodes
        finally:
            self._depth -= 1
