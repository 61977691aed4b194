// Package migrationanalyticsconnector merges the mergeable state that every process of a service
// exports (docs/fleet.md: counters, exponential histograms, HyperLogLog sketches as log records)
// and emits the fleet's migration figures as metrics: adoption, errors, percentiles, improvement
// and verdicts, with no per-instance attribute, so one alert per migration is possible and a
// process that stopped never lingers as a live value.
package migrationanalyticsconnector // import "github.com/otel-migration/otel-migration/collector/migrationanalyticsconnector"
