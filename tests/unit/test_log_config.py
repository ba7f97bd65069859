"""mod_log_config: format codes checked field by field, escaping, files, conditions, vhosts."""

from __future__ import annotations

import fcntl
import os
import re
import time

import pytest

from modules.mod_log_config import LogFile, LogFormat, clf_time, escape_logitem
from pyhttpd.conftree import ConfigError
from tests.unit.static_request import serve, static_config

FILES = {"htdocs/f.txt": "0123456789", "htdocs/docs/index.html": "<p>i</p>", "htdocs/e.html": ""}


def logged(tmp_path, fmt: str, target: str = "/f.txt", **kwargs) -> str:
    """The single line `fmt` logs for one request (each call has a ServerRoot of its own)."""
    root = tmp_path / f"root{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    quoted = fmt.replace("\\", "\\\\").replace('"', '\\"')
    config = static_config(root, f'LogFormat "{quoted}" test\nCustomLog logs/access_log test', FILES)
    serve(config, target, **kwargs)
    lines = (root / "logs" / "access_log").read_text().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_common_format_field_by_field(tmp_path):
    config = static_config(tmp_path, "CustomLog logs/access_log common", FILES)
    before = time.time()
    serve(config, "/f.txt?x=1", remote_ip="192.0.2.7")
    line = (tmp_path / "logs" / "access_log").read_text()
    m = re.fullmatch(r'(\S+) (\S+) (\S+) \[([^]]+)\] "([^"]*)" (\d{3}) (\S+)\n', line)
    assert m is not None, line
    host, ident, user, stamp, request, status, size = m.groups()
    assert (host, ident, user) == ("192.0.2.7", "-", "-")
    assert abs(time.mktime(time.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z")) - before) < 5
    assert request == "GET /f.txt?x=1 HTTP/1.1"
    assert (status, size) == ("200", "10")


def test_combined_format_adds_referer_and_user_agent(tmp_path):
    config = static_config(tmp_path, "CustomLog logs/access_log combined", FILES)
    serve(config, "/f.txt", headers={"Referer": "http://a.example/", "User-Agent": "curl/8.0"})
    serve(config, "/none")
    first, second = (tmp_path / "logs" / "access_log").read_text().splitlines()
    assert first.endswith('"GET /f.txt HTTP/1.1" 200 10 "http://a.example/" "curl/8.0"')
    assert second.endswith('"GET /none HTTP/1.1" 404 196 "-" "-"')


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%a %A %h %l %u", "192.0.2.7 127.0.0.1 192.0.2.7 - -"),
        ("%m %H %U %q", "GET HTTP/1.1 /f.txt ?a=b"),
        ("%s %>s %<s %b %B", "200 200 200 10 10"),
        ("%v %V %p %{local}p %{remote}p %{canonical}p", "www.example.com www.example.com 80 8080 50000 80"),
        ("%{X-Test}i|%{X-None}i|%{Content-Length}o|%{Content-Type}o", "yes|-|10|text/plain"),
        ("%{mapping.root}n", "{root}/htdocs"),
        ("%f|%R", "{root}/htdocs/f.txt|-"),
        ("%k %X %L", "0 + -"),
        ("%{sid}C|%{other}C", "abc|-"),
        ("100%% \\t|", "100% \t|"),
        ("{%s} '%m' \\\\ \\\" \"\"\"", "{200} 'GET' \\ \" \"\"\""),
    ],
)
def test_format_codes(tmp_path, fmt, expected):
    line = logged(
        tmp_path, fmt, "/f.txt?a=b", remote_ip="192.0.2.7", local_port=8080,
        headers={"X-Test": "yes", "Cookie": "a=1; sid=abc"},
    )
    assert line == expected.replace("{root}", str(tmp_path / "root0"))


def test_connection_status_shows_a_connection_that_will_close(tmp_path):
    assert logged(tmp_path, "%X", headers={"Connection": "close"}) == "-"
    assert logged(tmp_path, "%X %k") == "+ 0"


def test_pid_and_durations(tmp_path):
    line = logged(tmp_path, "%P %{pid}P %D %T %{ms}T %{us}T %{s}T")
    pid, pid2, micros, secs, ms, us, s = line.split()
    assert pid == pid2 == str(os.getpid())
    assert int(micros) >= 0 and int(us) >= 0 and int(ms) >= 0
    assert secs == s == "0"


def test_time_formats(tmp_path):
    before = int(time.time())
    line = logged(tmp_path, "%t|%{%Y-%m-%d}t|%{sec}t|%{begin:msec}t|%{end:sec}t|%{msec_frac}t|%{usec_frac}t")
    clf, day, sec, msec, end, frac_ms, frac_us = line.split("|")
    assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", clf)
    assert day == time.strftime("%Y-%m-%d", time.localtime(int(sec)))
    assert before <= int(sec) <= int(end) <= before + 5
    assert int(msec) // 1000 == int(sec)
    assert len(frac_ms) == 3 and len(frac_us) == 6


