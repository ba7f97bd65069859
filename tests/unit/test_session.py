"""Session ids and the Session object applications see: JSON-only values and delta recording."""

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modules.mod_session_repl.session import (
    Change,
    Delta,
    InvalidatedSessionError,
    Session,
    copy_value,
)
from modules.mod_session_repl.session_id import (
    is_valid_route,
    is_valid_session_id,
    new_session_id,
    rebind,
    session_id_from_request,
    split_route,
    strip_path_parameter,
)

ID = "0123456789ABCDEF0123456789ABCDEF.node1"


# --- session ids -------------------------------------------------------------------------


def test_new_session_id_has_128_random_bits_in_upper_hex_then_the_route():
    session_id = new_session_id("node1")
    base, route = split_route(session_id)
    assert re.fullmatch(r"[0-9A-F]{32}", base)
    assert route == "node1"
    assert is_valid_session_id(session_id)


def test_new_session_id_without_route_has_no_dot():
    session_id = new_session_id()
    assert "." not in session_id
    assert split_route(session_id) == (session_id, None)


def test_new_session_ids_do_not_repeat():
    assert len({new_session_id("n") for _ in range(2000)}) == 2000


def test_new_session_id_rejects_a_route_a_balancer_could_not_read_back():
    for route in ("a.b", "", "node 1", "x" * 65, "nöde"):
        with pytest.raises(ValueError, match="route"):
            new_session_id(route)


def test_route_is_the_text_after_the_last_dot():
    assert split_route("ABC.def.node2") == ("ABC.def", "node2")
    assert split_route("ABC") == ("ABC", None)


def test_rebind_keeps_the_random_part_and_replaces_the_route():
    assert rebind(ID, "node2") == "0123456789ABCDEF0123456789ABCDEF.node2"
    assert rebind(ID, None) == "0123456789ABCDEF0123456789ABCDEF"
    assert rebind("0123456789ABCDEF0123456789ABCDEF", "n3").endswith(".n3")


def test_session_id_is_read_from_the_cookie():
    header = "theme=dark; JSESSIONID=" + ID + "; other=1"
    assert session_id_from_request(header, "/app/") == ID


def test_session_id_cookie_value_may_be_quoted():
    assert session_id_from_request(f'JSESSIONID="{ID}"', "/") == ID


def test_session_id_cookie_name_is_configurable():
    header = f"JSESSIONID=junk; PYSESSION={ID}"
    assert session_id_from_request(header, "/", cookie_name="PYSESSION") == ID


def test_session_id_is_read_from_the_path_parameter():
    assert session_id_from_request(None, f"/app/cart;jsessionid={ID}?x=1") == ID
    assert session_id_from_request("", f"/app;jsessionid={ID}/cart") == ID
    assert session_id_from_request(None, f"/app/cart;jsessionid={ID};v=2") == ID


def test_path_parameter_in_the_query_string_is_not_a_session_id():
    assert session_id_from_request(None, f"/app/cart?x=;jsessionid={ID}") is None


def test_cookie_wins_over_the_path_parameter():
    other = "FEDCBA9876543210FEDCBA9876543210.node2"
    assert session_id_from_request(f"JSESSIONID={other}", f"/a;jsessionid={ID}") == other


def test_first_valid_of_several_session_cookies_is_taken():
    header = f"JSESSIONID=<script>; JSESSIONID={ID}; JSESSIONID=FEDCBA9876543210FEDCBA98"
    assert session_id_from_request(header, "/") == ID


def test_junk_session_ids_are_rejected():
    junk = [
        "",
        "short",
        "0123456789ABCDEF0123456789ABCDEF.",
        "0123456789ABCDEF0123456789ABCDEF.node 1",
        "../../etc/passwd0123456789ABCDEF",
        "0123456789ABCDEF0123456789ABCDEF\x00.node1",
        "A" * 129,
        "0123456789ABCDEF0123456789ABCDEF." + "r" * 65,
        "0123456789ABCDEF%30123456789ABCDEF",
    ]
    for value in junk:
        assert not is_valid_session_id(value), value
        assert session_id_from_request(f"JSESSIONID={value}", f"/a;jsessionid={value}") is None
    assert not is_valid_session_id(None)
    assert not is_valid_session_id(12345678901234567890)


