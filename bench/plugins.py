"""Where registered components come from: the built-ins, installed entry points (loaded lazily by
name), and `--plugin` files.

Installed plugins declare entry points in the groups `splitbench.policies`,
`splitbench.quantizers`, `splitbench.layouts` and `splitbench.transports`. An entry point's name
is the component's name; its value is a class or function (registered under that name) or a module
whose `@REGISTRY.register` decorators run on import (it must register that name, and may register
more). Nothing is imported until a run asks for the name (or `bench list` shows everything), so a
broken plugin fails only the runs that use it, with one line naming the plugin and its
distribution. A name that two sources claim is an error when it is asked for.

A registration's source: "built-in" for a component of a module some registry declares as a
built-in one, else the load under way (an entry point, a `--plugin`), else its module. This module
imports no registry; registries ask it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Iterable, Iterator

from bench.errors import UsageError

BUILT_IN = "built-in"
_loads: list[str] = []  # the sources of the loads under way, innermost last
_built_in_modules: set[str] = set()


def declare_built_ins(modules: Iterable[str]) -> None:
    """Components of these modules are built-in, whichever load imported them."""
    _built_in_modules.update(modules)


@contextlib.contextmanager
def loading(source: str) -> Iterator[None]:
    """Components registered inside the block (but for built-in ones) come from `source`."""
    _loads.append(source)
    try:
        yield
    finally:
        _loads.pop()


def source_of(obj: object) -> str:
    """Where `obj`, being registered now, comes from."""
    module = getattr(obj, "__module__", None) or ""
    if module in _built_in_modules:
        return BUILT_IN
    return _loads[-1] if _loads else f"module {module}"


def installed(group: str) -> dict[str, list[importlib.metadata.EntryPoint]]:
    """The entry points of `group` by name (several when distributions clash), none imported."""
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for ep in importlib.metadata.entry_points(group=group):
        found.setdefault(ep.name, []).append(ep)
    return found


def origin(ep: importlib.metadata.EntryPoint) -> str:
    """How `bench list` and error messages name an installed plugin."""
    dist = ep.dist.name if ep.dist is not None else "unknown distribution"
    return f"entry point {ep.name} ({dist})"


def load_entry_point(registry, ep: importlib.metadata.EntryPoint) -> None:
    """Import `ep` and register what it provides in `registry`; any failure is one UsageError line."""
    source = origin(ep)
    with loading(source):
        try:
            obj = ep.load()
            if not inspect.ismodule(obj):
                registry.register(ep.name, source)(obj)
        except UsageError:
            raise
        except Exception as exc:  # a plugin can fail in any way; the run that asked for it reports it
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise UsageError(
                f"{registry.kind} {ep.name!r}: plugin {source} failed to load ({type(exc).__name__}: {reason})"
            ) from None
    if not registry.has_loaded(ep.name):
        raise UsageError(f"{registry.kind} {ep.name!r}: plugin {source} imported but registered no {ep.name!r}")


def load_plugin(spec: str) -> None:
    """Import a plugin given as a path to a .py file or as an importable module name.

    Its `@REGISTRY.register` decorators run on import; every registry records the plugin as the
    source of the names it adds.
    """
    path = Path(spec)
    with loading(f"plugin {spec}"):
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
