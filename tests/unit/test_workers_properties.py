"""workers.properties: mod_jk's syntax, inheritance, defaults and the errors users get."""

import textwrap

import pytest

from modules.mod_jk.lb import Activation, Lock, Method
from modules.mod_jk.workers import (
    WorkersError,
    parse_workers_properties,
    read_workers_properties,
)


@pytest.fixture
def load(tmp_path):
    def load(text, **kwargs):
        path = tmp_path / "workers.properties"
        path.write_text(textwrap.dedent(text))
        return read_workers_properties(path, **kwargs)
    return load


@pytest.fixture
def error(load, tmp_path):
    def error(text, **kwargs):
        with pytest.raises(WorkersError) as caught:
            load(text, **kwargs)
        return str(caught.value).replace(str(tmp_path / "workers.properties"), "workers.properties")
    return error


SEED = """\
    # Two Tomcats behind one balancer; tomcat2 is also tomcat1's backup.
    worker.list=controller,status

    worker.tomcat1.port=8009
    worker.tomcat1.host=192.168.0.1
    worker.tomcat1.type=ajp13
    worker.tomcat1.lbfactor=3
    worker.tomcat1.redirect=tomcat2

    worker.tomcat2.port=8009
    worker.tomcat2.host=192.168.0.2
    worker.tomcat2.type=ajp13
    worker.tomcat2.lbfactor=1
    worker.tomcat2.activation=disabled

    worker.controller.type=lb
    worker.controller.balance_workers=tomcat1,tomcat2
    worker.controller.sticky_session=1

    worker.status.type=status
"""


def test_seed_cluster_defines_balancer_members_and_status(load):
    config = load(SEED)
    assert config.worker_list == ["controller", "status"]
    assert set(config.workers) == {"controller", "tomcat1", "tomcat2", "status"}
    lb = config.workers["controller"]
    assert lb.type == "lb"
    assert lb.properties["balance_workers"] == ["tomcat1", "tomcat2"]
    assert lb.properties["sticky_session"] is True
    assert lb.properties["method"] is Method.REQUESTS
    node1, node2 = config.workers["tomcat1"], config.workers["tomcat2"]
    assert (node1.properties["host"], node1.properties["port"]) == ("192.168.0.1", 8009)
    assert node1.properties["lbfactor"] == 3
    assert node1.properties["redirect"] == "tomcat2"
    assert node1.properties["route"] == "tomcat1"
    assert node2.properties["activation"] is Activation.DISABLED
    assert config.workers["status"].type == "status"
    assert config.warnings == []


def test_worker_spec_records_file_and_first_line(load, tmp_path):
    node1 = load(SEED).workers["tomcat1"]
    assert node1.file == str(tmp_path / "workers.properties")
    assert node1.line == 4


def test_worker_list_accumulates_over_lines_and_separators(load):
    config = load("""\
        worker.list=a, b
        worker.list=c d
        worker.list=a
        worker.a.port=1
        worker.b.port=2
        worker.c.port=3
        worker.d.port=4
    """)
    assert config.worker_list == ["a", "b", "c", "d"]


def test_missing_worker_list_defaults_to_an_ajp13_worker(load):
    config = load("worker.maintain=30\n")
    assert config.worker_list == ["ajp13"]
    assert config.workers["ajp13"].properties["port"] == 8009
    assert config.maintain == 30


def test_undefined_list_entry_is_an_ajp13_worker_with_defaults_and_a_warning(load):
    config = load("worker.list=ghost\n")
    ghost = config.workers["ghost"]
    assert ghost.type == "ajp13"
    assert (ghost.properties["host"], ghost.properties["port"]) == ("localhost", 8009)
    assert len(config.warnings) == 1
    assert config.warnings[0].endswith(":1: worker 'ghost' has no properties; it is an ajp13 "
                                       "worker with the default values (localhost:8009)")


def test_reference_inherits_template_properties_and_own_values_win(load):
    config = load("""\
        worker.list=lb
        worker.template.type=ajp13
        worker.template.host=10.0.0.1
        worker.template.socket_keepalive=true
        worker.template.lbfactor=2
        worker.node1.reference=worker.template
        worker.node1.port=8009
        worker.node2.reference=worker.template
        worker.node2.port=8010
        worker.node2.lbfactor=5
        worker.lb.type=lb
        worker.lb.balance_workers=node1,node2
    """)
    assert "template" not in config.workers
    node1, node2 = config.workers["node1"].properties, config.workers["node2"].properties
    assert (node1["host"], node1["port"], node1["lbfactor"]) == ("10.0.0.1", 8009, 2)
    assert (node2["host"], node2["port"], node2["lbfactor"]) == ("10.0.0.1", 8010, 5)
    assert node1["socket_keepalive"] is True


