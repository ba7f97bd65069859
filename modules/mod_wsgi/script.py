"""WSGI script files: loaded once per child, reloaded when changed (WSGIScriptReloading)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any


class ScriptError(Exception):
    """A script that cannot serve: it fails to load or lacks its callable. The message
    (with the traceback of a failed load) goes to the error log."""


class Scripts:
    """The scripts loaded in this process, each as a module of its own, by path.

    With reloading on, a script whose modification time changed is loaded afresh on its
    next request, as mod_wsgi's WSGIScriptReloading does.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, tuple[int, ModuleType]] = {}
        self._locks: dict[str, threading.Lock] = {}

    def application(self, path: str, callable_object: str, reloading: bool) -> Callable[..., Any]:
        """The WSGI callable `callable_object` of the script at `path`.

        Raises FileNotFoundError when the script is missing and ScriptError when it
        cannot be loaded or has no such callable.
        """
        module = self._module(path, reloading)
        app = getattr(module, callable_object, None)
        if app is None or not callable(app):
            raise ScriptError(f"Target WSGI script '{path}' does not contain WSGI application '{callable_object}'.")
        return app

    def _module(self, path: str, reloading: bool) -> ModuleType:
        loaded = self._loaded.get(path)
        if loaded is not None and not reloading:
            return loaded[1]
        mtime = os.stat(path).st_mtime_ns
        if loaded is not None and loaded[0] == mtime:
            return loaded[1]
        # One load at a time per script: a script that blocks while importing must not
        # be imported twice by two requests (greenlets) of the same child.
        with self._locks.setdefault(path, threading.Lock()):
            loaded = self._loaded.get(path)
            if loaded is not None and loaded[0] == mtime:
                return loaded[1]
            module = _load(path)
            self._loaded[path] = (mtime, module)
            return module


def module_name(path: str) -> str:
    """The sys.modules name of a script: unique per path, as mod_wsgi's _mod_wsgi_<md5>."""
    return "_pyhttpd_wsgi_" + hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()


def _load(path: str) -> ModuleType:
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"Target WSGI script '{path}' cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        _restore(name, previous)
        raise ScriptError(
            f"Failed to exec Python script file '{path}'.\n{traceback.format_exc().rstrip()}"
        ) from e
    return module


def _restore(name: str, previous: ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous
