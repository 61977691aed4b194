package migrationanalyticsconnector

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The shared fixture of the health figures: tests/fixtures/fleet_health.json, written by
// tests/fixtures/make_fleet_health.py from otel_migration/_analytics/health.py, anomaly.py and
// trend.py, and checked against them by tests/test_fleet_fixtures.py.
var healthFixturePath = filepath.Join("..", "..", "tests", "fixtures", "fleet_health.json")

type healthFixture struct {
	Tolerance struct {
		Relative float64 `json:"relative"`
		Absolute float64 `json:"absolute"`
	} `json:"tolerance"`
	Settings struct {
		ErrorBudget     float64            `json:"error_budget"`
		LatencyBudget   float64            `json:"latency_budget"`
		LatencySLO      float64            `json:"latency_slo_s"`
		LossBudget      float64            `json:"loss_budget"`
		Weights         map[string]float64 `json:"weights"`
		ScoreMinutes    int                `json:"score_minutes"`
		BaselineMinutes int                `json:"baseline_minutes"`
		TrendMinutes    int                `json:"trend_minutes"`
		Threshold       float64            `json:"threshold"`
		MadToSD         float64            `json:"mad_to_sd"`
		MinBaseline     int                `json:"min_baseline"`
		TrendAlpha      float64            `json:"trend_alpha"`
		MinTrendMinutes int                `json:"min_trend_minutes"`
	} `json:"settings"`
	HealthScore []struct {
		Inputs  map[string]float64 `json:"inputs"`
		Score   float64            `json:"score"`
		Factors map[string]float64 `json:"factors"`
	} `json:"health_score"`
	Floors struct {
		Count []struct {
			Median, Floor float64
		} `json:"count"`
		Rate []struct {
			Rate, Requests, Floor float64
		} `json:"rate"`
		Latency []struct {
			Median, Floor float64
		} `json:"latency"`
	} `json:"floors"`
	RobustZ []struct {
		Baseline  []float64 `json:"baseline"`
		Value     float64   `json:"value"`
		Floor     float64   `json:"floor"`
		Direction string    `json:"direction"`
		Expected  *struct {
			Z              float64 `json:"z"`
			Anomalous      bool    `json:"anomalous"`
			BaselineMedian float64 `json:"baseline_median"`
		} `json:"expected"`
	} `json:"robust_z"`
	MannKendall []struct {
		Times  []float64 `json:"times"`
		Values []float64 `json:"values"`
		S      int       `json:"s"`
		Z      float64   `json:"z"`
		PValue float64   `json:"p_value"`
		Slope  float64   `json:"slope"`
	} `json:"mann_kendall"`
	ErrorTrend []struct {
		Minutes        []float64 `json:"minutes"`
		Rates          []float64 `json:"rates"`
		State          string    `json:"state"`
		SlopePerMinute float64   `json:"slope_per_minute"`
		PValue         float64   `json:"p_value"`
		N              int       `json:"n"`
	} `json:"error_trend"`
	Versions []struct {
		Name    string `json:"name"`
		Minute  int64  `json:"minute"`
		Buckets []struct {
			Minute     int64              `json:"minute"`
			Requests   float64            `json:"requests"`
			Errors     float64            `json:"errors"`
			OK         float64            `json:"ok"`
			OKSeconds  float64            `json:"ok_seconds"`
			Categories map[string]float64 `json:"categories"`
		} `json:"buckets"`
		Anomalies map[string]struct {
			Z         float64 `json:"z"`
			Anomalous bool    `json:"anomalous"`
		} `json:"anomalies"`
		Trends map[string]struct {
			State          string  `json:"state"`
			PValue         float64 `json:"p_value"`
			SlopePerMinute float64 `json:"slope_per_minute"`
		} `json:"trends"`
	} `json:"versions"`
}

func loadHealthFixture(t *testing.T) *healthFixture {
	t.Helper()
	data, err := os.ReadFile(healthFixturePath)
	require.NoError(t, err)
	var f healthFixture
	require.NoError(t, json.Unmarshal(data, &f))
	require.NotEmpty(t, f.HealthScore, "an empty fixture would prove nothing")
	require.NotEmpty(t, f.Versions, "an empty fixture would prove nothing")
	return &f
}

func (f *healthFixture) close(t *testing.T, expected, actual float64, what string) {
	t.Helper()
	(&fixture{Tolerance: f.Tolerance}).close(t, expected, actual, what)
}

var trendStates = map[int]string{1: "rising", -1: "falling", 0: "stable"}

func TestHealthFixtureSettingsAreTheComponents(t *testing.T) {
	f := loadHealthFixture(t)
	s := f.Settings
	cfg := defaultConfig()
	require.Equal(t, s.ErrorBudget, cfg.ErrorBudget, "default error_budget")
	require.Equal(t, s.LatencyBudget, cfg.LatencyBudget, "default latency_budget")
	require.Equal(t, time.Duration(s.LatencySLO*float64(time.Second)), cfg.LatencySLO, "default latency_slo")
	weights := map[string]float64{}
	for _, w := range healthWeights {
		weights[w.input] = w.weight
	}
	require.Equal(t, s.Weights, weights)
	for _, c := range []struct {
		what        string
		python, got float64
	}{
		{"loss budget", s.LossBudget, lossBudget},
		{"score minutes", float64(s.ScoreMinutes), scoreMinutes},
		{"baseline minutes", float64(s.BaselineMinutes), baselineMinutes},
		{"trend minutes", float64(s.TrendMinutes), trendMinutes},
		{"threshold", s.Threshold, zThreshold},
		{"MAD to sd", s.MadToSD, madToSD},
		{"minimum baseline", float64(s.MinBaseline), minBaseline},
		{"trend alpha", s.TrendAlpha, trendAlpha},
		{"minimum trend minutes", float64(s.MinTrendMinutes), minTrendMinutes},
	} {
		require.Equal(t, c.python, c.got, c.what)
	}
}

