"""Configured targets: wrap ``"package.module:Class.method"`` with no change to the user's code.

A target whose module is already imported is wrapped at once; otherwise a wrapt post-import hook
wraps it the moment the module is imported. Modules are checked to exist at configuration time, so
a typo is one :class:`ConfigError` at start-up rather than a silent no-op, and the check runs no
code of the application: ``importlib.util.find_spec("a.b.c")`` would import (run) ``a`` and
``a.b``, so we find the top-level package with the import system's finders, which run nothing, and
walk down its ``__path__`` with ``PathFinder`` (a package already imported lends its own
``__path__``). Limit: a package that builds its ``__path__`` while being imported (old-style
``pkgutil.extend_path`` namespaces, ``six.moves``-style import hooks) cannot be seen into this way;
its submodules are reported as missing. A missing *attribute* can only be seen once the module is
loaded: at configuration time that is a ``ConfigError``; inside a later import it is logged,
because raising there would break the user's import.

Targets are application code only. Wrapping a builtin (``builtins:isinstance``), the standard
library, this library or one of its dependencies (OpenTelemetry, wrapt, grpc, protobuf...) would
put our own call path inside itself: every span we start calls them. Those are refused with a
``ConfigError``; and should application code we wrap be called from inside our own work anyway (a
custom sampler or exporter calling it), it runs untraced (the wrappers' re-entry guard).

wrapt cannot unregister a post-import hook, so hooks of an uninstalled installer do nothing.
Unwrapping looks the attribute up statically (``inspect.getattr_static``) so that a wrapped
``staticmethod`` or ``classmethod`` is restored as the descriptor it was, not as a bound function.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import logging
import re
import sys
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import Any, Final

import wrapt

from .._core.config import TargetSpec
from .._core.errors import ConfigError
from .wrappers import CallSpec, make_wrapper

__all__ = ["TargetInstaller", "check_targets"]

_logger = logging.getLogger(__name__)

_DISTRIBUTION: Final = "otel-migration"
#: Always refused, whatever the installed metadata says: our call path runs through each of them.
_ALWAYS_REFUSED: Final = frozenset(
    {"otel_migration", "opentelemetry", "wrapt", "grpc", "google", "requests", "urllib3", "numpy"}
)
_REQUIREMENT_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def library_modules() -> frozenset[str]:
    """Top-level modules of this library and of everything it depends on (extras excluded)."""
    names = set(_ALWAYS_REFUSED)
    try:
        wanted, todo = set(), [_DISTRIBUTION]
        while todo:
            dist = _normalized(todo.pop())
            if dist in wanted:
                continue
            wanted.add(dist)
            try:
                requirements = importlib.metadata.requires(dist) or []
            except importlib.metadata.PackageNotFoundError:
                continue
            for requirement in requirements:
                match = _REQUIREMENT_NAME.match(requirement)
                if match and "extra" not in requirement.partition(";")[2]:  # extras are not dependencies
                    todo.append(match.group(1))
        for module, dists in importlib.metadata.packages_distributions().items():
            if any(_normalized(d) in wanted for d in dists):
                names.add(module)
    except Exception:  # broken metadata: the fixed list above still holds
        _logger.debug("otel-migration: could not read the dependencies' metadata", exc_info=True)
    return frozenset(names)


def _refusal(module: str) -> str | None:
    """Why ``module`` may not be a target, or None when it is application code."""
    top = module.partition(".")[0]
    if top == "builtins" or top in sys.builtin_module_names:
        return "builtins cannot be targets: our own call path uses them"
    if top in sys.stdlib_module_names:
        return "the standard library cannot be a target: our own call path and the SDK's use it"
    if top in library_modules():
        return "this library and its dependencies cannot be targets: our own call path runs through them"
    return None


def find_module(name: str) -> bool:
    """Whether module ``name`` can be imported, found without running any package's code."""
    parts = name.split(".")
    # A package already imported lends its own __path__: that is what a later import will search.
    for depth in range(len(parts), 0, -1):
        imported = sys.modules.get(".".join(parts[:depth]))
        if imported is not None:
            if depth == len(parts):
                return True
            search = getattr(imported, "__path__", None)
            break
    else:
        depth = 1
        top = importlib.util.find_spec(parts[0])  # a top-level name has no parent to import
        if top is None:
            return False
        search = top.submodule_search_locations
    for index in range(depth, len(parts)):
        if search is None:  # the parent is a module, not a package
            return False
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: index + 1]), list(search))
        if spec is None:
            return False
        search = spec.submodule_search_locations
    return True


