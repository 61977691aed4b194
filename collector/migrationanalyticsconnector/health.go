package migrationanalyticsconnector

import (
	"math"
	"sort"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// The fleet's health: the score, anomalies and error trends of otel_migration/_analytics/health.py,
// anomaly.py and trend.py, on the merged state of every process of a service instead of one
// process's calls. Formulas and methods: docs/health.md; inputs: docs/fleet.md §10.
// tests/fixtures/fleet_health.json holds cases both implementations are tested against.
//
// Per service, migration and version the component keeps the last hour in 1-minute buckets:
// calls, failed calls, successful calls with their summed duration and how many were slower than
// latency_slo, and failed calls per error category; per service the calls lost in full queues
// and each instance's latest CPU share. An export covers the time since the process's previous
// one, so its increase is spread over the minutes of that span (a steady rate gives each minute
// its exact share, whatever second the processes export at): the per-minute series are the
// fleet's, not a sawtooth of export times.

const (
	minuteWidth     = 60
	minuteCount     = 60 // the ring: one hour
	scoreMinutes    = 5  // the score: the last 5 minutes, the current one included
	baselineMinutes = 30 // anomalies: the judged minute against the 30 before it
	trendMinutes    = 30 // trends: the 30 minutes up to the judged one
	minBaseline     = 10 // anomaly.py's MIN_BASELINE
	minTrendMinutes = 10 // trend.py's MIN_MINUTES
	zThreshold      = 5.0
	madToSD         = 1.4826
	trendAlpha      = 0.05
	lossBudget      = 0.01
)

// healthWeights are health.py's WEIGHTS, in the order of the factors.
var healthWeights = [4]struct {
	input  string
	weight float64
}{{inputErrors, 0.40}, {inputLatency, 0.30}, {inputSaturation, 0.15}, {inputLoss, 0.15}}

// healthInputs are the score's inputs, shares in [0, 1].
type healthInputs struct {
	errorRate, slowShare, saturation, loss float64
}

// healthScore is health.py's health_score: each input lowers the score linearly until its budget
// is spent, then by its whole weight; a factor is 1 (no harm) to 0 (its weight lost).
func healthScore(in healthInputs, errorBudget, latencyBudget float64) (float64, [4]float64) {
	share := func(v float64) float64 { return math.Min(math.Max(v, 0), 1) }
	factors := [4]float64{
		1 - math.Min(1, share(in.errorRate)/errorBudget),
		1 - math.Min(1, share(in.slowShare)/latencyBudget),
		1 - share(in.saturation),
		1 - math.Min(1, share(in.loss)/lossBudget),
	}
	score := 0.0
	for i, w := range healthWeights {
		score += w.weight * factors[i]
	}
	return 100 * score, factors
}

// anomaly is one signal's robust z-score in the judged minute against its baseline.
type anomaly struct {
	z, value, median float64
	anomalous        bool
}

// medianSorted is numpy.median of an ascending sample.
func medianSorted(s []float64) float64 {
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func medianOf(sample []float64) float64 {
	s := append([]float64(nil), sample...)
	sort.Float64s(s)
	return medianSorted(s)
}

// robustZ is anomaly.py's robust_z: z = (value - median) / max(1.4826 MAD, floor), anomalous at
// |z| >= 5 (bothWays) or z >= 5; false when fewer than 10 finite baseline points.
func robustZ(baseline []float64, value, floor float64, bothWays bool) (anomaly, bool) {
	points := make([]float64, 0, len(baseline))
	for _, p := range baseline {
		if !math.IsNaN(p) && !math.IsInf(p, 0) {
			points = append(points, p)
		}
	}
	if len(points) < minBaseline || math.IsNaN(value) || math.IsInf(value, 0) || !(floor > 0) {
		return anomaly{}, false
	}
	sort.Float64s(points)
	median := medianSorted(points)
	deviations := make([]float64, len(points))
	for i, p := range points {
		deviations[i] = math.Abs(p - median)
	}
	sort.Float64s(deviations)
	z := (value - median) / math.Max(madToSD*medianSorted(deviations), floor)
	anomalous := z >= zThreshold
	if bothWays {
		anomalous = math.Abs(z) >= zThreshold
	}
	return anomaly{z: z, value: value, median: median, anomalous: anomalous}, true
}

// countFloor is the Poisson standard deviation of a per-minute count (anomaly.py's count_floor).
func countFloor(median float64) float64 { return math.Sqrt(math.Max(median, 1)) }

// rateFloor is the binomial standard deviation of an error rate over `requests` calls.
func rateFloor(rate, requests float64) float64 {
	n := math.Max(requests, 1)
	p := math.Min(math.Max(rate, 1/n), 0.5)
	return math.Sqrt(p * (1 - p) / n)
}

// latencyFloor is 5 % of the median latency, and never 0.
func latencyFloor(median float64) float64 { return math.Max(0.05*median, 1e-6) }

// trendResult is _mann_kendall.py's TrendResult, the parts the trend needs.
type trendResult struct {
	s         int
	z, pValue float64
	slope     float64
	n         int
	state     int // error_trend's state: 1 rising, -1 falling, 0 stable
}

func sign(x float64) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// mannKendall is statistics.mann_kendall without the slope's interval: Kendall's S over the
// points in time order, its variance less the ties' term, z with the continuity correction, the
// two-sided normal p-value, and the Theil-Sen slope (median of the pairwise slopes).
func mannKendall(times, values []float64) trendResult {
	n := len(times)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return times[order[a]] < times[order[b]] })
	t, x := make([]float64, n), make([]float64, n)
	for i, o := range order {
		t[i], x[i] = times[o], values[o]
	}
	s := 0
	var slopes []float64
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			s += sign(x[j] - x[i])
			if dt := t[j] - t[i]; dt > 0 {
				slopes = append(slopes, (x[j]-x[i])/dt)
			}
		}
	}
	sortedX := append([]float64(nil), x...)
	sort.Float64s(sortedX)
	ties := 0
	for i := 0; i < n; {
		j := i
		for j < n && sortedX[j] == sortedX[i] {
			j++
		}
		c := j - i
		ties += c * (c - 1) * (2*c + 5)
		i = j
	}
	varS := float64(n*(n-1)*(2*n+5)-ties) / 18.0
	r := trendResult{s: s, pValue: 1, n: n}
	if varS > 0 {
		r.z = float64(s-sign(float64(s))) / math.Sqrt(varS)
		r.pValue = math.Min(1, 2*normalSF(math.Abs(r.z)))
	}
	if len(slopes) > 0 {
		sort.Float64s(slopes)
		r.slope = medianSorted(slopes)
	}
	return r
}

