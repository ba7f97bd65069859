"""Reading the ``key=value`` text the test webapp's pages answer with."""

from __future__ import annotations


def parse_page(text: str) -> dict[str, str]:
    """Map each key to its value; a repeated key (a multi-valued header) joins with ", "."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a key=value line: {line!r}")
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields
