"""Sending straight to the OS socket under a gevent socket."""

from __future__ import annotations

import socket

import gevent.socket

from pyhttpd.socket_direct import os_socket, send_at_once


def test_a_gevent_socket_has_its_non_blocking_os_socket_under_it():
    a, b = gevent.socket.socketpair()
    try:
        raw = os_socket(a)
        assert raw is not None and raw.fileno() == a.fileno() and raw.gettimeout() == 0.0
    finally:
        a.close()
        b.close()


def test_a_plain_socket_has_none():
    a, b = socket.socketpair()
    try:
        assert os_socket(a) is None
    finally:
        a.close()
        b.close()


def test_what_the_kernel_takes_at_once_leaves_nothing():
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        assert not send_at_once(a, b"hello")
        assert b.recv(16) == b"hello"
    finally:
        a.close()
        b.close()


def test_a_full_buffer_leaves_the_rest_in_order():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    a.setblocking(False)
    data = bytes(range(256)) * 4096
    try:
        rest = send_at_once(a, data)
        assert 0 < len(rest) < len(data)
        assert bytes(rest) == data[len(data) - len(rest):]
        assert bytes(send_at_once(a, rest)) == bytes(rest)  # still full: nothing taken
    finally:
        a.close()
        b.close()
