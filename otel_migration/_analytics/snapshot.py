"""The typed, in-process view of a migration: what :func:`otel_migration.snapshot` returns.

Everything a health check or a deploy script needs to gate on, with the same numbers the metrics
export. Immutable: a snapshot never changes after it is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Adoption",
    "ErrorStats",
    "Improvement",
    "LatencyStats",
    "MigrationSnapshot",
    "SampleRatio",
    "Snapshot",
    "VersionAdoption",
    "Verdict",
]

Stage = Literal["not_started", "low", "adopted", "replaced"]
VerdictState = Literal["better", "worse", "inconclusive", "no_data"]


@dataclass(frozen=True, slots=True)
class VersionAdoption:
    version: str
    users_1h: float
    users_24h: float
    requests_1h: int
    requests_24h: int
    sessions_1h: float = 0.0
    sessions_24h: float = 0.0


@dataclass(frozen=True, slots=True)
class Adoption:
    """The candidate's share of unique users (approximate: HyperLogLog, 1.6 % standard error)."""

    ratio_1h: float
    ratio_24h: float
    stage: Stage
    stalled: bool
    versions: tuple[VersionAdoption, ...]


@dataclass(frozen=True, slots=True)
class ErrorStats:
    """Errors of one version over the last hour."""

    version: str
    requests: int
    errors: int
    error_rate: float
    error_free_user_rate: float
    categories: Mapping[str, int]
    spikes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Durations (seconds) of one operation and version, over its most recent calls."""

    operation: str
    version: str
    n: int
    p50: float
    p95: float
    p99: float
    mean: float


@dataclass(frozen=True, slots=True)
class Improvement:
    """How much faster the candidate is than the control, in percent (negative: slower)."""

    operation: str
    version: str
    mean_pct: float
    p50_pct: float
    p95_pct: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """Is the candidate better or worse than the control on one metric of one operation?"""

    migration: str
    operation: str
    metric: str
    control: str
    candidate: str
    state: VerdictState
    reason: str
    n_control: int = 0
    n_candidate: int = 0
    p_value: float | None = None
    adjusted_p_value: float | None = None
    estimate: float | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Observed split of users against the rollout percent (GrowthBook's sample-ratio-mismatch check)."""

    expected_share: float
    observed_share: float
    users: float
    p_value: float
    mismatch: bool


@dataclass(frozen=True, slots=True)
class MigrationSnapshot:
    name: str
    control: str
    candidates: tuple[str, ...]
    adoption: Adoption
    errors: tuple[ErrorStats, ...]
    latency: tuple[LatencyStats, ...]
    improvements: tuple[Improvement, ...]
    verdicts: tuple[Verdict, ...]
    sample_ratio: SampleRatio | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float  # seconds since the epoch
    migrations: Mapping[str, MigrationSnapshot]

    def verdicts(self) -> list[Verdict]:
        return [v for m in self.migrations.values() for v in m.verdicts]
