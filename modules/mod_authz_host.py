"""mod_authz_host: the `ip` and `local` providers for Require (mod_authz_core).

`Require ip` takes addresses as httpd does: a full address (`127.0.0.1`, `::1`), a partial
IPv4 address (`10.1` is 10.1.0.0/16), or a network (`10.0.0.0/8`, `10.0.0.0/255.0.0.0`,
`fe80::/10`). An IPv4 client seen through an IPv4-mapped IPv6 address matches its IPv4 form.
`Require local` grants loopback clients and clients connecting from the server's own address.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from modules.mod_authz_core import DENIED, GRANTED, AuthzProvider, AuthzResult
from pyhttpd.directive import DirectiveError
from pyhttpd.module import Module
from pyhttpd.request import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip_networks(args: list[str]) -> tuple[Network, ...]:
    """The networks of a `Require ip` line; DirectiveError names a bad one."""
    if not args:
        raise DirectiveError("Require ip takes one or more IP addresses or networks")
    networks = []
    for arg in args:
        text = arg
        parts = arg.rstrip(".").split(".")
        if "/" not in arg and ":" not in arg and len(parts) < 4 and all(p.isdigit() for p in parts):
            text = ".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}"
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise DirectiveError(f"ip address '{arg}' appears to be invalid") from None
    return tuple(networks)


def client_address(r: Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address (IPv4-mapped IPv6 as IPv4), None when it is not an IP address."""
    try:
        addr = ipaddress.ip_address(r.connection.remote_ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _check_ip(r: Request, networks: tuple[Network, ...]) -> AuthzResult:
    addr = client_address(r)
    if addr is not None and any(addr in net for net in networks):
        return GRANTED
    return DENIED


def _parse_local(args: list[str]) -> None:
    if args:
        raise DirectiveError("Require local does not take arguments")


def _check_local(r: Request, parsed: Any) -> AuthzResult:
    addr = client_address(r)
    if addr is not None and (addr.is_loopback or r.connection.remote_ip == r.connection.local_ip):
        return GRANTED
    return DENIED


class AuthzHostModule(Module):
    """httpd's mod_authz_host: authorization by client address."""

    name = "authz_host_module"
    authz_providers = {
        "ip": AuthzProvider("ip", parse_ip_networks, _check_ip),
        "local": AuthzProvider("local", _parse_local, _check_local),
    }


authz_host_module = AuthzHostModule()
