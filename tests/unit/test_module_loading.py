"""LoadModule finds a module by ServerRoot-relative path, any file path, dotted import path or entry point."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError
from pyhttpd.module import Module

REPO = Path(__file__).resolve().parents[2]

PLUGIN = '''
from pyhttpd.directive import Args, Context, Directive, set_str
from pyhttpd.module import Module

class Shout(Module):
    """A test plugin."""
    name = "shout_module"
    directives = (Directive("ShoutWord", Args.TAKE1, Context.RSRC_CONF, "a word", set_str("word")),)
    def create_server_config(self, server):
        return type("Cfg", (), {"word": None})()
    def merge_server_config(self, base, add):
        return add

shout_module = Shout()
'''


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "httpd.conf"
    path.write_text(f"ServerRoot {tmp_path}\n{text}")
    return Config.load(str(path))


def test_example_module_loads_from_outside_the_package_by_file_path(tmp_path):
    c = load(tmp_path, f"LoadModule hello_module {REPO}/examples/mod_hello.py\n<Location /h>\nHelloGreeting Hi\n</Location>\n")
    assert "hello_module" in c.module_by_name
    (section,) = c.main_server.sections
    assert section.dir_config["hello_module"].greeting == "Hi"


def test_module_path_is_relative_to_server_root_and_suffix_is_optional(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mod_shout.py").write_text(PLUGIN)
    c = load(tmp_path, "LoadModule shout_module plugins/mod_shout\nShoutWord hey\n")
    assert c.main_server.module_config["shout_module"].word == "hey"


def test_bundled_module_loads_by_httpd_style_path_from_any_server_root(tmp_path):
    c = load(tmp_path, "LoadModule status_module modules/mod_status\nLoadModule mime_module modules/mod_mime.so\n")
    assert {"status_module", "mime_module"} <= set(c.module_by_name)
    assert type(c.module_by_name["status_module"]).__module__ == "modules.mod_status"


def test_module_loads_by_dotted_import_path(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "shoutpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    c = load(tmp_path, "LoadModule shout_module shoutpkg.mod\nShoutWord dotted\n")
    assert c.main_server.module_config["shout_module"].word == "dotted"


def test_module_loads_from_an_installed_entry_point(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "shout_ep.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(pkg))
    ep = metadata.EntryPoint(name="shout", value="shout_ep", group="pyhttpd.modules")

    def fake_entry_points(group=None, **kwargs):
        return [ep] if group == "pyhttpd.modules" else []

    monkeypatch.setattr("pyhttpd.loader.metadata.entry_points", fake_entry_points)
    c = load(tmp_path, "LoadModule shout_module shout\nShoutWord ep\n")
    assert c.main_server.module_config["shout_module"].word == "ep"


def test_directive_of_a_module_not_loaded_is_an_invalid_command(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, "HelloGreeting Hi\n")
    assert e.value.line == 2 and "Invalid command 'HelloGreeting'" in str(e.value)


def test_module_object_must_be_a_pyhttpd_module(tmp_path):
    (tmp_path / "mod_bad.py").write_text("bad_module = object()\n")
    with pytest.raises(ConfigError, match="is not a pyhttpd module"):
        load(tmp_path, "LoadModule bad_module mod_bad.py\n")


def test_module_that_fails_to_import_reports_the_exception(tmp_path):
    (tmp_path / "mod_broken.py").write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(ConfigError, match="boom at import"):
        load(tmp_path, "LoadModule broken_module mod_broken.py\n")


def test_loading_twice_warns_and_keeps_one(tmp_path):
    c = load(tmp_path, f"LoadModule hello_module {REPO}/examples/mod_hello.py\nLoadModule hello_module {REPO}/examples/mod_hello.py\n")
    assert [m.name for m in c.modules].count("hello_module") == 1
    assert any("already loaded" in w for w in c.warnings)


def test_class_attribute_is_instantiated(tmp_path):
    (tmp_path / "mod_cls.py").write_text(
        "from pyhttpd.module import Module\nclass cls_module(Module):\n    name = 'cls_module'\n"
    )
    c = load(tmp_path, "LoadModule cls_module mod_cls.py\n")
    assert isinstance(c.module_by_name["cls_module"], Module)
    assert sys.modules.get("pyhttpd_plugin_cls_module") is not None
