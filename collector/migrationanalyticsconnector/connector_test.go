package migrationanalyticsconnector

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otel-migration/otel-migration/collector/migrationanalyticsconnector/internal/metadata"
)

const t0 = int64(1_800_000_000) // a fixed "now" for the tests, in Unix seconds

func ts(sec int64) pcommon.Timestamp { return pcommon.Timestamp(sec * 1e9) }

// harness is the connector built by its factory, both halves, one sink, a settable clock.
type harness struct {
	logs    *logsHalf
	metrics *metricsHalf
	sink    *consumertest.MetricsSink
	now     int64
}

func newHarness(t *testing.T, cfg *Config) *harness { return newHarnessWithClock(t, cfg, false) }

// newHarnessWithClock: the test's settable clock, or the real one for tests of the timer (set
// before Start, so the emitting goroutine never races with the assignment).
func newHarnessWithClock(t *testing.T, cfg *Config, realClock bool) *harness {
	t.Helper()
	f := NewFactory()
	if cfg == nil {
		cfg = f.CreateDefaultConfig().(*Config)
	}
	sink := new(consumertest.MetricsSink)
	set := connectortest.NewNopSettings(metadata.Type)
	lc, err := f.CreateLogsToMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	mc, err := f.CreateMetricsToMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	h := &harness{logs: lc.(*logsHalf), metrics: mc.(*metricsHalf), sink: sink, now: t0}
	require.Same(t, h.logs.fleetConnector, h.metrics.fleetConnector, "both halves must share one state")
	h.logs.clock = func() time.Time { return time.Unix(h.now, 0) }
	if realClock {
		h.logs.clock = time.Now
	}
	require.NoError(t, lc.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, mc.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, lc.Shutdown(context.Background()))
		require.NoError(t, mc.Shutdown(context.Background()))
	})
	return h
}

// emit evaluates at the harness's clock and returns what the next consumer received.
func (h *harness) emit(t *testing.T) pmetric.Metrics {
	t.Helper()
	h.sink.Reset()
	require.NoError(t, h.logs.emit(context.Background()))
	all := h.sink.AllMetrics()
	require.Len(t, all, 1)
	return all[0]
}

// instance builds one process's export: its resource, then sums, histograms and sketches.
type instance struct {
	md pmetric.Metrics
	ld plog.Logs
	sm pmetric.ScopeMetrics
	sl plog.ScopeLogs
}

func newInstance(service, id string) *instance {
	in := &instance{md: pmetric.NewMetrics(), ld: plog.NewLogs()}
	rm := in.md.ResourceMetrics().AppendEmpty()
	rl := in.ld.ResourceLogs().AppendEmpty()
	for _, res := range []pcommon.Resource{rm.Resource(), rl.Resource()} {
		res.Attributes().PutStr(attrServiceName, service)
		if id != "" {
			res.Attributes().PutStr(attrServiceInstance, id)
		}
	}
	in.sm = rm.ScopeMetrics().AppendEmpty()
	in.sl = rl.ScopeLogs().AppendEmpty()
	return in
}

func putAttrs(m pcommon.Map, attrs ...string) {
	for i := 0; i+1 < len(attrs); i += 2 {
		m.PutStr(attrs[i], attrs[i+1])
	}
}

