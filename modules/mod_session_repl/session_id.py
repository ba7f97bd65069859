"""Session ids in Tomcat's jvmRoute form: ``<random>.<route>``.

The random part is 16 bytes from :mod:`secrets` written as 32 upper-case hex
characters, as Tomcat's StandardSessionIdGenerator does by default.  The route is
the node's jvmRoute, which must equal the balancer's worker name: mod_jk keeps a
session on its node by reading the text after the last ``.``.

Clients may send anything in a cookie or path parameter, so every id read from a
request is checked against a strict charset and length before it is used as a
key; anything else is treated as no id at all.
"""

from __future__ import annotations

import re
import secrets

ID_BYTES = 16
COOKIE_NAME = "JSESSIONID"
PATH_PARAMETER = "jsessionid"

MIN_BASE_LEN = 16
MAX_BASE_LEN = 128
MAX_ROUTE_LEN = 64
_BASE = re.compile(rf"[0-9A-Za-z_-]{{{MIN_BASE_LEN},{MAX_BASE_LEN}}}")
_ROUTE = re.compile(rf"[0-9A-Za-z_-]{{1,{MAX_ROUTE_LEN}}}")
# The base, then optionally "." and a route: neither holds a ".", so the route is what
# follows the last one.
_SESSION_ID = re.compile(rf"{_BASE.pattern}(?:\.{_ROUTE.pattern})?")


def is_valid_route(route: str) -> bool:
    """Whether *route* can follow the last ``.`` of an id (letters, digits, ``_``, ``-``)."""
    return isinstance(route, str) and _ROUTE.fullmatch(route) is not None


def _check_route(route: str | None) -> None:
    if route is not None and not is_valid_route(route):
        raise ValueError(
            f"route {route!r} is not usable in a session id: use 1 to {MAX_ROUTE_LEN} "
            "letters, digits, '_' or '-' (the worker name in workers.properties)"
        )


def new_session_id(route: str | None = None) -> str:
    """A fresh id with 128 random bits, followed by ``.route`` when *route* is set.

    Raises ValueError when *route* could not be read back by a balancer.
    """
    _check_route(route)
    base = secrets.token_hex(ID_BYTES).upper()
    return base if route is None else f"{base}.{route}"


def split_route(session_id: str) -> tuple[str, str | None]:
    """``(base, route)``: the route is the text after the last ``.``, None without one."""
    base, dot, route = session_id.rpartition(".")
    if not dot:
        return session_id, None
    return base, route


def rebind(session_id: str, route: str | None) -> str:
    """The same id with its route replaced by *route* (removed when None).

    This is what a node does when it takes over a session after a failover, so
    that the balancer keeps the client on the new node.
    """
    _check_route(route)
    base, _ = split_route(session_id)
    return base if route is None else f"{base}.{route}"


def is_valid_session_id(value: object) -> bool:
    """Whether *value* has the shape of a session id, and so is worth a lookup: a
    URL-safe base of 16 to 128 characters, then optionally ``.`` and a route."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_BASE_LEN + 1 + MAX_ROUTE_LEN
        and _SESSION_ID.fullmatch(value) is not None
    )


def _cookie_values(cookie_header: str, name: str) -> list[str]:
    values = []
    # RFC 6265 cookie values cannot hold ',' or ';', so both separate cookies; ','
    # also covers Cookie headers that a proxy folded into one line.
    for pair in re.split(r"[;,]", cookie_header):
        key, eq, value = pair.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            values.append(value)
    return values


def _path_parameter_pattern(name: str) -> re.Pattern[str]:
    # The value runs to the next parameter, path segment, query or fragment.
    return re.compile(rf";{re.escape(name)}=([^;/?#]*)")


def _path_parameter_values(uri: str, name: str) -> list[str]:
    path = uri.split("?", 1)[0].split("#", 1)[0]
    return _path_parameter_pattern(name).findall(path)


def session_id_from_request(
    cookie_header: str | None,
    uri: str | None,
    cookie_name: str = COOKIE_NAME,
    path_parameter: str = PATH_PARAMETER,
) -> str | None:
    """The session id a request carries, or None.

    The cookie wins over the ``;jsessionid=`` path parameter, as in Tomcat; among
    several candidates the first valid one is taken (browsers send the cookie of
    the most specific path first).  Invalid values are skipped, never returned.
    """
    candidates = []
    if cookie_header:
        candidates += _cookie_values(cookie_header, cookie_name)
    if uri:
        candidates += _path_parameter_values(uri, path_parameter)
    for value in candidates:
        if is_valid_session_id(value):
            return value
    return None


def strip_path_parameter(path: str, path_parameter: str = PATH_PARAMETER) -> str:
    """*path* without its ``;jsessionid=...`` parameters, as the application should see it."""
    return _path_parameter_pattern(path_parameter).sub("", path)
