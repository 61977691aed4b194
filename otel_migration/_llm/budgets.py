"""LLM budgets: daily and monthly USD limits, threshold callbacks, and an opt-in hard stop.

Spend is added synchronously when a call's cost is known (its end), under one lock, so threshold
crossings are seen exactly once per period however many threads cross them together; callbacks
run after the lock is released, on the thread whose call crossed the threshold. The hard stop is
checked before a call starts: once a budget with ``hard_stop`` has reached 100 %, every new LLM
call is refused with :class:`BudgetExceeded` until the period rolls over. Calls already in flight
when the limit is reached still finish (their cost cannot be known before they do) and count.

A budget's scope is the service, each user, or each tenant (from :func:`otel_migration.subject`).
Per-user and per-tenant spend is kept for at most ``MAX_KEYS`` keys a period; beyond that the
rest is pooled under one key and a warning is logged once, so memory stays bounded.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from opentelemetry.metrics import Meter

from .._core import semconv as sc
from .._core.config import BudgetSpec, Period
from .._core.instruments import Measured, observables

__all__ = ["BudgetEvent", "BudgetExceeded", "Budgets"]

_logger = logging.getLogger(__name__)

MAX_KEYS: Final = 100_000
_OVERFLOW_KEY: Final = "(other)"


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """A threshold crossed: passed to the callbacks registered with :func:`otel_migration.on_budget`."""

    budget: str
    period: Period
    period_start: str  # "2026-11-23" or "2026-11"
    threshold_pct: int
    spend_usd: float
    limit_usd: float
    key: str | None  # the user or tenant pseudonym for per-user/tenant budgets


class BudgetExceeded(RuntimeError):
    """Raised before an LLM call when a hard-stop budget is spent; the call is not made."""

    def __init__(
        self, budget: str, period: Period, spend_usd: float, limit_usd: float, key: str | None
    ) -> None:
        self.budget, self.period, self.spend_usd, self.limit_usd, self.key = (
            budget,
            period,
            spend_usd,
            limit_usd,
            key,
        )
        whose = f" for {key}" if key else ""
        super().__init__(
            f"LLM budget {budget!r} ({period}{whose}) is spent: ${spend_usd:.4f} of ${limit_usd:.2f}; "
            "the call was not made"
        )


def _period_start(period: Period, now: dt.datetime) -> str:
    # Formatted by hand: strftime on every LLM call costs more than the rest of the accounting.
    return (
        f"{now.year:04d}-{now.month:02d}-{now.day:02d}"
        if period == "daily"
        else f"{now.year:04d}-{now.month:02d}"
    )


@dataclass
class _Tally:
    period_start: str
    spend: dict[str, float]
    fired: set[tuple[str, int]]


class Budgets:
    """Every configured budget with its spend in the current day and month."""

    def __init__(
        self, specs: Iterable[BudgetSpec] = (), clock: Callable[[], dt.datetime] | None = None
    ) -> None:
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._specs: dict[str, BudgetSpec] = {}
        self._tallies: dict[tuple[str, Period], _Tally] = {}
        self._callbacks: list[Callable[[BudgetEvent], object]] = []
        self._overflow_logged = False
        self.configure(specs)

    def configure(self, specs: Iterable[BudgetSpec]) -> None:
        with self._lock:
            self._specs = {spec.name: spec for spec in specs}

    def on_threshold(self, callback: Callable[[BudgetEvent], object]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def _limits(self, spec: BudgetSpec) -> list[tuple[Period, float]]:
        limits: list[tuple[Period, float]] = []
        if spec.daily_usd is not None:
            limits.append(("daily", spec.daily_usd))
        if spec.monthly_usd is not None:
            limits.append(("monthly", spec.monthly_usd))
        return limits

    def _tally(self, name: str, period: Period, now: dt.datetime) -> _Tally:
        start = _period_start(period, now)
        tally = self._tallies.get((name, period))
        if tally is None or tally.period_start != start:  # a new day or month: spend and thresholds reset
            tally = self._tallies[(name, period)] = _Tally(start, {}, set())
        return tally

    @staticmethod
    def _key(spec: BudgetSpec, user: str | None, tenant: str | None) -> str | None:
        if spec.scope == "user":
            return user
        if spec.scope == "tenant":
            return tenant
        return ""

    def check(self, *, user: str | None = None, tenant: str | None = None) -> None:
        """Raise :class:`BudgetExceeded` when a hard-stop budget that applies is spent."""
        if not self._specs:
            return
        now = self._clock()
        with self._lock:
            for spec in self._specs.values():
                if not spec.hard_stop:
                    continue
                key = self._key(spec, user, tenant)
                if key is None:
                    continue
                for period, limit in self._limits(spec):
                    spend = self._tally(spec.name, period, now).spend.get(key, 0.0)
                    if spend >= limit:
                        raise BudgetExceeded(spec.name, period, spend, limit, key or None)

    def add(self, cost_usd: float, *, user: str | None = None, tenant: str | None = None) -> None:
        """Add a call's cost to every budget that applies; fire each crossed threshold once."""
        if not self._specs or cost_usd <= 0:
            return
        now = self._clock()
        events: list[BudgetEvent] = []
        with self._lock:
            callbacks = list(self._callbacks)
            for spec in self._specs.values():
                key = self._key(spec, user, tenant)
                if key is None:
                    continue
                for period, limit in self._limits(spec):
                    tally = self._tally(spec.name, period, now)
                    if key not in tally.spend and len(tally.spend) >= MAX_KEYS:
                        key = self._overflow(key)
                    before = tally.spend.get(key, 0.0)
                    after = tally.spend[key] = before + cost_usd
                    for threshold in spec.thresholds:
                        mark = limit * threshold / 100
                        if before < mark <= after and (key, threshold) not in tally.fired:
                            tally.fired.add((key, threshold))
                            events.append(
                                BudgetEvent(
                                    spec.name,
                                    period,
                                    tally.period_start,
                                    threshold,
                                    after,
                                    limit,
                                    key or None,
                                )
                            )
        for event in events:
            level = logging.WARNING if event.threshold_pct >= 100 else logging.INFO
            _logger.log(
                level,
                "otel-migration: LLM budget %r (%s) at %d%%: $%.4f of $%.2f",
                event.budget,
                event.period,
                event.threshold_pct,
                event.spend_usd,
                event.limit_usd,
            )
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    _logger.exception("otel-migration: budget callback %r failed", callback)

    def _overflow(self, key: str) -> str:
        if not self._overflow_logged:
            self._overflow_logged = True
            _logger.warning(
                "otel-migration: more than %d budget keys this period; the rest are pooled", MAX_KEYS
            )
        return _OVERFLOW_KEY

    def spend(self, name: str, period: Period, key: str | None = None) -> float:
        with self._lock:
            return self._tally(name, period, self._clock()).spend.get(key or "", 0.0)

    def utilization(self) -> list[tuple[str, Period, float]]:
        """(budget, period, spend / limit) of the service-wide budgets."""
        now = self._clock()
        result = []
        with self._lock:
            for spec in self._specs.values():
                if spec.scope != "service":
                    continue
                for period, limit in self._limits(spec):
                    spend = self._tally(spec.name, period, now).spend.get("", 0.0)
                    result.append((spec.name, period, spend / limit if limit > 0 else 0.0))
        return result

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent thread may have held it). The spend is kept: it
        is the service's spend this period, which the child goes on counting against the limits."""
        self._lock = threading.Lock()

    def register_metrics(self, meter: Meter) -> None:
        observables(
            meter.create_observable_gauge,
            (
                sc.METRIC_LLM_BUDGET_UTILIZATION,
                self._read,
                "1",
                "Spend of the current day or month over the budget (1.0 = 100 %).",
            ),
        )

    def _read(self) -> Measured:
        return [
            (value, {sc.MIGRATION_BUDGET: name, sc.MIGRATION_BUDGET_PERIOD: period})
            for name, period, value in self.utilization()
        ]