// errorTrend is trend.py's error_trend: rising or falling when Mann-Kendall's p < 0.05, by the
// sign of the Theil-Sen slope (of S when the slope is 0); stable otherwise and below 10 minutes.
func errorTrend(minutes, rates []float64) trendResult {
	if len(minutes) < minTrendMinutes {
		return trendResult{pValue: 1, n: len(minutes)}
	}
	r := mannKendall(minutes, rates)
	if r.pValue < trendAlpha {
		switch {
		case r.slope > 0 || (r.slope == 0 && r.s > 0):
			r.state = 1
		case r.slope < 0 || r.s < 0:
			r.state = -1
		}
	}
	return r
}

// minuteRing maps minutes to the slots of a one-hour ring; ids[s] is the minute slot s holds.
type minuteRing struct{ ids [minuteCount]int64 }

func newMinuteRing() minuteRing {
	var r minuteRing
	for i := range r.ids {
		r.ids[i] = -1
	}
	return r
}

// claim returns minute m's slot, and whether it was (re)claimed for m (its old values to be
// cleared); ok is false when the slot holds a newer minute (m left the ring).
func (r *minuteRing) claim(m int64) (slot int, fresh, ok bool) {
	slot = int(m % minuteCount)
	switch {
	case r.ids[slot] == m:
		return slot, false, true
	case r.ids[slot] > m:
		return 0, false, false
	}
	r.ids[slot] = m
	return slot, true, true
}

