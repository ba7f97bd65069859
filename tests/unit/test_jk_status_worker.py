"""The status worker (jkstatus): mod_jk's output formats and run-time actions."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.peers.ports import free_port
from tests.unit.jk_fake_container import Exchange, FakeContainer
from tests.unit.jk_request import jk_config, serve

WORKERS = """\
worker.list=bal,jkstatus,solo
worker.node1.host=127.0.0.1
worker.node1.port={port1}
worker.node1.lbfactor=3
worker.node1.redirect=node2
worker.node2.host=127.0.0.1
worker.node2.port={port2}
worker.node2.activation=D
worker.bal.type=lb
worker.bal.balance_workers=node1,node2
worker.solo.host=127.0.0.1
worker.solo.port={port1}
worker.jkstatus.type=status
"""
MOUNTS = "JkMount /jkstatus jkstatus\nJkMount /app/* bal\nJkMount /solo/* solo"


def status_config(tmp_path, port1=None, port2=None, extra=""):  # noqa: ANN001, ANN201
    """jkstatus over an lb of two members (on ports where nothing listens unless given)."""
    workers = WORKERS.format(port1=port1 or free_port(), port2=port2 or free_port())
    return jk_config(tmp_path, workers + extra, MOUNTS)


def prop(config, query: str) -> dict[str, str]:  # noqa: ANN001
    _, client = serve(config, f"GET /jkstatus?{query}&mime=prop")
    assert client.status == 200
    lines = client.out.decode().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_list_as_properties_names_balancers_members_and_maps_as_mod_jk(tmp_path):
    lines = serve(status_config(tmp_path), "GET /jkstatus?cmd=list&mime=prop")[1].out.decode().splitlines()
    assert "worker.lb_count=1" in lines
    assert "worker.list=bal" in lines
    assert "worker.bal.method=Request" in lines
    assert "worker.bal.sticky_session=True" in lines
    assert "worker.bal.balance_workers=node1" in lines
    assert "worker.bal.balance_workers=node2" in lines
    assert "worker.node1.activation=ACT" in lines
    assert "worker.node2.activation=DIS" in lines
    assert "worker.node1.lbfactor=3" in lines
    assert "worker.node1.redirect=node2" in lines
    assert "worker.node1.state=OK/IDLE" in lines
    assert "worker.bal.good=1" in lines and "worker.bal.degraded=1" in lines
    assert "worker.bal.map.1.uri=/app/*" in lines
    assert "worker.ajp_count=1" in lines
    assert "worker.solo.list=solo" in lines
    assert lines[-2:] == ["worker.result.type=OK", "worker.result.message=Action finished"]


def test_text_format_quotes_strings_as_mod_jk(tmp_path):
    text = serve(status_config(tmp_path), "GET /jkstatus?mime=txt")[1].out.decode()
    assert "Balancer Workers: count=1" in text
    assert 'route="node1" redirect="node2" domain=""' in text
    assert 'Map: id=1 server="www.example.com" uri="/app/*" type="Wildchar" source="JkMount"' in text
    assert text.endswith('Result: type=OK message="Action finished"\n')


def test_xml_format_is_well_formed_with_the_jk_namespace(tmp_path):
    body = serve(status_config(tmp_path), "GET /jkstatus?mime=xml")[1].out
    root = ET.fromstring(body)
    ns = {"jk": "http://tomcat.apache.org"}
    members = root.findall("jk:balancers/jk:balancer/jk:member", ns)
    assert [m.get("name") for m in members] == ["node1", "node2"]
    assert root.find("jk:result", ns).get("type") == "OK"


def test_html_page_lists_the_members_with_action_links(tmp_path):
    _, client = serve(status_config(tmp_path), "GET /jkstatus")
    page = client.out.decode("iso-8859-1")
    assert client.content_type.startswith("text/html")
    assert "JK Status Manager" in page
    assert "cmd=edit&amp;w=bal&amp;sw=node2" in page


def test_update_changes_member_activation_for_balancing(tmp_path):
    def named(node):  # noqa: ANN001, ANN202
        def answer(exchange: Exchange) -> None:
            exchange.respond(200, f"node={node}\n".encode())
        return answer

    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = status_config(tmp_path, one.port, two.port)
        assert prop(config, "cmd=update&w=bal&sw=node1&vwa=S")["worker.result.type"] == "OK"
        assert prop(config, "cmd=update&w=bal&sw=node2&vwa=0")["worker.result.type"] == "OK"
        nodes = {serve(config, "GET /app/x")[1].out.decode() for _ in range(4)}
        after = prop(config, "cmd=show&w=bal")
    assert nodes == {"node=node2\n"}
    assert (after["worker.node1.activation"], after["worker.node2.activation"]) == ("STP", "ACT")
    assert after["worker.bal.bad"] == "1"


def test_update_of_lbfactor_recomputes_the_multipliers(tmp_path):
    config = status_config(tmp_path)
    prop(config, "cmd=update&w=bal&att=vwf&val0=2&val1=3")
    shown = prop(config, "cmd=show&w=bal")
    assert (shown["worker.node1.lbfactor"], shown["worker.node2.lbfactor"]) == ("2", "3")
    assert (shown["worker.node1.lbmult"], shown["worker.node2.lbmult"]) == ("3", "2")


def test_update_of_the_lb_settings(tmp_path):
    config = status_config(tmp_path)
    prop(config, "cmd=update&w=bal&vlm=B&vls=0&vlr=4")
    shown = prop(config, "cmd=show&w=bal")
    assert shown["worker.bal.method"] == "Busyness"
    assert shown["worker.bal.sticky_session"] == "False"
    assert shown["worker.bal.retries"] == "4"


def test_read_only_status_worker_refuses_changes(tmp_path):
    config = status_config(tmp_path, extra="worker.jkstatus.read_only=true\n")
    result = prop(config, "cmd=update&w=bal&sw=node1&vwa=S")
    assert result["worker.result.type"] == "ERROR"
    assert prop(config, "cmd=show&w=bal")["worker.node1.activation"] == "ACT"


def test_status_worker_with_users_refuses_others(tmp_path):
    config = status_config(tmp_path, extra="worker.jkstatus.user=admin\n")
    _, anonymous = serve(config, "GET /jkstatus?mime=txt")
    assert anonymous.status == 403


def test_unknown_worker_is_reported_in_the_result(tmp_path):
    result = prop(status_config(tmp_path), "cmd=show&w=nope")
    assert result["worker.result.type"] == "ERROR"
    assert result["worker.result.message"] == "Could not find given worker"


def test_recover_marks_a_member_in_error_for_recovery(tmp_path):
    config = status_config(tmp_path)
    refused = prop(config, "cmd=recover&w=bal&sw=node1")
    assert refused["worker.result.message"] == "Marking worker for recovery failed"
    serve(config, "GET /app/x", {"Cookie": "JSESSIONID=a.node1"})  # nobody listens: node1 fails
    assert prop(config, "cmd=show&w=bal")["worker.node1.state"] == "ERR"
    assert prop(config, "cmd=recover&w=bal&sw=node1")["worker.result.type"] == "OK"
    assert prop(config, "cmd=show&w=bal")["worker.node1.state"] == "ERR/REC"


def test_reset_clears_the_member_counters(tmp_path):
    config = status_config(tmp_path)
    serve(config, "GET /app/x")
    assert prop(config, "cmd=show&w=bal")["worker.node1.errors"] != "0"
    prop(config, "cmd=reset&w=bal")
    shown = prop(config, "cmd=show&w=bal")
    assert (shown["worker.node1.errors"], shown["worker.node1.elected"]) == ("0", "0")


def test_ajp_connection_settings_cannot_be_changed(tmp_path):
    result = prop(status_config(tmp_path), "cmd=update&w=bal&sw=node1&vart=100")
    assert result["worker.result.type"] == "ERROR"
