"""Assembles what processes finished calls: the recorder, then the analytics it feeds.

Once per MeterProvider, for the provider's lifetime: counters are cumulative and instruments are
registered once, so reconfiguring never resets them (a reset looks like a counter restart to every
backend) nor registers a duplicate instrument. The rollout and experiment instruments join the
same provider here. Data flows one way: wrapped call -> recorder -> analytics -> instruments.
"""

from __future__ import annotations

import threading
import weakref

from opentelemetry.metrics import MeterProvider

from . import _runtime
from . import _semconv as sc
from ._analytics import MigrationAnalytics
from ._config import Settings
from ._experiment import registry as experiment_registry
from ._llm import LLMMetrics, budgets
from ._quality import QualityTracker
from ._recorder import CallRecorder
from ._rollout import registry as rollout_registry
from ._runtime import Processors
from ._subjects import set_pseudonymizer
from .version import __version__

__all__ = ["assemble"]

_lock = threading.Lock()
_pipelines: weakref.WeakKeyDictionary[MeterProvider, Processors] = weakref.WeakKeyDictionary()


def assemble(meter_provider: MeterProvider, settings: Settings) -> Processors:
    with _lock:
        found = _pipelines.get(meter_provider)
        if found is None:
            meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
            analytics = MigrationAnalytics(settings.analytics, rollout_registry)
            llm_metrics = LLMMetrics(meter)
            quality = QualityTracker(meter)
            llm_metrics.add_sample_sink(analytics.add_sample)
            quality.add_sample_sink(analytics.add_sample)
            recorder = CallRecorder(
                meter, max_queue_size=settings.max_queue_size, listeners=[analytics, llm_metrics]
            )
            analytics.register_metrics(meter)
            rollout_registry.register_metrics(meter)
            experiment_registry.register_metrics(meter)
            budgets.register_metrics(meter)
            found = _pipelines[meter_provider] = Processors(recorder, analytics, llm_metrics, quality)
    found.analytics.settings = settings.analytics
    rollout_registry.configure(settings.rollouts)
    budgets.configure(settings.budgets)
    set_pseudonymizer(settings.subject_key, export_raw=settings.export_subject_ids)
    return found


_runtime.assemble = assemble