func (r *minuteRing) find(m int64) (int, bool) {
	slot := int(m % minuteCount)
	return slot, m >= 0 && r.ids[slot] == m
}

// expire frees the slots of minutes that left the hour ending at `current` (minutes ahead of it,
// from a process whose clock runs a little fast, stay) and says whether any slot is still used.
func (r *minuteRing) expire(current int64, reset func(slot int)) (used bool) {
	for slot, id := range r.ids {
		if id < 0 {
			continue
		}
		if id <= current-minuteCount {
			r.ids[slot] = -1
			reset(slot)
			continue
		}
		used = true
	}
	return used
}

// minuteCounts is one minute of one version (health.py's _Minutes columns).
type minuteCounts struct {
	requests, errors, ok, okSeconds, slow float64
}

func (c *minuteCounts) add(o minuteCounts) {
	c.requests += o.requests
	c.errors += o.errors
	c.ok += o.ok
	c.okSeconds += o.okSeconds
	c.slow += o.slow
}

// versionMinutes is the last hour of one version of one migration of one service.
type versionMinutes struct {
	ring       minuteRing
	counts     [minuteCount]minuteCounts
	categories map[string]*[minuteCount]float64
	// since is the first minute anything arrived for it: the minutes before are not "0 calls"
	// (a collector that just started, or a version that just appeared, is no traffic drop).
	since int64
}

func newVersionMinutes() *versionMinutes {
	return &versionMinutes{ring: newMinuteRing(), categories: map[string]*[minuteCount]float64{}, since: math.MaxInt64}
}

func (v *versionMinutes) clear(slot int) {
	v.counts[slot] = minuteCounts{}
	for _, c := range v.categories {
		c[slot] = 0
	}
}

// slot is minute m's slot, claimed for it; false when m is older than the ring.
func (v *versionMinutes) slot(m int64) (int, bool) {
	slot, fresh, ok := v.ring.claim(m)
	if !ok {
		return 0, false
	}
	if fresh {
		v.clear(slot)
	}
	v.since = min(v.since, m)
	return slot, true
}

func (v *versionMinutes) at(m int64) (minuteCounts, bool) {
	if slot, ok := v.ring.find(m); ok {
		return v.counts[slot], true
	}
	return minuteCounts{}, false
}

// window sums the minutes first..last.
func (v *versionMinutes) window(first, last int64) minuteCounts {
	var sum minuteCounts
	for m := first; m <= last; m++ {
		if c, ok := v.at(m); ok {
			sum.add(c)
		}
	}
	return sum
}

// expire drops what left the hour, and the categories with no error left in it.
func (v *versionMinutes) expire(current int64) (used bool) {
	used = v.ring.expire(current, v.clear)
	for name, c := range v.categories {
		empty := true
		for _, n := range c {
			if n != 0 {
				empty = false
				break
			}
		}
		if empty {
			delete(v.categories, name)
		}
	}
	return used
}

// anomalies is health.py's HealthMonitor._anomalies for the judged minute `last`: its calls, error
// rate and mean latency of successful calls against the 30 minutes before it (the request
// rate counting a minute without calls as 0, from `since` on).
func (v *versionMinutes) anomalies(last int64) map[string]anomaly {
	out := map[string]anomaly{}
	cur, ok := v.at(last)
	if !ok {
		return out
	}
	var counts, rates, means []float64
	for m := max(last-baselineMinutes, v.since); m < last; m++ {
		c, _ := v.at(m)
		counts = append(counts, c.requests)
		if c.requests > 0 {
			rates = append(rates, c.errors/c.requests)
		}
		if c.ok > 0 {
			means = append(means, c.okSeconds/c.ok)
		}
	}
	if len(counts) > 0 {
		if a, ok := robustZ(counts, cur.requests, countFloor(medianOf(counts)), true); ok {
			out[signalRequestRate] = a
		}
	}
	if len(rates) > 0 && cur.requests > 0 {
		if a, ok := robustZ(rates, cur.errors/cur.requests, rateFloor(medianOf(rates), cur.requests), false); ok {
			out[signalErrorRate] = a
		}
	}
	if len(means) > 0 && cur.ok > 0 {
		if a, ok := robustZ(means, cur.okSeconds/cur.ok, latencyFloor(medianOf(means)), false); ok {
			out[signalLatency] = a
		}
	}
	return out
}

