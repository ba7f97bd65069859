"""docs/directives.md is generated from the declarations and must not go stale."""

from __future__ import annotations

from pathlib import Path

from pyhttpd.directive_docs import bundled_modules, render

REPO = Path(__file__).resolve().parents[2]


def test_directive_reference_is_up_to_date():
    current = (REPO / "docs" / "directives.md").read_text()
    assert current == render(), "docs/directives.md is stale: run `python -m pyhttpd.directive_docs > docs/directives.md`"


def test_every_bundled_module_and_directive_is_documented():
    text = render()
    for _path, module in bundled_modules():
        assert f"## {module.name}" in text
        for d in module.directives:
            assert f"| {d.name} |" in text
    assert "| Listen |" in text and "| ThreadsPerChild |" in text
