"""mod_authz_core: `Require` and the <RequireAll>/<RequireAny>/<RequireNone> containers.

As httpd 2.4: the Require lines of a section form an implicit <RequireAny>; `Require not`
can only take access away, so it is allowed only where something else can grant; a
section with Require replaces what it inherits unless `AuthMerging And|Or` says otherwise;
with no Require anywhere, access is granted. Denial is 403, logged as "client denied by
server configuration".

Requirement types are providers, as httpd's authz provider registry: a loaded module lists
them in its `authz_providers` attribute (name -> AuthzProvider). This module provides
`all`, `env` and `method`; mod_authz_host provides `ip` and `local`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyhttpd.conftree import Node
from pyhttpd.directive import Args, CmdParms, Context, Directive, DirectiveError, set_choice
from pyhttpd.hooks import Hooks
from pyhttpd.log import log_rerror
from pyhttpd.module import OK, Module
from pyhttpd.request import Request


class AuthzResult(enum.Enum):
    """What one requirement says about a request."""

    GRANTED = "granted"
    DENIED = "denied"
    NEUTRAL = "neutral"


GRANTED, DENIED, NEUTRAL = AuthzResult.GRANTED, AuthzResult.DENIED, AuthzResult.NEUTRAL
#: <RequireAny> and <RequireAll>: the child result that decides at once, the one that stands otherwise.
_DECIDING = {"any": (GRANTED, DENIED), "all": (DENIED, GRANTED)}


@dataclass(frozen=True)
class AuthzProvider:
    """A `Require <name> args...` type: `parse(args)` runs at config time (raise
    DirectiveError for bad args) and its result is passed to `check(r, parsed)` per request."""

    name: str
    parse: Callable[[list[str]], Any]
    check: Callable[[Request, Any], AuthzResult]


@dataclass
class Requirement:
    """One Require line."""

    provider: AuthzProvider
    parsed: Any
    negated: bool
    text: str

    def evaluate(self, r: Request) -> AuthzResult:
        result = self.provider.check(r, self.parsed)
        if not self.negated:
            return result
        # A negated requirement can refuse but never grant.
        return DENIED if result is GRANTED else NEUTRAL if result is DENIED else result


@dataclass
class RequireSection:
    """<RequireAny>, <RequireAll> or <RequireNone> (kind "any", "all", "none")."""

    kind: str
    children: list[Requirement | RequireSection]

    @property
    def negated(self) -> bool:
        return False

    def evaluate(self, r: Request) -> AuthzResult:
        if self.kind in _DECIDING:
            # any: one grant decides, else a refusal stands; all: the reverse.
            deciding, fallback = _DECIDING[self.kind]
            result = NEUTRAL
            for child in self.children:
                value = child.evaluate(r)
                if value is deciding:
                    return value
                if value is fallback:
                    result = value
            return result
        for child in self.children:  # none: anything granted refuses, nothing else grants
            if child.evaluate(r) is GRANTED:
                return DENIED
        return NEUTRAL


@dataclass
class AuthzDirConfig:
    """The requirements of a section (an implicit <RequireAny>) and AuthMerging."""

    section: RequireSection | None = None
    merging: str | None = None  # Off, And, Or


def _all(args: list[str]) -> AuthzResult:
    if len(args) != 1 or args[0].lower() not in ("granted", "denied"):
        raise DirectiveError("Require all takes one argument, 'granted' or 'denied'")
    return GRANTED if args[0].lower() == "granted" else DENIED


def _env(args: list[str]) -> list[str]:
    if not args:
        raise DirectiveError("Require env takes one or more environment variable names")
    return args


def _method(args: list[str]) -> frozenset[str]:
    if not args:
        raise DirectiveError("Require method takes one or more HTTP methods")
    return frozenset(a.upper() for a in args)


PROVIDERS = {
    p.name: p
    for p in (
        AuthzProvider("all", _all, lambda r, result: result),
        AuthzProvider("env", _env, lambda r, names: GRANTED if any(n in r.subprocess_env for n in names) else DENIED),
        AuthzProvider("method", _method, lambda r, methods: GRANTED if r.method in methods else DENIED),
    )
}


def _provider(cmd: CmdParms, name: str) -> AuthzProvider:
    for module in cmd.config.modules:
        provider = getattr(module, "authz_providers", {}).get(name.lower())
        if provider is not None:
            return provider
    raise DirectiveError(f"Unknown Authz provider: {name}")


def _requirement(cmd: CmdParms, args: list[str]) -> Requirement:
    text = " ".join(args)
    negated = bool(args) and args[0].lower() == "not"
    if negated:
        args = args[1:]
    if not args:
        raise DirectiveError("Require takes a provider name and its arguments (e.g. Require all granted)")
    provider = _provider(cmd, args[0])
    return Requirement(provider, provider.parse(args[1:]), negated, text)


def _check_container(kind: str, children: list[Requirement | RequireSection], where: str) -> None:
    """httpd's rules for what a container may hold."""
    if not children:
        raise DirectiveError(f"{where} directive contains no authorization directives")
    if kind == "any" and any(c.negated for c in children):
        raise DirectiveError(f"negative Require directive has no effect in {where} directive")
    if kind == "all" and all(c.negated for c in children):
        raise DirectiveError(f"{where} directive contains only negative authorization directives")


