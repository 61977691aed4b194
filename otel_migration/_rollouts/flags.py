"""Versions chosen through OpenFeature: the provider in use, the default flag-file provider, the hook.

Every evaluation goes through the OpenFeature API's default client, so the provider is whatever the
application set (flagd, LaunchDarkly, Unleash, the SDK's in-memory provider, ...). Only when the
application set none (the API's no-op provider) do we set flagd's provider in file mode on the
flag file: it reads the file at start and a daemon thread polls its mtime every
:data:`POLL_MS`, so a rewrite reaches every process of the host within that interval.

That thread does not survive ``fork``: a pre-fork server (gunicorn) that set the provider up in its
master would give every worker a flag store frozen at fork time. So in a forked child the provider
gets a fresh resolver (new store, new watcher thread, the file read again), and the SDK locks a
thread of the parent may have held at the fork are re-initialised, as the standard library does
for its own module locks.

:class:`EvaluationRecorder` is an API-level hook: it records *every* evaluation, ours and the
application's own, as a ``feature_flag.evaluation`` span event with a pseudonymised context id,
and counts them by flag, variant and reason.

The hot path (:meth:`FlagService.evaluate`): while our flagd provider serves, ready, and no hook
but the recorder would see an evaluation, a rollout is decided from the flag state the provider
loaded, compiled once per load (:mod:`.evaluation`), and recorded by the recorder directly: the
same answer, event and count as through the client, at a tenth of the cost. The state is the
provider's own, so a rewrite is served exactly when the client would serve it. Anything else (an
application hook or provider, a rule we do not compile) goes through the client as before.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, Final

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.contrib.provider.flagd.sync_metadata_hook import SyncMetadataHook
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagEvaluationOptions
from openfeature.hook import Hook, HookContext, HookHints, get_hooks
from openfeature.provider import FeatureProvider, ProviderStatus
from openfeature.provider.no_op_provider import NoOpProvider
from opentelemetry import trace

from .._core import semconv as sc
from .._core.instruments import Measured
from .._core.subjects import pseudonymize
from .evaluation import CompiledFlag, Evaluation, compile_flag, reason_of
from .flagfile import FlagFile

__all__ = ["POLL_MS", "Evaluation", "EvaluationRecorder", "FlagService", "reason_of"]

_logger = logging.getLogger(__name__)

#: How often flagd's file watcher looks at the file's mtime (its ``deadline_ms`` in file mode).
POLL_MS: Final = 200
DEFAULT_FLAG_FILE: Final = "otel-migration-flags.json"
FLAG_FILE_ENV: Final = "OTEL_MIGRATION_FLAG_FILE"
#: Hook hint carrying the pseudonym we already computed, so the hook does not hash the id again.
HINT_CONTEXT_ID: Final = "otel_migration.context_id"
#: Bound on (flag, variant, reason) series the recorder keeps: flags of the application count too.
MAX_SERIES: Final = 2_000


class EvaluationRecorder(Hook):
    """Records every OpenFeature evaluation: a span event on the current span and a count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self.dropped = 0

    def reset_after_fork(self) -> None:
        """In a forked child: decisions count from zero (the parent exports its own)."""
        self._lock = threading.Lock()
        self._counts = {}
        self.dropped = 0

    def finally_after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        try:
            evaluation = Evaluation.of(details)
            provider = hook_context.provider_metadata
            context_id = hints.get(HINT_CONTEXT_ID)
            self.record(
                hook_context.flag_key,
                evaluation,
                provider.name if provider is not None else None,
                context_id if isinstance(context_id, str) else None,
                hook_context.evaluation_context.targeting_key,
            )
        except Exception:  # never into the evaluation, whatever happens here
            _logger.exception("otel-migration: failed to record a flag evaluation")

    def record(
        self,
        flag: str,
        evaluation: Evaluation,
        provider_name: str | None,
        context_id: str | None,
        targeting_key: str | None,
    ) -> None:
        """Count one evaluation; on a recording span, add its event (pseudonymising the key only then).

        The hook calls this for every evaluation through the API; the hot path of
        :meth:`FlagService.evaluate` calls it directly, so both are recorded alike. Never raises:
        recording must not fail the evaluation.
        """
        try:
            self._record(flag, evaluation, provider_name, context_id, targeting_key)
        except Exception:
            _logger.exception("otel-migration: failed to record a flag evaluation")

    def _record(
        self,
        flag: str,
        evaluation: Evaluation,
        provider_name: str | None,
        context_id: str | None,
        targeting_key: str | None,
    ) -> None:
        variant, reason = evaluation.variant, evaluation.reason
        key = (flag, variant, reason)
        with self._lock:
            if key in self._counts or len(self._counts) < MAX_SERIES:
                self._counts[key] = self._counts.get(key, 0) + 1
            else:
                self.dropped += 1
        span = trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, str] = {
            sc.FEATURE_FLAG_KEY: flag,
            sc.FEATURE_FLAG_RESULT_VARIANT: variant,
            sc.FEATURE_FLAG_RESULT_REASON: reason,
        }
        if provider_name is not None:
            attributes[sc.FEATURE_FLAG_PROVIDER_NAME] = provider_name
        if context_id is None:
            context_id = pseudonymize(targeting_key) if targeting_key else None
        if context_id:
            attributes[sc.FEATURE_FLAG_CONTEXT_ID] = context_id
        if evaluation.error is not None:
            attributes[sc.ERROR_TYPE] = str(evaluation.error.value).lower()
        span.add_event(sc.FEATURE_FLAG_EVALUATION_EVENT, attributes)

    def read(self) -> Measured:
        with self._lock:
            items = list(self._counts.items())
        return [
            (
                count,
                {
                    sc.FEATURE_FLAG_KEY: flag,
                    sc.FEATURE_FLAG_RESULT_VARIANT: variant,
                    sc.FEATURE_FLAG_RESULT_REASON: reason,
                },
            )
            for (flag, variant, reason), count in items
        ]