func TestHealthFixtureScore(t *testing.T) {
	f := loadHealthFixture(t)
	for i, c := range f.HealthScore {
		in := healthInputs{errorRate: c.Inputs["error_rate"], slowShare: c.Inputs["slow_share"],
			saturation: c.Inputs["saturation"], loss: c.Inputs["telemetry_loss"]}
		score, factors := healthScore(in, f.Settings.ErrorBudget, f.Settings.LatencyBudget)
		f.close(t, c.Score, score, "case "+itoa(i)+" score")
		for j, w := range healthWeights {
			f.close(t, c.Factors[w.input], factors[j], "case "+itoa(i)+" factor "+w.input)
		}
	}
}

func TestHealthFixtureFloors(t *testing.T) {
	f := loadHealthFixture(t)
	for _, c := range f.Floors.Count {
		f.close(t, c.Floor, countFloor(c.Median), "count floor")
	}
	for _, c := range f.Floors.Rate {
		f.close(t, c.Floor, rateFloor(c.Rate, c.Requests), "rate floor")
	}
	for _, c := range f.Floors.Latency {
		f.close(t, c.Floor, latencyFloor(c.Median), "latency floor")
	}
}

func TestHealthFixtureRobustZ(t *testing.T) {
	f := loadHealthFixture(t)
	for i, c := range f.RobustZ {
		a, ok := robustZ(c.Baseline, c.Value, c.Floor, c.Direction == "both")
		what := "case " + itoa(i)
		require.Equal(t, c.Expected != nil, ok, what+": judged")
		if !ok {
			continue
		}
		f.close(t, c.Expected.Z, a.z, what+" z")
		f.close(t, c.Expected.BaselineMedian, a.median, what+" median")
		require.Equal(t, c.Expected.Anomalous, a.anomalous, what+" anomalous")
	}
}

func TestHealthFixtureMannKendall(t *testing.T) {
	f := loadHealthFixture(t)
	for i, c := range f.MannKendall {
		r := mannKendall(c.Times, c.Values)
		what := "case " + itoa(i)
		require.Equal(t, c.S, r.s, what+" S")
		f.close(t, c.Z, r.z, what+" z")
		f.close(t, c.PValue, r.pValue, what+" p")
		f.close(t, c.Slope, r.slope, what+" slope")
	}
}

func TestHealthFixtureErrorTrend(t *testing.T) {
	f := loadHealthFixture(t)
	for i, c := range f.ErrorTrend {
		r := errorTrend(c.Minutes, c.Rates)
		what := "case " + itoa(i)
		require.Equal(t, c.State, trendStates[r.state], what+" state")
		require.Equal(t, c.N, r.n, what+" minutes")
		f.close(t, c.PValue, r.pValue, what+" p")
		f.close(t, c.SlopePerMinute, r.slope, what+" slope")
	}
}

// TestHealthFixtureVersions: the per-minute figures of a version, as the component keeps them, give
// the anomalies and trends the Python monitor reports from the same calls. The Python monitor
// counts every minute of its baseline, so the component's minutes are taken as tracked for the
// whole hour here (TestAnomaliesWaitForTrackedMinutes covers a component that just started).
func TestHealthFixtureVersions(t *testing.T) {
	f := loadHealthFixture(t)
	for _, c := range f.Versions {
		t.Run(c.Name, func(t *testing.T) {
			v := newVersionMinutes()
			for _, b := range c.Buckets {
				slot, ok := v.slot(b.Minute)
				require.True(t, ok)
				v.counts[slot] = minuteCounts{requests: b.Requests, errors: b.Errors, ok: b.OK, okSeconds: b.OKSeconds}
				for name, n := range b.Categories {
					if v.categories[name] == nil {
						v.categories[name] = &[minuteCount]float64{}
					}
					v.categories[name][slot] = n
				}
			}
			v.since = c.Minute - minuteCount
			anomalies := v.anomalies(c.Minute - 1)
			require.Equal(t, keys(c.Anomalies), keys(anomalies))
			for signal, want := range c.Anomalies {
				f.close(t, want.Z, anomalies[signal].z, signal+" z")
				require.Equal(t, want.Anomalous, anomalies[signal].anomalous, signal)
			}
			trends := v.trends(c.Minute-1, c.Minute)
			require.Equal(t, keys(c.Trends), keys(trends))
			for category, want := range c.Trends {
				require.Equal(t, want.State, trendStates[trends[category].state], category)
				f.close(t, want.PValue, trends[category].pValue, category+" p")
				f.close(t, want.SlopePerMinute, trends[category].slope, category+" slope")
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
