"""Every attribute and metric name this library emits, in one place.

Official OpenTelemetry semantic-convention names are used where one exists (``error.type``,
``code.function.name``, ``feature_flag.*``, ``gen_ai.*``, ``service.version`` on the resource);
everything else carries the one prefix ``migration.``. ``docs/telemetry.md`` documents each name;
a test keeps the two in step, so treat this module as a public contract.
"""

from __future__ import annotations

from typing import Final

# -- attributes: official semantic conventions --------------------------------------------------
ERROR_TYPE: Final = "error.type"
CODE_FUNCTION_NAME: Final = "code.function.name"
SERVICE_VERSION: Final = "service.version"
SERVICE_NAME: Final = "service.name"
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"

# -- attributes: our own ------------------------------------------------------------------------
MIGRATION_NAME: Final = "migration.name"
MIGRATION_VERSION: Final = "migration.version"
MIGRATION_OPERATION: Final = "migration.operation"
MIGRATION_PHASE: Final = "migration.phase"
MIGRATION_OUTCOME: Final = "migration.outcome"
MIGRATION_ERROR_CATEGORY: Final = "migration.error.category"

# LLM calls: the official gen_ai.* names, plus what no convention covers yet.
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"  # only with capture_content = true
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"  # only with capture_content = true
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
LLM_COST: Final = "migration.llm.cost"  # USD, from the price table
LLM_TIER: Final = "migration.llm.tier"  # haiku / sonnet / opus, small / medium / large...
LLM_TIME_TO_FIRST_CHUNK: Final = "migration.llm.time_to_first_chunk"  # seconds, streams only
MIGRATION_BUDGET: Final = "migration.budget"
MIGRATION_BUDGET_PERIOD: Final = "migration.budget.period"  # daily, monthly

# LLM metrics: the GenAI conventions', then ours.
METRIC_GEN_AI_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_GEN_AI_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_GEN_AI_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_LLM_COST: Final = "migration.llm.cost"
METRIC_LLM_CALLS: Final = "migration.llm.calls"
METRIC_LLM_UNPRICED: Final = "migration.llm.unpriced"
METRIC_LLM_USAGE_CLAMPED: Final = "migration.llm.usage.clamped"  # SDK-reported usage out of range
METRIC_LLM_BUDGET_UTILIZATION: Final = "migration.llm.budget.utilization"

# Tools and agents: the GenAI agent conventions' spans (execute_tool, invoke_agent), then our metrics.
GEN_AI_OPERATION_EXECUTE_TOOL: Final = "execute_tool"  # a value of gen_ai.operation.name
GEN_AI_OPERATION_INVOKE_AGENT: Final = "invoke_agent"  # a value of gen_ai.operation.name
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"  # function, extension, datastore
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"  # only with capture_content = true
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"  # only with capture_content = true
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
LLM_TOOL_CALLS: Final = "migration.llm.tool_calls"  # on an LLM span: tool calls the model asked for
LLM_TOOL_CALL_NAMES: Final = "migration.llm.tool_call.names"  # their tool names, in order
LLM_TOOL_CALL_IDS: Final = "migration.llm.tool_call.ids"  # their ids (gen_ai.tool.call.id of execute_tool)
AGENT_ITERATIONS: Final = "migration.agent.iterations"  # on an invoke_agent span: model turns
AGENT_TOOL_CALLS_EXECUTED: Final = "migration.agent.tool_calls.executed"
AGENT_TOOL_CALLS_REQUESTED: Final = "migration.agent.tool_calls.requested"
MIGRATION_TOOL_SOURCE: Final = "migration.tool.source"  # executed, requested
METRIC_TOOL_INVOCATIONS: Final = "migration.tool.invocations"
METRIC_LLM_TOOL_CALLS: Final = "migration.llm.tool_calls"
METRIC_AGENT_INVOCATIONS: Final = "migration.agent.invocations"
METRIC_AGENT_ITERATIONS: Final = "migration.agent.iterations"
METRIC_AGENT_TOOL_CALLS: Final = "migration.agent.tool_calls"
METRIC_AGENT_TOKENS: Final = "migration.agent.tokens"

# Quality of LLM answers: events in the gen_ai.evaluation.* shape, then our aggregates.
GEN_AI_EVALUATION_EVENT: Final = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
MIGRATION_QUALITY_ACTION: Final = "migration.quality.action"  # approved, edited, regenerated, abandoned
MIGRATION_NPS_CLASS: Final = "migration.nps_class"  # promoter, passive, detractor
MIGRATION_CSAT_RATING: Final = "migration.csat.rating"  # "1" ... "5"
MIGRATION_SENTIMENT: Final = "migration.sentiment"  # positive, neutral, negative
METRIC_QUALITY_SCORE: Final = "migration.quality.score"
METRIC_QUALITY_CONFIDENCE: Final = "migration.quality.confidence"
METRIC_QUALITY_ACTIONS: Final = "migration.quality.actions"
METRIC_QUALITY_FEEDBACK: Final = "migration.quality.feedback"
METRIC_QUALITY_CSAT: Final = "migration.quality.csat"
METRIC_QUALITY_SENTIMENT: Final = "migration.quality.sentiment"
METRIC_QUALITY_UPGRADES: Final = "migration.quality.upgrades"
METRIC_QUALITY_NPS: Final = "migration.quality.nps"

