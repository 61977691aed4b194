package migrationanalyticsconnector

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// BenchmarkFleetMinute: the state of 1,000 instances for one minute, then the six evaluations the
// default 10 s emit interval runs in that minute. Every instance exports, cumulatively, calls of
// 3 operations x 2 versions x 2 outcomes (12 points), 6 duration histograms (scale 6, ~100-200
// buckets) and 6 sketches (users, sessions, error users x 2 versions, 4 KiB each). ns/op is the
// CPU time of a fleet-minute on one core; state-MiB the heap held once the windows are populated.
//
//	go test -run '^$' -bench FleetMinute -benchmem ./...
func BenchmarkFleetMinute(b *testing.B) {
	const instances = 1000
	operations := []string{"checkout", "search", "quote"}
	versions := []string{"1.0", "2.0"}
	r := rand.New(rand.NewPCG(1, 1))

	templates := make([]*expHist, 16)
	for i := range templates {
		templates[i] = histOf(lognormal(r, 100, 0.04, 0.35), 6)
	}
	sketches := make([][]byte, 32)
	for i := range sketches {
		h := &hll{}
		for range 60 {
			h.add(r.Uint64())
		}
		sketches[i] = append([]byte(nil), h[:]...)
	}

	cfg := defaultConfig()
	cfg.MaxSeries = 100_000
	st := newState(cfg, timeAt(t0))
	cumulative := make([]*expHist, instances*len(operations)*len(versions))
	calls := make([]int64, instances*len(operations)*len(versions))
	start := t0 - 30

	build := func(minute int64) ([]pmetric.Metrics, []plog.Logs) {
		now := t0 + minute*60
		mds, lds := make([]pmetric.Metrics, instances), make([]plog.Logs, instances)
		for i := range instances {
			in := newInstance("shop", "instance-"+strconv.Itoa(i))
			for o, op := range operations {
				for v, version := range versions {
					k := (i*len(operations)+o)*len(versions) + v
					calls[k] += 100
					if cumulative[k] == nil {
						cumulative[k] = templates[r.IntN(len(templates))].clone()
					} else {
						cumulative[k].merge(templates[r.IntN(len(templates))], cfg.HistogramMaxSize)
					}
					in.sum(metricCalls, true, start, now, calls[k]*95/100, attrMigration, "m", attrOperation, op, attrVersion, version, attrOutcome, "ok")
					in.sum(metricCalls, true, start, now, calls[k]*5/100, attrMigration, "m", attrOperation, op, attrVersion, version, attrOutcome, "error")
					in.histogram(metricDuration, true, start, now, cumulative[k], attrMigration, "m", attrOperation, op, attrVersion, version)
				}
			}
			for _, version := range versions {
				for _, kind := range []string{kindUsers, kindSessions, kindErrorUsers} {
					lr := in.sl.LogRecords().AppendEmpty()
					lr.SetEventName(sketchEvent)
					lr.Body().SetEmptyBytes().FromRaw(sketches[r.IntN(len(sketches))])
					putAttrs(lr.Attributes(), attrMigration, "m", attrVersion, version, attrSketchKind, kind)
					lr.Attributes().PutInt(attrSketchStart, now/shortWidth*shortWidth)
					lr.Attributes().PutInt(attrSketchWidth, shortWidth)
					lr.Attributes().PutInt(attrSketchPrecision, hllPrecision)
				}
			}
			mds[i], lds[i] = in.md, in.ld
		}
		return mds, lds
	}

	// ns/op is wall time, which a busy machine inflates; cpu-ms is the process's CPU time (user +
	// system, GC included) spent in the timed part, per simulated minute.
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		minute := int64(n)
		mds, lds := build(minute)
		runtime.GC()
		before := processCPU()
		b.StartTimer()
		now := t0 + minute*60
		for i := range instances {
			st.consumeMetrics(mds[i], now)
			st.consumeLogs(lds[i], now)
		}
		for k := range int64(6) {
			_ = st.evaluate(now + 10*k)
		}
		b.StopTimer()
		cpu += processCPU() - before
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	if refused := st.refused[reasonMaxSeries]; refused > 0 {
		b.Fatalf("%d points refused: the benchmark would measure less than it claims", refused)
	}
	cumulative, calls = nil, nil
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	b.ReportMetric(float64(mem.HeapAlloc)/(1<<20), "state-MiB")
	b.ReportMetric(float64(st.seriesCount()), "series")
	b.ReportMetric(instances, "instances")
	runtime.KeepAlive(st)
}

func processCPU() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
