"""The configuration of one generation: loaded modules, hooks, servers and sections.

`Config.load()` reads the file (see conftree), runs every directive through its module's
handler in the right context, merges virtual hosts over the main server and runs the
check_config hooks. Every error is a ConfigError naming file, line and directive.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from pyhttpd.conftree import ConfigError, Node, Reader
from pyhttpd.core import GlobalConfig, core_module
from pyhttpd.directive import Args, CmdParms, Context, Directive, DirectiveError
from pyhttpd.hooks import Hooks
from pyhttpd.loader import LoadError, load_module
from pyhttpd.module import Module
from pyhttpd.scoreboard import Scoreboard
from pyhttpd.sections import KINDS, Section, Walker
from pyhttpd.server import Server

DEFAULT_SERVER_ROOT = "."
SECTION_DIRECTIVES = {"virtualhost", *KINDS}


class Config:
    """Everything read from the configuration files for one generation of the server."""

    def __init__(
        self,
        file: str,
        server_root: str | None = None,
        defines: Iterable[str] = (),
        environ: dict[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.file = file
        self.server_root = os.path.abspath(server_root or DEFAULT_SERVER_ROOT)
        self.server_root_fixed = server_root is not None  # -d wins over ServerRoot
        self.defines: dict[str, str] = {d: "" for d in defines}
        self.environ = environ
        self.warnings: list[str] = []
        self.warn = warn or self.warnings.append
        self.global_config = GlobalConfig()
        self.hooks = Hooks()
        self.modules: list[Module] = []
        self.module_by_name: dict[str, Module] = {}
        self.module_sources: dict[str, str] = {}
        self.directives: dict[str, tuple[Directive, Module]] = {}
        self.main_server = Server(self, is_virtual=False, file=file, line=0)
        self.vhosts: list[Server] = []
        self.vhost_cache: dict[Any, Server] = {}
        # Named scoreboard segments modules claim in post_config (name -> bytes), and the
        # scoreboard the master creates with them; children reach it from child_init on.
        self.shm_segments: dict[str, int] = {}
        self.scoreboard: Scoreboard | None = None
        self.add_module(core_module, "core")

    # -- building --------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        file: str,
        server_root: str | None = None,
        defines: Iterable[str] = (),
        pre_directives: Iterable[str] = (),
        post_directives: Iterable[str] = (),
        environ: dict[str, str] | None = None,
    ) -> Config:
        """Read and check a configuration; raise ConfigError on the first error."""
        config = cls(file, server_root, defines, environ)
        reader = Reader(config, environ)
        pre = reader.read_text("\n".join(pre_directives), "-C") if pre_directives else []
        path = config.resolve(file)  # a relative -f is relative to ServerRoot (-d), as httpd's
        nodes = reader.read_file(path, file)
        post = reader.read_text("\n".join(post_directives), "-c") if post_directives else []
        config.process(pre + nodes + post, config.main_server, None)
        config.finish()
        return config

    def add_module(self, module: Module, source: str) -> None:
        """Add a loaded module: its directives become known and its hooks registered."""
        if module.name in self.module_by_name:
            self.warn(f"module {module.name} is already loaded, skipping")
            return
        for d in module.directives:
            key = d.name.lower()
            if key in self.directives:
                other = self.directives[key][1].name
                raise LoadError(f"directive {d.name} of {module.name} is already declared by {other}")
        self.modules.append(module)
        self.module_by_name[module.name] = module
        self.module_sources[module.name] = source
        for d in module.directives:
            self.directives[d.name.lower()] = (d, module)
        module.register_hooks(self.hooks)

    def resolve(self, path: str) -> str:
        """A path relative to ServerRoot (absolute paths unchanged)."""
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.server_root, path))

    # -- ReadContext for the reader ---------------------------------------------------------

    def has_module(self, name: str) -> bool:
        """<IfModule> accepts the identifier (status_module) or the file name (mod_status.c)."""
        if name in self.module_by_name:
            return True
        stem = name.rsplit("/", 1)[-1]
        for suffix in (".c", ".py", ".so"):
            stem = stem.removesuffix(suffix)
        return any(
            os.path.basename(src.rstrip("/")).removesuffix(".py").removesuffix(".so") == stem
            for src in self.module_sources.values()
        )

    def exec_on_read(self, node: Node) -> None:
        name = node.name.lower()
        if name == "define":
            if len(node.args) not in (1, 2):
                raise node.error("Define takes one or two arguments, a name and an optional value")
            if ":" in node.args[0]:
                raise node.error("Variable name must not contain ':'")
            self.defines[node.args[0]] = node.args[1] if len(node.args) == 2 else ""
        elif name == "undefine":
            if len(node.args) != 1:
                raise node.error("UnDefine takes one argument")
            self.defines.pop(node.args[0], None)
        elif name == "serverroot":
            if len(node.args) != 1:
                raise node.error("ServerRoot takes one argument, the root directory of the server")
            root = os.path.abspath(node.args[0])
            if not os.path.isdir(root):
                raise node.error(f"ServerRoot must be a valid directory: '{node.args[0]}'")
            if not self.server_root_fixed:
                self.server_root = root
        elif name == "loadmodule":
            if len(node.args) != 2:
                raise node.error("LoadModule takes two arguments, a module name and the name of a file to load it from")
            try:
                self.add_module(load_module(node.args[0], node.args[1], self.server_root), node.args[1])
            except LoadError as e:
                raise node.error(str(e)) from None

    # -- processing -------------------------------------------------------------------------

    def process(self, nodes: list[Node], server: Server, section: Section | None) -> None:
        """Run each node's directive in the context of `server` and `section`."""
        for node in nodes:
            name = node.name.lower()
            if name in SECTION_DIRECTIVES and node.is_section:
                self._section(node, server, section)
                continue
            found = self.directives.get(name)
            if found is None:
                if node.is_section:
                    raise node.error(
                        f"Invalid command '<{node.name}>', perhaps misspelled or defined by a module "
                        "not included in the server configuration"
                    )
                raise node.error(
                    f"Invalid command '{node.name}', perhaps misspelled or defined by a module "
                    "not included in the server configuration"
                )
            directive, module = found
            self._run(directive, module, node, server, section)

    def _context_of(self, server: Server, section: Section | None) -> Context:
        if section is not None:
            return section.context
        return Context.VIRTUALHOST if server.is_virtual else Context.SERVER

    def _run(self, d: Directive, module: Module, node: Node, server: Server, section: Section | None) -> None:
        where = self._context_of(server, section)
        if not where & d.context:
            raise node.error(f"{d.name} not allowed here (allowed in: {d.contexts_text()})")
        if d.how is Args.RAW_ARGS:
            args: list[Any] = [node.raw]
        else:
            problem = d.check_args(node.args)
            if problem:
                raise node.error(problem)
            args = list(node.args)
            if d.how is Args.FLAG:
                args = [args[0].lower() == "on"]
        cmd = CmdParms(d, node, self, server, section)
        if d.scope == "dir":
            cfg = self.dir_config(module, server, section)
        else:
            cfg = self.server_config(module, server)
        try:
            if d.how is Args.ITERATE:
                for a in args:
                    d.handler(cmd, cfg, a)
            elif d.how is Args.ITERATE2:
                for a in args[1:]:
                    d.handler(cmd, cfg, args[0], a)
            elif d.how is Args.TAKE_ARGV:
                d.handler(cmd, cfg, args)
            else:
                d.handler(cmd, cfg, *args)
        except DirectiveError as e:
            raise node.error(str(e)) from None

    def server_config(self, module: Module, server: Server) -> Any:
        """The module's per-server config for `server`, created on first use."""
        cfg = server.module_config.get(module.name)
        if cfg is None and module.name not in server.module_config:
            cfg = server.module_config[module.name] = module.create_server_config(server)
        return cfg

    def dir_config(self, module: Module, server: Server, section: Section | None) -> Any:
        """The module's per-dir config of a section (or of the server outside sections)."""
        store = section.dir_config if section is not None else server.lookup_defaults
        if module.name not in store:
            store[module.name] = module.create_dir_config(section.pattern if section else None)
        return store[module.name]

    def _section(self, node: Node, server: Server, section: Section | None) -> None:
        name = node.name.lower()
        if name == "virtualhost":
            if server.is_virtual or section is not None:
                raise node.error("<VirtualHost> cannot occur within <VirtualHost> or a directory section")
            if not node.args:
                raise node.error("<VirtualHost> requires at least one address")
            vhost = Server(self, is_virtual=True, file=node.file, line=node.line)
            for addr in node.args:
                vhost.addrs.append(_parse_vhost_addr(node, addr))
            self.process(node.children or [], vhost, None)
            self.vhosts.append(vhost)
            return
        context, regex = KINDS[name]
        if section is not None and not (section.context == Context.DIRECTORY and context == Context.FILES):
            raise node.error(f"<{node.name}> cannot occur within <{section.kind.capitalize()}> section")
        args = node.args
        if len(args) == 2 and args[0] == "~" and not regex:
            regex, args = True, args[1:]
        if len(args) != 1:
            raise node.error(f"<{node.name}> takes one argument")
        pattern = args[0]
        kind = {Context.DIRECTORY: "directory", Context.LOCATION: "location", Context.FILES: "files"}[context]
        if kind == "directory" and not regex:
            pattern = self.resolve(pattern) + ("/" if pattern.endswith("/") and pattern != "/" else "")
        within = section.pattern.rstrip("/") if section is not None else None
        try:
            new = Section(kind, pattern, node.file, node.line, regex=regex, within=within)
        except Exception as e:  # re.error: a bad regular expression
            raise node.error(f"Regex could not be compiled: {e}") from None
        self.process(node.children or [], server, new)
        server.sections.append(new)

    def finish(self) -> None:
        """Merge virtual hosts over the main server and run the check_config hooks."""
        main = self.main_server
        for module in self.modules:
            self.server_config(module, main)
        for vhost in self.vhosts:
            for module in self.modules:
                base = main.module_config.get(module.name)
                if module.name in vhost.module_config:
                    vhost.module_config[module.name] = module.merge_server_config(
                        base, vhost.module_config[module.name]
                    )
                else:
                    vhost.module_config[module.name] = base
            merged_defaults = dict(main.lookup_defaults)
            for name, add in vhost.lookup_defaults.items():
                base = merged_defaults.get(name)
                module = self.module_by_name[name]
                merged_defaults[name] = add if base is None else module.merge_dir_config(base, add)
            vhost.lookup_defaults = merged_defaults
        for module in self.modules:
            if module.name not in main.lookup_defaults:
                main.lookup_defaults[module.name] = module.create_dir_config(None)
            for vhost in self.vhosts:
                vhost.lookup_defaults.setdefault(module.name, main.lookup_defaults[module.name])
        for server in [main, *self.vhosts]:
            server.walker = Walker(self, server)
        self.hooks.run_all("check_config", self)

    # -- queries ----------------------------------------------------------------------------

    @property
    def servers(self) -> list[Server]:
        return [self.main_server, *self.vhosts]

    def directive_table(self) -> list[tuple[Directive, Module]]:
        """Every known directive with its module, in module then declaration order."""
        return [(d, m) for m in self.modules for d in m.directives]


def _parse_vhost_addr(node: Node, addr: str) -> tuple[str, int | None]:
    host, port = addr, None
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise node.error(f"bad IPv6 address '{addr}'")
        host, rest = addr[1:end], addr[end + 1 :]
        if rest.startswith(":"):
            port = _port(node, rest[1:])
    elif addr.count(":") == 1:
        host, p = addr.split(":")
        port = _port(node, p)
    return host, port


def _port(node: Node, text: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise node.error(f"invalid port '{text}'")
    return int(text)


def load_or_exit(*args: Any, **kwargs: Any) -> Config:
    """Load a configuration; print the error and exit 1 when it is bad (for the command line)."""
    try:
        return Config.load(*args, **kwargs)
    except ConfigError as e:
        print(e, file=sys.stderr)
        raise SystemExit(1) from None
