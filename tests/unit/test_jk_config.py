"""mod_jk's directives: mounting per server and virtual host, options, checks under -t."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError
from tests.server import REPO
from tests.unit.jk_fake_container import FakeContainer
from tests.unit.jk_request import ajp_worker, jk_config, page, serve

TWO_WORKERS = (
    "worker.list=app,other\n"
    "worker.app.host=127.0.0.1\nworker.app.port={port}\n"
    "worker.other.host=127.0.0.1\nworker.other.port={port}\n"
)


def test_unknown_worker_in_jkmount_is_an_error_naming_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        jk_config(tmp_path, ajp_worker(8009), "JkMount /app/* node1\nJkMount /api/* lb2")
    err = caught.value
    assert err.file.endswith("httpd.conf")
    assert err.line == 10
    assert "JkMount: worker 'lb2' is not defined in" in str(err)
    assert "workers.properties" in str(err)


def test_config_test_reports_an_unmounted_worker_with_file_and_line(tmp_path):
    (tmp_path / "workers.properties").write_text(ajp_worker(8009))
    conf = tmp_path / "httpd.conf"
    conf.write_text(
        f"ServerRoot {tmp_path}\nLoadModule jk_module modules/mod_jk\n"
        f"JkWorkersFile workers.properties\nJkMount /x/* missing\n"
    )
    (tmp_path / "htdocs").mkdir()
    result = subprocess.run([sys.executable, str(REPO / "bin" / "pyhttpd"), "-t", "-f", str(conf)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert f"{conf}:4: JkMount: worker 'missing' is not defined in" in result.stderr


def test_workers_file_error_names_its_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        jk_config(tmp_path, "worker.list=node1\nworker.node1.bogus=1\n")
    assert caught.value.file.endswith("workers.properties")
    assert caught.value.line == 2
    assert "'bogus' is not supported" in str(caught.value)


def test_missing_workers_file_is_refused_by_the_directive(tmp_path):
    (tmp_path / "htdocs").mkdir()
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"ServerRoot {tmp_path}\nLoadModule jk_module modules/mod_jk\nJkWorkersFile nowhere.properties\n")
    with pytest.raises(ConfigError, match=r"httpd.conf:3: JkWorkersFile: Can't find the workers file"):
        Config.load(str(conf))


def test_jkmount_inside_location_mounts_the_location_path_exactly(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port),
                           "<Location /status>\n  JkMount node1\n</Location>")
        _, exact = serve(config, "GET /status")
        _, below = serve(config, "GET /status/more")
    assert exact.status == 200
    assert below.status != 200 and b"uri=" not in below.out


def test_jkmount_with_a_path_inside_location_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="JkMount can not have a path when defined in a location"):
        jk_config(tmp_path, ajp_worker(8009), "<Location /a>\nJkMount /a node1\n</Location>")


def test_unmount_excludes_static_content_from_a_wildcard_mount(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port), "JkMount /app/* node1\nJkUnMount /app/*.png node1")
        _, dynamic = serve(config, "GET /app/page.jsp")
        _, image = serve(config, "GET /app/logo.png")
    assert dynamic.status == 200
    assert image.status == 404 or b"uri=" not in image.out
    assert len(tomcat.requests) == 1


def test_more_specific_mount_wins(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, TWO_WORKERS.format(port=tomcat.port),
                           "JkMount /* other\nJkMount /app/* app")
        r1, _ = serve(config, "GET /app/x")
        r2, _ = serve(config, "GET /elsewhere")
    assert (r1.notes["JK_WORKER_NAME"], r2.notes["JK_WORKER_NAME"]) == ("app", "other")


def test_virtual_host_sees_global_mounts_only_with_jkmountcopy(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(
            tmp_path, TWO_WORKERS.format(port=tomcat.port),
            "JkMount /shared/* app\n"
            "<VirtualHost *:8080>\n ServerName plain.example.com\n JkMount /own/* other\n</VirtualHost>\n"
            "<VirtualHost *:8080>\n ServerName copy.example.com\n JkMountCopy On\n JkMount /own/* other\n</VirtualHost>\n"
            "<VirtualHost *:8080>\n ServerName bare.example.com\n</VirtualHost>\n",
        )
        plain_shared, _ = serve(config, "GET /shared/a", host="plain.example.com")
        plain_own, _ = serve(config, "GET /own/a", host="plain.example.com")
        copy_shared, _ = serve(config, "GET /shared/a", host="copy.example.com")
        bare_shared, _ = serve(config, "GET /shared/a", host="bare.example.com")
    assert "JK_WORKER_NAME" not in plain_shared.notes
    assert plain_own.notes["JK_WORKER_NAME"] == "other"
    assert copy_shared.notes["JK_WORKER_NAME"] == "app"
    assert "JK_WORKER_NAME" not in bare_shared.notes


def test_jkmountcopy_all_gives_every_virtual_host_the_global_mounts(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(
            tmp_path, ajp_worker(tomcat.port),
            "JkMountCopy All\nJkMount /shared/* node1\n"
            "<VirtualHost *:8080>\n ServerName bare.example.com\n</VirtualHost>\n",
        )
        r, client = serve(config, "GET /shared/a", host="bare.example.com")
    assert r.notes["JK_WORKER_NAME"] == "node1"
    assert client.status == 200


def test_mount_file_is_reloaded_when_it_changes(tmp_path):
    mounts = tmp_path / "uriworkermap.properties"
    mounts.write_text("/old/*=node1\n")
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port),
                           f"JkMountFile {mounts}\nJkMountFileReload 1")
        before, _ = serve(config, "GET /new/x")
        mounts.write_text("/new/*=node1\n")
        stamp = time.time() + 5
        os.utime(mounts, (stamp, stamp))
        time.sleep(1.1)
        after, _ = serve(config, "GET /new/x")
    assert "JK_WORKER_NAME" not in before.notes
    assert after.notes["JK_WORKER_NAME"] == "node1"


def test_worker_mount_property_maps_uris(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, mount="/props/*"), "")
        r, client = serve(config, "GET /props/x")
    assert r.notes["JK_WORKER_NAME"] == "node1"
    assert client.status == 200


def test_no_jk_environment_variable_declines(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        r, _ = serve(config, "GET /x", env={"no-jk": "1"})
    assert "JK_WORKER_NAME" not in r.notes
    assert tomcat.requests == []


def test_sethandler_with_worker_name_variable_selects_a_worker_by_hand(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, TWO_WORKERS.format(port=tomcat.port),
                           "<Location /manual>\n SetHandler jakarta-servlet\n</Location>")
        r, client = serve(config, "GET /manual/x", env={"JK_WORKER_NAME": "other;reply_timeout=5000"})
    assert r.notes["JK_WORKER_NAME"] == "other"
    assert page(client)["uri"] == "/manual/x"


def test_unknown_jkoptions_value_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="JkOptions: Illegal option 'ForwardEverything'"):
        jk_config(tmp_path, ajp_worker(8009), "JkOptions +ForwardEverything")


def test_forward_uri_mode_cannot_be_switched_off(tmp_path):
    with pytest.raises(ConfigError, match="can not be disabled"):
        jk_config(tmp_path, ajp_worker(8009), "JkOptions -ForwardURIProxy")


def test_virtual_host_options_apply_over_the_main_servers(tmp_path):
    config = jk_config(
        tmp_path, ajp_worker(8009),
        "JkOptions +FlushPackets +ForwardURICompatUnparsed\n"
        "<VirtualHost *:8080>\n ServerName v.example.com\n JkOptions -FlushPackets +ForwardURIEscaped\n"
        " JkMount /* node1\n</VirtualHost>",
    )
    main = config.main_server.module_config["jk_module"].effective_options
    vhost = config.vhosts[0].module_config["jk_module"].effective_options
    assert main == {"FlushPackets", "ForwardURICompatUnparsed"}
    assert vhost == {"ForwardURIEscaped"}


def test_strip_session_removes_jsessionid_from_uris_httpd_serves(tmp_path):
    (tmp_path / "htdocs").mkdir()
    (tmp_path / "htdocs" / "logo.png").write_bytes(b"png")
    config = jk_config(tmp_path, ajp_worker(8009), "JkMount /app/* node1\nJkStripSession On")
    r, _ = serve(config, "GET /logo.png;jsessionid=ABC.node1")
    assert r.uri == "/logo.png"


def test_jk_log_level_and_file_are_per_server(tmp_path):
    config = jk_config(tmp_path, ajp_worker(8009), "JkLogLevel debug")
    log = config.main_server.module_config["jk_module"].log
    assert log.enabled("debug")
    assert os.path.exists(tmp_path / "logs" / "mod_jk.log")


def test_bad_jk_log_level_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="JkLogLevel must be one of"):
        jk_config(tmp_path, ajp_worker(8009), "JkLogLevel chatty")


def test_bad_request_log_format_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown format code '%z'"):
        jk_config(tmp_path, ajp_worker(8009), 'JkRequestLogFormat "%w %z"')


def test_jk_worker_property_defines_workers_without_a_file(tmp_path):
    with FakeContainer() as tomcat:
        (tmp_path / "htdocs").mkdir()
        conf = tmp_path / "httpd.conf"
        conf.write_text(
            f"ServerRoot {tmp_path}\nLoadModule jk_module modules/mod_jk\nJkLogFile logs/mod_jk.log\n"
            f"JkWorkerProperty worker.list=w1\nJkWorkerProperty worker.w1.host=127.0.0.1\n"
            f"JkWorkerProperty worker.w1.port={tomcat.port}\nJkMount /* w1\n"
        )
        config = Config.load(str(conf))
        config.hooks.run_all("post_config", config)
        _, client = serve(config, "GET /x")
    assert client.status == 200


def test_worker_not_in_worker_list_cannot_be_mounted(tmp_path):
    workers = ajp_worker(8009) + "worker.hidden.host=127.0.0.1\nworker.hidden.port=8010\n"
    with pytest.raises(ConfigError, match="worker 'hidden' is not defined"):
        jk_config(tmp_path, workers, "JkMount /h/* hidden")
