"""The ajp13 worker: pooling, retries, CPing/CPong, timeouts and failure statuses."""

from __future__ import annotations

import socket
import threading
import time

from modules.mod_jk.ajp13 import encode_get_body_chunk
from pyhttpd.request import HTTPError
from tests.peers.ports import free_port
from tests.unit.jk_fake_container import Exchange, FakeContainer, echo
from tests.unit.jk_request import RecordingTransport, ajp_worker, jk_config, page, serve


def test_connections_are_pooled_and_reused_across_requests(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        for _ in range(5):
            _, client = serve(config, "GET /x")
            assert client.status == 200
        assert tomcat.connections == 1
        assert len(tomcat.requests) == 5


def test_end_response_without_reuse_closes_the_connection(tmp_path):
    def once(exchange: Exchange) -> None:
        exchange.respond(200, b"ok", reuse=False)

    with FakeContainer(once) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        for _ in range(3):
            _, client = serve(config, "GET /x")
            assert bytes(client.out) == b"ok"
        assert tomcat.connections == 3


def test_disable_reuse_closes_after_each_request(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port), "JkMount /* node1\nJkOptions +DisableReuse")
        for _ in range(3):
            serve(config, "GET /x")
        assert tomcat.connections == 3


def test_connection_closed_while_idle_is_replaced_without_the_client_noticing(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        serve(config, "GET /first")
        tomcat.drop_connections()  # the container restarted its connections
        time.sleep(0.05)
        _, client = serve(config, "GET /second")
        assert client.status == 200
        assert page(client)["uri"] == "/second"
        assert tomcat.connections == 2


def test_connection_closed_while_idle_is_not_sent_a_request(tmp_path):
    with FakeContainer() as tomcat:
        # One attempt only: the request must not be spent on the dead connection.
        config = jk_config(tmp_path, ajp_worker(tomcat.port, retries=1))
        serve(config, "GET /first")
        tomcat.drop_connections()
        time.sleep(0.05)
        _, client = serve(config, "GET /second")
        assert client.status == 200
        assert page(client)["uri"] == "/second"


def test_connection_that_dies_before_the_reply_is_retried_on_a_fresh_one(tmp_path):
    calls = []

    def dies_once(exchange: Exchange) -> None:
        calls.append(exchange.request.req_uri)
        if len(calls) == 1:
            exchange.close()  # read the request, then vanish
            return
        echo(exchange)

    payload = b"x" * 3000
    with FakeContainer(dies_once) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "POST /form", {"Content-Length": str(len(payload))}, payload)
    assert client.status == 200
    assert page(client)["body.bytes"] == "3000"  # the first body packet was replayed
    assert calls == ["/form", "/form"]


def test_no_retry_once_the_container_asked_for_more_body(tmp_path):
    calls = []

    def dies_mid_upload(exchange: Exchange) -> None:
        calls.append(1)
        exchange.packet()  # the first body packet
        exchange.send(encode_get_body_chunk(8186))
        exchange.packet()
        exchange.close()

    payload = b"y" * 100000
    with FakeContainer(dies_mid_upload) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "POST /big", {"Content-Length": str(len(payload))}, payload)
    assert client.status == 502
    assert calls == [1]


def test_backend_down_answers_503_quickly(tmp_path):
    port = free_port()
    config = jk_config(tmp_path, ajp_worker(port, socket_connect_timeout=500))
    started = time.monotonic()
    _, client = serve(config, "GET /x")
    assert client.status == 503
    assert time.monotonic() - started < 1.0
    assert "connecting" in (tmp_path / "logs" / "mod_jk.log").read_text()


def test_unresponsive_backend_connect_is_bounded_by_socket_connect_timeout(tmp_path):
    # A listener whose backlog is full never completes the handshake in time.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(listener.getsockname())
        fillers.append(s)
    try:
        config = jk_config(tmp_path, ajp_worker(listener.getsockname()[1], socket_connect_timeout=300,
                                                retries=1))
        started = time.monotonic()
        _, client = serve(config, "GET /x")
        elapsed = time.monotonic() - started
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert client.status in (503, 502)
    assert elapsed < 2.0


