"""otel-migration: measure a software migration (1.0 -> 2.0) and an LLM application on OpenTelemetry.

Versioned code paths become spans and exact metrics labelled with migration, operation, version
and phase, exported over OTLP to any backend::

    import otel_migration

    otel_migration.configure()

    @otel_migration.versioned("2.0", operation="charge")
    def charge(order): ...

    with otel_migration.versioned("1.0", operation="charge"):
        legacy_charge(order)
"""

from ._budgets import BudgetEvent, BudgetExceeded
from ._config import AnalyticsSettings, RolloutSpec, Settings, TargetSpec, load_settings
from ._context import Scope, current_scope
from ._enrich import LLMSpanEnricher
from ._errors import ConfigError
from ._experiment import ExperimentResult, experiment
from ._instrumentor import MigrationInstrumentor
from ._llm import record_llm_call
from ._quality import (
    QualityStats,
    record_action,
    record_confidence,
    record_feedback,
    record_quality,
    record_upgrade,
)
from ._recorder import CallListener, CallRecord
from ._rollout import Decision, Router, kill_rollout, restore_rollout, rollout, set_rollout
from ._runtime import Telemetry, TelemetryHealth
from ._setup import configure, force_flush, guard, on_budget, shutdown, snapshot
from ._snapshot import (
    Adoption,
    ErrorStats,
    Improvement,
    LatencyStats,
    MigrationSnapshot,
    SampleRatio,
    Snapshot,
    Verdict,
    VersionAdoption,
)
from ._subjects import subject
from ._versioned import Phase, Versioned, phase, versioned
from .version import __version__

__all__ = [
    # set-up
    "AnalyticsSettings",
    "ConfigError",
    "RolloutSpec",
    "MigrationInstrumentor",
    "Settings",
    "TargetSpec",
    "Telemetry",
    "TelemetryHealth",
    "configure",
    "force_flush",
    "load_settings",
    "shutdown",
    # extending: listeners see every finished call, off the call path
    "CallListener",
    "CallRecord",
    # versioned code paths
    "Phase",
    "Scope",
    "Versioned",
    "current_scope",
    "phase",
    "versioned",
    # rollouts
    "Decision",
    "Router",
    "kill_rollout",
    "restore_rollout",
    "rollout",
    "set_rollout",
    "subject",
    # shadow runs
    "ExperimentResult",
    "experiment",
    # LLM calls
    "BudgetEvent",
    "LLMSpanEnricher",
    "BudgetExceeded",
    "on_budget",
    "record_llm_call",
    # quality
    "QualityStats",
    "record_action",
    "record_confidence",
    "record_feedback",
    "record_quality",
    "record_upgrade",
    # analytics
    "Adoption",
    "ErrorStats",
    "Improvement",
    "LatencyStats",
    "MigrationSnapshot",
    "SampleRatio",
    "Snapshot",
    "Verdict",
    "VersionAdoption",
    "guard",
    "snapshot",
    "__version__",
]
