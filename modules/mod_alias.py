"""mod_alias: Alias and AliasMatch map URLs outside DocumentRoot; Redirect and RedirectMatch
answer with a redirect.

As httpd: redirects are tried before aliases, a virtual host's before the main server's,
each list in config order. A prefix matches whole path segments (`/icons` matches
`/icons/a.png`, not `/iconsx`). An aliased file is confined to its target directory the
same way DocumentRoot confines the rest (pyhttpd.mapping.set_filename).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pyhttpd.directive import Args, CmdParms, Context, Directive, DirectiveError, Handler
from pyhttpd.hooks import Hooks
from pyhttpd.mapping import construct_url, escape_path, set_filename
from pyhttpd.module import DECLINED, FIRST, OK, Module
from pyhttpd.request import Request
from pyhttpd.server import Server

REDIRECT_STATUS = {"permanent": 301, "temp": 302, "seeother": 303, "gone": 410}


@dataclass
class AliasEntry:
    """One Alias/AliasMatch (`target` a directory) or Redirect/RedirectMatch (`target` a URL)."""

    fake: str
    target: str | None
    regex: re.Pattern[str] | None = None
    status: int = 302
    root: str = "/"  # the directory an AliasMatch result must stay under


@dataclass
class AliasServerConfig:
    """The aliases and redirects of one server (a vhost's come before the main server's)."""

    aliases: list[AliasEntry] = field(default_factory=list)
    redirects: list[AliasEntry] = field(default_factory=list)


def prefix_length(uri: str, fake: str) -> int:
    """How much of `uri` the Alias/Redirect prefix `fake` matches at a segment boundary (0: no)."""
    if not uri.startswith(fake):
        return 0
    if fake.endswith("/") or len(uri) == len(fake) or uri[len(fake)] == "/":
        return len(fake)
    return 0


def _literal_root(target: str) -> str:
    """The directory an AliasMatch target names before its first substitution."""
    head = re.split(r"[$\\]", target, maxsplit=1)[0]
    return head[: head.rfind("/") + 1] or "/"


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise DirectiveError(f"Regular expression could not be compiled: {e}") from None


def _alias(cmd: CmdParms, cfg: AliasServerConfig, fake: str, target: str) -> None:
    cfg.aliases.append(AliasEntry(fake, cmd.resolve(target).rstrip("/") or "/"))


def _alias_match(cmd: CmdParms, cfg: AliasServerConfig, pattern: str, target: str) -> None:
    cfg.aliases.append(AliasEntry(pattern, target, _compile(pattern), root=_literal_root(target)))


def _redirect_args(cmd: CmdParms, args: list[str], default: int | None) -> tuple[int, str, str | None]:
    """(status, URL-path or pattern, URL) from Redirect's [status] URL-path [URL]."""
    status = default
    if default is None and args and (args[0].lower() in REDIRECT_STATUS or args[0].isdigit()):
        word = args.pop(0).lower()
        status = REDIRECT_STATUS.get(word) or int(word)
    status = status or 302
    if not args or len(args) > 2:
        raise DirectiveError(f"{cmd.directive.name} takes [status] URL-path URL")
    fake, url = args[0], (args[1] if len(args) == 2 else None)
    if 300 <= status <= 399:
        if url is None:
            raise DirectiveError(f"URL to redirect to is missing (status {status} needs one)")
        if not (urlsplit(url).scheme or url.startswith("/")):
            raise DirectiveError(f"Redirect to non-URL '{url}'")
    elif url is not None:
        raise DirectiveError(f"Redirect URL not valid for status {status}: '{url}' (only 3xx statuses take one)")
    elif not 400 <= status <= 599:
        raise DirectiveError(f"'{status}' is not a valid redirect status")
    return status, fake, url


def _redirect(default: int | None, regex: bool) -> Handler:
    def handler(cmd: CmdParms, cfg: AliasServerConfig, args: list[str]) -> None:
        status, fake, url = _redirect_args(cmd, list(args), default)
        cfg.redirects.append(AliasEntry(fake, url, _compile(fake) if regex else None, status))

    return handler


RSRC = Context.RSRC_CONF


class AliasModule(Module):
    """httpd's mod_alias."""

    name = "alias_module"
    directives = (
        Directive("Alias", Args.TAKE2, RSRC, "map a URL prefix to a file system path", _alias, "URL-path file-path|directory-path"),
        Directive("AliasMatch", Args.TAKE2, RSRC, "map URLs matching a regular expression to a file system path ($1..$9)", _alias_match, "regex file-path|directory-path"),
        Directive("Redirect", Args.TAKE_ARGV, RSRC, "redirect a URL prefix to another URL", _redirect(None, regex=False), "[status] URL-path [URL]"),
        Directive("RedirectMatch", Args.TAKE_ARGV, RSRC, "redirect URLs matching a regular expression ($1..$9)", _redirect(None, regex=True), "[status] regex [URL]"),
        Directive("RedirectPermanent", Args.TAKE_ARGV, RSRC, "redirect a URL prefix with 301", _redirect(301, regex=False), "URL-path URL"),
        Directive("RedirectTemp", Args.TAKE_ARGV, RSRC, "redirect a URL prefix with 302", _redirect(302, regex=False), "URL-path URL"),
    )

    def create_server_config(self, server: Server) -> AliasServerConfig:
        return AliasServerConfig()

    def merge_server_config(self, base: AliasServerConfig, add: AliasServerConfig) -> AliasServerConfig:
        return AliasServerConfig(add.aliases + base.aliases, add.redirects + base.redirects)

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("translate_name", translate_name, FIRST, module=self.name)


def _expand(entry: AliasEntry, match: re.Match[str]) -> str:
    """$0..$9 in an AliasMatch/RedirectMatch target."""
    assert entry.target is not None
    return re.sub(r"\$(\d)", lambda m: match.group(int(m.group(1))) or "", entry.target)


def translate_name(r: Request) -> int:
    """Redirect, or map to a file under an Alias target; DECLINED when nothing matches."""
    conf: AliasServerConfig = r.server.module_config["alias_module"]
    uri = r.uri
    if not uri.startswith("/"):
        return DECLINED
    for entry in conf.redirects:
        location = _redirect_location(r, entry, uri)
        if location is not None:
            if 300 <= entry.status <= 399:
                if location.startswith("/"):
                    location = construct_url(r, location)
                if r.args and "?" not in location:
                    location = f"{location}?{r.args}"
                r.err_headers_out.set("Location", location)
            return entry.status
    for entry in conf.aliases:
        if entry.regex is not None:
            match = entry.regex.search(uri)
            if match:
                set_filename(r, entry.root, _expand(entry, match))
                return OK
        else:
            length = prefix_length(uri, entry.fake)
            if length:
                assert entry.target is not None
                rest = uri[length:]
                if rest and not rest.startswith("/"):
                    rest = "/" + rest
                set_filename(r, entry.target, entry.target.rstrip("/") + rest)
                return OK
    return DECLINED


def _redirect_location(r: Request, entry: AliasEntry, uri: str) -> str | None:
    """The URL an entry redirects `uri` to ("" for a status without one), or None."""
    if entry.regex is not None:
        match = entry.regex.search(uri)
        if not match:
            return None
        if entry.target is None:
            return ""
        target = urlsplit(_expand(entry, match))
        location = escape_path(target._replace(query="", fragment="").geturl())
        return location + (f"?{target.query}" if target.query else "") + (f"#{target.fragment}" if target.fragment else "")
    length = prefix_length(uri, entry.fake)
    if not length:
        return None
    if entry.target is None:
        return ""
    return entry.target + escape_path(uri[length:])


alias_module = AliasModule()
