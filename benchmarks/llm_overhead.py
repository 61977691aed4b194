"""Per-call overhead of our LLM instrumentation against the usual anchors, side by side in one run.

    python benchmarks/llm_overhead.py [--calls N] [--rounds R] [--provider openai|anthropic] [--profile]
                                      [--only VARIANT,...] [--warmup N]
    python benchmarks/llm_overhead.py --lock      # re-resolve benchmarks/llm_overhead_requirements.txt

Any Python >= 3.11 runs it (the parent needs only the standard library), e.g. ``.venv/bin/python``.

What is timed: one non-streamed chat call (``chat.completions.create`` or ``messages.create``) made with the
real SDK against the loopback server of ``tests/llm_server.py``, end to end as the caller sees it
(``time.perf_counter`` around each call). Every variant runs in its own long-lived subprocess; the parent
interleaves them (round r runs N calls of every variant, in an order rotated by r). Per round, a variant's
median is paired with the median of that round's ``bare`` rows (one per venv, pooled: they differ only in
packages they never import); ``added`` is the median over rounds of that difference. Pairing by round
cancels drifts in the load of the machine, and each bare row's own ``added`` reads the noise floor of
the run: the verdict says "inconclusive" when ours is nearer to the target than that. The same is shown
on each round's lower quartile (``p25 add``, less sensitive to other load) and on process CPU per call
(``cpu+``: caller, server and background threads, so work a tool moves off the call path still counts).

Variants: ``bare`` (no instrumentation), the anchors (OTel contrib, OpenInference, OpenLIT, traceloop-sdk)
and ``otel-migration`` (ours) with cost, tier, version/phase labels and a budget. An extra row,
``ours, versioned per call``, also pays for a ``versioned()`` block around each call (a span and an exact
call record of its own, which no anchor has); the verdict uses the plain ``otel-migration`` row.

The anchors are not dependencies of the project: they live in venvs cached under
``${OTEL_MIGRATION_CACHE:-~/.cache/otel-migration}/bench-venv/<env>``, built from the fully pinned sections
of ``llm_overhead_requirements.txt`` (``pip install --no-deps``) and rebuilt only when a section changes.
``--lock`` regenerates that file: the SDKs at the versions of ``constraints.txt``, the anchors at the
versions of ``ANCHORS`` below, everything else under ``constraints.txt`` where it does not conflict. An
anchor that cannot share the main venv gets its own (OTel pins relaxed when its dependencies lag behind;
installed over its declared SDK bounds as a last resort); the table says so, or "not installable: ...".
A run whose constraints.txt pins other SDK versions than the file re-locks first (rewriting the file).
A lock takes a few minutes (it tries each venv's attempts in turn); building the venvs from it, about two.
Each venv has its own ``bare`` row, so a venv that differs (OTel patch release, extra packages) shows it.
Our package is imported from this checkout (``sys.path``), so edits are measured without reinstalling.

The same pipeline for everyone: a global ``TracerProvider`` with one ``BatchSpanProcessor`` (default
batching) and an exporter that discards, a global ``MeterProvider`` whose only reader is an
``InMemoryMetricReader`` (never exports), no ``LoggerProvider`` (events go to the API's no-op), no
``OTEL_*``/``OPENAI_*``/``ANTHROPIC_*``/proxy variables but the one below, no prompt/completion capture.
``ANTHROPIC_OPEN_TELEMETRY=false`` everywhere: anthropic >= 1.14 traces itself through the global
provider, which would put the SDK's span in ``bare``, give the anchors a second span, and leave ours
(which then adds no span of its own) nothing to do. The loopback server gets ``TCP_NODELAY`` on its
sockets (it sends headers and body separately; with Nagle on, each call waits ~40 ms for a delayed ACK
on this VM, which would drown everything else).
Knobs per tool (see ``VARIANTS``):

- OTel contrib (``openai-v2``, ``genai-openai``, ``genai-anthropic``): ``instrument(tracer_provider=...,
  meter_provider=...)``; ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false`` (openai-v2) or
  ``NO_CONTENT`` (genai-*, util-genai >= 1.2), ``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT=false``, no
  completion hook, default (not experimental) semantic conventions.
- OpenInference: ``instrument(tracer_provider=..., config=TraceConfig(hide_inputs=True,
  hide_outputs=True))`` (also as ``OPENINFERENCE_HIDE_INPUTS/OUTPUTS=true``); it records no metrics.
- OpenLIT: ``openlit.init`` after the global providers are set, so it reuses them (no processor of its own);
  ``capture_message_content=False``, ``disable_events=True``, metrics on (into our MeterProvider),
  ``collect_gpu_stats=False``, ``collect_system_metrics=False``, every instrumentor but the provider's
  disabled (no requests/urllib3/httpx spans), ``pricing_json`` = a local file with the same prices as our
  table (its default downloads prices from GitHub at init), ``OTEL_LOGS_EXPORTER=none``.
- traceloop-sdk: the global TracerProvider is set *without* a processor and ``Traceloop.init(exporter=
  <discarding>, disable_batch=False)`` adds its ``BatchSpanProcessor`` (so one processor, as for everyone);
  ``instruments={<provider>}`` only, ``api_endpoint`` a dead loopback port, ``telemetry_enabled=False``,
  ``traceloop_sync_enabled=False``, ``should_enrich_metrics=False``; ``TRACELOOP_TRACE_CONTENT=false``,
  ``TRACELOOP_TELEMETRY=false``, ``TRACELOOP_LOGGING_ENABLED=false``, ``TRACELOOP_METRICS_ENABLED=true``
  (its instrumentation records into our global MeterProvider; no MetricsWrapper/exporter of its own).
- ours: ``otel_migration.configure(tracer_provider=..., meter_provider=..., budgets={"service":
  {"daily_usd": 1000.0}})`` then our instrumentor; each round runs inside ``versioned("2.0",
  operation="answer")`` and ``phase("generation")``; prompt capture is off by default.

Each worker warms up, then ``gc.collect(); gc.freeze()`` so that the size of a tool's import graph does not
show up as collector time; every round starts with ``gc.collect()``. ``spans/call`` and ``priced`` (a span
attribute with "cost" in its name) come from the discarding exporter, as a check that the tool did work.
When ours does not add less than half of the cheapest anchor (or with ``--profile``), its worker is
profiled with cProfile and the hot spots inside ``otel_migration`` are printed with file:line.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().with_name("llm_overhead_requirements.txt")
CONSTRAINTS = REPO / "constraints.txt"
SDKS = ("openai", "anthropic")
STAMP = ".llm-overhead-stamp"


@dataclass(frozen=True)
class EnvSpec:
    """One bench venv for --lock: its anchors (pinned), extra requirements, and why it is separate."""

    anchors: tuple[str, ...]
    extra: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


# Anchor versions for --lock (the rest is resolved): bump here, then run --lock.
ANCHORS: dict[str, EnvSpec] = {
    "main": EnvSpec(
        (
            "opentelemetry-instrumentation-genai-openai==1.3b0",
            "opentelemetry-instrumentation-genai-anthropic==1.3b0",
            "openinference-instrumentation-openai==0.1.66",
            "openinference-instrumentation-anthropic==3.1.0",
        )
    ),
    "contrib-v2": EnvSpec(
        ("opentelemetry-instrumentation-openai-v2==2.4b0",),
        extra=("opentelemetry-util-genai<1.2", "httpx"),
        notes=(
            "own venv: openai-v2 imports opentelemetry.util.genai.instruments, gone from util-genai 1.2b0 "
            "(genai-openai/-anthropic 1.3b0 need >=1.3b0) though it declares util-genai>=0.4b0",
            "httpx added: openai-v2 imports it, undeclared (openai 3.x brings httpx2, not httpx)",
        ),
    ),
    "traceloop": EnvSpec(
        ("traceloop-sdk==0.62.4",),
        extra=("httpx",),
        notes=("httpx added: traceloop.sdk imports it, undeclared (openai 3.x brings httpx2, not httpx)",),
    ),
    "openlit": EnvSpec(("openlit==1.45.0",)),
}

# Same per-1M-token prices as otel_migration/prices.toml, for OpenLIT's pricing_json (per 1K tokens).
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
PRICES_PER_1M = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-haiku-4-5-20251001": (1.00, 5.00),
}
MESSAGES = [{"role": "user", "content": "Summarise the contract in one line."}]


@dataclass(frozen=True)
class Variant:
    name: str
    env: str
    kind: str  # "bare", "anchor" or "ours"
    dists: dict[str, str]  # provider -> distribution whose version is shown
    env_vars: dict[str, str] = field(default_factory=dict)


VARIANTS: tuple[Variant, ...] = (
    Variant("bare", "main", "bare", {}),
    Variant(
        "otel-contrib genai",
        "main",
        "anchor",
        {
            "openai": "opentelemetry-instrumentation-genai-openai",
            "anthropic": "opentelemetry-instrumentation-genai-anthropic",
        },
        # util-genai >= 1.2 takes NO_CONTENT/SPAN_ONLY/EVENT_ONLY/SPAN_AND_EVENT here, not true/false
        {
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT",
            "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT": "false",
        },
    ),
    Variant("bare (contrib-v2 venv)", "contrib-v2", "bare", {}),
    Variant(
        "otel-contrib openai-v2",
        "contrib-v2",
        "anchor",
        {"openai": "opentelemetry-instrumentation-openai-v2"},
        {
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
            "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT": "false",
        },
    ),
    Variant(
        "openinference",
        "main",
        "anchor",
        {
            "openai": "openinference-instrumentation-openai",
            "anthropic": "openinference-instrumentation-anthropic",
        },
        {"OPENINFERENCE_HIDE_INPUTS": "true", "OPENINFERENCE_HIDE_OUTPUTS": "true"},
    ),
    Variant("bare (openlit venv)", "openlit", "bare", {}),
    Variant(
        "openlit",
        "openlit",
        "anchor",
        {"openai": "openlit", "anthropic": "openlit"},
        {"OTEL_LOGS_EXPORTER": "none", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"},
    ),
    Variant("bare (traceloop venv)", "traceloop", "bare", {}),
    Variant(
        "traceloop",
        "traceloop",
        "anchor",
        {"openai": "traceloop-sdk", "anthropic": "traceloop-sdk"},
        {
            "TRACELOOP_TRACE_CONTENT": "false",
            "TRACELOOP_TELEMETRY": "false",
            "TRACELOOP_LOGGING_ENABLED": "false",
            "TRACELOOP_METRICS_ENABLED": "true",
        },
    ),
    Variant("otel-migration (ours)", "main", "ours", {}),
    Variant("ours, versioned per call", "main", "ours", {}),
)
OURS = "otel-migration (ours)"


def _supports(variant: Variant, provider: str) -> bool:
    return variant.kind != "anchor" or provider in variant.dists


# == the worker (runs inside a bench venv) ==============================================================


class _Worker:
    """Sets up one variant, then answers ``run N`` / ``profile N`` / ``quit`` lines on stdin."""

    def __init__(self, variant: Variant, provider: str, proto: Any) -> None:
        self.variant, self.provider, self.proto = variant, provider, proto
        self.round_context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext

    def setup(self) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        from tests import llm_server
        from tests.llm_server import LLMServer, Usage

        # The server writes headers and body in two sends; with Nagle on, the body waits for the client's
        # delayed ACK (~40 ms a call on this VM's loopback). TCP_NODELAY on its sockets, as real servers do.
        llm_server._Handler.disable_nagle_algorithm = True

        class DiscardingExporter(SpanExporter):
            spans = 0
            priced = False

            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                if self.spans < 100:  # looks at the first spans only: the check costs nobody later
                    self.priced |= any("cost" in key for s in spans for key in (s.attributes or {}))
                self.spans += len(spans)
                return SpanExportResult.SUCCESS

        self.exporter = DiscardingExporter()
        self.tracer_provider = TracerProvider()
        if self.variant.name != "traceloop":  # traceloop adds its own BatchSpanProcessor(exporter)
            self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)

        getattr(self, "_instrument_" + self.variant.kind)()

        self.server = LLMServer(usage=Usage(input_tokens=120, output_tokens=30)).start()
        model = MODELS[self.provider]
        if self.provider == "openai":
            import openai

            client = openai.OpenAI(base_url=self.server.openai_base_url, api_key="test", max_retries=0)

            def call() -> object:
                return client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=16)

        else:
            import anthropic

            aclient = anthropic.Anthropic(
                base_url=self.server.anthropic_base_url, api_key="test", max_retries=0
            )

            def call() -> object:
                return aclient.messages.create(model=model, max_tokens=16, messages=MESSAGES)

        self.call: Callable[[], object] = call
        if self.variant.name == "ours, versioned per call":
            import otel_migration

            def versioned_call() -> object:
                with otel_migration.versioned("2.0", operation="answer"), otel_migration.phase("generation"):
                    return call()

            self.call = versioned_call

    def _instrument_bare(self) -> None:
        pass

    def _instrument_anchor(self) -> None:
        name, provider = self.variant.name, self.provider
        tp, mp = self.tracer_provider, self.meter_provider
        if name == "otel-contrib openai-v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

            OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
        elif name == "otel-contrib genai" and provider == "openai":
            from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as GenAIOpenAI

            GenAIOpenAI().instrument(tracer_provider=tp, meter_provider=mp)
        elif name == "otel-contrib genai":
            from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor

            AnthropicInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
        elif name == "openinference":
            from openinference.instrumentation import TraceConfig

            config = TraceConfig(hide_inputs=True, hide_outputs=True)
            if provider == "openai":
                from openinference.instrumentation.openai import OpenAIInstrumentor as OIOpenAI

                OIOpenAI().instrument(tracer_provider=tp, config=config)
            else:
                from openinference.instrumentation.anthropic import AnthropicInstrumentor as OIAnthropic

                OIAnthropic().instrument(tracer_provider=tp, config=config)
        elif name == "openlit":
            import openlit
            from openlit._instrumentors import MODULE_NAME_MAP

            pricing = Path(tempfile.mkdtemp(prefix="openlit-pricing-")) / "pricing.json"
            chat = {
                m: {"promptPrice": i / 1000, "completionPrice": o / 1000}
                for m, (i, o) in PRICES_PER_1M.items()
            }
            pricing.write_text(json.dumps({"chat": chat}))
            openlit.init(
                service_name="llm-overhead",
                environment="bench",
                disable_batch=False,
                capture_message_content=False,
                disabled_instrumentors=[n for n in MODULE_NAME_MAP if n != provider],
                disable_metrics=False,
                disable_events=True,
                pricing_json=str(pricing),
                collect_gpu_stats=False,
                collect_system_metrics=False,
            )
        elif name == "traceloop":
            from traceloop.sdk import Traceloop
            from traceloop.sdk.instruments import Instruments

            Traceloop.init(
                app_name="llm-overhead",
                api_endpoint="http://127.0.0.1:9",
                exporter=self.exporter,
                disable_batch=False,
                telemetry_enabled=False,
                traceloop_sync_enabled=False,
                should_enrich_metrics=False,
                instruments={Instruments.OPENAI if provider == "openai" else Instruments.ANTHROPIC},
            )
        else:
            raise ValueError(f"unknown anchor {name!r}")

    def _instrument_ours(self) -> None:
        import otel_migration

        otel_migration.configure(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            budgets={"service": {"daily_usd": 1000.0}},
        )
        if self.provider == "openai":
            from otel_migration.instrumentation.openai import OpenAIInstrumentor

            OpenAIInstrumentor().instrument()
        else:
            from otel_migration.instrumentation.anthropic import AnthropicInstrumentor

            AnthropicInstrumentor().instrument()
        if self.variant.name == OURS:

            @contextlib.contextmanager
            def labelled() -> Iterator[None]:
                with otel_migration.versioned("2.0", operation="answer"), otel_migration.phase("generation"):
                    yield

            self.round_context = labelled

    def versions(self) -> dict[str, str]:
        import importlib.metadata

        out = {}
        for dist in (
            *SDKS,
            "opentelemetry-sdk",
            "opentelemetry-instrumentation",
            self.variant.dists.get(self.provider),
        ):
            if dist:
                with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                    out[dist] = importlib.metadata.version(dist)
        return out

    def run(self, n: int) -> dict[str, Any]:
        import gc

        gc.collect()
        call, clock = self.call, time.perf_counter
        times = []
        self.tracer_provider.force_flush()  # spans of earlier calls are not counted against this round
        before = self.exporter.spans
        cpu = time.process_time()
        with self.round_context():
            for _ in range(n):
                start = clock()
                call()
                times.append(clock() - start)
        cpu = time.process_time() - cpu  # the whole process: caller, server and background threads
        self.tracer_provider.force_flush()
        return {
            "median_ms": statistics.median(times) * 1e3,
            "p25_ms": statistics.quantiles(times, n=4)[0] * 1e3,
            "mean_ms": statistics.fmean(times) * 1e3,
            "cpu_ms": cpu / n * 1e3,
            "spans_per_call": (self.exporter.spans - before) / n,
            "priced": self.exporter.priced,
        }

    def profile(self, n: int) -> dict[str, Any]:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        with self.round_context():
            profiler.enable()
            for _ in range(n):
                self.call()
            profiler.disable()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

        def where(key: tuple[str, int, str]) -> str:
            path = Path(key[0])
            if "otel_migration" in path.parts:
                with contextlib.suppress(ValueError):
                    path = path.relative_to(REPO)
            elif "site-packages" in path.parts:
                path = Path(*path.parts[path.parts.index("site-packages") + 1 :])
            return f"{path}:{key[1]}({key[2]})"

        def ours(key: tuple[str, int, str]) -> bool:
            return "otel_migration" in Path(key[0]).parts

        rows, calls_out = [], []
        for key, (_cc, ncalls, tottime, cumtime, callers) in stats.items():
            if ours(key):
                rows.append(
                    {
                        "where": where(key),
                        "per_call": ncalls / n,
                        "self_us": tottime / n * 1e6,
                        "cum_us": cumtime / n * 1e6,
                    }
                )
                continue
            for caller, (_c, ncalls_from, _t, cum_from) in callers.items():
                if ours(caller):  # time spent in someone else's code, called straight from ours
                    calls_out.append(
                        {
                            "where": f"{where(key)} <- {where(caller).split('(')[0]}",
                            "per_call": ncalls_from / n,
                            "self_us": 0.0,
                            "cum_us": cum_from / n * 1e6,
                        }
                    )
        total = sum(v[2] for v in stats.values()) / n * 1e6
        return {"rows": rows, "calls_out": calls_out, "total_us": total}

    def serve(self) -> None:
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "run":
                self.reply(self.run(int(arg)))
            elif command == "profile":
                self.reply(self.profile(int(arg)))
            else:
                break
        self.server.close()

    def reply(self, message: dict[str, Any]) -> None:
        self.proto.write(json.dumps(message) + "\n")
        self.proto.flush()


def worker_main(args: argparse.Namespace) -> int:
    # Our protocol keeps the real stdout; whatever the tools print goes to stderr (the worker's log).
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.path.insert(0, str(REPO))  # our package and tests.llm_server, straight from this checkout
    variant = next(v for v in VARIANTS if v.name == args.worker)
    worker = _Worker(variant, args.provider, proto)
    try:
        worker.setup()
        for _ in range(args.warmup):
            worker.call()
        import gc

        gc.collect()
        gc.freeze()
        worker.reply({"ready": True, "versions": worker.versions()})
    except Exception as exc:
        import traceback

        traceback.print_exc()
        worker.reply({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    worker.serve()
    return 0


# == venvs and the lock file ============================================================================


def cache_dir() -> Path:
    root = os.environ.get("OTEL_MIGRATION_CACHE") or str(Path.home() / ".cache" / "otel-migration")
    return Path(root) / "bench-venv"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sdk_pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if name.lower() in SDKS:
            pins[name.lower()] = version
    missing = set(SDKS) - set(pins)
    if missing:
        raise SystemExit(f"{CONSTRAINTS} pins no version of {', '.join(sorted(missing))}")
    return pins


@dataclass
class Section:
    name: str
    lines: list[str] = field(default_factory=list)  # "name==version"
    notes: list[str] = field(default_factory=list)
    not_installable: str | None = None

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def pin(self, dist: str) -> str | None:
        for line in self.lines:
            name, _, version = line.partition("==")
            if _canonical(name) == _canonical(dist):
                return version
        return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock() -> dict[str, Section]:
    sections: dict[str, Section] = {}
    current: Section | None = None
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.strip()
        if match := re.fullmatch(r"# \[env: ([\w-]+)\]", line):
            current = sections[match[1]] = Section(match[1])
        elif current is None or not line:
            continue
        elif line.startswith("# note: "):
            current.notes.append(line.removeprefix("# note: "))
        elif line.startswith("# not installable: "):
            current.not_installable = line.removeprefix("# not installable: ")
        elif not line.startswith("#"):
            current.lines.append(line)
    return sections


def write_lock(sections: Sequence[Section], pins: dict[str, str]) -> None:
    out = [
        "# Pinned venvs of benchmarks/llm_overhead.py; regenerate: python benchmarks/llm_overhead.py --lock",
        "# Each section is one venv, installed with `pip install --no-deps` (the pins are complete).",
        f"# SDKs as in constraints.txt: {', '.join(f'{k}=={v}' for k, v in pins.items())}; "
        f"Python {sys.version_info.major}.{sys.version_info.minor}.",
    ]
    for section in sections:
        out += ["", f"# [env: {section.name}]"]
        out += [f"# note: {note}" for note in section.notes]
        if section.not_installable:
            out.append(f"# not installable: {section.not_installable}")
        out += section.lines
    REQUIREMENTS.write_text("\n".join(out) + "\n")


def _run(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def _pip_failure(result: subprocess.CompletedProcess[str]) -> str:
    """The gist of a failed pip run: the conflicting requirement and the pin it clashes with."""
    text = result.stdout + result.stderr
    lines = text.splitlines()
    if "The conflict is caused by:" in text:
        start = lines.index(next(x for x in lines if "The conflict is caused by:" in x)) + 1
        block = []
        for line in lines[start:]:
            if not line.strip():
                break
            block.append(line.strip())
        # The most telling line pins exactly ("X depends on Y==1"); then the pin it clashes with.
        depends = sorted((x for x in block if " depends on " in x), key=lambda x: "==" not in x)
        requested = sorted(
            (x for x in block if x.startswith("The user requested")), key=lambda x: "(constr" not in x
        )
        picked = depends[:1] + requested[:1] or block[:2]
        return "; ".join(picked)
    errors = [x.strip() for x in lines if x.startswith("ERROR")]
    return (errors or lines or ["pip failed"])[-1][:300]


def _new_venv(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = _run([sys.executable, "-m", "venv", str(path)])
    if result.returncode:
        raise RuntimeError(f"python -m venv failed: {result.stderr.strip()[-300:]}")
    return path / "bin" / "python"


def _stamp(section: Section) -> str:
    payload = f"{sys.version_info.major}.{sys.version_info.minor}\n{section.text()}"
    return hashlib.sha256(payload.encode()).hexdigest()


def ensure_venv(section: Section) -> Path:
    """The venv of a lock section, created once and re-created only when the section changes."""
    path = cache_dir() / section.name
    python = path / "bin" / "python"
    stamp = path / STAMP
    if python.exists() and stamp.exists() and stamp.read_text().strip() == _stamp(section):
        return python
    log(f"creating bench venv {path} ({len(section.lines)} pinned packages; one-time, may take minutes)")
    python = _new_venv(path)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(section.text())
    try:
        result = _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
                req.name,
            ]
        )
    finally:
        os.unlink(req.name)
    if result.returncode:
        raise RuntimeError(_pip_failure(result))
    stamp.write_text(_stamp(section) + "\n")
    return python


def _our_dependencies() -> list[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [dep for dep in project["dependencies"] if not dep.lower().startswith(SDKS)]


def _declared_requirements(python: Path, spec: str) -> list[str]:
    """The Requires-Dist entries (extras left out) of a wheel, read without installing it."""
    with tempfile.TemporaryDirectory() as tmp:
        result = _run(
            [
                str(python),
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                tmp,
                spec,
            ]
        )
        if result.returncode:
            raise RuntimeError(_pip_failure(result))
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(meta).decode()
    reqs = [
        x.removeprefix("Requires-Dist:").strip() for x in text.splitlines() if x.startswith("Requires-Dist:")
    ]
    # "name (>=1,<2)", the old notation, becomes "name>=1,<2" for a pip command line
    return [re.sub(r"\s*\((.*)\)", r"\1", r) for r in reqs if "extra ==" not in r]


def _requirement_name(requirement: str) -> str:
    return _canonical(re.split(r"[\s(<>=!~;\[]", requirement, maxsplit=1)[0])


def _lock_env(name: str, spec: EnvSpec, pins: dict[str, str]) -> Section:
    """Install one env by the first attempt that works, then freeze it into a section.

    Attempts: with constraints.txt; with its OTel pins relaxed (an anchor's dependencies may lag behind
    the newest OTel release); then the same two with the anchors installed over their declared SDK
    bounds (pip --no-deps, their other dependencies resolved normally).
    """
    section = Section(name, notes=list(spec.notes))
    anchors = spec.anchors
    extra = _our_dependencies() if name == "main" else []
    base = [*(f"{k}=={v}" for k, v in pins.items()), "opentelemetry-sdk", *extra, *spec.extra]
    strict = CONSTRAINTS.read_text()
    relaxed = "\n".join(x for x in strict.splitlines() if not x.lower().startswith("opentelemetry-")) + "\n"
    tmp = Path(tempfile.mkdtemp(prefix="llm-overhead-lock-"))
    (tmp / "strict.txt").write_text(strict)
    (tmp / "relaxed.txt").write_text(relaxed)
    path = cache_dir() / name
    failures: list[str] = []

    def attempt(constraints: str, specs: Sequence[str], no_deps: Sequence[str] = ()) -> Path | None:
        python = _new_venv(path)
        _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", "pip"])
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]  # no -q: pip's reasons
        result = _run([*pip, "-c", str(tmp / constraints), *specs])
        if result.returncode == 0 and no_deps:
            result = _run([*pip, "--no-deps", *no_deps])
        if result.returncode:
            failures.append(_pip_failure(result))
            log(f"  failed ({constraints}{', anchors --no-deps' if no_deps else ''}): {failures[-1]}")
            return None
        return python

    log(f"--lock: resolving env {name!r}: {' '.join(anchors)}")
    python = attempt("strict.txt", [*base, *anchors])
    if python is None and (python := attempt("relaxed.txt", [*base, *anchors])) is not None:
        section.notes.append(f"OTel pins of constraints.txt relaxed, because: {failures[0]}")
    if python is None:
        try:
            declared = [r for a in anchors for r in _declared_requirements(_new_venv(path), a)]
        except RuntimeError as exc:
            failures.append(str(exc))
            declared = []
        bounds = [r for r in declared if _requirement_name(r) in SDKS]
        rest = [r for r in declared if r not in bounds]
        if bounds:
            overridden = f"installed over its declared SDK bounds ({'; '.join(bounds)}) with pip --no-deps"
            python = attempt("strict.txt", [*base, *rest], no_deps=anchors)
            if python is not None:
                section.notes.append(f"{overridden}, because: {failures[0]}")
            elif (python := attempt("relaxed.txt", [*base, *rest], no_deps=anchors)) is not None:
                section.notes.append(f"{overridden}, because: {failures[0]}")
                section.notes.append(f"OTel pins of constraints.txt relaxed, because: {failures[-1]}")
    shutil.rmtree(tmp, ignore_errors=True)
    if python is None:
        section.not_installable = " | ".join(dict.fromkeys(failures))
        shutil.rmtree(path, ignore_errors=True)
        return section
    freeze = _run(
        [str(python), "-m", "pip", "freeze", "--all", "--exclude", "pip", "--exclude", "setuptools"]
    )
    section.lines = sorted(
        (x for x in freeze.stdout.splitlines() if "==" in x and not x.startswith("-e")), key=str.lower
    )
    for sdk_name, version in pins.items():
        if section.pin(sdk_name) != version:
            section.notes.append(
                f"{sdk_name} is {section.pin(sdk_name)}, not {version} as in constraints.txt"
            )
    (path / STAMP).write_text(_stamp(section) + "\n")
    return section


def lock() -> dict[str, Section]:
    pins = sdk_pins()
    sections = [_lock_env(name, spec, pins) for name, spec in ANCHORS.items()]
    write_lock(sections, pins)
    log(f"wrote {REQUIREMENTS}")
    return {s.name: s for s in sections}


# == the parent: workers, rounds, table =================================================================


def _clean_environment(variant: Variant) -> dict[str, str]:
    prefixes = (
        "OTEL_",
        "OPENAI_",
        "ANTHROPIC_",
        "TRACELOOP_",
        "OPENLIT_",
        "OPENINFERENCE_",
        "OTEL_MIGRATION_",
    )
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k.lower() not in proxies}
    # anthropic >= 1.14 traces itself through the global provider: off, so that every variant (bare
    # included) is measured with only its own span, as with openai.
    env.update(NO_PROXY="127.0.0.1,localhost", PYTHONUNBUFFERED="1", ANTHROPIC_OPEN_TELEMETRY="false")
    env.update(variant.env_vars)
    return env


class WorkerProcess:
    def __init__(self, variant: Variant, python: Path, args: argparse.Namespace, logs: Path) -> None:
        self.variant = variant
        self.log_path = logs / (re.sub(r"\W+", "-", variant.name).strip("-") + ".log")
        self.log_file = self.log_path.open("w")
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", variant.name]
        cmd += ["--provider", args.provider, "--warmup", str(args.warmup)]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
            cwd=tempfile.mkdtemp(prefix="llm-overhead-"),  # no stray otel-migration config file
            env=_clean_environment(variant),
        )

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"no answer in {timeout:.0f} s{self.tail()}")
        return dict(json.loads(line))

    def send(self, command: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def tail(self) -> str:
        self.log_file.flush()
        lines = [x for x in self.log_path.read_text(errors="replace").splitlines() if x.strip()]
        return f" (log {self.log_path}: {lines[-1][:200]})" if lines else f" (log {self.log_path})"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


@dataclass
class Result:
    variant: Variant
    rounds: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    added_rounds: list[float] = field(default_factory=list)
    p25_added_rounds: list[float] = field(default_factory=list)
    cpu_added_rounds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r["median_ms"] for r in self.rounds)

    @property
    def added(self) -> float | None:
        return statistics.median(self.added_rounds) if self.added_rounds else None

    @property
    def spread(self) -> float:
        """Half-width of a ~95 % interval of ``added`` (a box plot's notch: 1.58 IQR / sqrt(rounds))."""
        if len(self.added_rounds) < 4:
            return float("nan")
        q1, _, q3 = statistics.quantiles(self.added_rounds, n=4)
        return 1.58 * (q3 - q1) / len(self.added_rounds) ** 0.5


def _pair_with_bare(results: list[Result]) -> None:
    """Per round: a variant's median minus the median of that round's bare rows (all venvs pooled).

    The bare rows differ only in packages they never import, so pooling them halves the noise of the
    baseline, and pairing by round cancels drifts in the machine's load; a bare row's own ``added`` is
    then a direct reading of the noise floor.
    """
    live = [r for r in results if r.rounds]
    bares = [r for r in live if r.variant.kind == "bare"]
    if not bares:
        return
    for i in range(min(len(r.rounds) for r in live)):
        bare_ms = statistics.median(b.rounds[i]["median_ms"] for b in bares)
        bare_p25 = statistics.median(b.rounds[i]["p25_ms"] for b in bares)
        bare_cpu = statistics.median(b.rounds[i]["cpu_ms"] for b in bares)
        for r in live:
            r.added_rounds.append(r.rounds[i]["median_ms"] - bare_ms)
            r.p25_added_rounds.append(r.rounds[i]["p25_ms"] - bare_p25)
            r.cpu_added_rounds.append(r.rounds[i]["cpu_ms"] - bare_cpu)


def _print_table(
    results: list[Result], provider: str, sections: dict[str, Section], args: argparse.Namespace
) -> bool:
    _pair_with_bare(results)
    anchors = {r.variant.name: r.added for r in results if r.variant.kind == "anchor" and r.added is not None}
    cheapest_name = min(anchors, key=lambda n: anchors[n]) if anchors else None
    cheapest = anchors[cheapest_name] if cheapest_name else None

    model = MODELS[provider]
    print(
        f"\nLLM call overhead, provider={provider}, model={model}: {args.calls} calls x {args.rounds} rounds"
    )
    print(
        "(interleaved). median: of per-round medians. added: per round, median minus the median of the\n"
        "bare rows of that round (all venvs), then the median over rounds; ±: ~95 % interval of that\n"
        "(1.58 IQR / sqrt(rounds)). p25 add: the same with each round's lower quartile instead of its\n"
        "median (less sensitive to other load on the machine). cpu+: process CPU per call (caller, server,\n"
        "background threads) over the bare rows, same pairing. Bare rows' own 'added' is the noise floor.\n"
    )
    header = f"{'variant':<26} {'version':<8} {'median ms':>9} {'added ms':>9} {'±':>6} {'p25 add':>8}"
    header += f" {'÷cheapest':>9}"
    header += f" {'cpu+ ms':>8} {'spans/call':>10} {'priced':>6}  notes"
    print(header)
    print("-" * len(header))
    footnotes: dict[str, int] = {}
    for r in results:
        v = r.variant
        dist = v.dists.get(provider)
        version = r.versions.get(dist, "") if dist else ""
        notes = list(sections[v.env].notes) if v.kind == "anchor" else []
        if r.problem:
            print(f"{v.name:<26} {version:<8} {r.problem}")
            continue
        add = r.added
        ratio = f"{add / cheapest:.2f}" if add is not None and cheapest and v.kind != "bare" else ""
        last = r.rounds[-1]
        if last["spans_per_call"] == 0 and v.kind != "bare":
            notes.insert(0, "WARNING: exported no span: instrumented nothing?")
        marks = " ".join(f"[{footnotes.setdefault(n, len(footnotes) + 1)}]" for n in notes)
        cells = f"{v.name:<26} {version:<8} {r.median:>9.3f} "
        cells += f"{add:>+9.3f} {r.spread:>6.3f} " if add is not None else f"{'':>9} {'':>6} "
        p25 = f"{statistics.median(r.p25_added_rounds):+.3f}" if r.p25_added_rounds else ""
        cells += f"{p25:>8} "
        cpu = statistics.median(r.cpu_added_rounds) if r.cpu_added_rounds else 0.0
        priced = "yes" if last["priced"] else "no"
        cells += f"{ratio:>9} {cpu:>+8.3f} {last['spans_per_call']:>10.2f} {priced:>6}  "
        print(cells + marks)
    for note, number in footnotes.items():
        print(f"  [{number}] {note}")
    for name in ANCHORS:
        versions = next((r.versions for r in results if r.variant.env == name and r.versions), None)
        if versions:
            keys = (*SDKS, "opentelemetry-sdk", "opentelemetry-instrumentation")
            print(f"{name} venv: " + ", ".join(f"{k} {versions[k]}" for k in keys if k in versions))
    ours = next((r.added for r in results if r.variant.name == OURS), None)
    if ours is None or cheapest is None:
        print("\nVERDICT: cannot compare (ours or every anchor is missing from this run)")
        return False
    met = ours < cheapest / 2
    verdict = "MET" if met else "NOT MET"
    by_name = {r.variant.name: r for r in results}
    margin = math.hypot(by_name[OURS].spread, by_name[str(cheapest_name)].spread / 2)
    if abs(ours - cheapest / 2) < margin:
        verdict += f" (inconclusive: within the ±{margin:.3f} ms uncertainty of this run; add --rounds)"
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\nVERDICT: {verdict}: ours adds {ours:+.3f} ms per call, the cheapest anchor ({cheapest_name}) "
        f"{cheapest:+.3f} ms; target < half of it = {cheapest / 2:.3f} ms (ours is {ours / cheapest:.2f}x)."
        f"\nLoad average at the end (1/5/15 min): {load} on {os.cpu_count()} CPUs."
    )
    return met


