package migrationanalyticsconnector

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestSpread(t *testing.T) {
	const m = int64(1_000_000) // a minute number
	at := func(minute int64, second float64) float64 { return float64(minute*minuteWidth) + second }
	tests := []struct {
		name     string
		from, to float64
		want     map[int64]float64
	}{
		{"one whole minute", at(m, 0), at(m+1, 0), map[int64]float64{m: 1}},
		{"an export at second 30", at(m, 30), at(m+1, 30), map[int64]float64{m: 0.5, m + 1: 0.5}},
		{"three minutes", at(m, 45), at(m+3, 15), map[int64]float64{m: 0.1, m + 1: 0.4, m + 2: 0.4, m + 3: 0.1}},
		{"inside one minute", at(m, 10), at(m, 20), map[int64]float64{m: 1}},
		{"no span", at(m, 20), at(m, 20), map[int64]float64{m: 1}},
		{"a span of two hours keeps its last hour's share", at(m-119, 0), at(m+1, 0), func() map[int64]float64 {
			out := map[int64]float64{}
			for k := m - minuteCount + 1; k <= m; k++ {
				out[k] = 1.0 / 120
			}
			return out
		}()},
		{"a point older than the hour", at(m-minuteCount, 10), at(m-minuteCount, 10), map[int64]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[int64]float64{}
			spread(tt.from, tt.to, m-minuteCount+1, func(minute int64, share float64) { got[minute] += share })
			require.Len(t, got, len(tt.want))
			for minute, share := range tt.want {
				require.InDelta(t, share, got[minute], 1e-12, "minute %d", minute-m)
			}
		})
	}
}

// fleetMinute is what one instance did in one minute: the ground truth of the health tests.
type fleetMinute struct {
	ok, slow      int // successful calls; how many of them took 0.9 s (the others 0.1 s)
	timeout, netw int // failed calls by category
	dropped       int
}

func (f fleetMinute) durations() []float64 {
	out := make([]float64, f.ok)
	for i := range out {
		out[i] = 0.1
		if i < f.slow {
			out[i] = 0.9
		}
	}
	return out
}

// exportHistory sends each instance's cumulative state at the end of every minute of `plan`
// (minute k at minute first+k), as the SDK exports it, plus its CPU share.
func exportHistory(t *testing.T, h *harness, service string, first int64, plan [][]fleetMinute, cpu []float64, offset int64) {
	t.Helper()
	mv := []string{attrMigration, "m", attrOperation, "op", attrVersion, "2.0"}
	for j := range plan[0] {
		id := "i" + itoa(j)
		start := first*minuteWidth + offset - 10
		var ok, failed, timeout, netw, dropped int64
		var durations []float64
		for k := -1; k < len(plan); k++ {
			if k >= 0 {
				f := plan[k][j]
				ok += int64(f.ok)
				failed += int64(f.timeout + f.netw)
				timeout += int64(f.timeout)
				netw += int64(f.netw)
				dropped += int64(f.dropped)
				durations = append(durations, f.durations()...)
			}
			at := (first+int64(k)+1)*minuteWidth + offset
			in := newInstance(service, id)
			in.sum(metricCalls, true, start, at, ok, append(mv, attrOutcome, "ok")...)
			in.sum(metricCalls, true, start, at, failed, append(mv, attrOutcome, "error")...)
			in.sum(metricErrors, true, start, at, timeout, append(mv, "error.type", "TimeoutError", attrCategory, "timeout")...)
			in.sum(metricErrors, true, start, at, netw, append(mv, "error.type", "OSError", attrCategory, "network")...)
			in.sum(metricDropped, true, start, at, dropped, "reason", "queue_full")
			in.histogram(metricDuration, true, start, at, histOf(durations, 6), mv...)
			g := in.sm.Metrics().AppendEmpty()
			g.SetName(metricCPU)
			dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts(at))
			dp.SetDoubleValue(cpu[j])
			h.send(t, in)
		}
	}
}

// truth is the fleet's per-minute figures from the plan, summed over the instances.
func truth(plan [][]fleetMinute) (requests, errRate, latency, timeoutRate, networkRate []float64) {
	for _, minute := range plan {
		var n, e, okCount, okSeconds, to, nw float64
		for _, f := range minute {
			n += float64(f.ok + f.timeout + f.netw)
			e += float64(f.timeout + f.netw)
			okCount += float64(f.ok)
			for _, d := range f.durations() {
				okSeconds += d
			}
			to += float64(f.timeout)
			nw += float64(f.netw)
		}
		requests = append(requests, n)
		errRate = append(errRate, e/n)
		latency = append(latency, okSeconds/okCount)
		timeoutRate = append(timeoutRate, to/n)
		networkRate = append(networkRate, nw/n)
	}
	return
}