func (in *instance) sum(name string, cumulative bool, start, at int64, value int64, attrs ...string) {
	m := in.sm.Metrics().AppendEmpty()
	m.SetName(name)
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	if cumulative {
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(ts(start))
	dp.SetTimestamp(ts(at))
	dp.SetIntValue(value)
	putAttrs(dp.Attributes(), attrs...)
}

func (in *instance) histogram(name string, cumulative bool, start, at int64, h *expHist, attrs ...string) {
	m := in.sm.Metrics().AppendEmpty()
	m.SetName(name)
	e := m.SetEmptyExponentialHistogram()
	e.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	if cumulative {
		e.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	dp := e.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(ts(start))
	dp.SetTimestamp(ts(at))
	dp.SetScale(h.scale)
	dp.SetCount(h.count)
	dp.SetSum(h.sum)
	dp.SetZeroCount(h.zero)
	dp.Positive().SetOffset(h.pos.offset)
	dp.Positive().BucketCounts().FromRaw(h.pos.counts)
	putAttrs(dp.Attributes(), attrs...)
}

func (in *instance) sketch(migration, version, kind string, bucketStart int64, subjects []uint64) {
	h := &hll{}
	for _, s := range subjects {
		h.add(splitmix64(s))
	}
	lr := in.sl.LogRecords().AppendEmpty()
	lr.SetEventName(sketchEvent)
	lr.Body().SetEmptyBytes().FromRaw(h[:])
	putAttrs(lr.Attributes(), attrMigration, migration, attrVersion, version, attrSketchKind, kind)
	lr.Attributes().PutInt(attrSketchStart, bucketStart)
	lr.Attributes().PutInt(attrSketchWidth, shortWidth)
	lr.Attributes().PutInt(attrSketchPrecision, hllPrecision)
}

func (h *harness) send(t *testing.T, in *instance) {
	t.Helper()
	require.NoError(t, h.metrics.ConsumeMetrics(context.Background(), in.md))
	require.NoError(t, h.logs.ConsumeLogs(context.Background(), in.ld))
}

func span64(from, to int) []uint64 {
	out := make([]uint64, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, uint64(i))
	}
	return out
}

// gauge finds the value of the series with exactly these attributes.
func gauge(t *testing.T, md pmetric.Metrics, name string, attrs ...string) float64 {
	t.Helper()
	v, ok := lookup(md, name, attrs...)
	require.True(t, ok, "no series %s %v", name, attrs)
	return v
}

func lookup(md pmetric.Metrics, name string, attrs ...string) (float64, bool) {
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() != name {
					continue
				}
				var points pmetric.NumberDataPointSlice
				if m.Type() == pmetric.MetricTypeGauge {
					points = m.Gauge().DataPoints()
				} else {
					points = m.Sum().DataPoints()
				}
				for _, dp := range points.All() {
					if dp.Attributes().Len() != len(attrs)/2 {
						continue
					}
					match := true
					for i := 0; i+1 < len(attrs); i += 2 {
						if v, ok := dp.Attributes().Get(attrs[i]); !ok || v.AsString() != attrs[i+1] {
							match = false
						}
					}
					if match {
						if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
							return float64(dp.IntValue()), true
						}
						return dp.DoubleValue(), true
					}
				}
			}
		}
	}
	return 0, false
}

func lognormal(r *rand.Rand, n int, median, sigma float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = median * math.Exp(sigma*r.NormFloat64())
	}
	return out
}

// numpyPercentile is numpy.percentile's default (linear) on raw values: the ground truth.
func numpyPercentile(values []float64, q float64) float64 {
	s := append([]float64(nil), values...)
	sort.Float64s(s)
	pos := q / 100 * float64(len(s)-1)
	lo := math.Floor(pos)
	hi := math.Min(lo+1, float64(len(s)-1))
	return s[int(lo)] + (s[int(hi)]-s[int(lo)])*(pos-lo)
}

func mean(values []float64) float64 {
	s := 0.0
	for _, v := range values {
		s += v
	}
	return s / float64(len(values))
}