def test_clf_time_uses_the_local_offset():
    stamp = clf_time(0)
    offset = time.localtime(0).tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    assert stamp.endswith(f" {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}]")


def test_zero_bytes_is_a_dash_for_b_and_zero_for_capital_b(tmp_path):
    assert logged(tmp_path, "%b %B", "/e.html") == "- 0"
    assert logged(tmp_path, "%b %B", "/f.txt", method="HEAD") == "- 0"


def test_original_and_final_request_of_an_internal_redirect(tmp_path):
    assert logged(tmp_path, "%U %>U %<U %r %f", "/docs/") == (
        f"/docs/ /docs/index.html /docs/ GET /docs/ HTTP/1.1 {tmp_path}/root0/htdocs/docs/index.html"
    )


def test_status_conditions(tmp_path):
    fmt = "%200{X-A}i %!200{X-A}i %404,500{X-A}i"
    assert logged(tmp_path, fmt, "/f.txt", headers={"X-A": "v"}) == "v - -"
    assert logged(tmp_path, fmt, "/none", headers={"X-A": "v"}) == "- v v"


def test_values_are_escaped_as_httpd_does(tmp_path):
    line = logged(
        tmp_path, '"%r" "%{User-Agent}i" %U', '/a"b', headers={"User-Agent": 'x"y\\z\x01\tw\xe9'}
    )
    assert line == '"GET /a\\"b HTTP/1.1" "x\\"y\\\\z\\x01\\tw\\xe9" /a\\"b'


def test_non_ascii_paths_are_logged_as_their_utf8_bytes(tmp_path):
    line = logged(tmp_path, "%U|%r|%f", "/caf%C3%A9.txt")
    htdocs = tmp_path / "root0" / "htdocs"
    assert line == f"/caf\\xc3\\xa9.txt|GET /caf%C3%A9.txt HTTP/1.1|{htdocs}/caf\\xc3\\xa9.txt"


def test_escape_logitem():
    assert escape_logitem("plain text/ok") == "plain text/ok"
    assert escape_logitem('"\\\n\r\x7f') == '\\"\\\\\\n\\r\\x7f'
    assert escape_logitem("\udcff") == "\\xff"  # a byte kept by surrogateescape
    assert escape_logitem("\u20ac") == "\\xe2\\x82\\xac"


def test_set_cookie_values_are_joined(tmp_path):
    fmt = LogFormat("%{Set-Cookie}o")
    config = static_config(tmp_path, files=FILES)
    r, _ = serve(config, "/f.txt")
    r.headers_out.add("Set-Cookie", "a=1")
    r.headers_out.add("Set-Cookie", "b=2")
    assert fmt.render(r) == "a=1, b=2"


def test_env_condition_logs_only_requests_with_that_variable(tmp_path):
    conf = (
        "ErrorDocument 404 /f.txt\n"
        "CustomLog logs/errors_log \"%>s %U %{REDIRECT_STATUS}e\" env=REDIRECT_STATUS\n"
        "CustomLog logs/others_log \"%>s %U\" env=!REDIRECT_STATUS\n"
    )
    config = static_config(tmp_path, conf, FILES)
    serve(config, "/f.txt")
    serve(config, "/missing")
    assert (tmp_path / "logs" / "errors_log").read_text() == "404 /missing 404\n"
    assert (tmp_path / "logs" / "others_log").read_text() == "200 /f.txt\n"


def test_a_nickname_may_be_defined_after_the_custom_log_using_it(tmp_path):
    conf = 'CustomLog logs/access_log short\nLogFormat "%>s %U" short'
    config = static_config(tmp_path, conf, FILES)
    serve(config, "/f.txt")
    assert (tmp_path / "logs" / "access_log").read_text() == "200 /f.txt\n"


def test_transfer_log_uses_the_last_unnamed_log_format(tmp_path):
    config = static_config(tmp_path, 'LogFormat "%U only"\nTransferLog logs/t_log', FILES)
    serve(config, "/f.txt")
    assert (tmp_path / "logs" / "t_log").read_text() == "/f.txt only\n"


def test_virtual_hosts_log_to_their_own_file_or_the_main_servers(tmp_path):
    conf = (
        "CustomLog logs/main_log \"%v %U\"\n"
        "<VirtualHost *:80>\nServerName a.example\nCustomLog logs/a_log \"%v %U\"\n</VirtualHost>\n"
        "<VirtualHost *:80>\nServerName b.example\n</VirtualHost>\n"
    )
    config = static_config(tmp_path, conf, FILES)
    serve(config, "/f.txt", host="a.example")
    serve(config, "/f.txt", host="b.example")
    assert (tmp_path / "logs" / "a_log").read_text() == "a.example /f.txt\n"
    assert (tmp_path / "logs" / "main_log").read_text() == "b.example /f.txt\n"