// TestFleetHealthOfThreeInstances: three processes export cumulative state every minute for 40
// minutes; the fleet's score, anomalies and trends are those of the summed ground truth: a request
// surge in the judged minute, timeouts rising, the score from the last 5 minutes' errors, slow
// calls, the mean CPU and the calls lost.
func TestFleetHealthOfThreeInstances(t *testing.T) {
	const minutes = 40
	current := t0 / minuteWidth
	first := current - minutes
	plan := make([][]fleetMinute, minutes)
	for k := range plan {
		for j := range 3 {
			f := fleetMinute{ok: 90 + 10*j, slow: 2 + j, timeout: 1 + k/8, netw: 2}
			if j == 0 {
				f.dropped = 3
			}
			if k == minutes-1 {
				f.ok *= 3 // the surge: three times the calls in the judged minute
			}
			plan[k] = append(plan[k], f)
		}
	}
	cpu := []float64{0.2, 0.4, 0.6}
	cfg := defaultConfig()
	cfg.HealthDelay = 0
	h := newHarness(t, cfg)
	h.now = t0 + 30
	exportHistory(t, h, "svc", first, plan, cpu, 0)
	md := h.emit(t)
	mv := func(more ...string) []string {
		return append([]string{attrMigration, "m", attrVersion, "2.0"}, more...)
	}

	// The score over the minutes current-4 .. current (the current one has no calls yet).
	var n, e, ok, slow, dropped float64
	for _, minute := range plan[minutes-4:] {
		for _, f := range minute {
			n += float64(f.ok + f.timeout + f.netw)
			e += float64(f.timeout + f.netw)
			ok += float64(f.ok)
			slow += float64(f.slow)
			dropped += float64(f.dropped)
		}
	}
	loss := dropped / (dropped + n)
	factors := map[string]float64{
		inputErrors:     1 - math.Min(1, e/n/0.05),
		inputLatency:    1 - math.Min(1, slow/ok/0.05),
		inputSaturation: 1 - 0.4,
		inputLoss:       1 - math.Min(1, loss/0.01),
	}
	score := 100 * (0.4*factors[inputErrors] + 0.3*factors[inputLatency] + 0.15*factors[inputSaturation] + 0.15*factors[inputLoss])
	require.InDelta(t, score, gauge(t, md, metricHealthScore, mv()...), 1e-9)
	for input, want := range factors {
		require.InDelta(t, want, gauge(t, md, metricHealthFactor, mv(attrInput, input)...), 1e-9, input)
	}
	require.Less(t, score, 100.0)

	// Anomalies of the judged minute (the last one) against the 30 before it.
	requests, errRate, latency, timeoutRate, networkRate := truth(plan)
	last, base := minutes-1, minutes-1-baselineMinutes
	wantZ := map[string]anomaly{}
	wantZ[signalRequestRate], _ = robustZ(requests[base:last], requests[last], countFloor(medianOf(requests[base:last])), true)
	wantZ[signalErrorRate], _ = robustZ(errRate[base:last], errRate[last], rateFloor(medianOf(errRate[base:last]), requests[last]), false)
	wantZ[signalLatency], _ = robustZ(latency[base:last], latency[last], latencyFloor(medianOf(latency[base:last])), false)
	for signal, want := range wantZ {
		require.InDelta(t, want.z, gauge(t, md, metricAnomalyScore, mv(attrMetric, signal)...), 1e-9*math.Abs(want.z)+1e-9, signal)
		require.Equal(t, b2f(want.anomalous), gauge(t, md, metricAnomaly, mv(attrMetric, signal)...), signal)
	}
	require.Equal(t, 1.0, gauge(t, md, metricAnomaly, mv(attrMetric, signalRequestRate)...), "the surge")
	require.Equal(t, 0.0, gauge(t, md, metricAnomaly, mv(attrMetric, signalLatency)...))

	// Trends over the 30 minutes up to the judged one.
	var trendMinutesSeen []float64
	for k := minutes - trendMinutes; k < minutes; k++ {
		trendMinutesSeen = append(trendMinutesSeen, float64(first+int64(k)))
	}
	for category, rates := range map[string][]float64{"timeout": timeoutRate, "network": networkRate} {
		want := errorTrend(trendMinutesSeen, rates[minutes-trendMinutes:])
		require.Equal(t, float64(want.state), gauge(t, md, metricErrorTrend, mv(attrCategory, category)...), category)
	}
	require.Equal(t, 1.0, gauge(t, md, metricErrorTrend, mv(attrCategory, "timeout")...), "timeouts rise")

	// One series per version (and signal, category), whatever the number of instances.
	points := map[string]int{}
	for _, rm := range md.ResourceMetrics().All() {
		_, has := rm.Resource().Attributes().Get(attrServiceInstance)
		require.False(t, has)
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Type() == pmetric.MetricTypeGauge {
					points[m.Name()] += m.Gauge().DataPoints().Len()
				}
			}
		}
	}
	require.Equal(t, 1, points[metricHealthScore])
	require.Equal(t, 4, points[metricHealthFactor])
	require.Equal(t, 3, points[metricAnomaly])
	require.Equal(t, 3, points[metricAnomalyScore])
	require.Equal(t, 2, points[metricErrorTrend])
}

