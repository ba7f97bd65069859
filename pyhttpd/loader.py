"""Finding a module for `LoadModule name where`, as mod_so finds a .so.

`where` may be a path relative to ServerRoot or absolute (a .py file or a package
directory; `modules/mod_x` and `modules/mod_x.so` find the bundled module when ServerRoot has
no such file), a dotted import path, or the name of an installed entry point in the group
``pyhttpd.modules``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib import metadata
from types import ModuleType

from pyhttpd.module import Module

ENTRY_POINT_GROUP = "pyhttpd.modules"
BUNDLED_DIR = os.path.dirname(os.path.abspath(importlib.util.find_spec("modules").origin))  # type: ignore[arg-type]


class LoadError(Exception):
    """A module could not be loaded; the message says why."""


def load_module(name: str, where: str, server_root: str) -> Module:
    """Load the module object `name` from `where` (see the module docstring)."""
    pymod = _import(name, where, server_root)
    obj = getattr(pymod, name, None)
    if obj is None:
        raise LoadError(f"Can't locate API module structure '{name}' in '{where}'")
    if isinstance(obj, type) and issubclass(obj, Module):
        obj = obj()
    if not isinstance(obj, Module):
        raise LoadError(f"'{name}' in '{where}' is not a pyhttpd module (a pyhttpd.module.Module)")
    if not obj.name:
        obj.name = name
    return obj


def _import(name: str, where: str, server_root: str) -> ModuleType:
    path = where if os.path.isabs(where) else os.path.join(server_root, where)
    found = _find_file(path)
    if found is None and where.replace("\\", "/").startswith("modules/"):
        bundled = _find_file(os.path.join(BUNDLED_DIR, where[len("modules/") :]))
        if bundled is not None:
            stem = os.path.basename(bundled[:-12] if bundled.endswith("__init__.py") else bundled)
            return importlib.import_module(f"modules.{_strip(stem)}")
    if found is not None:
        real = os.path.realpath(found)
        if real.startswith(BUNDLED_DIR + os.sep):
            # A bundled module reached through ServerRoot: import it once, as a package module.
            rel = os.path.relpath(real, os.path.dirname(BUNDLED_DIR))[: -len(".py")]
            return importlib.import_module(rel.replace(os.sep, ".").removesuffix(".__init__"))
        return _import_file(name, found)
    if "/" not in where and "." in where and not where.endswith((".py", ".so")):
        try:
            return importlib.import_module(where)
        except ImportError as e:
            if e.name != where and not where.startswith(f"{e.name}."):
                raise LoadError(f"Cannot load '{where}': {e}") from e
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in (where, name):
            return importlib.import_module(ep.module)
    raise LoadError(f"Cannot load '{where}' into server: no such file, import path or entry point")


def _strip(filename: str) -> str:
    for suffix in (".py", ".so"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename.rstrip("/")


def _find_file(path: str) -> str | None:
    """The .py file or package __init__.py a LoadModule path means, if any."""
    base = _strip(path)
    for candidate in (base + ".py", os.path.join(base, "__init__.py"), path):
        if os.path.isfile(candidate) and candidate.endswith(".py"):
            return candidate
    return None


def _import_file(name: str, filename: str) -> ModuleType:
    module_name = f"pyhttpd_plugin_{name}"
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == filename:
        return existing
    is_package = filename.endswith("__init__.py")
    spec = importlib.util.spec_from_file_location(
        module_name,
        filename,
        submodule_search_locations=[os.path.dirname(filename)] if is_package else None,
    )
    if spec is None or spec.loader is None:
        raise LoadError(f"Cannot load '{filename}' into server")
    pymod = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = pymod
    try:
        spec.loader.exec_module(pymod)
    except Exception as e:
        del sys.modules[module_name]
        raise LoadError(f"Cannot load '{filename}' into server: {type(e).__name__}: {e}") from e
    return pymod