def _reinit_sdk_locks() -> None:
    """Locks of the OpenFeature SDK a parent thread (the file watcher dispatching a change) may hold.

    A lock held at ``fork`` by a thread that does not exist in the child stays held forever there.
    """
    from openfeature import _event_support  # private: the SDK has no fork hook of its own
    from openfeature.provider import _registry

    for owner, name in (
        (_registry.provider_registry, "_lock"),
        (_event_support, "_global_lock"),
        (_event_support, "_client_lock"),
    ):
        reinit = getattr(getattr(owner, name, None), "_at_fork_reinit", None)
        if reinit is not None:
            reinit()


def _reload_at_first_poll(provider: FlagdProvider) -> None:
    """Make the watcher's first poll reload the file, whatever its mtime.

    flagd's initial load reads the file and *then* its mtime: a rewrite in between (another
    process's edit while this one starts or forks) leaves the old flags stamped with the new mtime,
    and the watcher would never load the new ones. One extra read closes that window.
    """
    connector = getattr(getattr(provider, "resolver", None), "connector", None)
    if connector is not None and hasattr(connector, "last_modified"):
        connector.last_modified = 0.0


_UNSEEN: Final = object()


class _LoadedState:
    """One flag state our flagd provider loaded, its flags compiled as evaluations ask for them.

    flagd's store swaps in a new flag map (and flag-set metadata) at every load, so those two
    objects, with the resolver holding the store (a fork replaces it), *are* the state's version.
    """

    __slots__ = ("compiled", "flags", "metadata", "provider_name", "resolver", "store")

    def __init__(
        self,
        resolver: object,
        store: Any,
        flags: Mapping[str, Any],
        metadata: Mapping[str, Any],
        provider_name: str,
    ) -> None:
        self.resolver = resolver
        self.store = store
        self.flags = flags
        self.metadata = metadata
        self.provider_name = provider_name
        self.compiled: dict[str, CompiledFlag | None] = {}

    def current(self, resolver: object) -> bool:
        """Whether the provider still serves this state (no load, no new resolver since)."""
        store = self.store
        return (
            resolver is self.resolver
            and store.flags is self.flags
            and store.flag_set_metadata is self.metadata
        )

    def flag(self, name: str) -> CompiledFlag | None:
        """Flag ``name`` compiled; None when it is not in the state or not a shape we compile."""
        found = self.compiled.get(name, _UNSEEN)
        if found is _UNSEEN:
            flag = self.flags.get(name)
            if flag is None:
                return None  # not kept: names asked for are the caller's, the flags in the state are bounded
            found = self.compiled[name] = compile_flag(flag, self.metadata)
        return found  # type: ignore[return-value]