def test_references_chain(load):
    config = load("""\
        worker.list=c
        worker.a.host=alpha
        worker.a.port=1111
        worker.b.reference=worker.a
        worker.b.port=2222
        worker.c.reference=worker.b
    """)
    assert config.workers["c"].properties["host"] == "alpha"
    assert config.workers["c"].properties["port"] == 2222


def test_reference_loop_is_an_error_naming_file_and_line(error):
    message = error("""\
        worker.list=a
        worker.a.reference=worker.b
        worker.b.reference=worker.a
    """)
    assert message.startswith("workers.properties:")
    assert "reference loop" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_reference_to_missing_template_is_an_error(error):
    assert error("""\
        worker.list=a
        worker.a.reference=worker.nothere
    """) == "workers.properties:2: worker.a.reference: reference 'worker.nothere' not found"


def test_reference_must_use_the_worker_prefix(error):
    assert "name the template as worker.<name>" in error("""\
        worker.list=a
        worker.t.port=1
        worker.a.reference=t
    """)


def test_variables_expand_earlier_properties_environment_and_leave_unknown_names(load):
    config = load("""\
        ps=/
        workers.tomcat_home=/opt/tomcat
        base=10.0.0
        worker.list=a,b
        worker.a.host=$(base).1
        worker.a.secret=$(workers.tomcat_home)$(ps)conf$(ps)$(UNDEFINED_NAME)
        worker.b.host=$(worker.a.host)
        worker.b.route=$(JK_TEST_ROUTE)
    """, environ={"JK_TEST_ROUTE": "from-env"})
    a, b = config.workers["a"].properties, config.workers["b"].properties
    assert a["host"] == "10.0.0.1"
    assert a["secret"] == "/opt/tomcat/conf/$(UNDEFINED_NAME)"
    assert b["host"] == "10.0.0.1"
    assert b["route"] == "from-env"


def test_comments_and_blank_lines_are_ignored_and_values_trimmed(load):
    config = load("""\
        # a comment
           worker.list = a   # trailing comment

        worker.a.host =   tomcat.example   #
    """)
    assert config.workers["a"].properties["host"] == "tomcat.example"


def test_line_without_equals_is_skipped_with_a_warning(load):
    config = load("worker.list=a\nthis is not a property\n")
    assert any(w.endswith(":2: ignoring 'this is not a property': expected name=value")
               for w in config.warnings)


def test_unknown_worker_type_is_an_error_naming_file_and_line(error):
    assert error("""\
        worker.list=a
        worker.a.type=ajp99
    """) == ("workers.properties:2: worker.a.type: unknown worker type 'ajp99' "
             "(supported: ajp13, lb, status)")


def test_unknown_property_is_an_error_naming_it(error):
    assert error("""\
        worker.list=a
        worker.a.prot=8009
    """) == "workers.properties:2: worker.a.prot: the attribute 'prot' is not supported"


@pytest.mark.parametrize(("line", "expected"), [
    ("worker.a.port=http", 'worker.a.port=http: the value "http" is of the wrong type.'),
    ("worker.a.port=70000", 'worker.a.port=70000: the value "70000" is too big.'),
    ("worker.a.socket_timeout=-1", 'worker.a.socket_timeout=-1: the value "-1" is too small.'),
    ("worker.a.activation=X", 'worker.a.activation=X: the value "X" is unacceptable.'),
    ("worker.a.socket_keepalive=maybe",
     'worker.a.socket_keepalive=maybe: the value "maybe" is of the wrong type.'),
    ("worker.a.fail_on_status=500,oops",
     'worker.a.fail_on_status=500,oops: the value "oops" is of the wrong type.'),
    ("worker.a.ping_mode=CX", 'worker.a.ping_mode=CX: the value "CX" is unacceptable.'),
    ("worker.a.route=" + "r" * 64, "is too long."),
])
def test_bad_value_is_an_error_naming_file_line_and_property(error, line, expected):
    message = error(f"worker.list=a\n{line}\n")
    assert message.startswith("workers.properties:2: ")
    assert message.endswith(expected)


