"""URI mapping: mod_jk's rule syntax, precedence, exclusions, normalisation and reloads."""

import os
import textwrap

import pytest

from modules.mod_jk.lb import Activation
from modules.mod_jk.uri_map import (
    MountFile,
    Source,
    UriError,
    UriMapError,
    UriWorkerMap,
    normalize_uri,
    read_uriworkermap,
)
from modules.mod_jk.workers import parse_workers_properties


def mounted(*rules):
    uri_map = UriWorkerMap()
    for pattern, worker in rules:
        uri_map.add(pattern, worker)
    return uri_map


def test_exact_rule_beats_wildcard_of_the_same_depth():
    uri_map = mounted(("/app/*", "lb"), ("/app/login", "secure"))
    assert uri_map.match("/app/login") == "secure"
    assert uri_map.match("/app/other") == "lb"


def test_deeper_and_longer_wildcards_are_tried_first():
    uri_map = mounted(("/*", "default"), ("/app/*", "lb"), ("/app/static/*", "static"))
    assert uri_map.match("/app/static/site.css") == "static"
    assert uri_map.match("/app/page") == "lb"
    assert uri_map.match("/index.html") == "default"


def test_extension_rule_loses_to_a_path_wildcard():
    uri_map = mounted(("/*.jsp", "jsp"), ("/app/*", "app"))
    assert uri_map.match("/app/x.jsp") == "app"
    assert uri_map.match("/x.jsp") == "jsp"
    assert uri_map.match("/deep/dir/x.jsp") == "jsp"  # '*' crosses '/'
    assert uri_map.match("/x.jspx") is None


def test_question_mark_matches_exactly_one_character():
    uri_map = mounted(("/v?/api", "api"))
    assert uri_map.match("/v1/api") == "api"
    assert uri_map.match("/v10/api") is None


def test_patterns_are_case_sensitive_and_exact_rules_match_whole_uris():
    uri_map = mounted(("/App", "lb"))
    assert uri_map.match("/App") == "lb"
    assert uri_map.match("/app") is None
    assert uri_map.match("/App/x") is None


def test_unmount_beats_mount_for_the_same_worker():
    uri_map = mounted(("/app/*", "lb"), ("!/app/static/*", "lb"))
    assert uri_map.match("/app/static/logo.png") is None
    assert uri_map.match("/app/page") == "lb"


def test_unmount_of_another_worker_does_not_cancel_a_mount():
    uri_map = mounted(("/app/*", "lb"), ("!/app/*.gif", "other"))
    assert uri_map.match("/app/x.gif") == "lb"


def test_unmount_for_any_worker_with_star():
    uri_map = mounted(("/app/*", "lb"), ("!/*.gif", "*"))
    assert uri_map.match("/app/x.gif") is None


def test_disabled_rules_are_ignored():
    uri_map = mounted(("/app/*", "lb"), ("-/app/admin/*", "admin"), ("-!/app/*.png", "lb"))
    assert uri_map.match("/app/admin/x") == "lb"
    assert uri_map.match("/app/x.png") == "lb"


def test_optional_form_expands_to_two_rules():
    uri_map = mounted(("/examples|/*", "lb"))
    assert [rule.pattern for rule in uri_map.rules] == ["/examples/*", "/examples"]
    assert uri_map.match("/examples") == "lb"
    assert uri_map.match("/examples/servlets") == "lb"
    assert uri_map.match("/examplesX") is None


def test_uri_is_matched_after_path_parameters_are_stripped():
    uri_map = mounted(("/app/page", "lb"))
    assert uri_map.match("/app;jsessionid=ABC.node1/page") == "lb"
    assert uri_map.match("/app/page;jsessionid=ABC.node1") == "lb"


