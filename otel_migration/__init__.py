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

from . import _setup
from ._analytics.snapshot import (
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
from ._calls.versioned import Phase, Versioned, phase, versioned
from ._core import runtime as _core_runtime
from ._core.config import AnalyticsSettings, RolloutSpec, Settings, TargetSpec, load_settings
from ._core.context import Scope, current_scope
from ._core.errors import ConfigError
from ._core.records import CallListener, CallRecord
from ._core.runtime import Telemetry, TelemetryHealth
from ._core.subjects import subject
from ._events import EventName, event
from ._instrumentor import MigrationInstrumentor
from ._llm.agents import Agent, AgentLoop, agent
from ._llm.budgets import BudgetEvent, BudgetExceeded
from ._llm.call import record_llm_call
from ._llm.enrich import LLMSpanEnricher
from ._llm.quality import (
    QualityStats,
    record_action,
    record_confidence,
    record_feedback,
    record_quality,
    record_upgrade,
)
from ._llm.stats import LLMStats
from ._llm.tools import Tool, ToolRun, tool
from ._report import report
from ._rollouts.experiment import ExperimentResult, experiment
from ._rollouts.rollout import Decision, Router, kill_rollout, restore_rollout, rollout, set_rollout
from ._setup import (
    configure,
    force_flush,
    guard,
    llm_stats,
    metric_exporter,
    metric_views,
    on_budget,
    shutdown,
    snapshot,
)
from .version import __version__

# The composition root hands the core its builder, for attaching lazily to an application's own
# providers when ``configure()`` is never called (see otel_migration._core.runtime).
_core_runtime.set_assembler(_setup.attach)

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
    "metric_exporter",
    "metric_views",
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
    # reading what LLM calls came to: calls, cost and quality per migration, version and tier
    "LLMStats",
    "llm_stats",
    # tools and agents
    "Agent",
    "AgentLoop",
    "Tool",
    "ToolRun",
    "agent",
    "tool",
    # quality
    "QualityStats",
    "record_action",
    "record_confidence",
    "record_feedback",
    "record_quality",
    "record_upgrade",
    # events
    "EventName",
    "event",
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
    # report: HTML + JSON + CSV from this process, an OTLP JSON lines file or Prometheus
    "report",
    "__version__",
]