func TestTwoInstancesGiveTheFleetsFigures(t *testing.T) {
	h := newHarness(t, nil)
	r := rand.New(rand.NewPCG(11, 12))
	const m, op = "checkout-v2", "checkout"
	bucket := t0 / shortWidth * shortWidth

	// Instance a: cumulative counters and histograms, two exports (the second adds 50 ok calls).
	aV1 := lognormal(r, 240, 0.040, 0.3)
	a := newInstance("shop", "a")
	a.sum(metricCalls, true, t0-60, t0-30, 90, attrMigration, m, attrOperation, op, attrVersion, "1.0", attrOutcome, "ok")
	a.sum(metricCalls, true, t0-60, t0-30, 10, attrMigration, m, attrOperation, op, attrVersion, "1.0", attrOutcome, "error")
	a.histogram(metricDuration, true, t0-60, t0-30, histOf(aV1[:150], 6), attrMigration, m, attrOperation, op, attrVersion, "1.0")
	a.sketch(m, "1.0", kindUsers, bucket, span64(0, 600))
	a.sketch(m, "1.0", kindSessions, bucket, span64(50_000, 50_700))
	h.send(t, a)
	a = newInstance("shop", "a")
	a.sum(metricCalls, true, t0-60, t0, 140, attrMigration, m, attrOperation, op, attrVersion, "1.0", attrOutcome, "ok")
	a.sum(metricCalls, true, t0-60, t0, 10, attrMigration, m, attrOperation, op, attrVersion, "1.0", attrOutcome, "error")
	a.histogram(metricDuration, true, t0-60, t0, histOf(aV1, 6), attrMigration, m, attrOperation, op, attrVersion, "1.0")
	a.sketch(m, "1.0", kindUsers, bucket, span64(0, 650)) // the same bucket re-sent, grown: no double count
	h.send(t, a)

	// Instance b: delta temporality, both versions.
	bV1, bV2 := lognormal(r, 100, 0.040, 0.3), lognormal(r, 180, 0.050, 0.3)
	b := newInstance("shop", "b")
	b.sum(metricCalls, false, t0-60, t0, 100, attrMigration, m, attrOperation, op, attrVersion, "1.0", attrOutcome, "ok")
	b.sum(metricCalls, false, t0-60, t0, 80, attrMigration, m, attrOperation, op, attrVersion, "2.0", attrOutcome, "ok")
	b.sum(metricCalls, false, t0-60, t0, 20, attrMigration, m, attrOperation, op, attrVersion, "2.0", attrOutcome, "error")
	b.histogram(metricDuration, false, t0-60, t0, histOf(bV1, 6), attrMigration, m, attrOperation, op, attrVersion, "1.0")
	b.histogram(metricDuration, false, t0-60, t0, histOf(bV2, 5), attrMigration, m, attrOperation, op, attrVersion, "2.0")
	b.sketch(m, "1.0", kindUsers, bucket, span64(400, 1000))
	b.sketch(m, "2.0", kindUsers, bucket, span64(1000, 1300))
	b.sketch(m, "2.0", kindErrorUsers, bucket, span64(1000, 1020))
	h.send(t, b)

	h.now = t0 + 1
	md := h.emit(t)

	// The output carries the service and nothing of the instances.
	for _, rm := range md.ResourceMetrics().All() {
		_, has := rm.Resource().Attributes().Get(attrServiceInstance)
		require.False(t, has)
		for _, sm := range rm.ScopeMetrics().All() {
			for _, metric := range sm.Metrics().All() {
				require.NotContains(t, metric.Name(), "instance.id")
			}
		}
	}
	require.Equal(t, 2.0, gauge(t, md, "migration.fleet.instances"))

	for _, window := range []string{windowShort, windowLong} {
		// Counters: exact. 1.0: 90 + 50 (a) + 100 (b) ok, 10 errors; 2.0: 80 ok, 20 errors.
		require.Equal(t, 250.0, gauge(t, md, "migration.fleet.requests", attrMigration, m, attrOperation, op, attrVersion, "1.0", attrWindow, window))
		require.Equal(t, 10.0, gauge(t, md, "migration.fleet.errors", attrMigration, m, attrOperation, op, attrVersion, "1.0", attrWindow, window))
		require.Equal(t, 100.0, gauge(t, md, "migration.fleet.requests", attrMigration, m, attrOperation, op, attrVersion, "2.0", attrWindow, window))
		require.InDelta(t, 10.0/250, gauge(t, md, "migration.fleet.error.rate", attrMigration, m, attrVersion, "1.0", attrWindow, window), 1e-12)
		require.InDelta(t, 0.2, gauge(t, md, "migration.fleet.error.rate", attrMigration, m, attrVersion, "2.0", attrWindow, window), 1e-12)
		require.Equal(t, 240.0, gauge(t, md, "migration.fleet.calls", attrMigration, m, attrOperation, op, attrVersion, "1.0", attrOutcome, "ok", attrWindow, window))

		// Distinct users: 1,000 on 1.0 (0-649 from a, 400-999 from b), 300 on 2.0.
		u1 := gauge(t, md, "migration.fleet.adoption.users", attrMigration, m, attrVersion, "1.0", attrWindow, window)
		u2 := gauge(t, md, "migration.fleet.adoption.users", attrMigration, m, attrVersion, "2.0", attrWindow, window)
		require.InDelta(t, 1000, u1, 3*hllRelativeError*1000)
		require.InDelta(t, 300, u2, 3*hllRelativeError*300)
		require.InDelta(t, 700, gauge(t, md, "migration.fleet.adoption.sessions", attrMigration, m, attrVersion, "1.0", attrWindow, window), 3*hllRelativeError*700)
		require.InDelta(t, 300.0/1300, gauge(t, md, "migration.fleet.adoption.ratio", attrMigration, m, attrWindow, window), 0.01)
		require.InDelta(t, 1-20.0/300, gauge(t, md, "migration.fleet.error_free_users", attrMigration, m, attrVersion, "2.0", attrWindow, window), 0.01)
		require.Equal(t, 1.0, gauge(t, md, "migration.fleet.error_free_users", attrMigration, m, attrVersion, "1.0", attrWindow, window))

		// Percentiles from the merged histograms, within the documented 0.55 % of the pooled raw values.
		pooled := map[string][]float64{"1.0": append(append([]float64{}, aV1...), bV1...), "2.0": bV2}
		for version, values := range pooled {
			for _, q := range []float64{50, 95, 99} {
				got := gauge(t, md, "migration.fleet.performance.duration", attrMigration, m, attrOperation, op, attrVersion, version, attrWindow, window, attrStatistic, "p"+itoa(int(q)))
				// b's 2.0 is at scale 5: the error bound doubles there.
				bound := 0.0055
				if version == "2.0" {
					bound = 0.011
				}
				require.InDelta(t, 0, got/numpyPercentile(values, q)-1, bound, "p%v of %s", q, version)
			}
			require.InDelta(t, mean(values), gauge(t, md, "migration.fleet.performance.duration", attrMigration, m, attrOperation, op, attrVersion, version, attrWindow, window, attrStatistic, "mean"), 1e-12)
		}
		truth := improvement(numpyPercentile(pooled["1.0"], 95), numpyPercentile(pooled["2.0"], 95))
		got := gauge(t, md, "migration.fleet.performance.improvement", attrMigration, m, attrOperation, op, attrVersion, "2.0", attrWindow, window, attrStatistic, "p95")
		require.InDelta(t, truth, got, 1.5, "p95 improvement in points")
		require.Less(t, got, -10.0, "2.0 is about 25 % slower")
	}
	require.Equal(t, 1.0, gauge(t, md, "migration.fleet.adoption.stage", attrMigration, m, attrStage, "low"))
	require.Equal(t, 0.0, gauge(t, md, "migration.fleet.adoption.stage", attrMigration, m, attrStage, "adopted"))
	require.Equal(t, 0.0, gauge(t, md, "migration.fleet.adoption.stalled", attrMigration, m))
	// Verdicts: 2.0 is slower (25 %) and fails more often (20 % vs 4 %): both worse, one series each.
	require.Equal(t, -1.0, gauge(t, md, "migration.fleet.verdict", attrMigration, m, attrOperation, op, attrVersion, "2.0", attrMetric, "latency"))
	require.Equal(t, -1.0, gauge(t, md, "migration.fleet.verdict", attrMigration, m, attrOperation, op, attrVersion, "2.0", attrMetric, "error_rate"))
	require.InDelta(t, 0.16, gauge(t, md, "migration.fleet.verdict.effect", attrMigration, m, attrOperation, op, attrVersion, "2.0", attrMetric, "error_rate"), 1e-12)
	require.Less(t, gauge(t, md, "migration.fleet.verdict.p_value", attrMigration, m, attrOperation, op, attrVersion, "2.0", attrMetric, "latency"), 0.05)
	require.Equal(t, 0.0, gauge(t, md, "migration.fleet.refused", attrReason, reasonMaxSeries))
}