// trends is health.py's HealthMonitor._trends: per category, its errors over all calls in each
// minute with calls of the 30 up to the judged minute `last`; categories that only failed after
// it (up to `current`) are reported stable.
func (v *versionMinutes) trends(last, current int64) map[string]trendResult {
	var minutes []float64
	var slots []int
	for m := last - trendMinutes + 1; m <= last; m++ {
		if slot, ok := v.ring.find(m); ok && v.counts[slot].requests > 0 {
			minutes = append(minutes, float64(m))
			slots = append(slots, slot)
		}
	}
	seen := append([]int(nil), slots...)
	for m := last + 1; m <= current; m++ {
		if slot, ok := v.ring.find(m); ok {
			seen = append(seen, slot)
		}
	}
	out := map[string]trendResult{}
	for name, c := range v.categories {
		present := false
		for _, slot := range seen {
			if c[slot] > 0 {
				present = true
				break
			}
		}
		if !present {
			continue
		}
		rates := make([]float64, len(slots))
		for i, slot := range slots {
			rates[i] = c[slot] / v.counts[slot].requests
		}
		out[name] = errorTrend(minutes, rates)
	}
	return out
}

// cpuSample is an instance's latest process.cpu.utilization.
type cpuSample struct {
	at    int64
	share float64
}

// serviceMinutes is what the health of a service's versions shares: calls lost in full queues per
// minute, and each instance's CPU.
type serviceMinutes struct {
	ring    minuteRing
	dropped [minuteCount]float64
	cpu     map[string]cpuSample
}

func newServiceMinutes() *serviceMinutes {
	return &serviceMinutes{ring: newMinuteRing(), cpu: map[string]cpuSample{}}
}

// spread divides an increase over the minutes of the span (from, to] it covers, in proportion to
// the time each minute holds of it; a point without a span lands in the minute of `to`. Minutes
// before `oldest` (out of the hour the ring holds) are skipped, their share dropped.
func spread(from, to float64, oldest int64, fn func(minute int64, share float64)) {
	if !(to > from) {
		if m := int64(math.Floor(to / minuteWidth)); m >= oldest {
			fn(m, 1)
		}
		return
	}
	length := to - from
	first := max(int64(math.Floor(from/minuteWidth)), oldest)
	last := int64(math.Ceil(to/minuteWidth)) - 1
	for m := first; m <= last; m++ {
		lo := math.Max(from, float64(m*minuteWidth))
		hi := math.Min(to, float64((m+1)*minuteWidth))
		if hi > lo {
			fn(m, (hi-lo)/length)
		}
	}
}

// oldestMinute is the first minute of the hour the rings hold at now.
func oldestMinute(now int64) int64 { return now/minuteWidth - minuteCount + 1 }

type healthKey struct{ service, migration, version string }

func attrOf(attrs []kv, key string) string {
	for _, a := range attrs {
		if a.key == key {
			return a.value
		}
	}
	return ""
}

// versionHealth finds or creates the minutes of a point's migration and version; nil without
// them, or when creating one would pass max_series.
func (s *state) versionHealth(service string, attrs []kv) *versionMinutes {
	key := healthKey{service, attrOf(attrs, attrMigration), attrOf(attrs, attrVersion)}
	if key.migration == "" || key.version == "" {
		return nil
	}
	if v, ok := s.health[key]; ok {
		return v
	}
	if s.full() {
		s.refuse(reasonMaxSeries)
		return nil
	}
	v := newVersionMinutes()
	s.health[key] = v
	return v
}

