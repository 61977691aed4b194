package migrationanalyticsconnector

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The shared fixture: tests/fixtures/fleet_statistics.json, written by
// tests/fixtures/make_fleet_statistics.py from the Python functions and checked by
// tests/test_fleet_fixtures.py, so the two implementations cannot drift apart.
var fixturePath = filepath.Join("..", "..", "tests", "fixtures", "fleet_statistics.json")

type weightedJSON [][2]float64

func (w weightedJSON) sample() []weightedValue {
	out := make([]weightedValue, len(w))
	for i, p := range w {
		out[i] = weightedValue{value: p[0], count: p[1]}
	}
	return out
}

type fixture struct {
	Tolerance struct {
		Relative float64 `json:"relative"`
		Absolute float64 `json:"absolute"`
	} `json:"tolerance"`
	MannWhitney []struct {
		Control, Candidate weightedJSON
		U                  float64 `json:"u"`
		PValue             float64 `json:"p_value"`
		Method             string  `json:"method"`
	} `json:"mann_whitney"`
	HodgesLehmann []struct {
		Control, Candidate weightedJSON
		Confidence         float64  `json:"confidence"`
		Estimate           float64  `json:"estimate"`
		Low                *float64 `json:"low"`
		High               *float64 `json:"high"`
	} `json:"hodges_lehmann"`
	TwoProportion []struct {
		FailuresControl   float64 `json:"failures_control"`
		NControl          float64 `json:"n_control"`
		FailuresCandidate float64 `json:"failures_candidate"`
		NCandidate        float64 `json:"n_candidate"`
		PValue            float64 `json:"p_value"`
		Difference        float64 `json:"difference"`
		Low               float64 `json:"low"`
		High              float64 `json:"high"`
	} `json:"two_proportion"`
	Holm []struct {
		PValues  []float64 `json:"p_values"`
		Adjusted []float64 `json:"adjusted"`
	} `json:"holm"`
	SampleRatioMismatch []struct {
		Observed  []float64 `json:"observed"`
		Shares    []float64 `json:"shares"`
		PValue    float64   `json:"p_value"`
		ChiSquare float64   `json:"chi_square"`
	} `json:"sample_ratio_mismatch"`
	Percentiles []struct {
		Sample weightedJSON `json:"sample"`
		Q      []float64    `json:"q"`
		Values []float64    `json:"values"`
	} `json:"percentiles"`
	HyperLogLog struct {
		Sketches []struct {
			Seed      uint64  `json:"seed"`
			N         int     `json:"n"`
			Registers string  `json:"registers"`
			Estimate  float64 `json:"estimate"`
		} `json:"sketches"`
		Union struct {
			Parts    [][2]uint64 `json:"parts"`
			Estimate float64     `json:"estimate"`
		} `json:"union"`
	} `json:"hyperloglog"`
	Verdicts struct {
		Settings struct {
			MinSamples         int     `json:"min_samples"`
			Alpha              float64 `json:"alpha"`
			LatencyMinEffect   float64 `json:"latency_min_effect"`
			ErrorRateMinEffect float64 `json:"error_rate_min_effect"`
			CostMinEffect      float64 `json:"cost_min_effect"`
			QualityMinEffect   float64 `json:"quality_min_effect"`
			CPUMinEffect       float64 `json:"cpu_min_effect"`
		} `json:"settings"`
		Comparisons []struct {
			Metric          string       `json:"metric"`
			Operation       string       `json:"operation"`
			Control         weightedJSON `json:"control"`
			Candidate       weightedJSON `json:"candidate"`
			ControlCounts   [2]float64   `json:"control_counts"`
			CandidateCounts [2]float64   `json:"candidate_counts"`
			Expected        struct {
				State          string   `json:"state"`
				PValue         *float64 `json:"p_value"`
				AdjustedPValue *float64 `json:"adjusted_p_value"`
				Estimate       *float64 `json:"estimate"`
			} `json:"expected"`
		} `json:"comparisons"`
	} `json:"verdicts"`
}

func loadFixture(t *testing.T) *fixture {
	t.Helper()
	data, err := os.ReadFile(fixturePath)
	require.NoError(t, err)
	var f fixture
	require.NoError(t, json.Unmarshal(data, &f))
	require.NotEmpty(t, f.MannWhitney, "an empty fixture would prove nothing")
	return &f
}

func (f *fixture) close(t *testing.T, expected, actual float64, what string) {
	t.Helper()
	if math.IsInf(expected, 0) && expected == actual {
		return
	}
	limit := math.Max(f.Tolerance.Absolute, f.Tolerance.Relative*math.Abs(expected))
	if !(math.Abs(actual-expected) <= limit) {
		t.Errorf("%s: got %.17g, the Python functions give %.17g (tolerance %g)", what, actual, expected, limit)
	}
}

func bound(p *float64, inf float64) float64 {
	if p == nil {
		return inf
	}
	return *p
}

func TestFixtureMannWhitney(t *testing.T) {
	f := loadFixture(t)
	for i, c := range f.MannWhitney {
		r, err := mannWhitneyU(c.Control.sample(), c.Candidate.sample())
		require.NoError(t, err)
		f.close(t, c.U, r.u, "case "+itoa(i)+" u")
		f.close(t, c.PValue, r.pValue, "case "+itoa(i)+" p")
		require.Equal(t, c.Method == "exact", r.exact, "case %d method", i)
	}
}

func TestFixtureHodgesLehmann(t *testing.T) {
	f := loadFixture(t)
	for i, c := range f.HodgesLehmann {
		r, err := hodgesLehmann(c.Control.sample(), c.Candidate.sample(), c.Confidence)
		require.NoError(t, err)
		f.close(t, c.Estimate, r.estimate, "case "+itoa(i)+" estimate")
		f.close(t, bound(c.Low, math.Inf(-1)), r.low, "case "+itoa(i)+" low")
		f.close(t, bound(c.High, math.Inf(1)), r.high, "case "+itoa(i)+" high")
	}
}

func TestFixtureTwoProportion(t *testing.T) {
	f := loadFixture(t)
	for i, c := range f.TwoProportion {
		r, err := twoProportion(c.FailuresControl, c.NControl, c.FailuresCandidate, c.NCandidate, 0.95)
		require.NoError(t, err)
		f.close(t, c.PValue, r.pValue, "case "+itoa(i)+" p")
		f.close(t, c.Difference, r.difference, "case "+itoa(i)+" difference")
		f.close(t, c.Low, r.low, "case "+itoa(i)+" low")
		f.close(t, c.High, r.high, "case "+itoa(i)+" high")
	}
}

func TestFixtureHolm(t *testing.T) {
	f := loadFixture(t)
	for i, c := range f.Holm {
		got := holm(c.PValues)
		require.Len(t, got, len(c.Adjusted))
		for j := range got {
			f.close(t, c.Adjusted[j], got[j], "case "+itoa(i)+" p["+itoa(j)+"]")
		}
	}
}

func TestFixtureSampleRatioMismatch(t *testing.T) {
	f := loadFixture(t)
	for i, c := range f.SampleRatioMismatch {
		p, chi, err := sampleRatioMismatch(c.Observed, c.Shares)
		require.NoError(t, err)
		f.close(t, c.PValue, p, "case "+itoa(i)+" p")
		f.close(t, c.ChiSquare, chi, "case "+itoa(i)+" chi-square")
	}
}

func TestFixturePercentiles(t *testing.T) {
	f := loadFixture(t)
	for i, c := range f.Percentiles {
		sample := sortWeighted(c.Sample.sample())
		for j, q := range c.Q {
			f.close(t, c.Values[j], percentile(sample, q), "case "+itoa(i)+" q"+itoa(int(q)))
		}
	}
}

func fixtureSketch(seed uint64, n int) *hll {
	h := &hll{}
	for i := range n {
		h.add(splitmix64(seed*1_000_000_007 + uint64(i)))
	}
	return h
}

func TestFixtureHyperLogLog(t *testing.T) {
	f := loadFixture(t)
	for _, c := range f.HyperLogLog.Sketches {
		h := fixtureSketch(c.Seed, c.N)
		want, err := hex.DecodeString(c.Registers)
		require.NoError(t, err)
		require.Equal(t, want, h[:], "registers of seed %d, n %d differ from the Python sketch", c.Seed, c.N)
		f.close(t, c.Estimate, h.estimate(), "estimate n="+itoa(c.N))
	}
	union := &hll{}
	for _, p := range f.HyperLogLog.Union.Parts {
		union.merge(fixtureSketch(p[0], int(p[1])))
	}
	f.close(t, f.HyperLogLog.Union.Estimate, union.estimate(), "union estimate")
}

func TestFixtureVerdicts(t *testing.T) {
	f := loadFixture(t)
	s := f.Verdicts.Settings
	cfg := defaultConfig()
	// The fixture's settings are AnalyticsSettings' defaults: the component's are the same.
	require.Equal(t, [6]float64{float64(s.MinSamples), s.Alpha, s.LatencyMinEffect, s.ErrorRateMinEffect, s.CostMinEffect, s.QualityMinEffect},
		[6]float64{float64(cfg.MinSamples), cfg.Alpha, cfg.LatencyMinEffect, cfg.ErrorRateMinEffect, cfg.CostMinEffect, cfg.QualityMinEffect}, "default thresholds")
	require.Equal(t, s.CPUMinEffect, cfg.CPUMinEffect, "default cpu_min_effect")
	cfg.MinSamples, cfg.Alpha = s.MinSamples, s.Alpha
	cfg.LatencyMinEffect, cfg.ErrorRateMinEffect = s.LatencyMinEffect, s.ErrorRateMinEffect
	cfg.CostMinEffect, cfg.QualityMinEffect, cfg.CPUMinEffect = s.CostMinEffect, s.QualityMinEffect, s.CPUMinEffect
	metrics := map[string]bool{}
	var verdicts []verdict
	for _, c := range f.Verdicts.Comparisons {
		if c.Metric == "error_rate" {
			verdicts = append(verdicts, errorRateVerdict("m", c.Operation, "2.0",
				c.ControlCounts[0], c.ControlCounts[1], c.CandidateCounts[0], c.CandidateCounts[1]))
			continue
		}
		verdicts = append(verdicts, shiftVerdictWeighted(c.Metric, "m", c.Operation, "2.0", c.Control.sample(), c.Candidate.sample()))
		metrics[c.Metric] = true
	}
	require.Equal(t, map[string]bool{"latency": true, "cpu": true, "cost": true, "quality": true}, metrics, "every shift verdict is in the family")
	judgeFamily(verdicts, cfg)
	states := map[int]string{1: "better", -1: "worse", 0: "inconclusive"}
	for i, c := range f.Verdicts.Comparisons {
		v := verdicts[i]
		what := c.Metric + " " + c.Operation
		require.Equal(t, c.Expected.State, states[v.state], what)
		require.NotNil(t, c.Expected.PValue, what)
		f.close(t, *c.Expected.PValue, v.pValue, what+" p")
		f.close(t, *c.Expected.AdjustedPValue, v.adjusted, what+" adjusted p")
		f.close(t, *c.Expected.Estimate, v.estimate, what+" estimate")
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
