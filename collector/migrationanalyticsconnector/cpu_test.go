package migrationanalyticsconnector

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFleetCPUVerdict: the cpu verdict from migration.state.cpu merged over instances, judged as
// the latency verdict is (issue 14: a version that burns 30 % more CPU is worse).
func TestFleetCPUVerdict(t *testing.T) {
	const m, op = "render-v2", "render"
	tests := []struct {
		name string
		// CPU seconds per call: the control's and the candidate's median; calls per version and
		// instance (two instances); a side not measured sends no migration.state.cpu (measure_cpu off).
		control, candidate float64
		perInstance        int
		measured           [2]bool
		want               float64
		tested             bool
	}{
		{"30 % more CPU is worse", 0.004, 0.0052, 200, [2]bool{true, true}, -1, true},
		{"30 % less CPU is better", 0.004, 0.0028, 200, [2]bool{true, true}, 1, true},
		{"a 1 % shift is below cpu_min_effect", 0.004, 0.00404, 200, [2]bool{true, true}, 0, true},
		{"too few calls for min_samples", 0.004, 0.0052, 10, [2]bool{true, true}, 0, true},
		{"only the control measured: untested", 0.004, 0.0052, 200, [2]bool{true, false}, 0, false},
		{"neither measured: no cpu verdict", 0.004, 0.0052, 200, [2]bool{false, false}, 0, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			r := rand.New(rand.NewPCG(21, uint64(i)))
			// Durations the same on both sides: the latency verdict stays inconclusive, only CPU differs.
			durations := [2][]float64{lognormal(r, 2*tt.perInstance, 0.010, 0.2), lognormal(r, 2*tt.perInstance, 0.010, 0.2)}
			cpu := [2][]float64{lognormal(r, 2*tt.perInstance, tt.control, 0.2), lognormal(r, 2*tt.perInstance, tt.candidate, 0.2)}
			versions := [2]string{"1.0", "2.0"}
			for n, id := range []string{"a", "b"} {
				in := newInstance("shop", id)
				cumulative := n == 0 // one instance of each temporality
				part := func(values []float64) []float64 { return values[n*tt.perInstance : (n+1)*tt.perInstance] }
				for side, version := range versions {
					attrs := []string{attrMigration, m, attrOperation, op, attrVersion, version}
					in.sum(metricCalls, cumulative, t0-30, t0, int64(tt.perInstance), append(attrs, attrOutcome, "ok")...)
					in.histogram(metricDuration, cumulative, t0-30, t0, histOf(part(durations[side]), 6), attrs...)
					if tt.measured[side] {
						in.histogram(metricStateCPU, cumulative, t0-30, t0, histOf(part(cpu[side]), 6), attrs...)
					}
				}
				h.send(t, in)
			}
			md := h.emit(t)
			attrs := []string{attrMigration, m, attrOperation, op, attrVersion, "2.0", attrMetric, "cpu"}
			if tt.measured == [2]bool{} {
				_, found := lookup(md, "migration.fleet.verdict", attrs...)
				require.False(t, found, "CPU is judged only where it was measured, as in process")
				require.Equal(t, 0.0, gauge(t, md, "migration.fleet.verdict", append(attrs[:6:6], attrMetric, "latency")...))
				return
			}
			require.Equal(t, tt.want, gauge(t, md, "migration.fleet.verdict", attrs...))
			p, hasP := lookup(md, "migration.fleet.verdict.p_value", attrs...)
			effect, hasEffect := lookup(md, "migration.fleet.verdict.effect", attrs...)
			require.Equal(t, tt.tested, hasP)
			require.Equal(t, tt.tested, hasEffect)
			if !tt.tested {
				return
			}
			// The same family as the latency and error-rate verdicts: recompute it from the pooled
			// values (merging is exact, so the pooled histogram is the merged one) and compare.
			family := []verdict{
				shiftVerdict("latency", m, op, "2.0", histOf(durations[0], 6), histOf(durations[1], 6)),
				errorRateVerdict(m, op, "2.0", 0, float64(2*tt.perInstance), 0, float64(2*tt.perInstance)),
				shiftVerdict("cpu", m, op, "2.0", histOf(cpu[0], 6), histOf(cpu[1], 6)),
			}
			judgeFamily(family, h.logs.cfg)
			want := family[2]
			require.InDelta(t, want.adjusted, p, 1e-12)
			require.InDelta(t, want.estimate, effect, 1e-15)
			require.Equal(t, float64(want.state), tt.want)
			// The Hodges-Lehmann shift of the raw values, within the histogram's resolution.
			raw := []verdict{shiftVerdictWeighted("cpu", m, op, "2.0", weightedOf(cpu[0]), weightedOf(cpu[1]))}
			require.InDelta(t, raw[0].estimate, effect, 0.011*tt.control)
		})
	}
}

// TestFleetCPUPerCall: migration.fleet.performance.cpu per operation, version and window from the
// merged histograms (percentiles within the scale's 0.55 %, the mean exact); nothing without CPU state.
func TestFleetCPUPerCall(t *testing.T) {
	h := newHarness(t, nil)
	r := rand.New(rand.NewPCG(31, 32))
	const m = "render-v2"
	a, b := lognormal(r, 300, 0.004, 0.4), lognormal(r, 200, 0.004, 0.4)
	for n, values := range [][]float64{a, b} {
		in := newInstance("shop", []string{"a", "b"}[n])
		in.histogram(metricStateCPU, n == 0, t0-30, t0, histOf(values, 6), attrMigration, m, attrOperation, "render", attrVersion, "1.0")
		in.histogram(metricDuration, n == 0, t0-30, t0, histOf(values, 6), attrMigration, m, attrOperation, "search", attrVersion, "1.0")
		h.send(t, in)
	}
	md := h.emit(t)
	pooled := append(append([]float64{}, a...), b...)
	for _, window := range windowNames {
		series := []string{attrMigration, m, attrOperation, "render", attrVersion, "1.0", attrWindow, window, attrStatistic}
		for _, q := range []float64{50, 95, 99} {
			got := gauge(t, md, "migration.fleet.performance.cpu", append(series, "p"+itoa(int(q)))...)
			require.InDelta(t, 0, got/numpyPercentile(pooled, q)-1, 0.0055, "p%v", q)
		}
		require.InDelta(t, mean(pooled), gauge(t, md, "migration.fleet.performance.cpu", append(series, "mean")...), 1e-15)
		_, found := lookup(md, "migration.fleet.performance.cpu", attrMigration, m, attrOperation, "search", attrVersion, "1.0", attrWindow, window, attrStatistic, "p50")
		require.False(t, found, "an operation without CPU state has no CPU figures")
	}
}
