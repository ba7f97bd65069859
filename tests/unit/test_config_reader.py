"""The httpd-syntax reader: tokens, continuation, comments, variables, sections, includes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError, logical_lines, quote_arg, split_args


def load(tmp_path: Path, text: str, **kwargs) -> Config:
    path = tmp_path / "httpd.conf"
    path.write_text(f"ServerRoot {tmp_path}\n" + text)
    return Config.load(str(path), **kwargs)


def test_arguments_split_on_whitespace_and_quotes_hold_spaces():
    assert split_args('a "b c" \'d e\' f') == ["a", "b c", "d e", "f"]


def test_backslash_escapes_the_quote_inside_quotes_only():
    assert split_args(r'"say \"hi\"" C:\dir') == ['say "hi"', r"C:\dir"]


def test_hash_after_a_directive_is_an_argument_not_a_comment():
    assert split_args("On # not a comment") == ["On", "#", "not", "a", "comment"]


def test_unterminated_quote_is_an_error():
    with pytest.raises(ValueError, match="missing closing"):
        split_args('"open')


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=20), max_size=6))
def test_quoting_any_argument_list_round_trips(args):
    assert split_args(" ".join(quote_arg(a) for a in args)) == args


@given(st.lists(st.text(alphabet="abcXYZ019 _-/", min_size=1, max_size=12).filter(str.strip), min_size=1, max_size=5))
def test_continuation_joins_lines_at_any_split(words):
    text = " \\\n".join(words) + "\n"
    lines = logical_lines(text)
    assert len(lines) == 1
    assert lines[0][0] == 1
    assert lines[0][1].split() == " ".join(words).split()


def test_comments_and_blank_lines_are_skipped_and_line_numbers_kept():
    text = "# comment\n\n   # indented comment\nListen 80\nFoo \\\n  bar\nBaz\n"
    assert logical_lines(text) == [(4, "Listen 80"), (5, "Foo   bar"), (7, "Baz")]


def test_define_substitutes_before_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PORT_FROM_ENV", "9001")
    monkeypatch.setenv("NAME", "from-env")
    c = load(tmp_path, "Define NAME from-define\nServerName ${NAME}\nListen 127.0.0.1:${PORT_FROM_ENV}\n")
    assert c.main_server.core.server_name == "from-define"
    assert c.global_config.listens[0].port == 9001


def test_unknown_variable_is_left_with_a_warning(tmp_path):
    c = load(tmp_path, "ServerName ${NOPE_NOT_SET}\n", environ={})
    assert c.main_server.core.server_name == "${NOPE_NOT_SET}"
    assert any("NOPE_NOT_SET" in w for w in c.warnings)


def test_ifdefine_uses_command_line_defines_and_negation(tmp_path):
    text = "<IfDefine FAST>\nKeepAliveTimeout 1\n</IfDefine>\n<IfDefine !FAST>\nKeepAliveTimeout 9\n</IfDefine>\n"
    assert load(tmp_path, text, defines=["FAST"]).main_server.core.keep_alive_timeout == 1
    assert load(tmp_path, text).main_server.core.keep_alive_timeout == 9


def test_false_conditional_skips_unknown_directives_inside(tmp_path):
    c = load(tmp_path, "<IfModule missing_module>\nNoSuchDirective x\n</IfModule>\nTimeout 7\n")
    assert c.main_server.core.timeout == 7


def test_ifmodule_accepts_identifier_and_file_name(tmp_path):
    text = (
        f"LoadModule hello_module {Path(__file__).resolve().parents[2]}/examples/mod_hello.py\n"
        "<IfModule hello_module>\nTimeout 11\n</IfModule>\n"
        "<IfModule mod_hello.c>\nKeepAliveTimeout 12\n</IfModule>\n"
    )
    c = load(tmp_path, text)
    assert c.main_server.core.timeout == 11
    assert c.main_server.core.keep_alive_timeout == 12


def test_include_glob_relative_to_server_root_in_alphabetical_order(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("Timeout 2\n")
    (tmp_path / "conf.d" / "a.conf").write_text("Timeout 1\nKeepAliveTimeout 3\n")
    c = load(tmp_path, "Include conf.d/*.conf\n")
    assert c.main_server.core.timeout == 2
    assert c.main_server.core.keep_alive_timeout == 3


def test_include_without_match_is_an_error_but_includeoptional_is_not(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, "\nInclude nothing/*.conf\n")
    assert e.value.line == 3 and "No matches" in str(e.value)
    load(tmp_path, "IncludeOptional nothing/*.conf\nIncludeOptional missing.conf\n")


def test_included_file_errors_name_the_included_file(tmp_path):
    (tmp_path / "extra.conf").write_text("Timeout 1\nTimeout abc\n")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, "Include extra.conf\n")
    assert e.value.file.endswith("extra.conf") and e.value.line == 2


def test_directive_names_are_case_insensitive(tmp_path):
    c = load(tmp_path, "keepalivetimeout 4\nTIMEOUT 5\n")
    assert (c.main_server.core.keep_alive_timeout, c.main_server.core.timeout) == (4, 5)


def test_command_line_directives_come_before_and_after_the_file(tmp_path):
    c = load(tmp_path, "Timeout 5\nKeepAliveTimeout 5\n", pre_directives=["Timeout 1", "MaxKeepAliveRequests 7"],
             post_directives=["KeepAliveTimeout 9"])
    core = c.main_server.core
    assert (core.timeout, core.keep_alive_timeout, core.max_keep_alive_requests) == (5, 9, 7)


def test_every_node_remembers_file_and_line(tmp_path):
    c = load(tmp_path, "\n<Location /a>\n  SetHandler x\n</Location>\n")
    (section,) = c.main_server.sections
    assert section.file.endswith("httpd.conf") and section.line == 3