// TestExportTimesDoNotMoveTheMinutes: the same steady calls exported at second 0 or at second 37
// of each minute give the same per-minute figures, so no anomaly comes from when processes export.
func TestExportTimesDoNotMoveTheMinutes(t *testing.T) {
	const minutes = 35
	first := t0/minuteWidth - minutes
	plan := make([][]fleetMinute, minutes)
	for k := range plan {
		plan[k] = []fleetMinute{{ok: 120, timeout: 2}, {ok: 60, timeout: 1}}
	}
	var figures [2]map[int64]minuteCounts
	for i, offset := range []int64{0, 37} {
		cfg := defaultConfig()
		cfg.HealthDelay = 0
		h := newHarness(t, cfg)
		h.now = t0 + 50
		exportHistory(t, h, "svc", first, plan, []float64{0, 0}, offset)
		v := h.logs.state.health[healthKey{"svc", "m", "2.0"}]
		require.NotNil(t, v)
		figures[i] = map[int64]minuteCounts{}
		for m := first + 1; m < first+minutes; m++ {
			figures[i][m], _ = v.at(m)
		}
		md := h.emit(t)
		for _, signal := range []string{signalRequestRate, signalErrorRate, signalLatency} {
			require.Equal(t, 0.0, gauge(t, md, metricAnomaly, attrMigration, "m", attrVersion, "2.0", attrMetric, signal), "offset %d %s", offset, signal)
		}
	}
	for m, want := range figures[0] {
		got := figures[1][m]
		require.InDelta(t, want.requests, got.requests, 1e-9, "minute %d", m-first)
		require.InDelta(t, 183.0, got.requests, 1e-9, "minute %d", m-first)
		require.InDelta(t, want.errors, got.errors, 1e-9)
		require.InDelta(t, want.okSeconds, got.okSeconds, 1e-9)
	}
}

// TestAnomaliesWaitForTrackedMinutes: a collector that just started has no history; the minutes
// before it held anything are not "no calls" (which would make every first minute a surge).
func TestAnomaliesWaitForTrackedMinutes(t *testing.T) {
	v := newVersionMinutes()
	const now = int64(1_000_000)
	for m := now - 12; m < now; m++ {
		slot, ok := v.slot(m)
		require.True(t, ok)
		v.counts[slot] = minuteCounts{requests: 100, ok: 100, okSeconds: 10}
	}
	tests := []struct {
		judged int64
		want   bool
	}{
		{now - 3, false}, // 9 minutes before it: too few to judge
		{now - 2, true},  // 10 minutes
		{now - 1, true},
	}
	for _, tt := range tests {
		_, judged := v.anomalies(tt.judged)[signalRequestRate]
		require.Equal(t, tt.want, judged, "judged minute %d", tt.judged-now)
	}
	require.False(t, v.anomalies(now - 1)[signalRequestRate].anomalous)
	// Once tracked, a drop is one: 10 calls against 100 a minute (z = -9).
	slot, _ := v.slot(now)
	v.counts[slot] = minuteCounts{requests: 10}
	drop := v.anomalies(now)[signalRequestRate]
	require.True(t, drop.anomalous, "%+v", drop)
	require.InDelta(t, -9.0, drop.z, 1e-12)
}

// TestHealthDelayAndExpiry: the judged minute is the last that ended health_delay ago, and a
// version with no calls in the last hour leaves the output and the state.
func TestHealthDelayAndExpiry(t *testing.T) {
	const minutes = 35
	current := t0 / minuteWidth
	plan := make([][]fleetMinute, minutes)
	for k := range plan {
		plan[k] = []fleetMinute{{ok: 100}}
	}
	plan[minutes-3][0].ok = 400 // a surge in minute current-3
	tests := []struct {
		name  string
		delay int64
		want  float64
	}{
		{"the last minute is judged at once", 0, 0},
		{"with 90 s, 20 s into the minute, it is current-3", 90, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.HealthDelay = time.Duration(tt.delay) * time.Second
			h := newHarness(t, cfg)
			h.now = t0 + 20
			exportHistory(t, h, "svc", current-minutes, plan, []float64{0}, 0)
			md := h.emit(t)
			require.Equal(t, tt.want, gauge(t, md, metricAnomaly, attrMigration, "m", attrVersion, "2.0", attrMetric, signalRequestRate))
			h.now = t0 + 61*minuteWidth
			md = h.emit(t)
			_, held := lookup(md, metricHealthScore, attrMigration, "m", attrVersion, "2.0")
			require.False(t, held, "an hour without calls")
			require.Empty(t, h.logs.state.health)
			require.Empty(t, h.logs.state.services)
		})
	}
}