func TestTheSameVerdictAsPooledRawData(t *testing.T) {
	// The latency verdict from merged histograms equals the verdict on the raw values pooled.
	h := newHarness(t, nil)
	r := rand.New(rand.NewPCG(13, 14))
	control, candidate := lognormal(r, 400, 0.100, 0.2), lognormal(r, 400, 0.104, 0.2)
	for i, id := range []string{"w1", "w2", "w3", "w4"} {
		in := newInstance("api", id)
		in.histogram(metricDuration, false, t0-10, t0, histOf(control[i*100:(i+1)*100], 6), attrMigration, "m", attrOperation, "op", attrVersion, "1.0")
		in.histogram(metricDuration, false, t0-10, t0, histOf(candidate[i*100:(i+1)*100], 6), attrMigration, "m", attrOperation, "op", attrVersion, "2.0")
		h.send(t, in)
	}
	md := h.emit(t)
	raw := []verdict{shiftVerdictWeighted("latency", "m", "op", "2.0", weightedOf(control), weightedOf(candidate))}
	judgeFamily(raw, h.logs.cfg)
	require.Equal(t, float64(raw[0].state), gauge(t, md, "migration.fleet.verdict", attrMigration, "m", attrOperation, "op", attrVersion, "2.0", attrMetric, "latency"))
	require.InDelta(t, raw[0].estimate, gauge(t, md, "migration.fleet.verdict.effect", attrMigration, "m", attrOperation, "op", attrVersion, "2.0", attrMetric, "latency"), 0.011*0.1)
}

