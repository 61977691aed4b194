package migrationanalyticsconnector

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

var windowNames = [2]string{windowShort, windowLong}

type opKey struct{ migration, operation, version string }
type mvKey struct{ migration, version string }

// serviceView is one service's state summed and merged per window, ready to be judged.
type serviceView struct {
	migrations map[string]bool
	versions   map[string]map[string]bool
	operations map[string]map[string]bool
	requests   map[opKey]*[2]float64
	errors     map[opKey]*[2]float64
	durations  map[opKey]*[2]*expHist
	cpu        map[opKey]*[2]*expHist // thread CPU seconds of successful calls, where measured
	cost       map[mvKey]*[2]*expHist
	quality    map[mvKey]*[2]*expHist
	sketches   map[sketchKey]*[2]*hll // service field empty
}

func newServiceView() *serviceView {
	return &serviceView{
		migrations: map[string]bool{}, versions: map[string]map[string]bool{}, operations: map[string]map[string]bool{},
		requests: map[opKey]*[2]float64{}, errors: map[opKey]*[2]float64{}, durations: map[opKey]*[2]*expHist{}, cpu: map[opKey]*[2]*expHist{},
		cost: map[mvKey]*[2]*expHist{}, quality: map[mvKey]*[2]*expHist{}, sketches: map[sketchKey]*[2]*hll{},
	}
}

func (v *serviceView) see(migration, version, operation string) {
	v.migrations[migration] = true
	if v.versions[migration] == nil {
		v.versions[migration] = map[string]bool{}
		v.operations[migration] = map[string]bool{}
	}
	v.versions[migration][version] = true
	if operation != "" {
		v.operations[migration][operation] = true
	}
}