@given(st.text(max_size=300))
def test_any_cookie_header_gives_a_valid_id_or_none(header):
    found = session_id_from_request(header, header)
    assert found is None or is_valid_session_id(found)


def test_no_cookie_and_no_path_parameter_means_no_session_id():
    assert session_id_from_request(None, "/app/") is None
    assert session_id_from_request("a=b", None) is None


def test_strip_path_parameter_removes_only_the_session_parameter():
    assert strip_path_parameter(f"/app/cart;jsessionid={ID}") == "/app/cart"
    assert strip_path_parameter(f"/app;jsessionid={ID}/cart") == "/app/cart"
    assert strip_path_parameter(f"/app/cart;jsessionid={ID};v=2") == "/app/cart;v=2"
    assert strip_path_parameter("/app/cart") == "/app/cart"


def test_valid_route_charset():
    assert is_valid_route("node-1_a")
    assert not is_valid_route("node.1")


# --- values ------------------------------------------------------------------------------


def make_session(attributes=None, **kwargs):
    return Session(ID, attributes, creation_time=1000.0, last_accessed=1500.0, **kwargs)


def test_session_is_a_mapping_of_its_attributes():
    session = make_session({"user": "ann", "n": 1})
    assert dict(session) == {"user": "ann", "n": 1}
    assert len(session) == 2
    assert "user" in session and "missing" not in session
    assert session.get("missing") is None
    assert session.id == ID
    assert session.creation_time == 1000.0 and session.last_accessed == 1500.0
    assert not session.is_new


def test_new_session_reports_its_creation_time_as_last_access():
    session = Session(ID, creation_time=42.0, is_new=True)
    assert session.last_accessed == 42.0
    assert session.is_new


def test_nested_json_values_are_accepted():
    session = make_session()
    value = {"items": [1, 2.5, "x", None, True, {"deep": [[]]}], "empty": {}}
    session["cart"] = value
    assert session["cart"] == value


@pytest.mark.parametrize(
    "value, what",
    [
        (object(), "object"),
        ({1: "a"}, "dict key 1"),
        ((1, 2), "tuple"),
        ({1, 2}, "set"),
        (b"raw", "bytes"),
        ([1, [2, object()]], r"cart\[1\]\[1\]"),
        ({"a": {"b": math.nan}}, "nan"),
        (math.inf, "inf"),
    ],
)
def test_non_json_value_raises_type_error_naming_the_key(value, what):
    session = make_session()
    with pytest.raises(TypeError, match=rf"'cart'.*{what}|{what}.*'cart'"):
        session["cart"] = value
    assert "cart" not in session
    assert not session.delta().changes


def test_non_str_attribute_name_is_a_type_error():
    with pytest.raises(TypeError):
        make_session()[1] = "x"


def test_cyclic_value_is_a_type_error_not_a_crash():
    loop: list = []
    loop.append(loop)
    with pytest.raises(TypeError, match="nested deeper"):
        make_session()["loop"] = loop


def test_json_subclasses_are_refused_because_they_would_not_survive_replication():
    from collections import OrderedDict

    with pytest.raises(TypeError, match="'od'"):
        make_session()["od"] = OrderedDict(a=1)


def test_changing_a_value_read_from_the_session_changes_nothing_until_assigned():
    session = make_session({"cart": ["a"]})
    cart = session["cart"]
    cart.append("b")
    assert session["cart"] == ["a"]
    assert not session.changed
    session["cart"] = cart
    assert session["cart"] == ["a", "b"]
    assert session.delta().changes == (Change("set", "cart", ["a", "b"]),)


def test_changing_a_value_after_assigning_it_changes_nothing():
    session = make_session()
    cart = ["a"]
    session["cart"] = cart
    cart.append("b")
    assert session["cart"] == ["a"]
    assert session.delta().changes == (Change("set", "cart", ["a"]),)


# --- delta -------------------------------------------------------------------------------


def test_unchanged_session_delta_is_an_access_only():
    session = make_session({"a": 1})
    _ = session["a"]
    delta = session.delta()
    assert delta == Delta(accessed=True)
    assert not session.changed and not delta.changed


