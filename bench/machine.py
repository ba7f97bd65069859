"""Facts about the machine a benchmark ran on: cores, CPU, kernel and every program's version."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata

import psutil
from systems import REPO
from wrk import wrk_version

from tests.peers.apache import MOD_JK, apache2_binary
from tests.peers.tomcat import CATALINA_HOME


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return ""
    return done.stdout + done.stderr


def _first(pattern: str, text: str, default: str = "not found") -> str:
    match = re.search(pattern, text)
    return match.group(1) if match else default


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return _first(r"model name\s*:\s*(.+)", cpuinfo.read(), platform.processor())
    except OSError:
        return platform.processor() or "unknown"


def _mod_jk_version() -> str:
    try:
        return _first(r"mod_jk/([\d.]+)", MOD_JK.read_bytes().decode("latin-1"))
    except OSError:
        return "not installed"


def _tomcat_version() -> str:
    text = _output(["java", "-cp", str(CATALINA_HOME / "lib" / "catalina.jar"),
                    "org.apache.catalina.util.ServerInfo"])
    return _first(r"Server version:\s*(.+)", text)


def commit() -> str:
    """The pyhttpd tree's last commit, and whether the tree has changes beyond it."""
    text = _output(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"]).strip()
    dirty = _output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]).strip()
    return f"{text}{' (with uncommitted changes in the tree)' if dirty else ''}" or "unknown"


def machine_facts() -> dict[str, str]:
    """Name -> value of everything that explains the figures of a run."""
    memory = psutil.virtual_memory().total / 2**30
    return {
        "cores": f"{os.cpu_count()} (logical; {psutil.cpu_count(logical=False) or '?'} physical)",
        "CPU": _cpu_model(),
        "memory": f"{memory:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version() + f" ({sys.implementation.name})",
        "pyhttpd": f"{_package('pyhttpd')}, commit {commit()}",
        "gevent": _package("gevent"),
        "httptools": _package("httptools"),
        "gunicorn": _package("gunicorn"),
        "Apache httpd": _first(r"Server version:\s*(.+)", _output([apache2_binary(), "-v"])),
        "mod_jk": _mod_jk_version(),
        "Tomcat": _tomcat_version(),
        "Java": _first(r'version "([^"]+)"', _output(["java", "-version"])),
        "wrk": wrk_version(),
    }
