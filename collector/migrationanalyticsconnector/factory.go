package migrationanalyticsconnector

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"

	"github.com/otel-migration/otel-migration/collector/migrationanalyticsconnector/internal/metadata"
)

// NewFactory returns the factory of the migration_analytics connector.
func NewFactory() connector.Factory {
	return connector.NewFactory(
		metadata.Type,
		createDefaultConfig,
		connector.WithLogsToMetrics(createLogsToMetrics, metadata.LogsToMetricsStability),
		connector.WithMetricsToMetrics(createMetricsToMetrics, metadata.MetricsToMetricsStability),
	)
}

func createDefaultConfig() component.Config { return defaultConfig() }

// The logs half (sketches) and the metrics half (counters, histograms) of one configured connector
// must share one state: the collector creates them separately, so they meet in this registry,
// keyed by the component's ID, and the state lives until both halves shut down.
var (
	sharedMu sync.Mutex
	shared   = map[component.ID]*sharedConnector{}
)

type sharedConnector struct {
	*fleetConnector
	refs int
}

func acquire(set connector.Settings, cfg component.Config, next consumer.Metrics) (*fleetConnector, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("migration_analytics: unexpected config type %T", cfg)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("migration_analytics: invalid config: %w", err)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	s, ok := shared[set.ID]
	if !ok {
		s = &sharedConnector{fleetConnector: newFleetConnector(c, set.TelemetrySettings.Logger, next)}
		s.release = func() {
			sharedMu.Lock()
			defer sharedMu.Unlock()
			if s.refs--; s.refs <= 0 {
				delete(shared, set.ID)
			}
		}
		shared[set.ID] = s
	}
	s.refs++
	return s.fleetConnector, nil
}

func createLogsToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Logs, error) {
	c, err := acquire(set, cfg, next)
	if err != nil {
		return nil, err
	}
	return &logsHalf{c}, nil
}

func createMetricsToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Metrics, error) {
	c, err := acquire(set, cfg, next)
	if err != nil {
		return nil, err
	}
	return &metricsHalf{c}, nil
}