# Values of ``migration.outcome``: an exception is an error; task cancellation, KeyboardInterrupt
# and SystemExit are "cancelled" (they say nothing about the quality of the version).
OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
OUTCOME_CANCELLED: Final = "cancelled"

# -- metrics ------------------------------------------------------------------------------------
METRIC_REQUESTS: Final = "migration.requests"
METRIC_ERRORS: Final = "migration.errors"
METRIC_DURATION: Final = "migration.duration"
METRIC_PHASE_DURATION: Final = "migration.phase.duration"
METRIC_TELEMETRY_DROPPED: Final = "migration.telemetry.dropped"
METRIC_TELEMETRY_SPANS_FAILED: Final = "migration.telemetry.spans.failed"
METRIC_TELEMETRY_SPANS_UNCONFIRMED: Final = "migration.telemetry.spans.unconfirmed"
METRIC_TELEMETRY_METRICS_FAILED: Final = "migration.telemetry.metrics.failed"

# Rollout decisions (OpenFeature-style feature-flag evaluation semantic conventions).
FEATURE_FLAG_KEY: Final = "feature_flag.key"
FEATURE_FLAG_RESULT_VARIANT: Final = "feature_flag.result.variant"
FEATURE_FLAG_RESULT_REASON: Final = "feature_flag.result.reason"
FEATURE_FLAG_PROVIDER_NAME: Final = "feature_flag.provider.name"
FEATURE_FLAG_CONTEXT_ID: Final = "feature_flag.context.id"
FEATURE_FLAG_EVALUATION_EVENT: Final = "feature_flag.evaluation"

# Attributes of the analytics metrics.
MIGRATION_WINDOW: Final = "migration.window"  # "1h", "24h"
MIGRATION_STAGE: Final = "migration.adoption.stage"  # not_started, low, adopted, replaced
MIGRATION_STATISTIC: Final = "migration.statistic"  # p50, p95, p99, mean
MIGRATION_METRIC: Final = "migration.metric"  # latency, error_rate, cost, quality, cpu, request_rate

# Experiments (shadow runs).
MIGRATION_EXPERIMENT: Final = "migration.experiment.name"
MIGRATION_EXPERIMENT_OUTCOME: Final = "migration.experiment.outcome"
MIGRATION_EXPERIMENT_CONTROL_VALUE: Final = "migration.experiment.control.value"
MIGRATION_EXPERIMENT_CANDIDATE_VALUE: Final = "migration.experiment.candidate.value"
METRIC_EXPERIMENT_RUNS: Final = "migration.experiment.runs"
METRIC_EXPERIMENT_CPU_TIME: Final = "migration.experiment.cpu_time"

# Analytics metrics (observable, computed in process from every call).
METRIC_ADOPTION_RATIO: Final = "migration.adoption.ratio"
METRIC_ADOPTION_USERS: Final = "migration.adoption.users"
METRIC_ADOPTION_SESSIONS: Final = "migration.adoption.sessions"
METRIC_ADOPTION_STAGE: Final = "migration.adoption.stage"
METRIC_ADOPTION_STALLED: Final = "migration.adoption.stalled"
METRIC_ERROR_RATE: Final = "migration.error.rate"
METRIC_ERROR_FREE_USERS: Final = "migration.error_free_users"
METRIC_ERROR_SPIKE: Final = "migration.error.spike"
METRIC_PERFORMANCE_DURATION: Final = "migration.performance.duration"
METRIC_PERFORMANCE_IMPROVEMENT: Final = "migration.performance.improvement"
METRIC_VERDICT: Final = "migration.verdict"
METRIC_SAMPLE_RATIO_MISMATCH: Final = "migration.sample_ratio_mismatch"
METRIC_ROLLOUT_PERCENT: Final = "migration.rollout.percent"
METRIC_ROLLOUT_DECISIONS: Final = "migration.rollout.decisions"
METRIC_ROLLOUT_ROLLED_BACK: Final = "migration.rollout.rolled_back"
METRIC_ROLLBACKS: Final = "migration.rollbacks"
METRIC_GUARD_TRIGGERED: Final = "migration.guard.triggered"