func mergeInto(dst **expHist, h *expHist, maxSize int) {
	if h == nil || h.count == 0 {
		return
	}
	if *dst == nil {
		*dst = h.clone()
		return
	}
	(*dst).merge(h, maxSize)
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// versionLess orders versions naturally: 1.9 before 1.10, numbers before words (as in Python).
func versionLess(a, b string) bool {
	split := func(v string) []string { return strings.Split(strings.ReplaceAll(v, "-", "."), ".") }
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		digitsA := ea == nil && isDigits(pa[i])
		digitsB := eb == nil && isDigits(pb[i])
		switch {
		case digitsA && digitsB:
			if na != nb {
				return na < nb
			}
		case digitsA != digitsB:
			return digitsA
		case pa[i] != pb[i]:
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// emitter builds one resource's metrics, a gauge per name.
type emitter struct {
	sm      pmetric.ScopeMetrics
	metrics map[string]pmetric.Metric
	ts      pcommon.Timestamp
}

func newEmitter(md pmetric.Metrics, attrs map[string]string, ts pcommon.Timestamp) *emitter {
	rm := md.ResourceMetrics().AppendEmpty()
	for k, v := range attrs {
		rm.Resource().Attributes().PutStr(k, v)
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(scopeName)
	return &emitter{sm: sm, metrics: map[string]pmetric.Metric{}, ts: ts}
}

func (e *emitter) gauge(name string, value float64, attrs ...string) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return
	}
	m, ok := e.metrics[name]
	if !ok {
		m = e.sm.Metrics().AppendEmpty()
		m.SetName(name)
		d := descriptions[name]
		m.SetUnit(d.unit)
		m.SetDescription(d.description)
		m.SetEmptyGauge()
		e.metrics[name] = m
	}
	dp := m.Gauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(e.ts)
	dp.SetDoubleValue(value)
	for i := 0; i+1 < len(attrs); i += 2 {
		dp.Attributes().PutStr(attrs[i], attrs[i+1])
	}
}

type description struct{ unit, description string }

var descriptions = map[string]description{
	"migration.fleet.adoption.users":          {"{user}", "Distinct users per version across the fleet (HyperLogLog union)."},
	"migration.fleet.adoption.sessions":       {"{session}", "Distinct sessions per version across the fleet."},
	"migration.fleet.adoption.ratio":          {"", "Candidates' distinct users / all distinct users."},
	"migration.fleet.adoption.stage":          {"", "1 for the migration's current adoption stage."},
	"migration.fleet.adoption.stalled":        {"", "1 while the 24 h adoption ratio has not moved."},
	"migration.fleet.requests":                {"{call}", "Calls in the window across the fleet."},
	"migration.fleet.errors":                  {"{call}", "Failed calls in the window across the fleet."},
	"migration.fleet.error.rate":              {"", "Errors per call in the window across the fleet."},
	"migration.fleet.error_free_users":        {"", "Share of distinct users without an error in the window."},
	"migration.fleet.performance.duration":    {"s", "Duration percentiles and mean from the merged exponential histograms."},
	"migration.fleet.performance.improvement": {"%", "Candidate's improvement over the control (negative: slower)."},
	"migration.fleet.performance.cpu":         {"s", "Thread CPU seconds per successful call: percentiles and mean from the merged histograms."},
	"migration.fleet.verdict":                 {"", "1 better, -1 worse, 0 inconclusive or no data."},
	"migration.fleet.verdict.p_value":         {"", "Holm-adjusted p-value of the verdict."},
	"migration.fleet.verdict.effect":          {"", "Hodges-Lehmann shift or error-rate difference, candidate - control."},
	"migration.fleet.sample_ratio_mismatch":   {"", "1 when the users' split contradicts the rollout percent."},
	"migration.fleet.llm.cost":                {"USD", "LLM spend in the window across the fleet."},
	"migration.fleet.instances":               {"{instance}", "Instances of the service seen within stream_ttl."},
	"migration.fleet.series":                  {"{series}", "State series held by the component (against max_series)."},
	"migration.fleet.health.score":            {"", "Health score 0-100 per migration and version (docs/health.md)."},
	"migration.fleet.health.factor":           {"", "Each input's part of the health score (1 no harm, 0 its weight lost)."},
	"migration.fleet.anomaly":                 {"", "1 while the judged minute's rate or latency is anomalous."},
	"migration.fleet.anomaly.score":           {"", "Robust z-score of the judged minute against the 30 before."},
	"migration.fleet.error.trend":             {"", "Error trend per category: 1 rising, -1 falling, 0 stable."},
}

// verdict is one comparison of a candidate with the control.
type verdict struct {
	migration, operation, metric, candidate string
	nControl, nCandidate                    float64
	tested                                  bool
	pValue, estimate, adjusted              float64
	controlMedian                           float64
	state                                   int
}

func shiftVerdict(metric, migration, operation, candidate string, control, cand *expHist) verdict {
	var x, y []weightedValue
	if control != nil {
		x = control.weighted()
	}
	if cand != nil {
		y = cand.weighted()
	}
	return shiftVerdictWeighted(metric, migration, operation, candidate, x, y)
}

// shiftVerdictWeighted is _analytics.verdicts.shift_verdict on weighted samples: Mann-Whitney for the
// p-value, Hodges-Lehmann for the effect, the control's median for the relative minimum effect.
func shiftVerdictWeighted(metric, migration, operation, candidate string, x, y []weightedValue) verdict {
	v := verdict{migration: migration, operation: operation, metric: metric, candidate: candidate,
		nControl: total(x), nCandidate: total(y)}
	if v.nControl == 0 || v.nCandidate == 0 {
		return v
	}
	test, err := mannWhitneyU(x, y)
	if err != nil {
		return v
	}
	shift, err := hodgesLehmann(x, y, verdictConfidence)
	if err != nil {
		return v
	}
	v.tested, v.pValue, v.estimate = true, test.pValue, shift.estimate
	v.controlMedian = percentile(sortWeighted(x), 50)
	return v
}

func errorRateVerdict(migration, operation, candidate string, errC, nC, errT, nT float64) verdict {
	v := verdict{migration: migration, operation: operation, metric: "error_rate", candidate: candidate, nControl: nC, nCandidate: nT}
	if nC == 0 || nT == 0 {
		return v
	}
	r, err := twoProportion(errC, nC, errT, nT, verdictConfidence)
	if err != nil {
		return v
	}
	v.tested, v.pValue, v.estimate = true, r.pValue, r.difference
	return v
}

// judge decides a tested verdict as otel_migration/_analytics/verdicts.py's _judge does.
func judge(v *verdict, adjusted float64, cfg *Config) {
	v.adjusted = adjusted
	var bigEnough bool
	switch v.metric {
	case "latency", "cost", "cpu":
		relative := 0.0
		if v.controlMedian > 0 {
			relative = v.estimate / v.controlMedian
		}
		minimum := cfg.LatencyMinEffect
		switch v.metric {
		case "cost":
			minimum = cfg.CostMinEffect
		case "cpu":
			minimum = cfg.CPUMinEffect
		}
		bigEnough = math.Abs(relative) >= minimum
	case "quality":
		bigEnough = math.Abs(v.estimate) >= cfg.QualityMinEffect
	default:
		bigEnough = math.Abs(v.estimate) >= cfg.ErrorRateMinEffect
	}
	switch {
	case math.Min(v.nControl, v.nCandidate) < float64(cfg.MinSamples), adjusted >= cfg.Alpha, !bigEnough:
		v.state = 0
	default:
		worse := v.estimate > 0
		if v.metric == "quality" {
			worse = v.estimate < 0
		}
		v.state = 1
		if worse {
			v.state = -1
		}
	}
}

// judgeFamily Holm-adjusts every tested verdict together (one family: every comparison of a
// service judged at one moment, as _analytics.verdicts.adjust does in process) and decides each state.
func judgeFamily(verdicts []verdict, cfg *Config) {
	var tested []float64
	for _, vd := range verdicts {
		if vd.tested {
			tested = append(tested, vd.pValue)
		}
	}
	adjusted := holm(tested)
	i := 0
	for n := range verdicts {
		if verdicts[n].tested {
			judge(&verdicts[n], adjusted[i], cfg)
			i++
		}
	}
}

func improvement(control, candidate float64) float64 {
	if control > 0 {
		return (control - candidate) / control * 100
	}
	return 0
}

// evaluate turns the state into the fleet's figures at now (Unix seconds).
func (s *state) evaluate(now int64) pmetric.Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	md := pmetric.NewMetrics()
	ts := pcommon.Timestamp(now * 1e9)
	maxSize := s.cfg.HistogramMaxSize

	views := map[string]*serviceView{}
	view := func(service string) *serviceView {
		v, ok := views[service]
		if !ok {
			v = newServiceView()
			views[service] = v
		}
		return v
	}
	emitters := map[string]*emitter{}
	emit := func(service string) *emitter {
		e, ok := emitters[service]
		if !ok {
			e = newEmitter(md, map[string]string{attrServiceName: service}, ts)
			emitters[service] = e
		}
		return e
	}
	// Services in a stable order, so the output is deterministic.
	services := map[string]bool{}
	for _, sr := range s.series {
		services[sr.service] = true
	}
	for k := range s.sketches {
		services[k.service] = true
	}
	for k := range s.instances {
		services[k[0]] = true
	}
	for k := range s.health {
		services[k.service] = true
	}
	for _, service := range sorted(services) {
		emit(service)
	}
	keys := make([]string, 0, len(s.series))
	for k := range s.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		sr := s.series[key]
		migration, version := sr.attr(attrMigration), sr.attr(attrVersion)
		if migration == "" || version == "" {
			continue
		}
		v := view(sr.service)
		var operation string
		if sr.metric == metricCalls || sr.metric == metricDuration || sr.metric == metricStateCPU {
			operation = sr.attr(attrOperation)
		}
		v.see(migration, version, operation)
		if sr.sum != nil {
			for w := range windowNames {
				total := 0.0
				sr.sum.each(w, now, func(x *float64) { total += *x })
				if sr.metric == metricCalls {
					k := opKey{migration, operation, version}
					if v.requests[k] == nil {
						v.requests[k], v.errors[k] = &[2]float64{}, &[2]float64{}
					}
					v.requests[k][w] += total
					if sr.attr(attrOutcome) == outcomeError {
						v.errors[k][w] += total
					}
				}
				// Generic sums: every migration.state.<x> as migration.fleet.<x>, per window.
				attrs := make([]string, 0, 2*len(sr.attrs)+2)
				for _, a := range sr.attrs {
					attrs = append(attrs, a.key, a.value)
				}
				attrs = append(attrs, attrWindow, windowNames[w])
				emit(sr.service).gauge(fleetPrefix+strings.TrimPrefix(sr.metric, statePrefix), total, attrs...)
			}
			continue
		}
		var target map[mvKey]*[2]*expHist
		switch sr.metric {
		case metricDuration, metricStateCPU:
			perOp := v.durations
			if sr.metric == metricStateCPU {
				perOp = v.cpu
			}
			k := opKey{migration, operation, version}
			if perOp[k] == nil {
				perOp[k] = &[2]*expHist{}
			}
			for w := range windowNames {
				sr.hist.each(w, now, func(h **expHist) { mergeInto(&perOp[k][w], *h, maxSize) })
			}
			continue
		case metricCost:
			target = v.cost
		case metricQuality:
			target = v.quality
		default:
			continue
		}
		k := mvKey{migration, version}
		if target[k] == nil {
			target[k] = &[2]*expHist{}
		}
		for w := range windowNames {
			sr.hist.each(w, now, func(h **expHist) { mergeInto(&target[k][w], *h, maxSize) })
		}
	}
	for key, w := range s.sketches {
		v := view(key.service)
		v.see(key.migration, key.version, "")
		k := sketchKey{migration: key.migration, version: key.version, kind: key.kind}
		merged := &[2]*hll{{}, {}}
		for i := range windowNames {
			w.each(i, now, func(h **hll) {
				if *h != nil {
					merged[i].merge(*h)
				}
			})
		}
		v.sketches[k] = merged
	}

	liveMigrations := map[[2]string]bool{}
	health := s.healthByService()
	for _, service := range sorted(services) {
		v := views[service]
		e := emit(service)
		instances := 0
		for k := range s.instances {
			if k[0] == service {
				instances++
			}
		}
		e.gauge("migration.fleet.instances", float64(instances))
		s.evaluateHealth(service, health[service], e, now)
		if v == nil {
			continue
		}
		var verdicts []verdict
		for _, migration := range sorted(v.migrations) {
			liveMigrations[[2]string{service, migration}] = true
			verdicts = append(verdicts, s.evaluateMigration(service, migration, v, e, now)...)
		}
		judgeFamily(verdicts, s.cfg)
		for n := range verdicts {
			vd := &verdicts[n]
			attrs := []string{attrMigration, vd.migration, attrOperation, vd.operation, attrVersion, vd.candidate, attrMetric, vd.metric}
			e.gauge("migration.fleet.verdict", float64(vd.state), attrs...)
			if vd.tested {
				e.gauge("migration.fleet.verdict.p_value", vd.adjusted, attrs...)
				e.gauge("migration.fleet.verdict.effect", vd.estimate, attrs...)
			}
		}
	}
	for key := range s.history {
		if !liveMigrations[key] {
			delete(s.history, key)
		}
	}

	own := newEmitter(md, nil, ts)
	own.gauge("migration.fleet.series", float64(s.seriesCount()))
	refused := own.sm.Metrics().AppendEmpty()
	refused.SetName("migration.fleet.refused")
	refused.SetUnit("{point}")
	refused.SetDescription("Points and sketches the component refused, by reason.")
	sum := refused.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for _, reason := range []string{reasonMaxSeries, reasonNoInstance, reasonInvalid, reasonTooOld, reasonFuture, reasonUnsupported} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.started))
		dp.SetTimestamp(ts)
		dp.SetIntValue(s.refused[reason])
		dp.Attributes().PutStr(attrReason, reason)
	}
	return md
}

