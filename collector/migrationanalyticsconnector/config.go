package migrationanalyticsconnector

import (
	"errors"
	"fmt"
	"time"
)

// Config of the migration_analytics connector. Windows (1 h of 5-minute buckets, 24 h of hourly
// buckets) and the sketch precision are fixed by the contract; what a team may tune is here.
type Config struct {
	// EmitInterval is how often the fleet's figures are computed and emitted.
	EmitInterval time.Duration `mapstructure:"emit_interval"`
	// MaxSeries caps the state series held (sums, histograms, sketches, cumulative baselines);
	// a point that would create one more is refused and counted in migration.fleet.refused.
	MaxSeries int `mapstructure:"max_series"`
	// HistogramMaxSize caps the buckets of a merged exponential histogram (it downscales beyond).
	HistogramMaxSize int `mapstructure:"histogram_max_size"`
	// StreamTTL: an instance, with the baselines of its cumulative streams, is forgotten after this silence.
	StreamTTL time.Duration `mapstructure:"stream_ttl"`
	// ControlVersions maps a migration name to its control version; default: the lowest version.
	ControlVersions map[string]string `mapstructure:"control_versions"`

	MinSamples         int     `mapstructure:"min_samples"`
	Alpha              float64 `mapstructure:"alpha"`
	LatencyMinEffect   float64 `mapstructure:"latency_min_effect"`
	ErrorRateMinEffect float64 `mapstructure:"error_rate_min_effect"`
	CostMinEffect      float64 `mapstructure:"cost_min_effect"`
	QualityMinEffect   float64 `mapstructure:"quality_min_effect"`
	// CPUMinEffect: the smallest CPU shift that counts, relative to the control's median (as latency).
	CPUMinEffect float64 `mapstructure:"cpu_min_effect"`

	AdoptionStarted  float64       `mapstructure:"adoption_started"`
	AdoptionAdopted  float64       `mapstructure:"adoption_adopted"`
	AdoptionReplaced float64       `mapstructure:"adoption_replaced"`
	StallAfter       time.Duration `mapstructure:"stall_after"`
	StallEpsilon     float64       `mapstructure:"stall_epsilon"`

	// Health (docs/health.md): the score's latency objective and budgets, as in the SDK's
	// AnalyticsSettings. LatencySLO is compared with the successful calls' merged durations.
	LatencySLO    time.Duration `mapstructure:"latency_slo"`
	LatencyBudget float64       `mapstructure:"latency_budget"`
	ErrorBudget   float64       `mapstructure:"error_budget"`
	// HealthDelay: a minute is judged for anomalies and trends once it ended this long ago, so
	// that every process has exported its calls of that minute (at least the SDK's metric export
	// interval, OTEL_METRIC_EXPORT_INTERVAL, 60 s by default, plus delivery).
	HealthDelay time.Duration `mapstructure:"health_delay"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// The defaults are those of otel_migration's AnalyticsSettings, so fleet and process agree.
func defaultConfig() *Config {
	return &Config{
		EmitInterval:       10 * time.Second,
		MaxSeries:          20000,
		HistogramMaxSize:   2048,
		StreamTTL:          15 * time.Minute,
		ControlVersions:    map[string]string{},
		MinSamples:         30,
		Alpha:              0.05,
		LatencyMinEffect:   0.05,
		ErrorRateMinEffect: 0.005,
		CostMinEffect:      0.05,
		QualityMinEffect:   2.0,
		CPUMinEffect:       0.05,
		AdoptionStarted:    0.01,
		AdoptionAdopted:    0.5,
		AdoptionReplaced:   0.95,
		StallAfter:         time.Hour,
		StallEpsilon:       0.001,
		LatencySLO:         500 * time.Millisecond,
		LatencyBudget:      0.05,
		ErrorBudget:        0.05,
		HealthDelay:        90 * time.Second,
	}
}

// Validate reports every invalid setting at once.
func (c *Config) Validate() error {
	var errs []error
	if c.EmitInterval <= 0 {
		errs = append(errs, fmt.Errorf("emit_interval must be positive, got %v", c.EmitInterval))
	}
	if c.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("max_series must be at least 1, got %d", c.MaxSeries))
	}
	if c.HistogramMaxSize < 2 {
		errs = append(errs, fmt.Errorf("histogram_max_size must be at least 2, got %d", c.HistogramMaxSize))
	}
	if c.StreamTTL <= 0 {
		errs = append(errs, fmt.Errorf("stream_ttl must be positive, got %v", c.StreamTTL))
	}
	if c.MinSamples < 1 {
		errs = append(errs, fmt.Errorf("min_samples must be at least 1, got %d", c.MinSamples))
	}
	if !(c.Alpha > 0 && c.Alpha < 1) {
		errs = append(errs, fmt.Errorf("alpha must be strictly between 0 and 1, got %v", c.Alpha))
	}
	for name, v := range map[string]float64{
		"latency_min_effect": c.LatencyMinEffect, "error_rate_min_effect": c.ErrorRateMinEffect,
		"cost_min_effect": c.CostMinEffect, "quality_min_effect": c.QualityMinEffect,
		"cpu_min_effect": c.CPUMinEffect, "stall_epsilon": c.StallEpsilon,
	} {
		if !(v >= 0) {
			errs = append(errs, fmt.Errorf("%s must be a number >= 0, got %v", name, v))
		}
	}
	if !(0 <= c.AdoptionStarted && c.AdoptionStarted <= c.AdoptionAdopted &&
		c.AdoptionAdopted <= c.AdoptionReplaced && c.AdoptionReplaced <= 1) {
		errs = append(errs, fmt.Errorf(
			"adoption thresholds must satisfy 0 <= started <= adopted <= replaced <= 1, got %v, %v, %v",
			c.AdoptionStarted, c.AdoptionAdopted, c.AdoptionReplaced))
	}
	if c.LatencySLO <= 0 {
		errs = append(errs, fmt.Errorf("latency_slo must be positive, got %v", c.LatencySLO))
	}
	for name, v := range map[string]float64{"latency_budget": c.LatencyBudget, "error_budget": c.ErrorBudget} {
		if !(v > 0 && v <= 1) {
			errs = append(errs, fmt.Errorf("%s must be in (0, 1], got %v", name, v))
		}
	}
	if c.HealthDelay < 0 || c.HealthDelay > time.Duration(minuteWidth*(minuteCount-baselineMinutes-2))*time.Second {
		errs = append(errs, fmt.Errorf("health_delay must be between 0 and %ds, got %v", minuteWidth*(minuteCount-baselineMinutes-2), c.HealthDelay))
	}
	if c.StallAfter <= 0 {
		errs = append(errs, fmt.Errorf("stall_after must be positive, got %v", c.StallAfter))
	}
	for migration, version := range c.ControlVersions {
		if migration == "" || version == "" {
			errs = append(errs, fmt.Errorf("control_versions: empty migration or version in %q: %q", migration, version))
		}
	}
	return errors.Join(errs...)
}