# Mergeable state for the fleet (docs/fleet.md): merged by the collector's migration_analytics.
METRIC_STATE_CALLS: Final = "migration.state.calls"
METRIC_STATE_DURATION: Final = "migration.state.duration"
METRIC_STATE_CPU: Final = "migration.state.cpu"  # thread CPU seconds of successful calls
METRIC_STATE_LLM_COST: Final = "migration.state.llm.cost"
METRIC_STATE_LLM_TOKENS: Final = "migration.state.llm.tokens"
METRIC_STATE_QUALITY_SCORE: Final = "migration.state.quality.score"
METRIC_STATE_QUALITY_ACTIONS: Final = "migration.state.quality.actions"
METRIC_STATE_QUALITY_NPS: Final = "migration.state.quality.nps"
METRIC_STATE_QUALITY_CSAT: Final = "migration.state.quality.csat"
EVENT_STATE_SKETCH: Final = "migration.state.sketch"  # a log record: HyperLogLog registers as bytes
MIGRATION_SKETCH_KIND: Final = "migration.sketch.kind"  # users, sessions, error_users
MIGRATION_SKETCH_BUCKET_START: Final = "migration.sketch.bucket.start"  # Unix seconds
MIGRATION_SKETCH_BUCKET_WIDTH: Final = "migration.sketch.bucket.width"  # seconds
MIGRATION_SKETCH_PRECISION: Final = "migration.sketch.precision"  # 12
SERVICE_INSTANCE_ID: Final = "service.instance.id"

# Events (``otel_migration.event``): OTel log records whose event name says what happened, and their count.
METRIC_EVENTS: Final = "migration.events"
MIGRATION_EVENT_NAME: Final = "migration.event.name"  # the event's name, as a metric attribute
OTEL_METRIC_OVERFLOW: Final = "otel.metric.overflow"  # true on the one series past the cardinality cap
EVENT_RETRY_ATTEMPTED: Final = "migration.retry.attempted"
EVENT_RETRY_SUCCEEDED: Final = "migration.retry.succeeded"
EVENT_RETRY_FAILED: Final = "migration.retry.failed"
EVENT_FALLBACK: Final = "migration.fallback"
EVENT_CIRCUIT_BREAKER_OPENED: Final = "migration.circuit_breaker.opened"
EVENT_CIRCUIT_BREAKER_CLOSED: Final = "migration.circuit_breaker.closed"
EVENT_CACHE_HIT: Final = "migration.cache.hit"
EVENT_CACHE_MISS: Final = "migration.cache.miss"
EVENT_GENERATION_STARTED: Final = "migration.generation.started"
EVENT_GENERATION_COMPLETED: Final = "migration.generation.completed"
EVENT_GENERATION_FAILED: Final = "migration.generation.failed"
EVENT_GENERATION_CANCELLED: Final = "migration.generation.cancelled"
EVENT_USER_ACTION: Final = "migration.user.action"

# Resources of versioned calls (_calls/resources.py); process.* comes from the system-metrics
# instrumentation with the official names.
METRIC_CPU_TIME: Final = "migration.cpu_time"
METRIC_MEMORY_RETAINED: Final = "migration.memory.retained"
METRIC_CALLS_IN_FLIGHT: Final = "migration.calls.in_flight"
METRIC_STREAM_TIME_TO_FIRST_ITEM: Final = "migration.stream.time_to_first_item"
METRIC_STREAM_DURATION: Final = "migration.stream.duration"
METRIC_TELEMETRY_QUEUE_DEPTH: Final = "migration.telemetry.queue.depth"

# LLM operations (_llm/operations.py).
METRIC_LLM_TOKENS: Final = "migration.llm.tokens"
METRIC_LLM_IN_FLIGHT: Final = "migration.llm.in_flight"
METRIC_LLM_PROMPT_CACHE_HIT_RATIO: Final = "migration.llm.prompt_cache.hit_ratio"
METRIC_LLM_PROMPT_CACHE_CALLS: Final = "migration.llm.prompt_cache.calls"
MIGRATION_PROMPT_CACHE: Final = "migration.llm.prompt_cache"  # hit (read some cached tokens) / miss

# Health and prediction (_analytics/health.py, anomaly.py, trend.py, leak.py; docs/health.md).
METRIC_HEALTH_SCORE: Final = "migration.health.score"
METRIC_HEALTH_FACTOR: Final = "migration.health.factor"
MIGRATION_HEALTH_INPUT: Final = "migration.health.input"  # errors, latency, saturation, telemetry_loss
METRIC_ANOMALY: Final = "migration.anomaly"
METRIC_ANOMALY_SCORE: Final = "migration.anomaly.score"
METRIC_ERROR_TREND: Final = "migration.error.trend"
METRIC_MEMORY_LEAK: Final = "migration.memory.leak"
METRIC_MEMORY_GROWTH: Final = "migration.memory.growth"
METRIC_MEMORY_TIME_TO_LIMIT: Final = "migration.memory.time_to_limit"

# Bucket advice for CPU seconds per call: CPU is at most the duration, and often far below it.
CPU_BUCKETS: Final = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# Bucket advice for durations in seconds: from sub-millisecond code paths up to minute-long LLM
# pipelines, the range a migrated operation realistically spans.
DURATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip

INSTRUMENTATION_SCOPE: Final = "otel_migration"
