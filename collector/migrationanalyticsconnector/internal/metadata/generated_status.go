// Package metadata holds the component's type and stability, as mdatagen would generate them
// from metadata.yaml (written by hand: mdatagen is not part of this repository's toolchain).
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	Type      = component.MustNewType("migration_analytics")
	ScopeName = "github.com/otel-migration/otel-migration/collector/migrationanalyticsconnector"
)

const (
	LogsToMetricsStability    = component.StabilityLevelAlpha
	MetricsToMetricsStability = component.StabilityLevelAlpha
)