def _loaded_state(provider: FlagdProvider) -> _LoadedState | None:
    """The flag state ``provider`` serves now, read under flagd's lock; None for a layout we do not know.

    flagd-core has no public accessor for its store: a version that moves it leaves us on the
    OpenFeature path, slower but the same answers (``tests/test_rollout_fast.py`` pins the layout).
    """
    resolver = getattr(provider, "resolver", None)
    evaluator = getattr(resolver, "evaluator", None)
    store = getattr(evaluator, "_flag_store", None)
    lock = getattr(evaluator, "_lock", None)
    if not isinstance(evaluator, FlagdCore) or store is None or lock is None:
        return None
    with lock:
        flags, metadata = getattr(store, "flags", None), getattr(store, "flag_set_metadata", None)
    if not isinstance(flags, Mapping) or not isinstance(metadata, Mapping):
        return None
    return _LoadedState(resolver, store, flags, metadata, describe(provider))


class FlagService:
    """The OpenFeature client we evaluate with, and the default provider when the application set none."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._configured: str | None = None
        self._file: FlagFile | None = None
        self._provider: FlagdProvider | None = None
        self._provider_path: str | None = None
        self.recorder = EvaluationRecorder()
        self._client = api.get_client()
        #: The flag state our provider serves, compiled: the hot path's cache (see :meth:`evaluate`).
        self._loaded: _LoadedState | None = None
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    # -- where the flags are ---------------------------------------------------------------

    def use_path(self, path: str | os.PathLike[str] | None) -> None:
        """The flag file ``configure()`` settled on (``None``: the environment or the default).

        Our provider moves to a configured file at once; after ``None`` it moves at the next change
        of a rollout (never creating a file in the working directory on the way out).
        """
        with self._lock:
            self._configured = os.path.abspath(path) if path is not None else None
            if path is not None and self._provider is not None and self._provider_path != self._configured:
                self.install(self.file())  # we serve the flags: serve them from the new file

    def file(self) -> FlagFile:
        """configure()'s ``flag_file``, else ``$OTEL_MIGRATION_FLAG_FILE``, else the default."""
        path = self._configured or os.path.abspath(os.environ.get(FLAG_FILE_ENV) or DEFAULT_FLAG_FILE)
        found = self._file
        if found is None or str(found.path) != path:
            with self._lock:
                found = self._file
                if found is None or str(found.path) != path:
                    found = self._file = FlagFile(path)
        return found

    def provider(self) -> FeatureProvider:
        return self._client.provider

    def healthy(self) -> bool:
        """The provider in use is ready (not in error, e.g. on a flag file it could not read)."""
        return self._client.get_provider_status() == ProviderStatus.READY

    def serves(self, flag_file: FlagFile) -> bool:
        """Whether ``flag_file`` is what evaluations read (or will, once the default provider starts)."""
        provider = self._client.provider
        if isinstance(provider, NoOpProvider):
            return True
        if provider is self._provider:
            return True  # ours: install() moves it to the file in force
        if isinstance(provider, FlagdProvider):
            source = provider.config.offline_flag_source_path
            return source is not None and os.path.abspath(source) == str(flag_file.path)
        return False

    # -- evaluating --------------------------------------------------------------------------

    def client(self) -> OpenFeatureClient:
        """The client to evaluate with, setting the default file provider first if nobody set one."""
        provider = self._client.provider
        if provider is self._provider or not isinstance(provider, NoOpProvider):
            return self._client
        self.install(self.file())
        return self._client

    def install(self, flag_file: FlagFile) -> bool:
        """Set flagd's file provider on ``flag_file`` unless the application set a provider of its own.

        True when our provider serves ``flag_file`` afterwards.
        """
        self.add_hook()
        with self._lock:
            provider = self._client.provider
            if not isinstance(provider, NoOpProvider) and provider is not self._provider:
                return False
            if provider is self._provider and self._provider_path == str(flag_file.path):
                return True
            try:
                flag_file.ensure()
            except OSError:  # e.g. a read-only working directory: evaluations get the control
                _logger.exception("otel-migration: could not create the flag file %s", flag_file.path)
            fresh = FlagdProvider(
                resolver_type=ResolverType.FILE,
                offline_flag_source_path=str(flag_file.path),
                deadline_ms=POLL_MS,
            )
            self._provider, self._provider_path = fresh, str(flag_file.path)
            try:
                api.set_provider_and_wait(fresh)
                _reload_at_first_poll(fresh)
            except Exception:
                # A broken file: the watcher keeps polling and recovers when the file is fixed;
                # meanwhile evaluations get their default (the control version).
                _logger.exception("otel-migration: the flag file %s could not be read", flag_file.path)
            return True

    def add_hook(self) -> None:
        """Record every evaluation through the API, the application's own included."""
        if self.recorder not in get_hooks():
            with self._lock:
                if self.recorder not in get_hooks():
                    api.add_hooks([self.recorder])

    def changed(self, flag_file: FlagFile) -> None:
        """We rewrote ``flag_file``: serve it now, not at the watcher's next poll.

        Nothing to do while no provider is set (the first evaluation starts ours on the new file);
        a command that only edits the file never starts a provider.
        """
        provider = self._provider
        if provider is None or provider is not self._client.provider:
            return
        if self._provider_path != str(flag_file.path):
            self.install(flag_file)
            return
        connector = getattr(getattr(provider, "resolver", None), "connector", None)
        load = getattr(connector, "safe_load_data", None)
        if load is not None:
            load()

    def evaluate(self, name: str, targeting_key: str, default: str, context_id: str | None) -> Evaluation:
        """Evaluate flag ``name`` for ``targeting_key``; ``context_id``, if known, spares the recorder a hash.

        The hot path: while :meth:`_hot` says nothing but flagd's rule and our recorder would take
        part, the flag compiled from the state the provider loaded answers (what flagd would) and
        the recorder records it as its hook would. Otherwise, and for any flag not compiled, the
        OpenFeature client evaluates.
        """
        loaded = self._hot()
        if loaded is not None:
            compiled = loaded.flag(name)
            evaluation = compiled.serve(targeting_key) if compiled is not None else None
            if evaluation is not None:
                self.recorder.record(name, evaluation, loaded.provider_name, context_id, targeting_key)
                return evaluation
        options = FlagEvaluationOptions(hook_hints={HINT_CONTEXT_ID: context_id}) if context_id else None
        details = self.client().get_string_details(
            name, default, EvaluationContext(targeting_key=targeting_key), options
        )
        return Evaluation.of(details)

    def _hot(self) -> _LoadedState | None:
        """The loaded flag state when evaluating it here is exactly what the OpenFeature client would do.

        That holds while our flagd provider is the one in use and ready, and no hook could see or
        change the evaluation but our recorder and flagd's own (which adds its sync context, read
        by no compiled rule: they read the targeting key and the flag key only). An application
        hook, another provider, a provider not ready: the client evaluates, hooks and all.
        """
        client = self._client
        provider = client.provider
        if provider is not self._provider or provider is None:
            return None
        hooks = get_hooks()
        if len(hooks) != 1 or hooks[0] is not self.recorder or client.hooks:
            return None
        provider_hooks = provider.get_provider_hooks()
        if len(provider_hooks) != 1 or type(provider_hooks[0]) is not SyncMetadataHook:
            return None
        if client.get_provider_status() is not ProviderStatus.READY:
            return None
        loaded = self._loaded
        if loaded is None or not loaded.current(provider.resolver):
            loaded = self._loaded = _loaded_state(provider)
        return loaded

    # -- fork --------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()
        provider = self._provider
        if provider is None or provider is not self._client.provider:
            return  # not serving (the application replaced it): nothing of ours to restart
        try:
            _reinit_sdk_locks()
            # The watcher thread died with the fork and the store may be stale: a new resolver
            # reads the file now and starts its own watcher.
            provider.resolver = provider.setup_resolver()
            provider.resolver.initialize(EvaluationContext())
            _reload_at_first_poll(provider)
        except Exception:
            _logger.exception("otel-migration: could not restart the flag file watcher after fork")


def describe(provider: FeatureProvider) -> str:
    """A provider's name for messages."""
    try:
        return provider.get_metadata().name
    except Exception:
        return type(provider).__name__
