package migrationanalyticsconnector

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otel-migration/otel-migration/collector/migrationanalyticsconnector/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	custom := defaultConfig()
	custom.EmitInterval = 30 * time.Second
	custom.MaxSeries = 5000
	custom.HistogramMaxSize = 1024
	custom.StreamTTL = 5 * time.Minute
	custom.ControlVersions = map[string]string{"checkout-v2": "1.0"}
	custom.MinSamples = 50
	custom.Alpha = 0.01
	custom.LatencyMinEffect = 0.1
	custom.CPUMinEffect = 0.2
	custom.StallAfter = 2 * time.Hour
	custom.LatencySLO = 250 * time.Millisecond
	custom.ErrorBudget = 0.02
	custom.HealthDelay = 2 * time.Minute
	tests := []struct {
		id      component.ID
		want    *Config
		invalid bool
	}{
		{id: component.NewID(metadata.Type), want: defaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: custom},
		{id: component.NewIDWithName(metadata.Type, "invalid"), invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			if tt.invalid {
				require.Error(t, confmap.Validate(cfg))
				return
			}
			require.NoError(t, confmap.Validate(cfg))
			require.Equal(t, tt.want, cfg)
		})
	}
}