def test_reply_timeout_gives_504_after_the_retries(tmp_path):
    def slow(exchange: Exchange) -> None:
        time.sleep(1.0)
        echo(exchange)

    with FakeContainer(slow) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, reply_timeout=200, retries=2, retry_interval=10))
        started = time.monotonic()
        _, client = serve(config, "GET /slow")
        elapsed = time.monotonic() - started
        tomcat.settle()
        assert client.status == 504
        assert len(tomcat.requests) == 2
        assert elapsed < 0.9


def test_reply_timeout_from_the_mapping_rule_overrides_the_workers(tmp_path):
    def slow(exchange: Exchange) -> None:
        time.sleep(0.5)
        echo(exchange)

    with FakeContainer(slow) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, retries=1),
                           "JkMount /* node1;reply_timeout=100")
        _, client = serve(config, "GET /slow")
    assert client.status == 504


def test_recovery_option_1_does_not_repeat_a_request_the_container_got(tmp_path):
    def slow(exchange: Exchange) -> None:
        time.sleep(0.5)

    with FakeContainer(slow) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, reply_timeout=100, recovery_options=1))
        _, client = serve(config, "POST /once", {"Content-Length": "0"})
        tomcat.settle()
        assert client.status == 504
        assert len(tomcat.requests) == 1


def test_fail_on_status_turns_the_status_into_503_without_the_body(tmp_path):
    def broken(exchange: Exchange) -> None:
        exchange.respond(500, b"stack trace")

    with FakeContainer(broken) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, fail_on_status="500,503", retries=1))
        _, client = serve(config, "GET /x")
    assert client.status == 503
    assert b"stack trace" not in client.out


def test_negative_fail_on_status_also_fails_the_request(tmp_path):
    def missing(exchange: Exchange) -> None:
        exchange.respond(404, b"nope")

    with FakeContainer(missing) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, fail_on_status="-404", retries=1))
        _, client = serve(config, "GET /x")
    assert client.status == 503


def test_ping_mode_c_probes_each_new_connection(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, ping_mode="C"))
        serve(config, "GET /a")
        serve(config, "GET /b")
        assert (tomcat.connections, tomcat.cpings) == (1, 1)


def test_ping_mode_p_probes_before_every_request(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, ping_mode="P"))
        for _ in range(3):
            serve(config, "GET /a")
        assert tomcat.cpings == 3


def test_connection_without_cpong_is_not_used(tmp_path):
    with FakeContainer(answer_cping=False) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, ping_mode="C", ping_timeout=200, retries=2,
                                                retry_interval=10))
        _, client = serve(config, "GET /a")
        tomcat.settle()
        assert client.status == 503
        assert tomcat.requests == []
        assert tomcat.cpings == 2


def test_interval_ping_closes_idle_connections_that_do_not_answer(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, ping_mode="I", ping_timeout=200,
                                                connection_ping_interval=1))
        serve(config, "GET /a")
        registry = config.main_server.module_config["jk_module"].state.registry
        worker = registry.get("node1")
        registry.maintain(time.monotonic() + 5)
        assert tomcat.cpings == 1 and worker.pool.connected == 1
        tomcat.answer_cping = False
        registry.maintain(time.monotonic() + 10)
        assert worker.pool.connected == 0