func (s *state) serviceHealth(service string) *serviceMinutes {
	if sv, ok := s.services[service]; ok {
		return sv
	}
	if s.full() {
		s.refuse(reasonMaxSeries)
		return nil
	}
	sv := newServiceMinutes()
	s.services[service] = sv
	return sv
}

// addHealth spreads an increase of one version's minute counts over (from, to].
func (s *state) addHealth(service string, attrs []kv, delta minuteCounts, from, to float64, now int64) {
	v := s.versionHealth(service, attrs)
	if v == nil {
		return
	}
	spread(from, to, oldestMinute(now), func(m int64, share float64) {
		if slot, ok := v.slot(m); ok {
			c := &v.counts[slot]
			c.requests += share * delta.requests
			c.errors += share * delta.errors
			c.ok += share * delta.ok
			c.okSeconds += share * delta.okSeconds
			c.slow += share * delta.slow
		}
	})
}

// addCategoryErrors spreads an increase of migration.errors over (from, to], by category.
func (s *state) addCategoryErrors(service string, attrs []kv, delta, from, to float64, now int64) {
	v := s.versionHealth(service, attrs)
	if v == nil {
		return
	}
	category := attrOf(attrs, attrCategory)
	if category == "" {
		category = unknownCategory
	}
	c, ok := v.categories[category]
	if !ok {
		if s.full() {
			s.refuse(reasonMaxSeries)
			return
		}
		c = &[minuteCount]float64{}
		v.categories[category] = c
	}
	spread(from, to, oldestMinute(now), func(m int64, share float64) {
		if slot, ok := v.slot(m); ok {
			c[slot] += share * delta
		}
	})
}

func (s *state) addDropped(service string, delta, from, to float64, now int64) {
	sv := s.serviceHealth(service)
	if sv == nil {
		return
	}
	spread(from, to, oldestMinute(now), func(m int64, share float64) {
		slot, fresh, ok := sv.ring.claim(m)
		if !ok {
			return
		}
		if fresh {
			sv.dropped[slot] = 0
		}
		sv.dropped[slot] += share * delta
	})
}

// consumeCPU keeps an instance's latest CPU share (the sum of its points: one, or one per
// cpu.mode where an SDK splits it).
func (s *state) consumeCPU(service, instance string, m pmetric.Metric, now int64) {
	if instance == "" || m.Type() != pmetric.MetricTypeGauge || m.Gauge().DataPoints().Len() == 0 {
		return
	}
	share, at := 0.0, int64(0)
	for _, dp := range m.Gauge().DataPoints().All() {
		v := dp.DoubleValue()
		if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
			v = float64(dp.IntValue())
		}
		share += v
		t, ok := s.pointTime(dp.Timestamp(), now)
		if !ok {
			return
		}
		at = max(at, t)
	}
	if sv := s.serviceHealth(service); sv != nil && at >= sv.cpu[instance].at {
		sv.cpu[instance] = cpuSample{at: at, share: share}
	}
}

// slowCount is how many values of a histogram are above the objective, each bucket taken at
// its midpoint as for the percentiles (within 0.55 % at scale 6).
func slowCount(h *expHist, objective float64) float64 {
	n := 0.0
	for i, c := range h.pos.counts {
		if c > 0 && midpoint(h.pos.offset+int32(i), h.scale) > objective {
			n += float64(c)
		}
	}
	return n
}

func (s *state) healthCount() int {
	n := len(s.health) + len(s.services)
	for _, v := range s.health {
		n += len(v.categories)
	}
	return n
}

// expireHealth drops the minutes that left the hour, versions and services with nothing left,
// and the CPU of instances that are gone.
func (s *state) expireHealth(now int64) {
	current := now / minuteWidth
	for key, v := range s.health {
		if !v.expire(current) {
			delete(s.health, key)
		}
	}
	for service, sv := range s.services {
		used := sv.ring.expire(current, func(slot int) { sv.dropped[slot] = 0 })
		for instance := range sv.cpu {
			if _, alive := s.instances[[2]string{service, instance}]; !alive {
				delete(sv.cpu, instance)
			}
		}
		if !used && len(sv.cpu) == 0 {
			delete(s.services, service)
		}
	}
}

