"""Header tables (httpd's apr_table_t): ordered, case-insensitive, several values per name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Headers:
    """An ordered list of (name, value) with case-insensitive lookup.

    Request and response headers are few, so a list scanned on lookup beats a dict of lists
    and keeps the order and the original spelling for forwarding.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`."""
        lname = name.lower()
        for k, v in self._items:
            if k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self._items if k.lower() == lname]

    def get_joined(self, name: str, sep: str = ", ") -> str | None:
        """Every value of `name` joined, as a proxy merges repeated fields (Cookie uses '; ')."""
        values = self.get_all(name)
        return sep.join(values) if values else None

    def add(self, name: str, value: str) -> None:
        """Add a value, keeping others of the same name (apr_table_add)."""
        self._items.append((name, value))

    def extend(self, items: Iterable[tuple[str, str]]) -> None:
        """Add several values, keeping others of the same names."""
        self._items.extend(items)

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with one (apr_table_set)."""
        self.remove(name)
        self._items.append((name, value))

    def setdefault(self, name: str, value: str) -> str:
        existing = self.get(name)
        if existing is None:
            self._items.append((name, value))
            return value
        return existing

    def remove(self, name: str) -> None:
        lname = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lname]

    def clear(self) -> None:
        self._items.clear()

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.remove(name)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"