def _print_profile(profile: dict[str, Any], n: int) -> None:
    total = profile["total_us"]
    print(f"\ncProfile of ours ({n} calls; µs per LLM call under the profiler; all code: {total:.0f} µs)")
    sections = (
        ("otel_migration functions by self time", profile["rows"], "self_us"),
        ("otel_migration functions by cumulative time", profile["rows"], "cum_us"),
        (
            "calls out of otel_migration (callee <- our caller) by cumulative time",
            profile["calls_out"],
            "cum_us",
        ),
    )
    for title, rows, key in sections:
        print(f"  top {title}:")
        for row in sorted(rows, key=lambda x: -x[key])[:12]:
            times = f"{row['self_us']:8.1f} self {row['cum_us']:8.1f} cum"
            print(f"    {times} {row['per_call']:5.1f}x  {row['where']}")


def bench(args: argparse.Namespace) -> int:
    pins = sdk_pins()
    sections = read_lock() if REQUIREMENTS.exists() else {}
    stale = [
        f"{k} {s.pin(k)}!={v}"
        for s in sections.values()
        for k, v in pins.items()
        if s.lines and s.pin(k) != v
    ]
    if not sections or stale or set(sections) != set(ANCHORS):
        log(f"re-locking {REQUIREMENTS.name}: {'; '.join(stale) or 'missing or incomplete'}")
        sections = lock()
    variants = [v for v in VARIANTS if _supports(v, args.provider)]
    if args.only:
        wanted = {x.strip() for x in args.only.split(",")}
        envs = {v.env for v in variants if v.name in wanted}
        variants = [v for v in variants if v.name in wanted or (v.kind == "bare" and v.env in envs)]
    results = [Result(v) for v in variants]
    pythons: dict[str, Path | str] = {}
    for name in dict.fromkeys(v.env for v in variants):
        section = sections[name]
        if section.not_installable:
            pythons[name] = f"not installable: {section.not_installable}"
            continue
        try:
            pythons[name] = ensure_venv(section)
        except RuntimeError as exc:
            pythons[name] = f"not installable: {exc}"

    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers: dict[str, WorkerProcess] = {}
    try:
        for result in results:
            python = pythons[result.variant.env]
            if isinstance(python, str):
                result.problem = python
                continue
            log(f"starting {result.variant.name} ...")
            worker = WorkerProcess(result.variant, python, args, logs)
            try:
                hello = worker.read(timeout=300)
            except (RuntimeError, json.JSONDecodeError) as exc:
                result.problem = f"failed to start: {exc}"
                worker.stop()
                continue
            if not hello.get("ready"):
                result.problem = f"failed: {hello.get('error')}{worker.tail()}"
                worker.stop()
                continue
            result.versions = hello["versions"]
            workers[result.variant.name] = worker
        live = [r for r in results if r.variant.name in workers]
        for round_no in range(args.rounds):
            shift = round_no % max(len(live), 1)
            for result in live[shift:] + live[:shift]:
                if result.problem:
                    continue
                try:
                    result.rounds.append(workers[result.variant.name].send(f"run {args.calls}", timeout=600))
                except (RuntimeError, json.JSONDecodeError) as exc:
                    result.problem = f"failed in round {round_no + 1}: {exc}"
            log(f"round {round_no + 1}/{args.rounds} done")
        for result in live:
            if result.problem:
                result.rounds.clear()
        met = _print_table(results, args.provider, sections, args)
        ours = workers.get(OURS)
        if ours is not None and (args.profile or not met):
            n = max(args.calls, 1000)
            _print_profile(ours.send(f"profile {n}", timeout=600), n)
    finally:
        for worker in workers.values():
            worker.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=50, help="timed calls per variant and round (default 50)"
    )
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls after setup (default 100)")
    parser.add_argument("--provider", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--only", help="comma-separated variant names (plus the bare row of their venvs)")
    parser.add_argument("--profile", action="store_true", help="profile ours even when the target is met")
    parser.add_argument("--lock", action="store_true", help="re-resolve llm_overhead_requirements.txt")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.lock:
        lock()
        return 0
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