func (s *state) evaluateMigration(service, migration string, v *serviceView, e *emitter, now int64) []verdict {
	cfg := s.cfg
	versions := sorted(v.versions[migration])
	sort.SliceStable(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	control := versions[0]
	if c, ok := cfg.ControlVersions[migration]; ok {
		control = c
	}
	var candidates []string
	for _, version := range versions {
		if version != control {
			candidates = append(candidates, version)
		}
	}
	sketch := func(version, kind string, w int) *hll {
		if m := v.sketches[sketchKey{migration: migration, version: version, kind: kind}]; m != nil {
			return m[w]
		}
		return nil
	}

	// Adoption: distinct users and sessions, the candidates' share, the stage and "stalled".
	var ratios [2]float64
	var users [2]map[string]float64
	for w, window := range windowNames {
		users[w] = map[string]float64{}
		everyone, cands := &hll{}, &hll{}
		for _, version := range versions {
			u := sketch(version, kindUsers, w)
			est := 0.0
			if u != nil {
				est = u.estimate()
				everyone.merge(u)
				if version != control {
					cands.merge(u)
				}
			}
			users[w][version] = est
			e.gauge("migration.fleet.adoption.users", math.Round(est), attrMigration, migration, attrVersion, version, attrWindow, window)
			sessions := 0.0
			if sh := sketch(version, kindSessions, w); sh != nil {
				sessions = sh.estimate()
			}
			e.gauge("migration.fleet.adoption.sessions", math.Round(sessions), attrMigration, migration, attrVersion, version, attrWindow, window)
		}
		if all := everyone.estimate(); all > 0 {
			ratios[w] = cands.estimate() / all
		}
		e.gauge("migration.fleet.adoption.ratio", ratios[w], attrMigration, migration, attrWindow, window)
	}
	ratio := ratios[long]
	stage := "not_started"
	switch {
	case ratio >= cfg.AdoptionReplaced:
		stage = "replaced"
	case ratio >= cfg.AdoptionAdopted:
		stage = "adopted"
	case ratio >= cfg.AdoptionStarted:
		stage = "low"
	}
	for _, st := range []string{"not_started", "low", "adopted", "replaced"} {
		value := 0.0
		if st == stage {
			value = 1
		}
		e.gauge("migration.fleet.adoption.stage", value, attrMigration, migration, attrStage, st)
	}
	hkey := [2]string{service, migration}
	stallAfter := cfg.StallAfter.Seconds()
	history := append(s.history[hkey], ratioAt{float64(now), ratio})
	for len(history) > 0 && history[0].t < float64(now)-2*stallAfter {
		history = history[1:]
	}
	s.history[hkey] = history
	lo, hi, recent := math.Inf(1), math.Inf(-1), 0
	for _, h := range history {
		if h.t >= float64(now)-stallAfter {
			lo, hi, recent = math.Min(lo, h.ratio), math.Max(hi, h.ratio), recent+1
		}
	}
	stalled := len(history) > 0 && history[0].t <= float64(now)-stallAfter &&
		(stage == "low" || stage == "adopted") && recent > 0 && hi-lo < cfg.StallEpsilon
	e.gauge("migration.fleet.adoption.stalled", b2f(stalled), attrMigration, migration)

	// Errors per version, requests and errors per operation.
	operations := sorted(v.operations[migration])
	for w, window := range windowNames {
		for _, version := range versions {
			requests, errs := 0.0, 0.0
			for _, op := range operations {
				k := opKey{migration, op, version}
				if r := v.requests[k]; r != nil {
					requests += r[w]
					errs += v.errors[k][w]
					e.gauge("migration.fleet.requests", r[w], attrMigration, migration, attrOperation, op, attrVersion, version, attrWindow, window)
					e.gauge("migration.fleet.errors", v.errors[k][w], attrMigration, migration, attrOperation, op, attrVersion, version, attrWindow, window)
				}
			}
			rate := 0.0
			if requests > 0 {
				rate = errs / requests
			}
			e.gauge("migration.fleet.error.rate", rate, attrMigration, migration, attrVersion, version, attrWindow, window)
			free := 1.0
			if u := users[w][version]; u > 0 {
				eu := 0.0
				if sh := sketch(version, kindErrorUsers, w); sh != nil {
					eu = math.Min(sh.estimate(), u)
				}
				free = 1 - eu/u
			}
			e.gauge("migration.fleet.error_free_users", free, attrMigration, migration, attrVersion, version, attrWindow, window)
		}
		// LLM spend.
		for _, version := range versions {
			if c := v.cost[mvKey{migration, version}]; c != nil && c[w] != nil {
				e.gauge("migration.fleet.llm.cost", c[w].sum, attrMigration, migration, attrVersion, version, attrWindow, window)
			}
		}
	}

	// Percentiles and improvement per operation and window; CPU per call has the same statistics
	// (no improvement: the cpu verdict says whether a candidate is leaner).
	for w, window := range windowNames {
		for _, op := range operations {
			byVersion := map[string]distribution{}
			for _, version := range versions {
				k := opKey{migration, op, version}
				if c := v.cpu[k]; c != nil && c[w] != nil && c[w].count > 0 {
					describe(c[w]).emit(e, "migration.fleet.performance.cpu", attrMigration, migration, attrOperation, op, attrVersion, version, attrWindow, window)
				}
				d := v.durations[k]
				if d == nil || d[w] == nil || d[w].count == 0 {
					continue
				}
				st := describe(d[w])
				byVersion[version] = st
				st.emit(e, "migration.fleet.performance.duration", attrMigration, migration, attrOperation, op, attrVersion, version, attrWindow, window)
			}
			base, ok := byVersion[control]
			if !ok || base.n < float64(cfg.MinSamples) {
				continue
			}
			for _, candidate := range candidates {
				st, ok := byVersion[candidate]
				if !ok || st.n < float64(cfg.MinSamples) {
					continue
				}
				for _, pair := range []struct {
					name  string
					value float64
				}{{"mean", improvement(base.mean, st.mean)}, {"p50", improvement(base.p50, st.p50)}, {"p95", improvement(base.p95, st.p95)}} {
					e.gauge("migration.fleet.performance.improvement", pair.value, attrMigration, migration, attrOperation, op, attrVersion, candidate, attrWindow, window, attrStatistic, pair.name)
				}
			}
		}
	}

	// Verdicts over the last hour.
	var verdicts []verdict
	for _, op := range operations {
		for _, candidate := range candidates {
			var hc, ht *expHist
			if d := v.durations[opKey{migration, op, control}]; d != nil {
				hc = d[short]
			}
			if d := v.durations[opKey{migration, op, candidate}]; d != nil {
				ht = d[short]
			}
			verdicts = append(verdicts, shiftVerdict("latency", migration, op, candidate, hc, ht))
			var ec, nc, et, nt float64
			if r := v.requests[opKey{migration, op, control}]; r != nil {
				ec, nc = v.errors[opKey{migration, op, control}][short], r[short]
			}
			if r := v.requests[opKey{migration, op, candidate}]; r != nil {
				et, nt = v.errors[opKey{migration, op, candidate}][short], r[short]
			}
			verdicts = append(verdicts, errorRateVerdict(migration, op, candidate, ec, nc, et, nt))
			// CPU as latency, where either side ever measured it (the SDK's measure_cpu), as in process.
			cc, ct := v.cpu[opKey{migration, op, control}], v.cpu[opKey{migration, op, candidate}]
			if cc != nil || ct != nil {
				hc, ht = nil, nil
				if cc != nil {
					hc = cc[short]
				}
				if ct != nil {
					ht = ct[short]
				}
				verdicts = append(verdicts, shiftVerdict("cpu", migration, op, candidate, hc, ht))
			}
		}
	}
	for _, metric := range []struct {
		name string
		data map[mvKey]*[2]*expHist
	}{{"cost", v.cost}, {"quality", v.quality}} {
		present := false
		for k := range metric.data {
			if k.migration == migration {
				present = true
			}
		}
		if !present {
			continue
		}
		for _, candidate := range candidates {
			var hc, ht *expHist
			if d := metric.data[mvKey{migration, control}]; d != nil {
				hc = d[short]
			}
			if d := metric.data[mvKey{migration, candidate}]; d != nil {
				ht = d[short]
			}
			verdicts = append(verdicts, shiftVerdict(metric.name, migration, allOperations, candidate, hc, ht))
		}
	}

	// Sample-ratio mismatch against the rollout's percent.
	if r := s.rollouts[hkey]; r != nil && r.value > 0 && r.value < 100 && r.since <= now-shortWidth*shortCount && len(candidates) == 1 {
		oc, ot := users[short][control], users[short][candidates[0]]
		if oc+ot >= srmMinUsers {
			expected := r.value / 100
			p, _, err := sampleRatioMismatch([]float64{math.Round(oc), math.Round(ot)}, []float64{1 - expected, expected})
			if err == nil {
				share := ot / (oc + ot)
				mismatch := p < srmAlpha && math.Abs(share-expected) > 3*hllRelativeError*math.Max(share, 0.01)
				e.gauge("migration.fleet.sample_ratio_mismatch", b2f(mismatch), attrMigration, migration)
			}
		}
	}
	return verdicts
}

// distribution is what the fleet reports of a merged histogram: percentiles (within the
// histogram's relative error), the exact mean and the count.
type distribution struct{ p50, p95, p99, mean, n float64 }

func describe(h *expHist) distribution {
	sample := sortWeighted(h.weighted())
	return distribution{percentile(sample, 50), percentile(sample, 95), percentile(sample, 99), h.sum / float64(h.count), float64(h.count)}
}

// emit writes p50, p95, p99 and mean as one gauge with migration.statistic after attrs.
func (d distribution) emit(e *emitter, name string, attrs ...string) {
	for _, pair := range []struct {
		name  string
		value float64
	}{{"p50", d.p50}, {"p95", d.p95}, {"p99", d.p99}, {"mean", d.mean}} {
		e.gauge(name, pair.value, append(attrs, attrStatistic, pair.name)...)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