func TestMaxSeriesRefusesAndCounts(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxSeries = 6 // each version holds two: its calls series and its health minutes
	h := newHarness(t, cfg)
	in := newInstance("svc", "i")
	for _, version := range []string{"1", "2", "3", "4", "5"} {
		in.sum(metricCalls, false, t0-10, t0, 1, attrMigration, "m", attrOperation, "op", attrVersion, version, attrOutcome, "ok")
	}
	h.send(t, in)
	md := h.emit(t)
	require.Equal(t, 6.0, gauge(t, md, "migration.fleet.series"))
	require.Equal(t, 4.0, gauge(t, md, "migration.fleet.refused", attrReason, reasonMaxSeries))
	_, held := lookup(md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "3", attrWindow, windowShort)
	_, refused := lookup(md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "4", attrWindow, windowShort)
	require.True(t, held)
	require.False(t, refused)
}

func TestStaleStateLeavesTheWindowsAndMemory(t *testing.T) {
	h := newHarness(t, nil)
	in := newInstance("svc", "i")
	in.sum(metricCalls, false, t0-10, t0, 7, attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, "ok")
	in.sketch("m", "1.0", kindUsers, t0/shortWidth*shortWidth, span64(0, 10))
	h.send(t, in)

	h.now = t0 + 2*3600 // two hours later: out of the hour, still in the day
	md := h.emit(t)
	require.Equal(t, 0.0, gauge(t, md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrWindow, windowShort))
	require.Equal(t, 7.0, gauge(t, md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrWindow, windowLong))
	require.Equal(t, 0.0, gauge(t, md, "migration.fleet.instances"), "the instance fell silent beyond stream_ttl")

	h.now = t0 + 25*3600 // beyond the longest window: everything is gone
	md = h.emit(t)
	require.Equal(t, 0.0, gauge(t, md, "migration.fleet.series"))
	_, any := lookup(md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrWindow, windowLong)
	require.False(t, any)
	require.Empty(t, h.logs.state.series)
	require.Empty(t, h.logs.state.sketches)
	require.Empty(t, h.logs.state.history)

	// And a point older than the window is refused, not filed.
	old := newInstance("svc", "i")
	old.sum(metricCalls, false, t0, t0, 1, attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, "ok")
	h.send(t, old)
	md = h.emit(t)
	require.Equal(t, 1.0, gauge(t, md, "migration.fleet.refused", attrReason, reasonTooOld))
}