def test_bad_lb_method_is_an_error(error):
    assert error("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balance_workers=a
        worker.lb.method=Q
    """) == 'workers.properties:4: worker.lb.method=Q: the value "Q" is unacceptable.'


def test_lb_without_members_is_an_error(error):
    assert error("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.sticky_session=true
    """) == ("workers.properties:2: worker.lb.balance_workers: an lb worker needs at least "
             "one member")


def test_lb_member_that_is_not_ajp13_is_an_error(error):
    assert error("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balance_workers=node1
        worker.lb.balance_workers=jkstatus
        worker.jkstatus.type=status
    """) == ("workers.properties:4: worker.lb.balance_workers: member 'jkstatus' is a worker "
             "of type status; members must be ajp13 workers")


def test_undefined_lb_member_gets_defaults_like_mod_jk(load):
    config = load("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balance_workers=node1
    """)
    assert config.workers["node1"].properties["port"] == 8009
    assert "worker 'node1' has no properties" in config.warnings[0]
    assert config.warnings[0].split(": ", 1)[0].endswith(":3")


def test_members_sharing_a_route_is_an_error(error):
    assert error("""\
        worker.list=lb
        worker.a.route=node
        worker.b.route=node
        worker.lb.type=lb
        worker.lb.balance_workers=a,b
    """) == ("workers.properties:5: worker.lb.balance_workers: members 'a' and 'b' share the "
             "route 'node'")


def test_invalid_worker_name_is_an_error(error):
    assert error("worker.list=bad name!\n").startswith(
        "workers.properties:1: invalid worker name 'name!'")


def test_ajp13_defaults_follow_mod_jk(load):
    p = load("worker.list=a\nworker.a.socket_timeout=5\n").workers["a"].properties
    assert p["socket_connect_timeout"] == 5000
    assert p["ping_timeout"] == 10000
    assert p["retries"] == 2
    assert p["retry_interval"] == 100
    assert p["connection_acquire_timeout"] == 200
    assert p["connection_pool_size"] == 1
    assert p["connection_pool_minsize"] == 1
    assert p["max_packet_size"] == 8192
    assert p["lbfactor"] == 1
    assert p["activation"] is Activation.ACTIVE
    assert p["ping_mode"] == ""
    assert p["reply_timeout"] == 0
    assert p["secret"] is None


def test_pool_size_defaults_to_threads_per_child(load):
    p = load("worker.list=a\n", threads_per_child=25).workers["a"].properties
    assert (p["connection_pool_size"], p["connection_pool_minsize"]) == (25, 13)


def test_ping_mode_all_fills_probe_timeouts_from_ping_timeout(load):
    p = load("""\
        worker.list=a
        worker.a.ping_mode=a
        worker.a.ping_timeout=2000
    """).workers["a"].properties
    assert p["ping_mode"] == "CPI"
    assert (p["connect_timeout"], p["prepost_timeout"]) == (2000, 2000)
    assert p["connection_ping_interval"] == 20


def test_legacy_prepost_timeout_switches_its_probe_on(load):
    p = load("worker.list=a\nworker.a.prepost_timeout=500\n").workers["a"].properties
    assert p["ping_mode"] == "P"


def test_sizes_accept_k_and_m_suffixes_and_packet_size_is_rounded(load):
    p = load("""\
        worker.list=a
        worker.a.max_packet_size=9000
        worker.a.socket_buffer=1k
        worker.a.busy_limit=1M
    """).workers["a"].properties
    assert p["max_packet_size"] == 9216
    assert p["socket_buffer"] == 9216  # never below the packet size
    assert p["busy_limit"] == 1024 * 1024


def test_route_with_a_dot_gives_the_domain(load):
    p = load("worker.list=a\nworker.a.route=dc1.node1\n").workers["a"].properties
    assert (p["route"], p["domain"]) == ("dc1.node1", "dc1")