// fleetInputs are the service-wide inputs of the score over the minutes first..last: the mean
// CPU share of the instances that reported one in that time, and the share of calls lost.
func (s *state) fleetInputs(service string, versions []*versionMinutes, first, last int64) (saturation, loss float64) {
	sv := s.services[service]
	if sv == nil {
		return 0, 0
	}
	n := 0
	for _, c := range sv.cpu {
		if c.at >= first*minuteWidth {
			saturation += math.Min(math.Max(c.share, 0), 1)
			n++
		}
	}
	if n > 0 {
		saturation /= float64(n)
	}
	dropped, calls := 0.0, 0.0
	for m := first; m <= last; m++ {
		if slot, ok := sv.ring.find(m); ok {
			dropped += sv.dropped[slot]
		}
	}
	for _, v := range versions {
		calls += v.window(first, last).requests
	}
	if dropped+calls > 0 {
		loss = dropped / (dropped + calls)
	}
	return saturation, loss
}

// healthByService groups the versions' keys by service, in a stable order.
func (s *state) healthByService() map[string][]healthKey {
	out := map[string][]healthKey{}
	for key := range s.health {
		out[key.service] = append(out[key.service], key)
	}
	for _, keys := range out {
		sort.Slice(keys, func(i, j int) bool {
			a, b := keys[i], keys[j]
			if a.migration != b.migration {
				return a.migration < b.migration
			}
			return a.version < b.version
		})
	}
	return out
}

// evaluateHealth emits the health figures of every version of a service (keys: its versions, from
// healthByService) that had calls in the last hour: the score over the last 5 minutes (the current
// one included), and the anomalies and trends of the last minute that ended health_delay ago.
func (s *state) evaluateHealth(service string, all []healthKey, e *emitter, now int64) {
	current := now / minuteWidth
	judged := (now-int64(s.cfg.HealthDelay.Seconds()))/minuteWidth - 1
	first := current - scoreMinutes + 1
	versions := make([]*versionMinutes, 0, len(all))
	var keys []healthKey
	for _, key := range all {
		v := s.health[key]
		versions = append(versions, v)
		if v.window(oldestMinute(now), current+futureSlack/minuteWidth).requests > 0 {
			keys = append(keys, key)
		}
	}
	saturation, loss := s.fleetInputs(service, versions, first, current)
	for _, key := range keys {
		v := s.health[key]
		w := v.window(first, current)
		in := healthInputs{saturation: saturation, loss: loss}
		if w.requests > 0 {
			in.errorRate = w.errors / w.requests
		}
		if w.ok > 0 {
			in.slowShare = w.slow / w.ok
		}
		score, factors := healthScore(in, s.cfg.ErrorBudget, s.cfg.LatencyBudget)
		mv := func(more ...string) []string {
			return append([]string{attrMigration, key.migration, attrVersion, key.version}, more...)
		}
		e.gauge(metricHealthScore, score, mv()...)
		for i, f := range factors {
			e.gauge(metricHealthFactor, f, mv(attrInput, healthWeights[i].input)...)
		}
		anomalies := v.anomalies(judged)
		for _, signal := range []string{signalRequestRate, signalErrorRate, signalLatency} {
			a, ok := anomalies[signal]
			// 0 also while there is too little history to judge, so that alerts see the series.
			e.gauge(metricAnomaly, b2f(ok && a.anomalous), mv(attrMetric, signal)...)
			if ok {
				e.gauge(metricAnomalyScore, a.z, mv(attrMetric, signal)...)
			}
		}
		trends := v.trends(judged, current)
		categories := make([]string, 0, len(trends))
		for c := range trends {
			categories = append(categories, c)
		}
		sort.Strings(categories)
		for _, c := range categories {
			e.gauge(metricErrorTrend, float64(trends[c].state), mv(attrCategory, c)...)
		}
	}
}
