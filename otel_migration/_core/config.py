"""Settings: where they come from, in which order they win, and how they are checked.

Precedence, highest first:

1. keyword arguments to :func:`otel_migration.configure`;
2. ``OTEL_MIGRATION_*`` environment variables;
3. a TOML file: the path in ``config_file=`` or ``OTEL_MIGRATION_CONFIG``, else ``otel-migration.toml``
   in the working directory, else the ``[tool.otel-migration]`` table of ``pyproject.toml`` there;
4. the defaults below.

A setting given at a higher level replaces the lower one whole (tables are not merged). Where the
telemetry goes is not a setting of ours: the standard ``OTEL_*`` variables decide it, read by the
OpenTelemetry exporters themselves; we only check the few we act on. Every check raises one
:class:`ConfigError` naming the field, the value and where it came from, before anything is built.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal

from .errors import ConfigError
from .resource import resource_settings_from_env

__all__ = [
    "ERROR_CATEGORIES",
    "AnalyticsSettings",
    "BudgetSpec",
    "normalize_model",
    "parse_budgets",
    "RolloutSpec",
    "Settings",
    "TargetSpec",
    "load_settings",
]

ExporterChoice = Literal["auto", "otlp", "file", "console", "none"]
EXPORTER_CHOICES: Final = ("auto", "otlp", "file", "console", "none")
ERROR_CATEGORIES: Final = ("syntax", "runtime", "timeout", "resource", "network", "unknown")
OTLP_PROTOCOLS: Final = ("grpc", "http/protobuf")

_TARGET_RE: Final = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_ENV_PREFIX: Final = "OTEL_MIGRATION_"
DEFAULT_MIGRATION: Final = "default"
_CONFIG_FILE_ENV: Final = "OTEL_MIGRATION_CONFIG"
_DATE_SUFFIX: Final = re.compile(r"(?:[-@]\d{8}|-\d{4}-\d{2}-\d{2})$")
_BEDROCK: Final = re.compile(r"^(?:[a-z]{2}\.)?anthropic\.(?P<model>.+?)(?:-v\d+(?::\d+)?)?$")

Period = Literal["daily", "monthly"]
BudgetScope = Literal["service", "user", "tenant"]
DEFAULT_THRESHOLDS: Final = (50, 80, 90, 100)


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A function or method to wrap as a versioned code path, named ``"package.module:Class.method"``."""

    target: str
    version: str
    operation: str
    migration: str

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.target.partition(":")[2]


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """A percentage rollout of ``candidate`` over ``control`` as configured; it can change at run time."""

    percent: float = 0.0
    control: str = "1.0"
    candidate: str = "2.0"
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    name: str
    daily_usd: float | None = None
    monthly_usd: float | None = None
    scope: BudgetScope = "service"
    hard_stop: bool = False
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS


@dataclass(frozen=True, slots=True)
class AnalyticsSettings:
    """Thresholds of the in-process analytics; every one has a default a team can start with."""

    #: Verdicts: fewer samples than this per version is "inconclusive", whatever the p-value.
    min_samples: int = 30
    #: Family-wise error rate across every comparison judged at once (Holm).
    alpha: float = 0.05
    #: Smallest latency shift worth a verdict, relative to the control's median (0.05 = 5 %).
    latency_min_effect: float = 0.05
    #: Smallest error-rate difference worth a verdict, absolute (0.005 = half a percentage point).
    error_rate_min_effect: float = 0.005
    #: Smallest cost-per-LLM-call shift worth a verdict, relative to the control's median.
    cost_min_effect: float = 0.05
    #: Smallest quality-score shift worth a verdict, in points of the 0-100 scale.
    quality_min_effect: float = 2.0
    #: Recent durations kept per operation and version for percentiles and verdicts.
    latency_samples: int = 5000
    #: Adoption stages by the candidate's share of unique users: below started is "not_started",
    #: then "low", "adopted" from adopted on, "replaced" from replaced on.
    adoption_started: float = 0.01
    adoption_adopted: float = 0.5
    adoption_replaced: float = 0.95
    #: "Stalled": the 24 h adoption ratio moved less than stall_epsilon during stall_after_s.
    stall_after_s: float = 3600.0
    stall_epsilon: float = 0.001
    #: An error category "spikes" when its rate in the last 5 minutes is spike_factor times its
    #: rate over the hour before, with at least spike_min_errors errors.
    spike_factor: float = 3.0
    spike_min_errors: int = 10
    #: How often (seconds) verdicts, adoption and spikes are re-evaluated in the background.
    evaluate_every_s: float = 10.0
    #: Smallest CPU-per-call shift worth a verdict, relative to the control's median (0.05 = 5 %).
    cpu_min_effect: float = 0.05
    #: Health score (docs/health.md): a call slower than this (seconds) is a slow call; the latency
    #: input is the share of slow calls against latency_budget; the error input the error rate
    #: against error_budget (both over the last 5 minutes).
    latency_slo_s: float = 0.5
    latency_budget: float = 0.05
    error_budget: float = 0.05


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration; build it with :func:`load_settings`."""

    enabled: bool = True
    #: Migration name used when a versioned path does not name one.
    migration: str = DEFAULT_MIGRATION
    #: ``auto`` sends OTLP when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set, else writes ``file_path``.
    exporter: ExporterChoice = "auto"
    #: OTLP JSON lines, one export request a line, readable by the collector's otlpjsonfile receiver.
    file_path: str = "otel-migration-telemetry.jsonl"
    targets: tuple[TargetSpec, ...] = ()
    #: Exception class (``"module:Qualname"`` or a bare class name) to error category, checked first.
    error_categories: Mapping[str, str] = field(default_factory=dict)
    #: Finished calls waiting for the background aggregator; past this, calls are counted as dropped.
    max_queue_size: int = 100_000
    #: Key of the keyed hash that pseudonymises user/session ids before they leave the process.
    #: Unset: a random key per process (unique counts within the process stay exact, but the same
    #: user gets different ids in different processes); set it to count users across processes.
    subject_key: str | None = None
    #: Export raw subject ids instead of pseudonyms (opt-out of pseudonymisation).
    export_subject_ids: bool = False
    #: Put prompts and completions on LLM spans (gen_ai.input.messages / gen_ai.output.messages).
    #: Off by default: they hold personal and confidential data.
    capture_content: bool = False
    rollouts: Mapping[str, RolloutSpec] = field(default_factory=dict)
    #: The flag file (flagd's schema) every process of the host reads its rollouts from, when the
    #: application set no OpenFeature provider of its own; relative paths are from the working directory.
    flag_file: str = "otel-migration-flags.json"
    #: A price file replacing or adding models of the shipped table (same TOML layout).
    pricing_file: str | None = None
    #: Model name -> tier, overriding the price table's tiers.
    model_tiers: Mapping[str, str] = field(default_factory=dict)
    budgets: tuple[BudgetSpec, ...] = ()
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    #: The resource's service.name, service.version and deployment.environment.name (when we build
    #: the providers); their environment level is OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
    service_name: str | None = None
    service_version: str | None = None
    deployment_environment: str | None = None
    #: Thread CPU time of every versioned call (``migration.cpu_time``, the ``cpu`` verdict).
    measure_cpu: bool = True
    #: Net memory per call with tracemalloc: slows every allocation of the process, so opt-in.
    measure_memory: bool = False
    #: Process CPU and memory (``process.*``) through opentelemetry-instrumentation-system-metrics.
    process_metrics: bool = True
    #: Memory limit for the time-to-limit prediction; unset: the cgroup limit, else physical memory.
    memory_limit_bytes: int | None = None
    #: Where the configuration file was found, if any (for messages, not a setting).
    config_file: str | None = None


def normalize_model(model: str) -> str:
    """The table key a reported model name should match: lower case, no platform or snapshot date."""
    name = model.strip().lower()
    bedrock = _BEDROCK.match(name)
    if bedrock:
        name = bedrock.group("model")
    name = name.rpartition("/")[2]  # "openai/gpt-4o" style gateway prefixes
    return _DATE_SUFFIX.sub("", name)


def parse_budgets(value: Any) -> tuple[BudgetSpec, ...]:
    """``[budgets.NAME]`` tables: daily_usd, monthly_usd, scope, hard_stop, thresholds."""
    if not isinstance(value, Mapping):
        raise ValueError("expected a table of budget name = {daily_usd, monthly_usd, scope, hard_stop}")
    specs = []
    for name, table in value.items():
        if not isinstance(table, Mapping):
            raise ValueError(f"budget {name!r}: expected a table")
        unknown = set(table) - {"daily_usd", "monthly_usd", "scope", "hard_stop", "thresholds"}
        if unknown:
            raise ValueError(f"budget {name!r}: unknown key {sorted(unknown)[0]!r}")
        limits = {}
        for key in ("daily_usd", "monthly_usd"):
            amount = table.get(key)
            if amount is not None and (
                isinstance(amount, bool)
                or not isinstance(amount, int | float)
                or not math.isfinite(amount)
                or amount <= 0
            ):
                raise ValueError(f"budget {name!r}: {key} must be a positive number of USD, got {amount!r}")
            limits[key] = float(amount) if amount is not None else None
        if limits["daily_usd"] is None and limits["monthly_usd"] is None:
            raise ValueError(f"budget {name!r}: set daily_usd, monthly_usd or both")
        scope = table.get("scope", "service")
        if scope not in ("service", "user", "tenant"):
            raise ValueError(f"budget {name!r}: scope must be service, user or tenant, got {scope!r}")
        hard_stop = table.get("hard_stop", False)
        if not isinstance(hard_stop, bool):
            raise ValueError(f"budget {name!r}: hard_stop must be true or false, got {hard_stop!r}")
        thresholds = table.get("thresholds", list(DEFAULT_THRESHOLDS))
        if not isinstance(thresholds, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 < t <= 1000 for t in thresholds
        ):
            raise ValueError(f"budget {name!r}: thresholds must be a list of percentages, got {thresholds!r}")
        specs.append(
            BudgetSpec(
                str(name),
                limits["daily_usd"],
                limits["monthly_usd"],
                scope,
                hard_stop,
                tuple(sorted(set(thresholds))),
            )
        )
    return tuple(specs)


# field name -> (environment variable, parser of a raw value (str from env, TOML value otherwise))
def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _parse_exporter(value: Any) -> str:
    if value not in EXPORTER_CHOICES:
        raise ValueError(f"expected one of {', '.join(EXPORTER_CHOICES)}")
    return str(value)


def _parse_positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a positive integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError("expected a positive integer") from None
    if not isinstance(value, int) or value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _parse_error_categories(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("expected a table of exception class name = category")
    result: dict[str, str] = {}
    for name, category in value.items():
        if category not in ERROR_CATEGORIES:
            raise ValueError(f"category of {name!r} must be one of {', '.join(ERROR_CATEGORIES)}")
        result[str(name)] = str(category)
    return result


def _parse_secret(value: Any) -> str:
    if not isinstance(value, str) or len(value) < 16:
        raise ValueError("expected a string of at least 16 characters")
    return value


def _parse_strings(value: Any) -> frozenset[str]:
    if not isinstance(value, list | tuple | set | frozenset) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return frozenset(value)


def _parse_percent(value: Any) -> float:
    if (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100
    ):  # NaN fails too
        raise ValueError("expected a number from 0 to 100")
    return float(value)


def _parse_model_tiers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) and v for v in value.values()):
        raise ValueError("expected a table of model name = tier name")
    return {normalize_model(str(model)): tier for model, tier in value.items()}


def _parse_rollouts(value: Any) -> dict[str, RolloutSpec]:
    if not isinstance(value, Mapping):
        raise ValueError("expected a table of rollout name = {percent, control, candidate, allow, deny}")
    result = {}
    for name, spec in value.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"rollout {name!r}: expected a table")
        unknown = set(spec) - {"percent", "control", "candidate", "allow", "deny"}
        if unknown:
            raise ValueError(f"rollout {name!r}: unknown key {sorted(unknown)[0]!r}")
        try:
            result[str(name)] = RolloutSpec(
                percent=_parse_percent(spec.get("percent", 0.0)),
                control=_parse_name(spec.get("control", "1.0")),
                candidate=_parse_name(spec.get("candidate", "2.0")),
                allow=_parse_strings(spec.get("allow", [])),
                deny=_parse_strings(spec.get("deny", [])),
            )
        except ValueError as exc:
            raise ValueError(f"rollout {name!r}: {exc}") from None
    return result


def _parse_analytics(value: Any) -> AnalyticsSettings:
    if isinstance(value, AnalyticsSettings):
        return value
    if not isinstance(value, Mapping):
        raise ValueError("expected a table of analytics thresholds")
    defaults = AnalyticsSettings()
    known = {f.name: getattr(defaults, f.name) for f in fields(AnalyticsSettings)}
    values: dict[str, Any] = {}
    for key, item in value.items():
        if key not in known:
            raise ValueError(f"unknown key {key!r}; known: {', '.join(sorted(known))}")
        default = known[key]
        if (
            isinstance(item, bool)
            or not isinstance(item, int | float)
            or not math.isfinite(item)
            or item <= 0
        ):
            raise ValueError(f"{key} must be a positive number, finite, got {item!r}")
        if isinstance(default, int) and not isinstance(item, int):
            raise ValueError(f"{key} must be a whole number, got {item!r}")
        values[key] = type(default)(item)
    settings = AnalyticsSettings(**values)
    if not settings.adoption_started < settings.adoption_adopted < settings.adoption_replaced <= 1:
        raise ValueError("expected adoption_started < adoption_adopted < adoption_replaced <= 1")
    if not settings.alpha < 1:
        raise ValueError(f"alpha must be below 1, got {settings.alpha!r}")
    return settings


_SIMPLE_FIELDS: Final[dict[str, Callable[[Any], Any]]] = {
    "enabled": _parse_bool,
    "migration": _parse_name,
    "exporter": _parse_exporter,
    "file_path": _parse_name,
    "error_categories": _parse_error_categories,
    "max_queue_size": _parse_positive_int,
    "subject_key": _parse_secret,
    "export_subject_ids": _parse_bool,
    "capture_content": _parse_bool,
    "rollouts": _parse_rollouts,
    "flag_file": _parse_name,
    "pricing_file": _parse_name,
    "model_tiers": _parse_model_tiers,
    "budgets": parse_budgets,
    "analytics": _parse_analytics,
    "service_name": _parse_name,
    "service_version": _parse_name,
    "deployment_environment": _parse_name,
    "measure_cpu": _parse_bool,
    "measure_memory": _parse_bool,
    "process_metrics": _parse_bool,
    "memory_limit_bytes": _parse_positive_int,
}
_ENV_NAMES: Final = {
    "enabled": "OTEL_MIGRATION_ENABLED",
    "migration": "OTEL_MIGRATION_NAME",
    "exporter": "OTEL_MIGRATION_EXPORTER",
    "file_path": "OTEL_MIGRATION_FILE_PATH",
    "max_queue_size": "OTEL_MIGRATION_MAX_QUEUE_SIZE",
    "subject_key": "OTEL_MIGRATION_SUBJECT_KEY",
    "export_subject_ids": "OTEL_MIGRATION_EXPORT_SUBJECT_IDS",
    "capture_content": "OTEL_MIGRATION_CAPTURE_CONTENT",
    "pricing_file": "OTEL_MIGRATION_PRICING_FILE",
    "flag_file": "OTEL_MIGRATION_FLAG_FILE",
    "measure_cpu": "OTEL_MIGRATION_MEASURE_CPU",
    "measure_memory": "OTEL_MIGRATION_MEASURE_MEMORY",
    "process_metrics": "OTEL_MIGRATION_PROCESS_METRICS",
    "memory_limit_bytes": "OTEL_MIGRATION_MEMORY_LIMIT_BYTES",
}
KNOWN_FIELDS: Final = frozenset(f.name for f in fields(Settings)) - {"config_file"}


def _parse_targets(value: Any, *, default_migration: str, source: str) -> tuple[TargetSpec, ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            "targets", value, 'expected a table of "module:attribute" = {version = ...}', source=source
        )
    specs = []
    for target, spec in value.items():
        where = f"targets[{target!r}]"
        if not isinstance(target, str) or not _TARGET_RE.match(target):
            raise ConfigError(
                where,
                target,
                'expected "package.module:function" or "package.module:Class.method"',
                source=source,
            )
        if not isinstance(spec, Mapping):
            raise ConfigError(
                where, spec, 'expected a table such as {version = "2.0", operation = "charge"}', source=source
            )
        unknown = set(spec) - {"version", "operation", "migration"}
        if unknown:
            raise ConfigError(
                f"{where}.{sorted(unknown)[0]}",
                spec[sorted(unknown)[0]],
                "unknown key; expected version, operation, migration",
                source=source,
            )
        version = spec.get("version")
        if not isinstance(version, str) or not version.strip():
            raise ConfigError(f"{where}.version", version, 'required, a string such as "2.0"', source=source)
        operation = spec.get("operation", target.rpartition(".")[2].rpartition(":")[2])
        migration = spec.get("migration", default_migration)
        for key, item in (("operation", operation), ("migration", migration)):
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(f"{where}.{key}", item, "expected a non-empty string", source=source)
        specs.append(
            TargetSpec(target=target, version=version.strip(), operation=operation, migration=migration)
        )
    return tuple(specs)


def _find_config_file(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[Path, bool] | None:
    """Return (path, is_pyproject) of the file to read, or None when there is none."""
    named = explicit if explicit is not None else env.get(_CONFIG_FILE_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            source = "config_file=" if explicit is not None else _CONFIG_FILE_ENV
            raise ConfigError("config_file", str(named), "no such file", source=source)
        return path, path.name == "pyproject.toml"
    own = Path("otel-migration.toml")
    if own.is_file():
        return own, False
    pyproject = Path("pyproject.toml")
    if pyproject.is_file():
        return pyproject, True
    return None


def _read_file(path: Path, is_pyproject: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config_file", str(path), f"not valid TOML: {exc}", source=str(path)) from None
    if is_pyproject:
        table = document.get("tool", {}).get("otel-migration", {})
        return dict(table) if isinstance(table, dict) else {}
    return document


def _check_otel_env(env: Mapping[str, str]) -> None:
    """Check the standard variables we act on; the exporters read the rest themselves."""
    for name in (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ):
        value = env.get(name)
        if value is not None and value.strip() not in OTLP_PROTOCOLS:
            raise ConfigError(
                name, value, f"expected one of {', '.join(OTLP_PROTOCOLS)}", source="environment"
            )
    for name in (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_METRIC_EXPORT_TIMEOUT",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BSP_EXPORT_TIMEOUT",
    ):
        value = env.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(name, value, "expected a positive number, finite", source="environment")


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from keyword overrides, ``OTEL_MIGRATION_*`` variables, a TOML file and defaults."""
    env = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    _check_otel_env(env)

    found = _find_config_file(config_file, env)
    file_values: dict[str, Any] = _read_file(*found) if found else {}
    file_source = str(found[0]) if found else None

    for key in file_values:
        if key not in KNOWN_FIELDS:
            raise ConfigError(
                key,
                file_values[key],
                f"unknown setting; known: {', '.join(sorted(KNOWN_FIELDS))}",
                source=file_source,
            )
    for key in overrides:
        if key not in KNOWN_FIELDS:
            raise ConfigError(
                key,
                overrides[key],
                f"unknown setting; known: {', '.join(sorted(KNOWN_FIELDS))}",
                source="configure()",
            )
    for name in env:
        if name.startswith(_ENV_PREFIX) and name != _CONFIG_FILE_ENV and name not in _ENV_NAMES.values():
            raise ConfigError(
                name,
                env[name],
                f"unknown variable; known: {', '.join(sorted(_ENV_NAMES.values()))}",
                source="environment",
            )

    values: dict[str, Any] = {}
    source: str | None
    for name, parse in _SIMPLE_FIELDS.items():
        env_name = _ENV_NAMES.get(name)
        if name in overrides:
            raw, source = overrides[name], "configure()"
        elif env_name and env_name in env:
            raw, source = env[env_name], env_name
        elif name in file_values:
            raw, source = file_values[name], file_source
        else:
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(name, raw, str(exc), source=source) from None

    for name, value in resource_settings_from_env(env).items():  # the standard OTEL_* beat the file
        if name not in overrides:
            values[name] = value
    default_migration = values.get("migration", DEFAULT_MIGRATION)
    if "targets" in overrides:
        values["targets"] = _parse_targets(
            overrides["targets"], default_migration=default_migration, source="configure()"
        )
    elif "targets" in file_values:
        values["targets"] = _parse_targets(
            file_values["targets"], default_migration=default_migration, source=file_source or "file"
        )
    return Settings(**values, config_file=file_source)
