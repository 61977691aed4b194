package migrationanalyticsconnector

// Names of the contract (docs/fleet.md). Attribute names are those of otel_migration/_core/semconv.py.
const (
	attrServiceName     = "service.name"
	attrServiceInstance = "service.instance.id"

	attrMigration = "migration.name"
	attrVersion   = "migration.version"
	attrOperation = "migration.operation"
	attrOutcome   = "migration.outcome"
	attrWindow    = "migration.window"
	attrStage     = "migration.adoption.stage"
	attrStatistic = "migration.statistic"
	attrMetric    = "migration.metric"
	attrReason    = "migration.fleet.refused.reason"
	attrCategory  = "migration.error.category"
	attrInput     = "migration.health.input"

	attrSketchKind      = "migration.sketch.kind"
	attrSketchStart     = "migration.sketch.bucket.start"
	attrSketchWidth     = "migration.sketch.bucket.width"
	attrSketchPrecision = "migration.sketch.precision"
	attrEventName       = "event.name"

	sketchEvent = "migration.state.sketch"

	kindUsers      = "users"
	kindSessions   = "sessions"
	kindErrorUsers = "error_users"

	outcomeError = "error"

	statePrefix       = "migration.state."
	metricCalls       = "migration.state.calls"
	metricDuration    = "migration.state.duration"
	metricStateCPU    = "migration.state.cpu" // thread CPU seconds of successful calls
	metricCost        = "migration.state.llm.cost"
	metricQuality     = "migration.state.quality.score"
	metricRolloutPct  = "migration.rollout.percent"
	metricErrors      = "migration.errors"            // by category: the error trends
	metricDropped     = "migration.telemetry.dropped" // calls lost in a full queue: telemetry loss
	metricCPU         = "process.cpu.utilization"     // share of all cores: saturation
	fleetPrefix       = "migration.fleet."
	allOperations     = "*"
	scopeName         = "github.com/otel-migration/otel-migration/collector/migrationanalyticsconnector"
	srmMinUsers       = 100
	srmAlpha          = 0.001
	windowShort       = "1h"
	windowLong        = "24h"
	verdictConfidence = 0.95
)

// The fleet's health figures (health.go, docs/health.md).
const (
	metricHealthScore  = "migration.fleet.health.score"
	metricHealthFactor = "migration.fleet.health.factor"
	metricAnomaly      = "migration.fleet.anomaly"
	metricAnomalyScore = "migration.fleet.anomaly.score"
	metricErrorTrend   = "migration.fleet.error.trend"

	// Values of migration.metric on the anomalies, of migration.health.input on the factors.
	signalRequestRate = "request_rate"
	signalErrorRate   = "error_rate"
	signalLatency     = "latency"
	inputErrors       = "errors"
	inputLatency      = "latency"
	inputSaturation   = "saturation"
	inputLoss         = "telemetry_loss"

	unknownCategory = "unknown"
)

// Reasons a point or sketch is refused (the migration.fleet.refused.reason attribute).
const (
	reasonMaxSeries   = "max_series"
	reasonNoInstance  = "no_instance_id"
	reasonInvalid     = "invalid_sketch"
	reasonTooOld      = "too_old"
	reasonFuture      = "future"
	reasonUnsupported = "unsupported_point"
)