def test_log_files_are_opened_at_post_config_for_appending(tmp_path):
    config = static_config(tmp_path, "CustomLog logs/access_log common", FILES)
    log = config.main_server.module_config["log_config_module"].logs[0].log
    assert log.fd is not None
    assert fcntl.fcntl(log.fd, fcntl.F_GETFL) & os.O_APPEND
    assert (tmp_path / "logs" / "access_log").exists()


def test_reopening_picks_up_a_rotated_file_and_closes_the_old_one(tmp_path):
    log = LogFile(str(tmp_path / "x_log")).open()
    old_fd = log.fd
    log.write(b"one\n")
    os.rename(tmp_path / "x_log", tmp_path / "x_log.1")
    log.open()
    log.write(b"two\n")
    assert (tmp_path / "x_log.1").read_text() == "one\n"
    assert (tmp_path / "x_log").read_text() == "two\n"
    assert log.fd != old_fd
    with pytest.raises(OSError):
        os.fstat(old_fd)


def test_the_master_closes_the_files_of_generations_it_no_longer_runs(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    old = static_config(tmp_path / "one", "CustomLog logs/access_log common", FILES)
    new = static_config(tmp_path / "two", "CustomLog logs/access_log common", FILES)
    old_log = old.main_server.module_config["log_config_module"].logs[0].log
    new_log = new.main_server.module_config["log_config_module"].logs[0].log
    old_fd = old_log.fd
    new.hooks.run_all("monitor", new)
    assert old_log.fd is None
    with pytest.raises(OSError):
        os.fstat(old_fd)
    assert fcntl.fcntl(new_log.fd, fcntl.F_GETFL) & os.O_APPEND


def test_lines_written_by_many_processes_never_tear(tmp_path):
    log = LogFile(str(tmp_path / "shared_log")).open()
    children = []
    for n in range(8):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(2000):
                    log.write(f"child {n} line {i} ".encode() + b"x" * (n * 300) + b"\n")
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    lines = (tmp_path / "shared_log").read_bytes().split(b"\n")[:-1]
    assert len(lines) == 8 * 2000
    for line in lines:
        head, _, tail = line.rpartition(b" ")
        n = int(head.split()[1])
        assert tail == b"x" * (n * 300)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ('LogFormat "%h %Z" bad', 'httpd.conf:11: LogFormat: Unrecognized LogFormat directive %Z'),
        ('LogFormat "%{Referer" bad', "missing '}'"),
        ('LogFormat "%h %O" bad', "%O needs byte counts on the wire (mod_logio)"),
        ('LogFormat "%i" bad', "LogFormat directive %i needs an argument"),
        ('LogFormat "%h %" bad', "ends in the middle of a % directive"),
        ('CustomLog logs/x "%h %Q"', "httpd.conf:11: CustomLog: Unrecognized LogFormat directive %Q"),
        ('CustomLog "|/usr/bin/rotatelogs x" common', "piped logs are not supported"),
        ("CustomLog logs/x common env=", "env= needs a variable name"),
        ("CustomLog logs/x common expr=true", "the condition must be env=[!]VARIABLE"),
        ("<VirtualHost *:80>\nBufferedLogs On\n</VirtualHost>", "httpd.conf:12: BufferedLogs: BufferedLogs not allowed here"),
    ],
)
def test_bad_formats_are_config_errors_naming_the_line(tmp_path, conf, message):
    with pytest.raises(ConfigError) as raised:
        static_config(tmp_path, "\n" + conf)
    assert message in str(raised.value)


def test_a_log_that_cannot_be_opened_is_an_error_naming_the_line(tmp_path):
    with pytest.raises(ConfigError) as raised:
        static_config(tmp_path, "CustomLog nodir/sub/access_log common")
    assert "CustomLog: could not open transfer log file" in str(raised.value)


def test_buffered_log_writes_whole_lines_a_buffer_at_a_time(tmp_path):
    from modules.mod_log_config import LOG_BUFSIZE

    log = LogFile(str(tmp_path / "access_log")).open()
    log.buffer = bytearray()
    line = b"x" * 99 + b"\n"
    per_buffer = LOG_BUFSIZE // len(line)
    for _ in range(per_buffer):
        log.buffered_write(line)
    assert os.path.getsize(log.path) == 0  # all held
    log.buffered_write(line)  # does not fit: the full buffer goes first
    assert os.path.getsize(log.path) == per_buffer * len(line)
    long_line = b"y" * (LOG_BUFSIZE + 10) + b"\n"
    log.buffered_write(long_line)  # longer than the buffer: the held line, then it, alone
    assert os.path.getsize(log.path) == (per_buffer + 1) * len(line) + len(long_line)
    log.buffered_write(line)
    log.flush()
    lines = open(log.path, "rb").read().splitlines(keepends=True)
    assert lines == [line] * (per_buffer + 1) + [long_line, line]
    log.close()
