"""mod_session_repl's directives: values, defaults, and errors that name file, line and directive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError

LOAD = "LoadModule session_repl_module modules/mod_session_repl\n"
SECRET = "0123456789abcdef0123456789abcdef"
CLUSTER = f"SessionRoute node1\nClusterListen 127.0.0.1:4001\nClusterSecret {SECRET}\n"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "httpd.conf"
    path.write_text(f"ServerRoot {tmp_path}\n{LOAD}{text}")
    return Config.load(str(path))


def error_for(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert str(e.value).startswith(f"{tmp_path / 'httpd.conf'}:{e.value.line}: ")
    return e.value


def settings(config: Config):
    return config.module_by_name["session_repl_module"].settings(config)


def test_a_node_without_cluster_directives_keeps_sessions_local(tmp_path):
    s = settings(load(tmp_path, ""))
    assert s.replication == "off" and not s.clustered
    assert s.max_inactive == 1800 and s.route is None and s.agent_nice is None
    assert s.agent_socket == str(tmp_path / "logs" / "session_agent.sock")


def test_a_cluster_node_replicates_deltas_synchronously_by_default(tmp_path):
    s = settings(
        load(tmp_path, CLUSTER + "ClusterMember 127.0.0.1:4001 127.0.0.1:4002\nClusterMember 127.0.0.1:4003\n")
    )
    assert s.replication == "delta" and s.sync and s.route_rebind
    assert s.members == (("127.0.0.1", 4002), ("127.0.0.1", 4003))  # its own address is skipped
    assert s.secret == SECRET.encode() and s.state_transfer_timeout == 60.0


def test_every_cluster_directive_is_read(tmp_path):
    secret_file = tmp_path / "cluster.secret"
    secret_file.write_text("s" * 40 + "\n")
    os.chmod(secret_file, 0o600)
    s = settings(
        load(
            tmp_path,
            "SessionRoute n-2\nSessionRouteRebind Off\nSessionReplication backup\n"
            "SessionReplicationMode async\nClusterListen 10.0.0.2:4000\n"
            "ClusterMulticast 228.0.0.4:45564\nClusterSecretFile cluster.secret\n"
            "ClusterStateTransferTimeout 2.5\nSessionMaxInactive 60\n"
            "SessionAgentSocket run/agent.sock\nSessionAgentNice -5\n",
        )
    )
    assert (s.route, s.route_rebind, s.replication, s.sync) == ("n-2", False, "backup", False)
    assert s.listen == ("10.0.0.2", 4000) and s.multicast == ("228.0.0.4", 45564)
    assert s.secret == b"s" * 40 and s.state_transfer_timeout == 2.5 and s.max_inactive == 60
    assert s.agent_socket == str(tmp_path / "run" / "agent.sock")
    assert s.agent_nice == -5


def test_cookie_settings_may_differ_per_virtual_host(tmp_path):
    config = load(
        tmp_path,
        "SessionCookieName SID\nSessionCookieSameSite Strict\n"
        "<VirtualHost *:80>\nSessionCookieName APPSID\nSessionCookiePath /app\n</VirtualHost>\n",
    )
    main = config.main_server.module_config["session_repl_module"]
    vhost = config.vhosts[0].module_config["session_repl_module"]
    assert (main.effective_cookie_name, main.cookie_same_site) == ("SID", "Strict")
    assert (vhost.effective_cookie_name, vhost.cookie_path, vhost.cookie_same_site) == (
        "APPSID",
        "/app",
        "Strict",
    )


def test_a_redis_store_needs_no_agent(tmp_path):
    config = load(tmp_path, "SessionStore redis://127.0.0.1:6379/2\n")
    module = config.module_by_name["session_repl_module"]
    assert module.helpers(config) == []
    assert [h.name for h in module.helpers(load(tmp_path, ""))] == ["session-agent"]


@pytest.mark.parametrize(
    ("text", "line", "directive", "fragment"),
    [
        ("SessionRoute node.1\n", 3, "SessionRoute", "cannot be a route"),
        ("SessionCookieName JSESSION;ID\n", 3, "SessionCookieName", "not a valid cookie name"),
        ("SessionCookiePath app\n", 3, "SessionCookiePath", "starts with '/'"),
        ("SessionCookieSameSite Loose\n", 3, "SessionCookieSameSite", "not one of Strict, Lax, None"),
        ("SessionCookieSameSite None\n", 3, "SessionCookieSameSite", "needs SessionCookieSecure On"),
        ("SessionMaxInactive soon\n", 3, "SessionMaxInactive", "not an integer"),
        ("SessionReplication all\n", 3, "SessionReplication", "not one of delta, backup, off"),
        ("SessionReplicationMode maybe\n", 3, "SessionReplicationMode", "not one of sync, async"),
        ("SessionReplication delta\n", 3, "SessionReplication", "needs ClusterListen"),
        ("ClusterListen 4001\n", 3, "ClusterListen", "not host:port"),
        ("ClusterListen 0.0.0.0:4001\n", 3, "ClusterListen", "not a wildcard"),
        ("ClusterListen 127.0.0.1:99999\n", 3, "ClusterListen", "no valid port"),
        ("ClusterMember 127.0.0.1:4002\n", 3, "ClusterMember", "needs ClusterListen"),
        ("ClusterMember 127.0.0.1:4002 127.0.0.1:4002\n", 3, "ClusterMember", "listed twice"),
        ("ClusterMulticast 10.0.0.1:45564\n", 3, "ClusterMulticast", "not an IPv4 multicast group"),
        ("ClusterSecret short\n", 3, "ClusterSecret", "at least 32"),
        ("ClusterSecretFile /no/such/file\n", 3, "ClusterSecretFile", "cannot read"),
        ("ClusterStateTransferTimeout 0\n", 3, "ClusterStateTransferTimeout", "more than 0"),
        ("SessionStore memcached://x:1\n", 3, "SessionStore", "not a redis:// URL"),
        ("SessionAgentNice 20\n", 3, "SessionAgentNice", "above the maximum of 19"),
        ("SessionAgentNice high\n", 3, "SessionAgentNice", "not an integer"),
        ("SessionStore redis://h:1/db\n", 3, "SessionStore", "must be a number"),
        ("SessionRoute n1\nClusterListen 127.0.0.1:4001\n", 4, "ClusterListen", "needs ClusterSecret"),
        (f"ClusterListen 127.0.0.1:4001\nClusterSecret {SECRET}\n", 3, "ClusterListen", "needs SessionRoute"),
        (CLUSTER + "SessionStore redis://h:1/0\n", 6, "SessionStore", "exclude each other"),
        ("<VirtualHost *:80>\nClusterListen 127.0.0.1:1\n</VirtualHost>\n", 4, "ClusterListen", "not allowed here"),
        ("<Location /a>\nSessionCookieName X\n</Location>\n", 4, "SessionCookieName", "not allowed here"),
    ],
)
def test_bad_values_name_file_line_and_directive(tmp_path, text, line, directive, fragment):
    e = error_for(tmp_path, text)
    assert (e.line, e.directive) == (line, directive)
    assert fragment in e.message


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    secret_file = tmp_path / "cluster.secret"
    secret_file.write_text("s" * 40)
    os.chmod(secret_file, 0o644)
    e = error_for(tmp_path, "ClusterSecretFile cluster.secret\n")
    assert e.directive == "ClusterSecretFile" and "chmod 600" in e.message


def test_secret_and_secret_file_together_are_an_error(tmp_path):
    secret_file = tmp_path / "cluster.secret"
    secret_file.write_text("s" * 40)
    os.chmod(secret_file, 0o600)
    e = error_for(tmp_path, CLUSTER + "ClusterSecretFile cluster.secret\n")
    assert e.directive == "ClusterSecretFile" and "not both" in e.message


def test_the_agent_is_renamed_only_when_its_settings_change(tmp_path):
    from modules.mod_session_repl.module import SessionReplModule

    module = SessionReplModule()
    names = []
    for text in (CLUSTER, CLUSTER, CLUSTER + "SessionMaxInactive 60\n", CLUSTER + "SessionMaxInactive 60\n"):
        config = load(tmp_path, text)
        names += [h.name for h in module.helpers(config)]
    # a graceful restart keeps a helper of the same name, so unchanged settings keep the sessions
    assert names == ["session-agent", "session-agent", "session-agent-1", "session-agent-1"]
