import os
import signal
import struct
import time
from collections.abc import Callable

import pytest

from pyhttpd.scoreboard import (
    CLIENT_SIZE,
    REQUEST_SIZE,
    SERVER_BUSY_KEEPALIVE,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_DEAD,
    SERVER_GRACEFUL,
    SERVER_READY,
    SERVER_STARTING,
    STATUS_LETTERS,
    Scoreboard,
)

COUNTER = struct.Struct("<Q")


@pytest.fixture
def board():
    with Scoreboard.create(server_limit=4, thread_limit=3) as sb:
        yield sb


def fork(body: Callable[[], None]) -> int:
    """Run body in a forked child that exits 0 if it returns, 1 if it raises."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_layout_size_follows_limits_and_segments():
    with Scoreboard.create(16, 25) as plain:
        # 64 global + 16 x 64 process records + 400 x 384 worker records
        assert plain.size == 64 + 16 * 64 + 16 * 25 * 384
    with Scoreboard.create(16, 25, segments={"jk": 1000, "cache": 10}) as claimed:
        # the directory of two segments pads to 128 bytes; each segment is 64-aligned
        workers_end = 64 + 128 + 16 * 64 + 16 * 25 * 384
        assert claimed.size == workers_end + 1024 + 64
        assert claimed.segment("jk").size == 1000
        assert claimed.segment("cache").size == 10


def test_fresh_scoreboard_has_only_open_slots(board):
    snap = board.snapshot()
    assert snap["scoreboard"] == "." * 12
    assert snap["processes"] == []
    assert board.find_free_process_slot() == 0
    assert board.generation == 0
    assert board.running is True
    assert abs(board.restart_time - time.time()) < 5


def test_process_slot_reads_back_what_was_written(board):
    process = board.process(2)
    process.start(pid=4242, generation=3)
    assert (process.pid, process.generation) == (4242, 3)
    assert not process.quiescing and not process.not_accepting
    assert abs(process.start_time - time.time()) < 5
    process.quiescing = True
    process.not_accepting = True
    assert process.count_connection() == 1
    assert process.count_connection() == 2
    before = process.heartbeat
    time.sleep(0.01)
    process.beat()
    assert process.heartbeat > before
    assert board.process(2).record() == {
        "slot": 2,
        "pid": 4242,
        "generation": 3,
        "quiescing": True,
        "not_accepting": True,
        "start_time": process.start_time,
        "heartbeat": process.heartbeat,
        "connections": 2,
    }
    assert board.find_free_process_slot() == 0


def test_request_cycle_counts_accesses_bytes_and_duration(board):
    worker = board.worker(1, 2)
    worker.claim(pid=77, generation=5)
    assert worker.status == SERVER_READY
    worker.set_status(SERVER_BUSY_READ)
    worker.start_request("192.0.2.1", "www.example.com:80", "GET /a HTTP/1.1", "HTTP/1.1")
    assert worker.status == SERVER_BUSY_WRITE
    time.sleep(0.02)
    worker.end_request(1500)
    worker.set_status(SERVER_BUSY_KEEPALIVE)
    worker.start_request("192.0.2.1", "www.example.com:80", "GET /b HTTP/1.1", "HTTP/1.1")
    worker.end_request(500)

    record = worker.record()
    assert record["status"] == SERVER_BUSY_WRITE
    assert (record["pid"], record["generation"]) == (77, 5)
    assert (record["access_count"], record["my_access_count"], record["conn_count"]) == (2, 2, 2)
    assert (record["bytes_served"], record["my_bytes_served"], record["conn_bytes"]) == (
        2000,
        2000,
        2000,
    )
    assert record["duration"] >= 0.02
    assert record["start_time"] <= record["stop_time"] == record["last_used"]
    assert record["request"] == "GET /b HTTP/1.1"
    assert (record["client"], record["vhost"], record["protocol"]) == (
        "192.0.2.1",
        "www.example.com:80",
        "HTTP/1.1",
    )
    assert worker.access_count == 2 and worker.bytes_served == 2000
    assert worker.request == "GET /b HTTP/1.1"


def test_ready_status_starts_a_new_connection_count(board):
    worker = board.worker(0, 0)
    worker.claim(pid=1, generation=0)
    worker.start_request("c", "v", "GET / HTTP/1.1")
    worker.end_request(100)
    worker.set_status(SERVER_READY)
    assert (worker.conn_count, worker.conn_bytes) == (0, 0)
    assert (worker.my_access_count, worker.access_count, worker.bytes_served) == (1, 1, 100)


def test_claim_by_a_new_child_keeps_slot_totals_but_not_child_counts(board):
    worker = board.worker(0, 1)
    worker.claim(pid=10, generation=0)
    worker.start_request("c", "v", "GET / HTTP/1.1")
    worker.end_request(100)
    worker.claim(pid=11, generation=1)
    assert (worker.pid, worker.generation) == (11, 1)
    assert (worker.my_access_count, worker.my_bytes_served) == (0, 0)
    assert (worker.access_count, worker.bytes_served) == (1, 100)


def test_every_httpd_status_letter_is_accepted_and_others_rejected(board):
    worker = board.worker(3, 2)
    for letter in STATUS_LETTERS:
        worker.set_status(letter)
        assert worker.status == letter
    with pytest.raises(ValueError, match="unknown scoreboard status 'X'"):
        worker.set_status("X")


def test_long_strings_are_cut_at_a_character_boundary(board):
    worker = board.worker(0, 0)
    request = "GET /" + "€" * 100 + " HTTP/1.1"  # '€' is 3 bytes in UTF-8
    client = "é" * 40  # 80 bytes
    worker.start_request(client, "vhost", request)
    stored = worker.request
    assert len(stored.encode()) <= REQUEST_SIZE
    assert stored == request[: len(stored)]
    assert stored == "GET /" + "€" * 41  # 5 + 123 bytes; a 42nd euro would need 131
    assert worker.client == "é" * (CLIENT_SIZE // 2)
    assert "\ufffd" not in stored


def test_string_of_exactly_field_width_is_kept_whole(board):
    worker = board.worker(0, 0)
    line = "G" * REQUEST_SIZE
    worker.start_request("c", "v", line)
    assert worker.request == line
    worker.start_request("c", "v", "short")
    assert worker.request == "short"


@pytest.mark.timeout(20)
def test_forked_child_writes_its_slot_and_parent_reads_it(board):
    board.generation = 4

    def child():
        me = os.getpid()
        board.process(1).beat()
        board.process(1).count_connection()
        worker = board.worker(1, 0)
        worker.claim(me, board.generation)
        worker.start_request("127.0.0.1", "localhost:8080", "POST /form HTTP/1.1", "HTTP/1.1")
        worker.end_request(321)
        worker.set_status(SERVER_BUSY_KEEPALIVE)

    pid = fork(child)
    board.process(1).start(pid, 4)
    assert exit_code(pid) == 0
    worker = board.worker(1, 0)
    assert (worker.pid, worker.generation, worker.status) == (pid, 4, SERVER_BUSY_KEEPALIVE)
    assert (worker.access_count, worker.bytes_served) == (1, 321)
    assert worker.request == "POST /form HTTP/1.1"
    assert board.process(1).connections == 1


@pytest.mark.timeout(20)
def test_child_sees_generation_change_without_locking(board):
    read_end, write_end = os.pipe()

    def child():
        os.close(write_end)
        os.read(read_end, 1)
        deadline = time.monotonic() + 5
        while board.generation != 7:
            assert time.monotonic() < deadline
        board.worker(0, 0).set_status(SERVER_GRACEFUL)

    pid = fork(child)
    os.close(read_end)
    board.generation = 7
    os.write(write_end, b"x")
    os.close(write_end)
    assert exit_code(pid) == 0
    assert board.worker(0, 0).status == SERVER_GRACEFUL


@pytest.mark.timeout(20)
def test_segment_lock_keeps_a_shared_counter_exact_across_forked_processes():
    with Scoreboard.create(2, 2, segments={"jk": 64}) as sb:
        segment = sb.segment("jk")
        assert len(segment.buf) == 64 and not segment.buf.readonly

        def child():
            for _ in range(2000):
                with segment.lock:
                    (value,) = COUNTER.unpack_from(segment.buf, 8)
                    os.sched_yield()  # invite a rival into the critical section
                    COUNTER.pack_into(segment.buf, 8, value + 1)

        pids = [fork(child) for _ in range(4)]
        assert [exit_code(pid) for pid in pids] == [0, 0, 0, 0]
        assert COUNTER.unpack_from(segment.buf, 8)[0] == 8000


@pytest.mark.timeout(20)
def test_segment_lock_works_from_greenlets_of_gevent_children():
    with Scoreboard.create(2, 2, segments={"jk": 8}) as sb:
        segment = sb.segment("jk")

        def child():
            from gevent import monkey

            monkey.patch_all()
            import gevent

            def bump():
                for _ in range(200):
                    with segment.lock:
                        (value,) = COUNTER.unpack_from(segment.buf, 0)
                        COUNTER.pack_into(segment.buf, 0, value + 1)
                    gevent.sleep(0)

            gevent.joinall([gevent.spawn(bump) for _ in range(10)], raise_error=True)

        pids = [fork(child) for _ in range(2)]
        assert [exit_code(pid) for pid in pids] == [0, 0]
        assert COUNTER.unpack_from(segment.buf, 0)[0] == 4000


@pytest.mark.timeout(20)
def test_lock_held_by_a_killed_process_is_released():
    with Scoreboard.create(1, 1, segments={"jk": 8}) as sb:
        segment = sb.segment("jk")
        read_end, write_end = os.pipe()

        def child():
            os.close(read_end)
            segment.lock.acquire()
            os.write(write_end, b"x")
            time.sleep(60)

        pid = fork(child)
        os.close(write_end)
        assert os.read(read_end, 1) == b"x"
        os.close(read_end)
        os.kill(pid, signal.SIGKILL)
        assert exit_code(pid) == -signal.SIGKILL
        with segment.lock:
            segment.buf[0] = 1
        assert segment.buf[0] == 1


@pytest.mark.timeout(20)
def test_segments_do_not_share_a_lock():
    with Scoreboard.create(1, 1, segments={"jk": 8, "other": 8}) as sb:
        read_end, write_end = os.pipe()

        def child():
            os.close(read_end)
            sb.segment("jk").lock.acquire()
            os.write(write_end, b"x")
            time.sleep(60)

        pid = fork(child)
        os.close(write_end)
        try:
            assert os.read(read_end, 1) == b"x"
            with sb.segment("other").lock:
                sb.segment("other").buf[0] = 9
        finally:
            os.close(read_end)
            os.kill(pid, signal.SIGKILL)
            exit_code(pid)


def test_unclaimed_segment_is_an_error_naming_the_claimed_ones():
    with Scoreboard.create(1, 1, segments={"jk": 8}) as sb:
        with pytest.raises(KeyError, match="no scoreboard segment 'cache' \\(claimed: jk\\)"):
            sb.segment("cache")


def test_bad_limits_and_segment_claims_are_rejected():
    with pytest.raises(ValueError, match="ServerLimit and ThreadLimit"):
        Scoreboard.create(0, 25)
    with pytest.raises(ValueError, match="segment name"):
        Scoreboard.create(1, 1, segments={"x" * 33: 8})
    with pytest.raises(ValueError, match="positive size"):
        Scoreboard.create(1, 1, segments={"jk": 0})


def test_slot_indexes_outside_the_limits_are_errors(board):
    with pytest.raises(IndexError):
        board.process(4)
    with pytest.raises(IndexError):
        board.worker(0, 3)


def test_snapshot_counts_like_mod_status(board):
    board.generation = 2
    board.process(0).start(100, 2)
    for thread, letter in enumerate((SERVER_READY, SERVER_BUSY_WRITE, SERVER_BUSY_KEEPALIVE)):
        board.worker(0, thread).claim(100, 2)
        board.worker(0, thread).set_status(letter)
    board.process(1).start(101, 1)  # old generation, still serving
    board.worker(1, 0).claim(101, 1)
    board.worker(1, 1).claim(101, 1)
    board.worker(1, 1).set_status(SERVER_GRACEFUL)
    board.process(2).start(102, 2)
    board.process(2).quiescing = True  # none of its workers count
    board.worker(2, 0).claim(102, 2)
    board.worker(2, 1).claim(102, 2)
    board.worker(2, 1).set_status(SERVER_BUSY_READ)
    board.worker(3, 0).set_status(SERVER_STARTING)
    board.worker(0, 1).start_request("c", "v", "GET / HTTP/1.1")
    board.worker(0, 1).end_request(1000)
    board.worker(1, 0).start_request("c", "v", "GET / HTTP/1.1")
    board.worker(1, 0).end_request(24)
    board.worker(1, 0).set_status(SERVER_READY)

    snap = board.snapshot()
    assert snap["scoreboard"] == "_WK" + "_G." + "_R." + "S.."
    assert snap["idle_workers"] == 1  # (1, 0) is ready but of generation 1
    assert snap["busy_workers"] == 2
    assert snap["graceful_workers"] == 1
    assert snap["total_accesses"] == 2
    assert snap["total_bytes"] == 1024
    assert snap["total_duration"] >= 0
    assert [p["pid"] for p in snap["processes"]] == [100, 101, 102]
    assert snap["generation"] == 2
    assert len(snap["workers"]) == 12
    assert snap["workers"][1]["status"] == SERVER_BUSY_WRITE


def test_snapshot_leaves_out_dead_slots_beyond_the_configured_limits(board):
    board.process(0).start(100, 0)
    board.worker(0, 0).claim(100, 0)
    board.worker(0, 1).claim(100, 0)
    board.worker(0, 2).set_status(SERVER_GRACEFUL)  # beyond the limit but alive
    board.worker(3, 0).start_request("c", "v", "GET / HTTP/1.1")
    board.worker(3, 0).end_request(7)
    board.worker(3, 0).set_status(SERVER_DEAD)
    snap = board.snapshot(max_servers=2, threads_per_child=2)
    assert snap["scoreboard"] == "__G" + ".."
    assert [(w["slot"], w["thread"]) for w in snap["workers"]] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
    ]
    assert snap["total_accesses"] == 1  # totals still count every slot


def test_cleared_process_frees_its_slot_and_marks_its_workers_dead(board):
    board.process(0).start(100, 0)
    board.process(0).quiescing = True
    worker = board.worker(0, 1)
    worker.claim(100, 0)
    worker.start_request("c", "v", "GET /last HTTP/1.1")
    worker.end_request(10)
    board.process(1).start(101, 0)
    assert board.find_free_process_slot() == 2

    board.clear_process(0)
    assert board.find_free_process_slot() == 0
    assert (board.process(0).pid, board.process(0).quiescing) == (0, False)
    assert [board.worker(0, t).status for t in range(3)] == [SERVER_DEAD] * 3
    assert (worker.my_access_count, worker.conn_count) == (0, 0)
    assert (worker.access_count, worker.request) == (1, "GET /last HTTP/1.1")


def test_a_connection_the_child_counts_before_the_master_records_it_is_kept(board):
    process = board.process(0)
    process.start(100, 0)
    process.count_connection()
    board.clear_process(0)
    assert process.connections == 0
    process.count_connection()  # the new child is quicker than its master
    process.start(101, 1)
    assert (process.pid, process.generation, process.connections) == (101, 1, 1)


def test_a_worker_records_each_requests_client_vhost_and_protocol(board):
    worker = board.worker(0, 0)
    worker.start_request("10.0.0.1", "a:80", "GET /1 HTTP/1.1", "HTTP/1.1")
    worker.start_request("10.0.0.1", "a:80", "GET /2 HTTP/1.1", "HTTP/1.1")
    assert (worker.client, worker.vhost, worker.protocol, worker.request) == (
        "10.0.0.1", "a:80", "HTTP/1.1", "GET /2 HTTP/1.1")
    worker.start_request("10.0.0.2", "b:80", "GET /3 HTTP/1.0", "HTTP/1.0")
    assert (worker.client, worker.vhost, worker.protocol, worker.request) == (
        "10.0.0.2", "b:80", "HTTP/1.0", "GET /3 HTTP/1.0")
    board.worker(0, 0).start_request("10.0.0.1", "a:80", "GET /4 HTTP/1.1", "HTTP/1.1")
    assert (worker.client, worker.vhost, worker.protocol) == ("10.0.0.1", "a:80", "HTTP/1.1")


def test_no_free_process_slot_when_all_are_taken(board):
    for slot in range(4):
        board.process(slot).start(1000 + slot, 0)
    assert board.find_free_process_slot() is None


def test_reset_forgets_processes_and_workers_but_keeps_generation_and_segments():
    with Scoreboard.create(2, 2, segments={"jk": 4}) as sb:
        sb.generation = 3
        sb.restart_time = 1.0
        sb.segment("jk").buf[:] = b"jk!!"
        sb.process(0).start(100, 3)
        sb.worker(0, 0).claim(100, 3)
        sb.worker(0, 0).start_request("c", "v", "GET / HTTP/1.1")
        sb.worker(0, 0).end_request(5)
        sb.reset()
        snap = sb.snapshot()
        assert snap["scoreboard"] == "...."
        assert snap["processes"] == [] and snap["total_accesses"] == 0
        assert sb.generation == 3 and sb.restart_time > 1.0
        assert bytes(sb.segment("jk").buf) == b"jk!!"


def test_file_backed_scoreboard_is_readable_from_outside(tmp_path):
    path = str(tmp_path / "scoreboard")
    with Scoreboard.create(2, 2, segments={"jk": 16}, path=path) as sb:
        sb.generation = 9
        sb.process(1).start(555, 9)
        sb.worker(1, 1).claim(555, 9)
        sb.worker(1, 1).start_request("198.51.100.7", "app:80", "GET /x HTTP/1.1")
        sb.segment("jk").buf[:4] = b"node"
        assert os.path.getsize(path) == sb.size
        assert os.stat(path).st_mode & 0o777 == 0o600

        with Scoreboard.attach(path) as outside:
            assert (outside.server_limit, outside.thread_limit) == (2, 2)
            assert outside.generation == 9
            assert outside.process(1).pid == 555
            assert outside.worker(1, 1).client == "198.51.100.7"
            assert outside.snapshot()["scoreboard"] == "...W"
            jk = outside.segment("jk")
            assert jk.buf.readonly and bytes(jk.buf[:4]) == b"node"
            with jk.lock:
                assert jk.size == 16
            sb.running = False
            assert outside.running is False
            with pytest.raises(TypeError):
                outside.generation = 10
    assert os.path.exists(path)


def test_attach_rejects_a_file_that_is_not_a_scoreboard(tmp_path):
    path = tmp_path / "not-a-scoreboard"
    path.write_bytes(b"x" * 200)
    with pytest.raises(ValueError, match="not a pyhttpd scoreboard"):
        Scoreboard.attach(str(path))


def test_close_twice_is_harmless():
    sb = Scoreboard.create(1, 1, segments={"jk": 8})
    sb.close()
    sb.close()
