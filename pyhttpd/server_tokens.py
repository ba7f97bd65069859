"""The product banner of the Server header and of signatures, as ServerTokens says."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from pyhttpd import SERVER_BASEPRODUCT, __version__

if TYPE_CHECKING:
    from pyhttpd.config import Config


def server_banner(config: Config) -> str:
    """`pyhttpd`, `pyhttpd/0`, `pyhttpd/0.1`, `pyhttpd/0.1.0`, with `(Linux)` for OS and Full."""
    tokens = config.global_config.server_tokens
    major, minor = __version__.split(".")[:2]
    if tokens in ("Prod", "ProductOnly"):
        return SERVER_BASEPRODUCT
    if tokens == "Major":
        return f"{SERVER_BASEPRODUCT}/{major}"
    if tokens == "Minor":
        return f"{SERVER_BASEPRODUCT}/{major}.{minor}"
    if tokens in ("Min", "Minimal"):
        return f"{SERVER_BASEPRODUCT}/{__version__}"
    return f"{SERVER_BASEPRODUCT}/{__version__} ({platform.system()})"