func TestCumulativeStreams(t *testing.T) {
	tests := []struct {
		name     string
		instance string
		points   [][3]int64 // start, time, value
		want     float64
		refused  string
	}{
		{"a new process counts from its start", "p", [][3]int64{{t0 - 30, t0 - 20, 5}, {t0 - 30, t0, 12}}, 12, ""},
		{"a process running before the collector: only what follows", "p", [][3]int64{{t0 - 7200, t0 - 20, 500}, {t0 - 7200, t0, 530}}, 30, ""},
		{"a reset (new start time) counts in full", "p", [][3]int64{{t0 - 60, t0 - 40, 10}, {t0 - 10, t0, 4}}, 14, ""},
		{"no instance id: refused", "", [][3]int64{{t0 - 60, t0, 10}}, 0, reasonNoInstance},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			for _, p := range tt.points {
				in := newInstance("svc", tt.instance)
				in.sum(metricCalls, true, p[0], p[1], p[2], attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, "ok")
				h.send(t, in)
			}
			md := h.emit(t)
			got, _ := lookup(md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrWindow, windowShort)
			require.Equal(t, tt.want, got)
			if tt.refused != "" {
				require.Equal(t, float64(len(tt.points)), gauge(t, md, "migration.fleet.refused", attrReason, tt.refused))
			}
		})
	}
}

func TestInvalidSketchesAreRefused(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(plog.LogRecord)
	}{
		{"short body", func(lr plog.LogRecord) { lr.Body().SetEmptyBytes().FromRaw(make([]byte, 100)) }},
		{"other precision", func(lr plog.LogRecord) { lr.Attributes().PutInt(attrSketchPrecision, 14) }},
		{"unknown kind", func(lr plog.LogRecord) { lr.Attributes().PutStr(attrSketchKind, "tenants") }},
		{"misaligned bucket", func(lr plog.LogRecord) { lr.Attributes().PutInt(attrSketchStart, t0/shortWidth*shortWidth+7) }},
		{"register beyond the largest rank", func(lr plog.LogRecord) { lr.Body().Bytes().SetAt(0, 60) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			in := newInstance("svc", "i")
			in.sketch("m", "1.0", kindUsers, t0/shortWidth*shortWidth, span64(0, 10))
			tt.mutate(in.sl.LogRecords().At(0))
			h.send(t, in)
			md := h.emit(t)
			require.Equal(t, 1.0, gauge(t, md, "migration.fleet.refused", attrReason, reasonInvalid))
			require.Equal(t, 0.0, gauge(t, md, "migration.fleet.series"))
		})
	}
}