def test_lb_defaults_follow_mod_jk(load):
    p = load("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balance_workers=a
        worker.lb.recover_time=90
    """).workers["lb"].properties
    assert p["error_escalation_time"] == 45
    assert p["sticky_session"] is True
    assert p["sticky_session_force"] is False
    assert p["lock"] is Lock.OPTIMISTIC
    assert p["session_cookie"] == "JSESSIONID"
    assert p["session_path"] == ";jsessionid"
    assert (p["retries"], p["lb_retries"], p["max_reply_timeouts"]) == (2, 2, 0)


def test_lb_settings_are_typed(load):
    p = load("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balance_workers=a
        worker.lb.method=Traffic
        worker.lb.lock=P
        worker.lb.sticky_session=off
        worker.lb.sticky_session_force=yes
    """).workers["lb"].properties
    assert p["method"] is Method.TRAFFIC
    assert p["lock"] is Lock.PESSIMISTIC
    assert (p["sticky_session"], p["sticky_session_force"]) == (False, True)


def test_status_worker_properties(load):
    p = load("""\
        worker.list=jkstatus
        worker.jkstatus.type=status
        worker.jkstatus.read_only=true
        worker.jkstatus.user=admin
        worker.jkstatus.user=ops,root
        worker.jkstatus.ns=-
    """).workers["jkstatus"].properties
    assert p["read_only"] is True
    assert p["user"] == ["admin", "ops", "root"]
    assert p["ns"] == ""
    assert p["good"] == ["a.o", "a.i", "a.b", "a.r"]
    assert p["bad"] == ["s", "e"]
    assert p["prefix"] == "worker"


def test_balance_workers_accumulate_and_deprecated_name_still_works(load):
    config = load("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balanced_workers=a
        worker.lb.balanced_workers=b
    """)
    assert config.workers["lb"].properties["balance_workers"] == ["a", "b"]
    assert any("balanced_workers is deprecated; use worker.lb.balance_workers" in w
               for w in config.warnings)


def test_deprecated_jvm_route_and_disabled_still_apply(load):
    p = load("""\
        worker.list=a
        worker.a.jvm_route=jvm1
        worker.a.disabled=true
    """).workers["a"].properties
    assert p["route"] == "jvm1"
    assert p["activation"] is Activation.DISABLED


def test_repeated_unique_key_keeps_the_last_value_with_a_warning(load):
    config = load("worker.list=a\nworker.a.port=1\nworker.a.port=2\n")
    assert config.workers["a"].properties["port"] == 2
    assert config.warnings[-1].endswith(":3: duplicate key worker.a.port: '1' (from line 2) "
                                        "is replaced by '2'")


def test_member_on_port_zero_starts_stopped(load):
    p = load("""\
        worker.list=lb
        worker.a.port=0
        worker.lb.type=lb
        worker.lb.balance_workers=a
    """).workers["a"].properties
    assert p["activation"] is Activation.STOPPED


def test_members_inherit_the_lb_secret(load):
    config = load("""\
        worker.list=lb
        worker.a.port=1
        worker.b.secret=own
        worker.lb.type=lb
        worker.lb.secret=shared
        worker.lb.balance_workers=a,b
    """)
    assert config.workers["a"].properties["secret"] == "shared"
    assert config.workers["b"].properties["secret"] == "own"


def test_property_of_another_worker_type_is_ignored_with_a_warning(load):
    config = load("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balance_workers=a
        worker.lb.host=somewhere
    """)
    assert "host" not in config.workers["lb"].properties
    assert any(w.endswith(":4: worker.lb.host does not apply to a worker of type lb; ignored")
               for w in config.warnings)


def test_mount_lists_accumulate(load):
    p = load("""\
        worker.list=a
        worker.a.mount=/app/* /app
        worker.a.mount=/other/*
    """).workers["a"].properties
    assert p["mount"] == ["/app/*", "/app", "/other/*"]


def test_worker_property_lines_from_httpd_conf_combine_with_the_file():
    config = parse_workers_properties([
        ("httpd.conf", 10, "worker.list=a"),
        ("httpd.conf", 11, "worker.a.port=9009"),
    ])
    assert config.workers["a"].properties["port"] == 9009
    assert (config.workers["a"].file, config.workers["a"].line) == ("httpd.conf", 11)


def test_unreadable_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(WorkersError) as caught:
        read_workers_properties(tmp_path / "missing.properties")
    assert str(caught.value).startswith(f"{tmp_path / 'missing.properties'}:0: cannot read")


def test_negative_maintain_disables_maintenance(load):
    assert load("worker.maintain=-5\n").maintain == 0
