"""The command line behaves as httpd's: -t, -M, -S, -V, -v, -D, -C, -c, -k."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pyhttpd(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bin" / "pyhttpd"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def write_conf(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "httpd.conf"
    path.write_text(f"ServerRoot {tmp_path}\n" + text)
    return path


def test_syntax_check_of_the_shipped_config_says_syntax_ok():
    result = pyhttpd("-t", "-f", "conf/httpd.conf")
    assert result.returncode == 0, result.stderr
    assert "Syntax OK" in result.stderr


def test_misspelled_directive_on_line_7_fails_with_file_and_line(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text(f"ServerRoot {tmp_path}\nListen 127.0.0.1:8080\n\n# comment\nTimeout 30\n\nKeepAliveTimout 5\n")
    result = pyhttpd("-t", "-f", str(path))
    assert result.returncode == 1
    assert f"{path}:7: KeepAliveTimout: Invalid command 'KeepAliveTimout'" in result.stderr
    assert "Syntax OK" not in result.stderr


def test_console_script_is_installed_and_runs():
    result = subprocess.run(["pyhttpd", "-v"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("Server version: pyhttpd/")


def test_dash_capital_m_lists_loaded_modules(tmp_path):
    path = write_conf(tmp_path, f"LoadModule hello_module {REPO}/examples/mod_hello.py\n")
    result = pyhttpd("-M", "-f", str(path))
    assert result.returncode == 0
    assert " core (static)" in result.stdout and " hello_module (shared)" in result.stdout


def test_dash_capital_s_shows_virtual_hosts(tmp_path):
    path = write_conf(tmp_path, "Listen 127.0.0.1:8080\n<VirtualHost *:8080>\nServerName v.example\nServerAlias w.example\n</VirtualHost>\n")
    result = pyhttpd("-S", "-f", str(path))
    assert result.returncode == 0
    assert "*:8080" in result.stdout and "v.example" in result.stdout and "alias w.example" in result.stdout


def test_dash_capital_v_shows_build_settings():
    result = pyhttpd("-V")
    assert "Server MPM:" in result.stdout and "SERVER_CONFIG_FILE" in result.stdout


def test_dash_d_define_reaches_ifdefine_and_dash_c_directives_apply(tmp_path):
    path = write_conf(tmp_path, "<IfDefine BROKEN>\nNoSuchDirective\n</IfDefine>\n")
    assert pyhttpd("-t", "-f", str(path)).returncode == 0
    assert pyhttpd("-t", "-f", str(path), "-D", "BROKEN").returncode == 1
    bad = pyhttpd("-t", "-f", str(path), "-c", "Timeout never")
    assert bad.returncode == 1 and "-c:1: Timeout:" in bad.stderr
    assert pyhttpd("-t", "-f", str(path), "-C", "Timeout 5").returncode == 0


def test_dash_d_sets_server_root_for_relative_config_path(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "httpd.conf").write_text("Include conf/extra.conf\n")
    (tmp_path / "conf" / "extra.conf").write_text("Timeout 3\n")
    result = pyhttpd("-t", "-d", str(tmp_path), "-f", "conf/httpd.conf", cwd=Path("/"))
    assert result.returncode == 0, result.stderr


def test_k_stop_without_a_running_server_says_so(tmp_path):
    path = write_conf(tmp_path, "PidFile logs/httpd.pid\n")
    result = pyhttpd("-k", "stop", "-f", str(path))
    assert result.returncode == 0 and "not running" in result.stderr


def test_k_graceful_with_a_broken_config_does_not_signal(tmp_path):
    path = write_conf(tmp_path, "Bogus\n")
    result = pyhttpd("-k", "graceful", "-f", str(path))
    assert result.returncode == 1 and f"{path}:2: Bogus" in result.stderr
