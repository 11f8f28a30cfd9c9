"""Registry[T]: named, pluggable components (gating policies, codecs, cache layouts, transports).

Three ways in, each remembered as the entry's source so `python -m bench list` can say where a
name came from:
- built-ins: `@POLICIES.register("name")` on a class in one of the modules the registry declares
  as its built-ins, imported when the registry is first asked for a name (or first registers one,
  so that a built-in name taken again is the second registration);
- installed plugins: entry points in the registry's group, imported only when their name is asked
  for (bench/plugins.py);
- local files or modules: `bench.plugins.load_plugin(...)`, as `--plugin` does.

A name taken twice is a UsageError naming both sources; an unknown name is a UsageError with
close-match suggestions. Where a name came from is bench/plugins.py's to say; this module imports
no registry's package, and names none.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from bench import plugins
from bench.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name; `obj` is None when its plugin cannot be loaded (`source` says why)."""

    name: str
    obj: T | None
    source: str


class Registry(Generic[T]):
    """A name -> component map for one kind of component (its `kind`, e.g. "policy")."""

    def __init__(self, kind: str, group: str, built_ins: tuple[str, ...] = (), plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"  # "policies", not "policys"
        self.group = group
        self._entries: dict[str, Entry[T]] = {}
        self._installed = None  # name -> entry points of `group`, found on first use
        self._built_ins = built_ins  # modules that register the built-in names, imported on first use
        self._built_ins_loaded = not built_ins
        plugins.declare_built_ins(built_ins)

    def register(self, name: str, source: str | None = None) -> Callable[[T], T]:
        """Decorator: register `obj` under `name`, as coming from `source` (by default
        bench.plugins.source_of says); a name taken twice is a UsageError."""

        def add(obj: T) -> T:
            self._load_built_ins()
            origin = source or plugins.source_of(obj)
            if name in self._entries:
                raise UsageError(self._clash(name, self._entries[name].source, origin))
            self._entries[name] = Entry(name, obj, origin)
            return obj

        return add

    def get(self, name: str) -> T:
        """The component registered as `name` (importing its plugin if need be), or a UsageError."""
        self._load_built_ins()
        entry_points = self._entry_points().get(name, [])
        if name not in self._entries:
            if not entry_points:
                raise UsageError(unknown_name_message(self.kind, name, self.names()))
            if len(entry_points) > 1:
                raise UsageError(self._clash(name, *(plugins.origin(ep) for ep in entry_points[:2])))
            plugins.load_entry_point(self, entry_points[0])
        source = self._entries[name].source
        for ep in entry_points:
            if plugins.origin(ep) != source:
                raise UsageError(self._clash(name, source, plugins.origin(ep)))
        return self._entries[name].obj

    def has_loaded(self, name: str) -> bool:
        """Whether `name` is registered now (without importing any plugin)."""
        return name in self._entries

    def names(self) -> list[str]:
        """Every name, registered or declared by an installed plugin (no plugin is imported)."""
        self._load_built_ins()
        return sorted(set(self._entries) | set(self._entry_points()))

    def entries(self) -> list[Entry[T]]:
        """Every name with its component and source, importing every installed plugin."""
        out = []
        for name in self.names():
            try:
                out.append(Entry(name, self.get(name), self._entries[name].source))
            except UsageError as exc:
                out.append(Entry(name, None, f"unusable: {exc}"))
        return out

    def __contains__(self, name: str) -> bool:
        self._load_built_ins()
        return name in self._entries or name in self._entry_points()

    def _load_built_ins(self) -> None:
        if self._built_ins_loaded:
            return
        self._built_ins_loaded = True  # first: the modules' own registrations come back here
        with plugins.loading(plugins.BUILT_IN):
            for module in self._built_ins:
                importlib.import_module(module)

    def _entry_points(self) -> dict:
        if self._installed is None:
            self._installed = plugins.installed(self.group)
        return self._installed

    def _clash(self, name: str, first: str, second: str) -> str:
        return f"{self.kind} {name!r} is registered twice: by {first} and by {second}"


def unknown_name_message(field: str, name: str, known: list[str]) -> str:
    """One line: the field, the bad value, the closest names, and everything allowed."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{field}: unknown name {name!r}{hint} (allowed: {', '.join(known)})"
