"""Name -> implementation tables with aliases and lazy imports: one registry per kind, one list of names.

An entry is either an object or a dotted "module:attribute" string, imported only when the name is asked
for, so choosing the PyTorch backend never imports onnxruntime and a missing optional package fails only for
its own entry.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Generic, TypeVar

from .errors import OptionError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names (and aliases) to lazily imported objects; unknown names get "did you mean"."""

    def __init__(self, kind: str, entries: dict[str, T | str], aliases: dict[str, str] | None = None):
        self.kind = kind
        self._entries = dict(entries)
        self._aliases = dict(aliases or {})

    def names(self) -> list[str]:
        return sorted(self._entries)

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases; OptionError naming the choices otherwise."""
        key = name.strip().lower()
        key = self._aliases.get(key, key)
        if key in self._entries:
            return key
        choices = self.names() + sorted(self._aliases)
        close = difflib.get_close_matches(key, choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise OptionError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(self.names())}")

    def get(self, name: str) -> T:
        target = self._entries[self.canonical(name)]
        if not isinstance(target, str):
            return target
        module_name, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    def __contains__(self, name: str) -> bool:
        key = name.strip().lower()
        return self._aliases.get(key, key) in self._entries