func TestControlVersionFromConfigAndSampleRatio(t *testing.T) {
	cfg := defaultConfig()
	cfg.ControlVersions = map[string]string{"m": "2.0"}
	h := newHarness(t, cfg)
	bucket := t0 / shortWidth * shortWidth
	send := func(at int64, percent float64) {
		in := newInstance("svc", "i")
		g := in.sm.Metrics().AppendEmpty()
		g.SetName(metricRolloutPct)
		dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts(at))
		dp.SetDoubleValue(percent)
		dp.Attributes().PutStr(attrMigration, "m")
		in.sketch("m", "2.0", kindUsers, bucket, span64(0, 900))    // control, by config
		in.sketch("m", "1.0", kindUsers, bucket, span64(900, 1000)) // candidate: 10 % of users
		h.send(t, in)
	}
	h.now = t0 - 3700
	send(t0-3700, 50) // the rollout says 50 %, for more than an hour
	h.emit(t)
	h.now = t0
	send(t0, 50)
	md := h.emit(t)
	require.InDelta(t, 0.1, gauge(t, md, "migration.fleet.adoption.ratio", attrMigration, "m", attrWindow, windowShort), 0.01)
	require.Equal(t, 1.0, gauge(t, md, "migration.fleet.sample_ratio_mismatch", attrMigration, "m"))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no series", func(c *Config) { c.MaxSeries = 0 }, false},
		{"zero interval", func(c *Config) { c.EmitInterval = 0 }, false},
		{"alpha 1", func(c *Config) { c.Alpha = 1 }, false},
		{"thresholds out of order", func(c *Config) { c.AdoptionAdopted = 0.99 }, false},
		{"negative effect", func(c *Config) { c.LatencyMinEffect = -1 }, false},
		{"negative CPU effect", func(c *Config) { c.CPUMinEffect = -0.1 }, false},
		{"tiny histograms", func(c *Config) { c.HistogramMaxSize = 1 }, false},
		{"empty control", func(c *Config) { c.ControlVersions = map[string]string{"m": ""} }, false},
		{"no latency objective", func(c *Config) { c.LatencySLO = 0 }, false},
		{"no error budget", func(c *Config) { c.ErrorBudget = 0 }, false},
		{"a latency budget above 1", func(c *Config) { c.LatencyBudget = 1.5 }, false},
		{"no health delay", func(c *Config) { c.HealthDelay = 0 }, true},
		{"negative health delay", func(c *Config) { c.HealthDelay = -time.Second }, false},
		{"a health delay beyond the baseline's hour", func(c *Config) { c.HealthDelay = 29 * time.Minute }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.mutate(c)
			if err := c.Validate(); tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestVersionOrder(t *testing.T) {
	versions := []string{"2.0", "1.10", "1.9", "beta", "1.9-rc1"}
	sort.SliceStable(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	require.Equal(t, []string{"1.9", "1.9-rc1", "1.10", "2.0", "beta"}, versions)
}

func timeAt(sec int64) time.Time { return time.Unix(sec, 0) }

func TestTheTimerEmitsWhileInstancesSend(t *testing.T) {
	cfg := defaultConfig()
	cfg.EmitInterval = 20 * time.Millisecond
	h := newHarnessWithClock(t, cfg, true) // the loop runs on its own timer, on the real clock
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				in := newInstance("svc", "w"+itoa(w))
				now := time.Now().Unix()
				in.sum(metricCalls, false, now-1, now, 1, attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, "ok")
				in.sketch("m", "1.0", kindUsers, now/shortWidth*shortWidth, []uint64{uint64(w*1000 + i)})
				if err := h.metrics.ConsumeMetrics(context.Background(), in.md); err != nil {
					t.Error(err)
				}
				if err := h.logs.ConsumeLogs(context.Background(), in.ld); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	require.Eventually(t, func() bool {
		for _, md := range h.sink.AllMetrics() {
			v, ok := lookup(md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrWindow, windowShort)
			if ok && v == 200 {
				users, _ := lookup(md, "migration.fleet.adoption.users", attrMigration, "m", attrVersion, "1.0", attrWindow, windowShort)
				return math.Abs(users-200) <= 3*hllRelativeError*200
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the timer never emitted all 200 calls")
}

func TestStreamsThatAppearLate(t *testing.T) {
	tests := []struct {
		name       string
		start      int64 // the process's start (the cumulative streams' start time)
		wantErrors float64
	}{
		// The component saw the process start: an outcome first exported ten minutes later is new.
		{"in a process the component saw start, a new stream counts in full", t0 - 30, 2 + 1},
		// The process predates the component: its first point of any stream is only a baseline.
		{"in a process older than the component, a new stream starts from a baseline", t0 - 7200, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			send := func(at int64, outcome string, value int64) {
				h.now = at
				in := newInstance("svc", "p")
				in.sum(metricCalls, true, tt.start, at, value, attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, outcome)
				h.send(t, in)
			}
			send(t0-20, "ok", 5)
			send(t0+600, "error", 2)
			send(t0+660, "error", 3)
			md := h.emit(t)
			require.Equal(t, tt.wantErrors, gauge(t, md, "migration.fleet.errors", attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrWindow, windowShort))
		})
	}
}

func TestBaselinesLeaveWithTheirInstance(t *testing.T) {
	h := newHarness(t, nil)
	for _, id := range []string{"alive", "gone"} {
		in := newInstance("svc", id)
		in.sum(metricCalls, true, t0-30, t0, 4, attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, "ok")
		h.send(t, in)
	}
	h.now = t0 + 600 // ten minutes: only "alive" keeps exporting (unchanged: no new calls)
	in := newInstance("svc", "alive")
	in.sum(metricCalls, true, t0-30, t0+600, 4, attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, "ok")
	h.send(t, in)
	h.now = t0 + 1200 // "gone" has been silent for 20 minutes, beyond stream_ttl (15)
	in = newInstance("svc", "alive")
	in.sum(metricCalls, true, t0-30, t0+1200, 4, attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrOutcome, "ok")
	h.send(t, in)
	md := h.emit(t)
	require.Equal(t, 1.0, gauge(t, md, "migration.fleet.instances"))
	require.Len(t, h.logs.state.streams, 1, "the dead instance's baseline is dropped, the live one's kept")
	require.Equal(t, 8.0, gauge(t, md, "migration.fleet.requests", attrMigration, "m", attrOperation, "op", attrVersion, "1.0", attrWindow, windowShort), "what both did stays in the window")
}

func TestTheOutputDoesNotDependOnTheOrderInstancesArriveIn(t *testing.T) {
	// Three instances' delta state (histograms at scales 6, 5 and 4, counters, sketches) sent in
	// every order: the emitted figures are identical, point for point.
	r := rand.New(rand.NewPCG(21, 22))
	bucket := t0 / shortWidth * shortWidth
	exports := make([]func() *instance, 3)
	for i := range exports {
		values := [2][]float64{lognormal(r, 200, 0.04, 0.4), lognormal(r, 150, 0.05, 0.4)}
		scale := int32(6 - i)
		id := "w" + itoa(i)
		exports[i] = func() *instance {
			in := newInstance("svc", id)
			for v, version := range []string{"1.0", "2.0"} {
				in.sum(metricCalls, false, t0-60, t0, int64(len(values[v])), attrMigration, "m", attrOperation, "op", attrVersion, version, attrOutcome, "ok")
				in.sum(metricCalls, false, t0-60, t0, int64(i+v), attrMigration, "m", attrOperation, "op", attrVersion, version, attrOutcome, "error")
				in.histogram(metricDuration, false, t0-60, t0, histOf(values[v], scale), attrMigration, "m", attrOperation, "op", attrVersion, version)
				in.sketch("m", version, kindUsers, bucket, span64(i*300+v*5000, i*300+v*5000+400))
			}
			return in
		}
	}
	var reference map[string]float64
	for n, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {1, 2, 0}, {0, 2, 1}, {2, 0, 1}} {
		h := newHarness(t, nil)
		for _, i := range order {
			h.send(t, exports[i]())
		}
		md := h.emit(t)
		points := allPoints(md)
		if n == 0 {
			reference = points
			require.Positive(t, gauge(t, md, "migration.fleet.verdict.p_value", attrMigration, "m", attrOperation, "op", attrVersion, "2.0", attrMetric, "latency"))
			require.Greater(t, len(points), 50)
			continue
		}
		require.Len(t, points, len(reference), "order %v", order)
		for key, want := range reference {
			// Only float sums (a histogram's sum, hence the mean) may differ, in the last bits.
			require.InDelta(t, want, points[key], 1e-12*math.Max(1, math.Abs(want)), "order %v: %s", order, key)
		}
	}
}

// allPoints is every emitted point, keyed by metric name and sorted attributes.
func allPoints(md pmetric.Metrics) map[string]float64 {
	out := map[string]float64{}
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				var points pmetric.NumberDataPointSlice
				if m.Type() == pmetric.MetricTypeGauge {
					points = m.Gauge().DataPoints()
				} else {
					points = m.Sum().DataPoints()
				}
				for _, dp := range points.All() {
					_, key := sortedAttrs(dp.Attributes())
					value := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						value = float64(dp.IntValue())
					}
					out[m.Name()+" "+key] = value
				}
			}
		}
	}
	return out
}