def test_delta_keeps_the_last_action_per_name_in_order_of_last_action():
    session = make_session({"a": 1, "b": 2})
    session["a"] = 10
    session["c"] = 3
    del session["b"]
    session["a"] = 11
    assert session.delta().changes == (
        Change("set", "c", 3),
        Change("remove", "b"),
        Change("set", "a", 11),
    )
    assert session.changed


def test_set_then_delete_is_recorded_as_remove():
    session = make_session()
    session["tmp"] = 1
    del session["tmp"]
    assert session.delta().changes == (Change("remove", "tmp"),)


def test_deleting_a_missing_attribute_is_a_key_error_and_no_change():
    session = make_session()
    with pytest.raises(KeyError):
        del session["nope"]
    assert not session.changed


def test_clear_and_update_record_every_name():
    session = make_session({"a": 1, "b": 2})
    session.clear()
    session.update(c=3)
    changes = session.delta().changes
    assert {c.name for c in changes if c.op == "remove"} == {"a", "b"}
    assert changes[-1] == Change("set", "c", 3)


def test_max_inactive_change_is_in_the_delta():
    session = make_session(max_inactive=1800)
    session.max_inactive = 60
    assert session.max_inactive == 60
    assert session.delta().max_inactive == 60
    assert session.changed


def test_setting_max_inactive_back_to_the_loaded_value_is_no_change():
    session = make_session(max_inactive=1800)
    session.max_inactive = 60
    session.max_inactive = 1800
    assert session.delta().max_inactive is None
    assert not session.changed


def test_max_inactive_must_be_whole_seconds():
    session = make_session()
    for bad in (1.5, "60", True, None):
        with pytest.raises(TypeError):
            session.max_inactive = bad


def test_new_session_is_changed_and_its_delta_creates_it():
    session = Session(ID, creation_time=7.0, max_inactive=900, is_new=True)
    assert session.changed
    delta = session.delta()
    assert delta.created == 7.0 and delta.max_inactive == 900 and delta.accessed


def test_invalidate_is_in_the_delta_and_later_use_raises():
    session = make_session({"a": 1})
    session["b"] = 2
    session.invalidate()
    assert session.invalidated
    assert session.delta() == Delta(invalidate=True, accessed=True)
    assert session.changed
    for use in (
        lambda: session["a"],
        lambda: session.__setitem__("a", 1),
        lambda: len(session),
        lambda: "a" in session,
        lambda: list(session),
        session.invalidate,
    ):
        with pytest.raises(InvalidatedSessionError):
            use()


def test_attributes_can_be_deleted_while_iterating():
    session = make_session({"a": 1, "b": 2, "keep": 3})
    for name in session:
        if name != "keep":
            del session[name]
    assert dict(session) == {"keep": 3}


def test_repr_does_not_show_values_or_the_whole_id():
    text = repr(make_session({"password": "hunter2"}))
    assert "hunter2" not in text and ID not in text


def test_delta_round_trips_through_json_dict():
    delta = Delta(
        changes=(Change("set", "a", {"x": [1, None]}), Change("remove", "b")),
        max_inactive=60,
        invalidate=False,
        accessed=True,
        created=12.5,
    )
    assert Delta.from_dict(delta.to_dict()) == delta
    assert Delta.from_dict({}) == Delta()


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"changes": "x"},
        {"changes": [["set", "a"]]},
        {"changes": [["put", "a", 1]]},
        {"changes": [["remove", 1]]},
        {"changes": [["set", "a", 1, 2]]},
        {"max_inactive": 1.5},
        {"invalidate": 1},
        {"created": "yesterday"},
        {"created": math.inf},
        {"surprise": 1},
    ],
)
def test_malformed_delta_dict_is_a_value_error(data):
    with pytest.raises(ValueError):
        Delta.from_dict(data)


def test_copy_value_returns_an_independent_copy():
    original = {"a": [1, {"b": 2}]}
    copy = copy_value("k", original)
    copy["a"][1]["b"] = 3
    assert original == {"a": [1, {"b": 2}]}
