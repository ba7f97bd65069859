"""Header tables (httpd's apr_table_t): ordered, case-insensitive, several values per name."""

from __future__ import annotations

from typing import Any, SupportsIndex, overload


class Headers(list[tuple[str, str]]):
    """An ordered list of (name, value) with case-insensitive lookup by name.

    Request and response headers are few, so a list scanned on lookup beats a dict of lists
    and keeps the order and the original spelling for forwarding. Being a list, a table is
    made, iterated, tested and extended without a Python-level call (a request makes four).
    Indexing by a str looks a name up (KeyError when absent); by an int or slice it is the
    list's.
    """

    __slots__ = ()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The first value of `name`."""
        lname = name.lower()
        for k, v in self:
            if k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self if k.lower() == lname]

    def get_joined(self, name: str, sep: str = ", ") -> str | None:
        """Every value of `name` joined, as a proxy merges repeated fields (Cookie uses '; ')."""
        values = self.get_all(name)
        return sep.join(values) if values else None

    def add(self, name: str, value: str) -> None:
        """Add a value, keeping others of the same name (apr_table_add)."""
        self.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with one (apr_table_set)."""
        self.remove(name)
        self.append((name, value))

    def setdefault(self, name: str, value: str) -> str:
        existing = self.get(name)
        if existing is None:
            self.append((name, value))
            return value
        return existing

    def remove(self, name: str) -> None:  # type: ignore[override]
        """Drop every value of `name` (apr_table_unset)."""
        lname = name.lower()
        list.__setitem__(self, slice(None), [(k, v) for k, v in self if k.lower() != lname])

    def items(self) -> list[tuple[str, str]]:
        return list(self)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @overload  # type: ignore[override]
    def __getitem__(self, key: str) -> str: ...
    @overload
    def __getitem__(self, key: SupportsIndex) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, key: slice) -> list[tuple[str, str]]: ...
    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, str):
            return list.__getitem__(self, key)
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str):
            self.set(key, value)
        else:
            list.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        if isinstance(key, str):
            self.remove(key)
        else:
            list.__delitem__(self, key)

    def __repr__(self) -> str:
        return f"Headers({list.__repr__(self)})"