@pytest.mark.parametrize(("uri", "normal"), [
    ("/", "/"),
    ("/a//b///c", "/a/b/c"),
    ("/a/./b/.", "/a/b/"),
    ("/a/b/../c", "/a/c"),
    ("/a/b/..", "/a/"),
    ("/a/..;x=y/b", "/b"),
    ("/a;x=1/b;jsessionid=Z", "/a/b"),
    ("/a/", "/a/"),
])
def test_normalisation_follows_mod_jk(uri, normal):
    assert normalize_uri(uri) == normal


def test_climbing_above_the_root_is_refused():
    with pytest.raises(UriError):
        normalize_uri("/a/../../etc/passwd")
    with pytest.raises(UriError):
        mounted(("/*", "lb")).match("/../x")


def test_dot_segments_cannot_sneak_past_an_unmount():
    uri_map = mounted(("/app/*", "lb"), ("!/app/private/*", "lb"))
    assert uri_map.match("/app/public/../private/key") is None
    assert uri_map.match("/app//private/key") is None


def test_uri_without_leading_slash_is_never_mapped():
    assert mounted(("/*", "lb")).match("*") is None


def test_reject_unsafe_uris_when_asked():
    uri_map = mounted(("/*", "lb"))
    uri_map.reject_unsafe = True
    assert uri_map.match("/a%2fb") is None
    assert uri_map.match("/a\\b") is None
    assert uri_map.match("/ab") == "lb"


def test_rule_extensions_are_parsed():
    uri_map = UriWorkerMap()
    uri_map.add("/slow/*", "lb;reply_timeout=60000;stopped=node2;disabled=node3,node4"
                ";fail_on_status=500,-503;sticky_ignore=1;session_path=;sid;stateless=1")
    rule = uri_map.lookup("/slow/report")
    assert rule.worker == "lb"
    ext = rule.extensions
    assert ext.reply_timeout == 60000
    assert ext.fail_on_status == (500, -503)
    assert ext.sticky_ignore and ext.stateless
    assert ext.session_path == ";sid"
    assert ext.activations == {"node2": Activation.STOPPED, "node3": Activation.DISABLED,
                               "node4": Activation.DISABLED}


def test_unknown_rule_extension_is_an_error_naming_file_and_line():
    with pytest.raises(UriMapError) as caught:
        UriWorkerMap().add("/a/*", "lb;reply_timout=5", file="httpd.conf", line=7)
    assert str(caught.value) == "httpd.conf:7: unknown rule extension 'reply_timout=5'"


def test_pattern_must_start_with_a_slash():
    with pytest.raises(UriMapError) as caught:
        UriWorkerMap().add("app/*", "lb", file="httpd.conf", line=3)
    assert str(caught.value).startswith("httpd.conf:3: invalid mapping rule app/*=lb")


def test_uriworkermap_file_rules_with_comments_and_prefixes(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    path.write_text(textwrap.dedent("""\
        # mount the application
        /app|/*=lb            # both /app and /app/*
        !/app/*.css=lb
        -/old/*=lb
        /status=jkstatus;use_server_errors=400
    """))
    rules = read_uriworkermap(path)
    assert [(r.pattern, r.exclusion, r.disabled, r.line) for r in rules] == [
        ("/app", False, False, 2), ("/app/*", False, False, 2), ("/app/*.css", True, False, 3),
        ("/old/*", False, True, 4), ("/status", False, False, 5)]
    assert all(rule.source is Source.URIMAP for rule in rules)
    assert rules[-1].extensions.use_server_errors == 400


def test_uriworkermap_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    path.write_text("/ok/*=lb\n/broken/*\n")
    with pytest.raises(UriMapError) as caught:
        read_uriworkermap(path)
    assert str(caught.value) == f"{path}:2: expected /uri=worker, got '/broken/*'"


def test_uriworkermap_expands_variables_from_the_environment(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    path.write_text("/app/*=$(JK_LB)\n")
    assert read_uriworkermap(path, environ={"JK_LB": "cluster"})[0].worker == "cluster"


def test_same_pattern_from_the_mount_file_beats_jkmount(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    path.write_text("/app/*=from_file\n")
    mount_file = MountFile(path)
    mount_file.load(now=0)
    uri_map = UriWorkerMap(mount_file)
    uri_map.add("/app/*", "from_jkmount")
    assert uri_map.match("/app/x") == "from_file"


def test_worker_mount_property_maps_listed_workers_only():
    workers = parse_workers_properties([
        ("workers.properties", 1, "worker.list=a"),
        ("workers.properties", 2, "worker.a.mount=/a/* /a"),
        ("workers.properties", 3, "worker.b.mount=/b/*"),
    ])
    uri_map = UriWorkerMap()
    uri_map.add_worker_mounts(workers)
    assert uri_map.match("/a/x") == "a"
    assert uri_map.match("/a") == "a"
    assert uri_map.match("/b/x") is None
    assert {rule.source for rule in uri_map.rules} == {Source.WORKERDEF}


def test_rule_naming_an_undefined_worker_is_reported_with_its_directive_and_line():
    uri_map = UriWorkerMap()
    uri_map.add("/app/*", "lb", file="conf/httpd.conf", line=41)
    uri_map.add("/other/*", "lb2", file="conf/httpd.conf", line=42)
    uri_map.add("!/*.gif", "*", file="conf/httpd.conf", line=43)
    with pytest.raises(UriMapError) as caught:
        uri_map.check_workers({"lb"}, "conf/workers.properties")
    assert str(caught.value) == ("conf/httpd.conf:42: JkMount: worker 'lb2' is not defined in "
                                 "conf/workers.properties")


def _rewrite(path, text, mtime):
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_mount_file_reloads_only_after_the_interval_and_when_changed(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    _rewrite(path, "/app/*=lb\n", 1000)
    mount_file = MountFile(path, reload=60)
    mount_file.load(now=0)
    uri_map = UriWorkerMap(mount_file)
    uri_map.add("/fixed", "static")
    assert uri_map.match("/app/x", now=1) == "lb"

    _rewrite(path, "/app/*=lb2\n", 2000)
    assert uri_map.match("/app/x", now=30) == "lb"  # not checked yet
    assert uri_map.match("/app/x", now=61) == "lb2"  # checked and reloaded
    assert uri_map.match("/fixed") == "static"  # JkMount rules survive a reload

    assert not mount_file.check(now=200)  # mtime unchanged: nothing to do
    assert mount_file.checked == 200


def test_mount_file_reload_can_be_disabled(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    _rewrite(path, "/app/*=lb\n", 1000)
    mount_file = MountFile(path, reload=0)
    mount_file.load(now=0)
    _rewrite(path, "/app/*=lb2\n", 2000)
    assert not mount_file.check(now=10_000)
    assert mount_file.rules[0].worker == "lb"


def test_bad_reload_keeps_the_previous_rules_and_reports_why(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    _rewrite(path, "/app/*=lb\n", 1000)
    mount_file = MountFile(path)
    mount_file.load(now=0)
    uri_map = UriWorkerMap(mount_file)
    _rewrite(path, "/app/*=lb\nnonsense\n", 2000)
    assert uri_map.match("/app/x", now=100) == "lb"
    assert mount_file.error == f"{path}:2: expected /uri=worker, got 'nonsense'"
    _rewrite(path, "/app/*=fixed\n", 3000)
    assert uri_map.match("/app/x", now=200) == "fixed"
    assert mount_file.error is None


def test_missing_mount_file_at_start_is_an_error(tmp_path):
    with pytest.raises(UriMapError) as caught:
        MountFile(tmp_path / "none.properties").load(now=0)
    assert "cannot read the mount file" in str(caught.value)


def test_repeated_pattern_in_the_mount_file_keeps_the_last_worker(tmp_path):
    path = tmp_path / "uriworkermap.properties"
    path.write_text("/app/*=first\n/other=x\n/app/*=second\n")
    rules = read_uriworkermap(path)
    assert [(rule.pattern, rule.worker, rule.line) for rule in rules] == [
        ("/other", "x", 2), ("/app/*", "second", 3)]
