"""Configured targets: wrap ``"package.module:Class.method"`` with no change to the user's code.

A target whose module is already imported is wrapped at once; otherwise a wrapt post-import hook
wraps it the moment the module is imported. Modules are checked to exist at configuration time
(``importlib.util.find_spec``, which imports parent packages but not the module itself), so a typo
is one :class:`ConfigError` at start-up rather than a silent no-op. A missing *attribute* can only be
seen once the module is loaded: at configuration time that is a ``ConfigError``; inside a later
import it is logged, because raising there would break the user's import.

wrapt cannot unregister a post-import hook, so hooks of an uninstalled installer do nothing.
Unwrapping looks the attribute up statically (``inspect.getattr_static``) so that a wrapped
``staticmethod`` or ``classmethod`` is restored as the descriptor it was, not as a bound function.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import wrapt

from .._core.config import TargetSpec
from .._core.errors import ConfigError
from .wrappers import CallSpec, make_wrapper

__all__ = ["TargetInstaller", "check_targets"]

_logger = logging.getLogger(__name__)


def check_targets(specs: Iterable[TargetSpec]) -> None:
    """Raise ConfigError for a target whose module cannot be found."""
    for spec in specs:
        try:
            found = importlib.util.find_spec(spec.module)
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"targets[{spec.target!r}]", spec.module, f"module cannot be found: {exc}"
            ) from None
        if found is None:
            raise ConfigError(
                f"targets[{spec.target!r}]", spec.module, "no module of that name is importable"
            )


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
