"""Registry[T]: named, pluggable components (gating policies, codecs).

Three ways in, each remembered as the entry's source so `python -m bench list` can say where a
name came from:
- built-ins: `@POLICIES.register("name")` on a class in the package;
- installed plugins: an entry point in the group (`splitbench.policies`, `splitbench.quantizers`)
  whose value is a module (its decorators register) or a class (registered under the entry
  point's name);
- local files: `load_plugin("my_policy.py")` or a module name, as `--plugin` does.

A duplicate name is an error; an unknown name is a UsageError with close-match suggestions.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

from bench.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    source: str


class Registry(Generic[T]):
    """A name -> component map for one kind of component (its `kind`, e.g. "policy")."""

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry[T]] = {}
        self._source: str | None = None
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register `obj` under `name`; a name taken twice is an error."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(
                    f"{self.kind} {name!r} is registered twice: by {self._entries[name].source} "
                    f"and by {self._source or _module_of(obj)}"
                )
            self._entries[name] = Entry(name, obj, self._source or _module_of(obj))
            return obj

        return add

    @contextlib.contextmanager
    def _loading(self, source: str) -> Iterator[None]:
        previous, self._source = self._source, source
        try:
            yield
        finally:
            self._source = previous

    def load_entry_points(self) -> None:
        """Import every installed plugin of this registry's entry-point group (once)."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            with self._loading(f"entry point {ep.name} ({dist})"):
                obj = ep.load()
                if not _is_module(obj) and ep.name not in self._entries:
                    self.register(ep.name)(obj)

    def get(self, name: str) -> T:
        """The component registered as `name`, or a UsageError suggesting close names."""
        self.load_entry_points()
        if name not in self._entries:
            raise UsageError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name].obj

    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        self.load_entry_points()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        self.load_entry_points()
        return name in self._entries


def unknown_name_message(field: str, name: str, known: list[str]) -> str:
    """One line: the field, the bad value, the closest names, and everything allowed."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{field}: unknown name {name!r}{hint} (allowed: {', '.join(known)})"


def load_plugin(spec: str) -> None:
    """Import a plugin given as a path to a .py file or as an importable module name.

    Its `@REGISTRY.register` decorators run on import; every registry records the plugin as the
    source of the names it adds.
    """
    from policies import POLICIES
    from quantizers import QUANTIZERS

    path = Path(spec)
    source = f"plugin {spec}"
    with POLICIES._loading(source), QUANTIZERS._loading(source):
        if spec.endswith(".py"):
            if not path.is_file():
                raise UsageError(f"plugin: no such file {spec!r} (give a .py file or a module name)")
            module_name = f"splitbench_plugin_{path.stem}"
            if module_name in sys.modules:
                return
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(spec)
            except ModuleNotFoundError as exc:
                raise UsageError(
                    f"plugin: cannot import module {spec!r} ({exc}); give a .py file or an installed module"
                ) from None


def _module_of(obj: object) -> str:
    module = getattr(obj, "__module__", "") or ""
    return "built-in" if module.split(".")[0] in ("policies", "quantizers") else f"module {module}"


def _is_module(obj: object) -> bool:
    return type(obj).__name__ == "module"