def check_targets(specs: Iterable[TargetSpec]) -> None:
    """Raise ConfigError for a target outside application code, or whose module cannot be found."""
    for spec in specs:
        where = f"targets[{spec.target!r}]"
        refusal = _refusal(spec.module)
        if refusal is not None:
            raise ConfigError(where, spec.target, refusal)
        try:
            found = find_module(spec.module)
        except (ImportError, ValueError) as exc:
            raise ConfigError(where, spec.module, f"module cannot be found: {exc}") from None
        if not found:
            raise ConfigError(where, spec.module, "no module of that name is importable")


def _resolve(module: ModuleType, attribute: str) -> tuple[Any, str, Any]:
    """(owner, name, the attribute as stored) for a dotted path inside ``module``."""
    owner: Any = module
    *parents, name = attribute.split(".")
    for part in parents:
        owner = getattr(owner, part)
    return owner, name, inspect.getattr_static(owner, name)


class TargetInstaller:
    """Wraps configured targets and restores every original on :meth:`uninstall`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = True
        # (owner, name, our wrapper, whether the owner defined the attribute itself)
        self._installed: list[tuple[Any, str, Any, bool]] = []

    def install(self, specs: Iterable[TargetSpec]) -> None:
        """Wrap what is imported now (ConfigError on a bad attribute) and hook the rest."""
        for spec in specs:
            module = sys.modules.get(spec.module)
            if module is not None:
                self._wrap(module, spec)
            else:
                wrapt.register_post_import_hook(self._hook_for(spec), spec.module)

    def _hook_for(self, spec: TargetSpec) -> Any:
        def on_import(module: ModuleType) -> None:
            if not self._active:
                return
            try:
                self._wrap(module, spec)
            except ConfigError as exc:
                _logger.error("otel-migration: %s", exc)
            except Exception:
                _logger.exception("otel-migration: could not wrap %s", spec.target)

        return on_import

    def _wrap(self, module: ModuleType, spec: TargetSpec) -> None:
        try:
            owner, name, original = _resolve(module, spec.attribute)
        except AttributeError as exc:
            raise ConfigError(
                f"targets[{spec.target!r}]", spec.attribute, f"not found in module {spec.module}: {exc}"
            ) from None
        function = original.__func__ if isinstance(original, (classmethod, staticmethod)) else original
        if not callable(function):
            raise ConfigError(f"targets[{spec.target!r}]", spec.attribute, "is not a function or method")
        qualname = getattr(function, "__qualname__", spec.attribute)
        call_spec = CallSpec(
            version=spec.version,
            operation=spec.operation,
            migration=spec.migration,
            code_function=f"{spec.module}.{qualname}",
        )
        wrapper = wrapt.FunctionWrapper(original, make_wrapper(original, call_spec))
        with self._lock:
            owned = name in vars(owner) if hasattr(owner, "__dict__") else True
            setattr(owner, name, wrapper)
            self._installed.append((owner, name, wrapper, owned))

    def uninstall(self) -> None:
        """Restore every original, newest first; one that someone re-wrapped since is left alone."""
        with self._lock:
            self._active = False
            installed, self._installed = self._installed, []
        for owner, name, wrapper, owned in reversed(installed):
            try:
                current = inspect.getattr_static(owner, name)
            except AttributeError:
                continue
            if current is not wrapper:
                _logger.warning(
                    "otel-migration: %r.%s was replaced after we wrapped it; left as it is", owner, name
                )
                continue
            if owned:
                setattr(owner, name, wrapper.__wrapped__)
            else:
                delattr(owner, name)
