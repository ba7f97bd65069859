"""Configuration sections (<Directory>, <Location>, <Files> and their Match forms) and the
per-request walk that merges the matching ones, in httpd's order:

1. <Directory> (not regex), shortest path first; 2. <DirectoryMatch>, in file order;
3. <Files> and <FilesMatch> in file order; 4. <Location> and <LocationMatch> in file order.
Sections of a virtual host apply after the main server's sections of the same kind.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import TYPE_CHECKING, Any

from pyhttpd.directive import Context

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.server import Server

KINDS = {
    "directory": (Context.DIRECTORY, False),
    "directorymatch": (Context.DIRECTORY, True),
    "location": (Context.LOCATION, False),
    "locationmatch": (Context.LOCATION, True),
    "files": (Context.FILES, False),
    "filesmatch": (Context.FILES, True),
}


class Section:
    """One directory-type section and every module's per-dir config inside it."""

    def __init__(
        self, kind: str, pattern: str, file: str, line: int, regex: bool = False, within: str | None = None
    ) -> None:
        self.kind = kind  # "directory", "location" or "files"
        self.pattern = pattern
        self.file = file
        self.line = line
        self.regex = re.compile(pattern) if regex else None
        self.dir_config: dict[str, Any] = {}
        self.within = within  # <Files> inside <Directory>: only files of that directory
        # <Directory /a/b/> counts 2 components for the shortest-first order.
        self.depth = len([p for p in pattern.split("/") if p]) if kind == "directory" else 0
        # What matches() compares against, worked out once.
        self._path = (pattern.rstrip("/") or "/") if kind == "directory" else pattern
        self._wildcard = any(c in self._path for c in "*?[")
        self._prefix = self._path.rstrip("/") + "/*" if kind == "location" else self._path + "/"

    @property
    def context(self) -> Context:
        return {"directory": Context.DIRECTORY, "location": Context.LOCATION, "files": Context.FILES}[
            self.kind
        ]

    def matches(self, value: str) -> bool:
        """Whether a URL path (Location), a directory path (Directory) or a file name (Files) matches."""
        if self.regex is not None:
            return self.regex.search(value) is not None
        kind = self.kind
        p = self._path
        if kind == "location":
            if self._wildcard:
                return fnmatch.fnmatchcase(value, p) or fnmatch.fnmatchcase(value, self._prefix)
            if value == p or p == "/":
                return True
            if value.startswith(p):
                return p.endswith("/") or value[len(p)] == "/"
            return False
        if kind == "directory":
            if self._wildcard:
                parts = value.rstrip("/").split("/")
                depth = len(p.split("/"))
                return fnmatch.fnmatchcase("/".join(parts[:depth]), p)
            return p == "/" or value == p or value.startswith(self._prefix)
        return fnmatch.fnmatchcase(value, self.pattern)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.pattern} {self.file}:{self.line}>"


def sections_of(server: Server, main: Server) -> list[Section]:
    """The sections that apply to a server: the main server's, then the vhost's own."""
    if server is main:
        return list(main.sections)
    return list(main.sections) + list(server.sections)


class Walker:
    """Precomputed section lists of one server, and the merge of a request's matching ones."""

    def __init__(self, config: Config, server: Server) -> None:
        self.config = config
        all_sections = sections_of(server, config.main_server)
        self.directories = sorted(
            (s for s in all_sections if s.kind == "directory" and s.regex is None), key=lambda s: s.depth
        )
        self.directory_regex = [s for s in all_sections if s.kind == "directory" and s.regex is not None]
        self.files = [s for s in all_sections if s.kind == "files"]
        self.locations = [s for s in all_sections if s.kind == "location"]
        self.defaults = server.lookup_defaults
        self._cache: dict[tuple[Section, ...], dict[str, Any]] = {}
        self._walk_cache: dict[tuple[str, bool], list[Section]] = {}
        # Whether no Options of the server's directory config turns symlinks off, so that one
        # stat() maps a file; worked out by pyhttpd.mapping on first use.
        self.follows_symlinks_everywhere: bool | None = None

    def location_sections(self, uri: str) -> list[Section]:
        return [s for s in self.locations if s.matches(uri)] if self.locations else []

    def directory_sections(self, filename: str, is_dir: bool | None = None) -> list[Section]:
        """Directory, DirectoryMatch and Files sections matching a file system path.

        `is_dir` says whether the path is a directory when the caller has stat'ed it already.
        """
        if not self.directories and not self.directory_regex and not self.files:
            return []
        if is_dir is None:
            is_dir = os.path.isdir(filename)
        # The same few files and directories come back request after request.
        key = (filename, is_dir)
        found = self._walk_cache.get(key)
        if found is None:
            directory = filename if is_dir else os.path.dirname(filename)
            found = [s for s in self.directories if s.matches(directory)]
            found += [s for s in self.directory_regex if s.matches(directory)]
            base = os.path.basename(filename)
            found += [
                s
                for s in self.files
                if s.matches(base)
                and (s.within is None or directory == s.within or directory.startswith(s.within + "/"))
            ]
            if len(self._walk_cache) < 4096:
                self._walk_cache[key] = found
        return list(found)

    def merge(self, sections: list[Section]) -> dict[str, Any]:
        """The server's defaults with each section's per-dir configs merged over them in order."""
        key = tuple(sections)
        merged = self._cache.get(key)
        if merged is not None:
            return merged
        merged = dict(self.defaults)
        for section in sections:
            for name, add in section.dir_config.items():
                module = self.config.module_by_name[name]
                base = merged.get(name)
                merged[name] = add if base is None else module.merge_dir_config(base, add)
        if len(self._cache) < 4096:
            self._cache[key] = merged
        return merged