def test_pool_timeout_closes_idle_connections_above_the_minimum(tmp_path):
    def slow(exchange: Exchange) -> None:
        time.sleep(0.2)
        echo(exchange)

    with FakeContainer(slow) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, connection_pool_size=4,
                                                connection_pool_minsize=1, connection_pool_timeout=10))
        threads = [threading.Thread(target=serve, args=(config, "GET /x")) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        worker = config.main_server.module_config["jk_module"].state.registry.get("node1")
        assert worker.pool.connected == 3
        worker.maintain(time.monotonic() + 60)
        assert worker.pool.connected == 1


def test_secret_is_sent_and_a_403_from_a_secret_mismatch_reaches_the_client(tmp_path):
    def checks_secret(exchange: Exchange) -> None:
        if exchange.request.secret != "right":
            exchange.respond(403, b"", reuse=False)
        else:
            exchange.respond(200, b"welcome")

    with FakeContainer(checks_secret) as tomcat:
        good = jk_config(tmp_path / "good", ajp_worker(tomcat.port, secret="right"))
        bad = jk_config(tmp_path / "bad", ajp_worker(tomcat.port, secret="wrong"))
        _, ok = serve(good, "GET /x")
        _, refused = serve(bad, "GET /x")
    assert (ok.status, bytes(ok.out)) == (200, b"welcome")
    assert refused.status == 403


def test_request_too_large_for_a_packet_gets_413(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "GET /x", {"Cookie": "c=" + "z" * 9000})
        assert client.status == 413
        assert tomcat.requests == []


def test_larger_max_packet_size_carries_larger_headers(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, max_packet_size=16384))
        _, client = serve(config, "GET /x", {"Cookie": "c=" + "z" * 9000})
    assert client.status == 200


def test_client_that_goes_away_ends_the_request_and_the_backend_connection(tmp_path):
    def big(exchange: Exchange) -> None:
        exchange.headers(200)
        for _ in range(50):
            exchange.chunk(b"q" * 8000)
            time.sleep(0.002)
        exchange.end()

    with FakeContainer(big) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port), "JkMount /* node1\nJkOptions +FlushPackets")
        r, client = serve(config, "GET /big", transport=RecordingTransport(fail_writes_after=2))
        assert r.connection.aborted
        worker = config.main_server.module_config["jk_module"].state.registry.get("node1")
        assert worker.pool.connected == 0
        assert worker.client_errors == 1
        assert len(tomcat.requests) == 1


def test_second_send_headers_is_a_protocol_error(tmp_path):
    def twice(exchange: Exchange) -> None:
        exchange.headers(200)
        exchange.headers(200)
        exchange.end()

    with FakeContainer(twice) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, retries=1))
        _, client = serve(config, "GET /x")
    assert client.status == 500


def test_pool_exhausted_answers_503_after_the_acquire_timeout(tmp_path):
    release = threading.Event()

    def holds(exchange: Exchange) -> None:
        release.wait(5)
        echo(exchange)

    with FakeContainer(holds) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, connection_pool_size=1,
                                                connection_acquire_timeout=100))
        first = threading.Thread(target=serve, args=(config, "GET /first"))
        first.start()
        time.sleep(0.2)
        _, client = serve(config, "GET /second")
        release.set()
        first.join()
    assert client.status == 503


def test_ping_mode_a_probes_on_connect_and_before_each_request(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, ping_mode="A"))
        serve(config, "GET /a")
        serve(config, "GET /b")
        # connect, then prepost before the second request (the first ran on the new connection)
        assert (tomcat.connections, tomcat.cpings) == (1, 2)


def test_watchdog_thread_runs_maintenance_without_requests(tmp_path):
    workers = "worker.maintain=1\n" + ajp_worker(
        8009, connection_pool_size=2, connection_pool_minsize=0, connection_pool_timeout=1)
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, workers.replace("port=8009", f"port={tomcat.port}"),
                           "JkMount /* node1\nJkWatchdogInterval 1")
        serve(config, "GET /a")
        worker = config.main_server.module_config["jk_module"].state.registry.get("node1")
        assert worker.pool.connected == 1
        config.hooks.run_void("child_init", config)
        try:
            deadline = time.monotonic() + 5
            while worker.pool.connected and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            config.hooks.run_void("child_stopping", config, False)
        assert worker.pool.connected == 0


def test_body_that_times_out_ends_the_request_with_the_readers_status(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        transport = RecordingTransport(b"x" * 20000, read_error=HTTPError(408, "body read timeout"))
        r, client = serve(config, "POST /upload", {"Content-Length": "50000"}, transport=transport)
        worker = config.main_server.module_config["jk_module"].state.registry.get("node1")
        assert client.status == 408
        assert not r.keepalive
        assert worker.pool.connected == 0  # the half-sent request's connection is not reused
        assert worker.pool.busy == 0