def _container(cmd: CmdParms, node: Node, kind: str) -> RequireSection:
    """Read a <RequireX> section's children (Require lines and nested containers)."""
    children: list[Requirement | RequireSection] = []
    for child in node.children or []:
        name = child.name.lower()
        try:
            if name == "require" and not child.is_section:
                children.append(_requirement(cmd, child.args))
            elif name in CONTAINERS and child.is_section:
                children.append(_container(cmd, child, CONTAINERS[name]))
            else:
                raise DirectiveError(f"{child.display_name} not allowed in <{node.name}>")
        except DirectiveError as e:
            raise child.error(str(e)) from None
    _check_container(kind, children, f"<{node.name}>")
    return RequireSection(kind, children)


CONTAINERS = {"requireany": "any", "requireall": "all", "requirenone": "none"}


def _add(cfg: AuthzDirConfig, item: Requirement | RequireSection) -> None:
    """Add to the section's implicit <RequireAny>."""
    if item.negated:
        raise DirectiveError("negative Require directive has no effect in <RequireAny> directive")
    if cfg.section is None:
        cfg.section = RequireSection("any", [])
    cfg.section.children.append(item)


def _require(cmd: CmdParms, cfg: AuthzDirConfig, args: list[str]) -> None:
    _add(cfg, _requirement(cmd, args))


def _section_directive(kind: str) -> Callable[..., None]:
    def handler(cmd: CmdParms, cfg: AuthzDirConfig, raw: str) -> None:
        if raw.strip():
            raise DirectiveError(f"<{cmd.directive.name}> does not take arguments")
        _add(cfg, _container(cmd, cmd.node, kind))

    return handler


ACCESS = Context.ACCESS_CONF


class AuthzCoreModule(Module):
    """httpd's mod_authz_core."""

    name = "authz_core_module"
    authz_providers = PROVIDERS
    directives = (
        Directive("Require", Args.TAKE_ARGV, ACCESS, "who may access: Require [not] provider args (all granted, ip 10.0.0.0/8...)", _require, "[not] entity-name [entity-name] ...", scope="dir"),
        Directive("RequireAny", Args.RAW_ARGS, ACCESS, "container: access when one enclosed requirement grants it", _section_directive("any"), "<RequireAny> ... </RequireAny>", scope="dir"),
        Directive("RequireAll", Args.RAW_ARGS, ACCESS, "container: access when no enclosed requirement refuses and one grants", _section_directive("all"), "<RequireAll> ... </RequireAll>", scope="dir"),
        Directive("RequireNone", Args.RAW_ARGS, ACCESS, "container: refused when one enclosed requirement grants", _section_directive("none"), "<RequireNone> ... </RequireNone>", scope="dir"),
        Directive("AuthMerging", Args.TAKE1, ACCESS, "how a section's requirements combine with the inherited ones", set_choice("merging", ("Off", "And", "Or")), "Off|And|Or", "Off", scope="dir"),
    )

    def create_dir_config(self, path: str | None) -> AuthzDirConfig:
        return AuthzDirConfig()

    def merge_dir_config(self, base: AuthzDirConfig, add: AuthzDirConfig) -> AuthzDirConfig:
        if add.section is None:
            return AuthzDirConfig(base.section, add.merging or base.merging)
        if base.section is None or add.merging in (None, "Off"):
            return add
        kind = "all" if add.merging == "And" else "any"
        return AuthzDirConfig(RequireSection(kind, [base.section, add.section]), add.merging)

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("access_checker", access_checker, module=self.name)


def access_checker(r: Request) -> int:
    """OK when the merged requirements grant access (or there are none), else 403."""
    section = r.per_dir_config["authz_core_module"].section
    if section is None or section.evaluate(r) is GRANTED:
        return OK
    log_rerror(r, "error", "authz_core", f"client denied by server configuration: {r.filename or r.uri}")
    return 403


authz_core_module = AuthzCoreModule()
