"""Finding a peer's binary, with the rule that CI never skips for a missing one."""

from __future__ import annotations

import os
import shutil

import pytest


def on_ci() -> bool:
    """True when the tests run on CI (the environment variable CI is "true")."""
    return os.environ.get("CI", "").lower() == "true"


def require_binary(path_or_name: str) -> str:
    """Return the binary's path; if it is missing, skip the test, or fail it on CI.

    A name is looked up on PATH and then in /usr/sbin (httpd lives there and a non-root
    PATH may lack it); a path (an httpd module, say) must be an existing file.
    """
    if os.sep in path_or_name:
        found = path_or_name if os.path.isfile(path_or_name) else None
    else:
        found = shutil.which(path_or_name) or shutil.which(path_or_name, path="/usr/sbin")
    if found:
        return found
    message = f"peer binary {path_or_name!r} is not installed (bash .ci/run installs it)"
    if on_ci():
        pytest.fail(f"{message}; on CI an interop test must never skip for a missing peer")
    pytest.skip(message)
