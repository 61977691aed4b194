package migrationanalyticsconnector

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Fixed windows (docs/fleet.md §5): 1 h of 5-minute buckets and 24 h of hourly buckets. State
// lands in both; a bucket leaves its window when time moves past it, and nothing older than 24 h
// is kept anywhere.
const (
	shortWidth  = 300
	shortCount  = 12
	longWidth   = 3600
	longCount   = 24
	horizon     = longWidth * longCount
	futureSlack = shortWidth

	short = 0
	long  = 1
)

// ring maps times to slots of fixed-width buckets; ids[s] is the bucket a slot holds (-1: none).
type ring struct {
	width, count int64
	ids          []int64
}

func newRing(width, count int64) ring {
	ids := make([]int64, count)
	for i := range ids {
		ids[i] = -1
	}
	return ring{width: width, count: count, ids: ids}
}

// slotFor returns the slot of time t, and whether it was (re)claimed for t's bucket; ok is false
// when the slot already holds a newer bucket (t is older than the window).
func (r *ring) slotFor(t int64) (slot int, fresh, ok bool) {
	id := t / r.width
	slot = int(id % r.count)
	switch {
	case r.ids[slot] == id:
		return slot, false, true
	case r.ids[slot] > id:
		return 0, false, false
	}
	r.ids[slot] = id
	return slot, true, true
}

func (r *ring) live(now int64, slot int) bool {
	current := now / r.width
	return r.ids[slot] > current-r.count && r.ids[slot] <= current
}

// windows holds one value per bucket of both windows.
type windows[T any] struct {
	rings [2]ring
	vals  [2][]T
}

func newWindows[T any]() *windows[T] {
	return &windows[T]{
		rings: [2]ring{newRing(shortWidth, shortCount), newRing(longWidth, longCount)},
		vals:  [2][]T{make([]T, shortCount), make([]T, longCount)},
	}
}

// add applies fn to t's bucket in both windows; reset clears a reclaimed slot first.
func (w *windows[T]) add(t int64, reset func(*T), fn func(*T)) {
	for i := range w.rings {
		slot, fresh, ok := w.rings[i].slotFor(t)
		if !ok {
			continue
		}
		if fresh {
			reset(&w.vals[i][slot])
		}
		fn(&w.vals[i][slot])
	}
}

// each calls fn with every bucket of window `which` that lies in the window ending now.
func (w *windows[T]) each(which int, now int64, fn func(*T)) {
	for slot := range w.vals[which] {
		if w.rings[which].live(now, slot) {
			fn(&w.vals[which][slot])
		}
	}
}

// expire clears the buckets that left their window and says whether anything is left.
func (w *windows[T]) expire(now int64, reset func(*T)) (empty bool) {
	empty = true
	for i := range w.rings {
		for slot, id := range w.rings[i].ids {
			if id < 0 {
				continue
			}
			if w.rings[i].live(now, slot) {
				empty = false
				continue
			}
			w.rings[i].ids[slot] = -1
			reset(&w.vals[i][slot])
		}
	}
	return empty
}

func resetFloat(v *float64) { *v = 0 }
func resetHist(v **expHist) { *v = nil }
func resetSketch(v **hll) {
	if *v != nil {
		**v = hll{}
	}
}
func releaseSketch(v **hll) { *v = nil }

type kv struct{ key, value string }

// series is one merged state series of a service: no instance in its identity.
type series struct {
	service, metric string
	attrs           []kv
	sum             *windows[float64]
	hist            *windows[*expHist]
}

func (s *series) attr(key string) string {
	for _, a := range s.attrs {
		if a.key == key {
			return a.value
		}
	}
	return ""
}

type sketchKey struct{ service, migration, version, kind string }

// stream is the previous point of one cumulative stream of one instance.
type stream struct {
	instance [2]string
	start    uint64
	at       pcommon.Timestamp // the previous point's time: the next point covers the span since
	sum      float64
	hist     *expHist
}

// instanceState: when an instance was last heard of, and whether the component has seen it since
// it started (its first cumulative point began within one short bucket of the process's start).
// Then a stream it has never sent before is new and counts in full, whenever it appears (an error
// outcome first seen after an hour); otherwise the process predates the component, which may have
// missed earlier points, and a stream's first point is only its baseline.
type instanceState struct {
	lastSeen          int64
	decided, complete bool
}

type rolloutState struct {
	value           float64
	since, lastSeen int64
}

type ratioAt struct{ t, ratio float64 }

// state is everything the connector holds, behind one mutex.
type state struct {
	mu        sync.Mutex
	cfg       *Config
	series    map[string]*series
	sketches  map[sketchKey]*windows[*hll]
	streams   map[string]*stream
	instances map[[2]string]*instanceState
	rollouts  map[[2]string]*rolloutState
	history   map[[2]string][]ratioAt
	refused   map[string]int64
	health    map[healthKey]*versionMinutes
	services  map[string]*serviceMinutes
	started   time.Time
}

func newState(cfg *Config, started time.Time) *state {
	return &state{
		cfg:       cfg,
		series:    map[string]*series{},
		sketches:  map[sketchKey]*windows[*hll]{},
		streams:   map[string]*stream{},
		instances: map[[2]string]*instanceState{},
		rollouts:  map[[2]string]*rolloutState{},
		history:   map[[2]string][]ratioAt{},
		refused:   map[string]int64{},
		health:    map[healthKey]*versionMinutes{},
		services:  map[string]*serviceMinutes{},
		started:   started,
	}
}

func (s *state) seriesCount() int {
	return len(s.series) + len(s.sketches) + len(s.streams) + len(s.rollouts) + s.healthCount()
}

func (s *state) full() bool { return s.seriesCount() >= s.cfg.MaxSeries }

func (s *state) refuse(reason string) { s.refused[reason]++ }

// sortedAttrs is a point's attributes as sorted pairs and their canonical key.
func sortedAttrs(m pcommon.Map) ([]kv, string) {
	attrs := make([]kv, 0, m.Len())
	for k, v := range m.All() {
		attrs = append(attrs, kv{k, v.AsString()})
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].key < attrs[j].key })
	var b strings.Builder
	for _, a := range attrs {
		b.WriteString(a.key)
		b.WriteByte(0)
		b.WriteString(a.value)
		b.WriteByte(0)
	}
	return attrs, b.String()
}

func resourceIdentity(res pcommon.Resource) (service, instance string) {
	service, instance = "unknown_service", ""
	if v, ok := res.Attributes().Get(attrServiceName); ok && v.AsString() != "" {
		service = v.AsString()
	}
	if v, ok := res.Attributes().Get(attrServiceInstance); ok {
		instance = v.AsString()
	}
	return service, instance
}

// pointTime is a point's time in Unix seconds, and whether it may be kept: refused when older
// than the longest window or further in the future than one short bucket.
func (s *state) pointTime(ts pcommon.Timestamp, now int64) (int64, bool) {
	t := now
	if ts != 0 {
		t = int64(ts / 1e9)
	}
	switch {
	case t <= now-horizon:
		s.refuse(reasonTooOld)
		return 0, false
	case t > now+futureSlack:
		s.refuse(reasonFuture)
		return 0, false
	}
	return t, true
}

// getSeries finds or creates a series; nil when creating it would pass max_series.
func (s *state) getSeries(service, metric, attrKey string, attrs []kv, histogram bool) *series {
	key := service + "\x00" + metric + "\x00" + attrKey
	if sr, ok := s.series[key]; ok {
		return sr
	}
	if s.full() {
		s.refuse(reasonMaxSeries)
		return nil
	}
	sr := &series{service: service, metric: metric, attrs: attrs}
	if histogram {
		sr.hist = newWindows[*expHist]()
	} else {
		sr.sum = newWindows[float64]()
	}
	s.series[key] = sr
	return sr
}

// seen records that an instance sent something now.
func (s *state) seen(service, instance string, now int64) {
	if instance == "" {
		return
	}
	key := [2]string{service, instance}
	if in, ok := s.instances[key]; ok {
		in.lastSeen = now
		return
	}
	s.instances[key] = &instanceState{lastSeen: now}
}

// baseline finds or creates the stream of a cumulative point; nil when refused. countFirst says
// whether the first point of a new stream counts in full (see instanceState).
func (s *state) baseline(service, instance, metric, attrKey string, start pcommon.Timestamp, t int64) (st *stream, first, countFirst bool) {
	if instance == "" {
		s.refuse(reasonNoInstance)
		return nil, false, false
	}
	key := service + "\x00" + instance + "\x00" + metric + "\x00" + attrKey
	if st, ok := s.streams[key]; ok {
		return st, false, false
	}
	if s.full() {
		s.refuse(reasonMaxSeries)
		return nil, false, false
	}
	in := s.instances[[2]string{service, instance}]
	if !in.decided {
		in.decided, in.complete = true, recentStart(start, t)
	}
	st = &stream{instance: [2]string{service, instance}}
	s.streams[key] = st
	return st, true, in.complete || recentStart(start, t)
}

// recentStart says whether a stream's first point covers only its own recent life (a process
// that just started).
func recentStart(start pcommon.Timestamp, t int64) bool {
	return start != 0 && t-int64(start/1e9) <= shortWidth
}

func (s *state) consumeMetrics(md pmetric.Metrics, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rm := range md.ResourceMetrics().All() {
		service, instance := resourceIdentity(rm.Resource())
		s.seen(service, instance, now)
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				s.consumeMetric(service, instance, m, now)
			}
		}
	}
}

func (s *state) consumeMetric(service, instance string, m pmetric.Metric, now int64) {
	name := m.Name()
	switch {
	case name == metricRolloutPct:
		s.consumeRollout(service, m, now)
		return
	case name == metricCPU:
		s.consumeCPU(service, instance, m, now)
		return
	case name == metricErrors || name == metricDropped:
		if m.Type() != pmetric.MetricTypeSum {
			return
		}
	case !strings.HasPrefix(name, statePrefix):
		return
	}
	switch m.Type() {
	case pmetric.MetricTypeSum:
		cumulative := m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityCumulative
		for _, dp := range m.Sum().DataPoints().All() {
			value := dp.DoubleValue()
			if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
				value = float64(dp.IntValue())
			}
			s.consumeSum(service, instance, name, dp.Attributes(), dp.StartTimestamp(), dp.Timestamp(), value, cumulative, now)
		}
	case pmetric.MetricTypeExponentialHistogram:
		cumulative := m.ExponentialHistogram().AggregationTemporality() == pmetric.AggregationTemporalityCumulative
		for _, dp := range m.ExponentialHistogram().DataPoints().All() {
			s.consumeHist(service, instance, name, dp, cumulative, now)
		}
	default:
		s.refuse(reasonUnsupported)
	}
}

func (s *state) consumeSum(service, instance, name string, attrMap pcommon.Map, start, ts pcommon.Timestamp,
	value float64, cumulative bool, now int64,
) {
	t, ok := s.pointTime(ts, now)
	if !ok {
		return
	}
	attrs, attrKey := sortedAttrs(attrMap)
	delta, from := value, spanStart(start, ts, t)
	if cumulative {
		st, first, countFirst := s.baseline(service, instance, name, attrKey, start, t)
		if st == nil {
			return
		}
		switch {
		case first && !countFirst:
			delta = 0
		case first || uint64(start) != st.start || value < st.sum:
			delta = value
		default:
			delta, from = value-st.sum, spanStart(st.at, ts, t)
		}
		st.start, st.sum, st.at = uint64(start), value, ts
	}
	if delta == 0 {
		return
	}
	to := pointSeconds(ts, t)
	switch name {
	case metricErrors:
		s.addCategoryErrors(service, attrs, delta, from, to, now)
		return
	case metricDropped:
		s.addDropped(service, delta, from, to, now)
		return
	}
	// The window's series first: under max_series the fleet's figures come before its health.
	if sr := s.getSeries(service, name, attrKey, attrs, false); sr != nil && sr.sum != nil {
		sr.sum.add(t, resetFloat, func(v *float64) { *v += delta })
	}
	if name == metricCalls {
		counts := minuteCounts{requests: delta}
		if attrOf(attrs, attrOutcome) == outcomeError {
			counts.errors = delta
		}
		s.addHealth(service, attrs, counts, from, to, now)
	}
}

// pointSeconds is a point's time in (fractional) Unix seconds; t when it has none.
func pointSeconds(ts pcommon.Timestamp, t int64) float64 {
	if ts == 0 {
		return float64(t)
	}
	return float64(ts) / 1e9
}

// spanStart is where the span a point covers begins: at `from` when that is before the point,
// else nowhere (the point lands in its own minute).
func spanStart(from, ts pcommon.Timestamp, t int64) float64 {
	to := pointSeconds(ts, t)
	if from == 0 || float64(from)/1e9 >= to {
		return to
	}
	return float64(from) / 1e9
}

func (s *state) consumeHist(service, instance, name string, dp pmetric.ExponentialHistogramDataPoint, cumulative bool, now int64) {
	t, ok := s.pointTime(dp.Timestamp(), now)
	if !ok {
		return
	}
	attrs, attrKey := sortedAttrs(dp.Attributes())
	point := histFromPoint(dp)
	delta, from := point, spanStart(dp.StartTimestamp(), dp.Timestamp(), t)
	if cumulative {
		st, first, countFirst := s.baseline(service, instance, name, attrKey, dp.StartTimestamp(), t)
		if st == nil {
			return
		}
		switch {
		case first && !countFirst:
			delta = nil
		case first || uint64(dp.StartTimestamp()) != st.start || st.hist == nil:
			delta = point
		default:
			if d, ok := point.subtract(st.hist); ok {
				delta, from = d, spanStart(st.at, dp.Timestamp(), t)
			}
		}
		st.start, st.hist, st.at = uint64(dp.StartTimestamp()), point, dp.Timestamp()
	}
	if delta == nil || delta.count == 0 {
		return
	}
	sr := s.getSeries(service, name, attrKey, attrs, true)
	if sr != nil && sr.hist != nil {
		maxSize := s.cfg.HistogramMaxSize
		sr.hist.add(t, resetHist, func(h **expHist) {
			if *h == nil {
				*h = delta.clone()
				for len((*h).pos.counts) > maxSize || len((*h).neg.counts) > maxSize {
					(*h).downscale(1)
				}
				return
			}
			(*h).merge(delta, maxSize)
		})
	}
	if name == metricDuration {
		s.addHealth(service, attrs, minuteCounts{
			ok: float64(delta.count), okSeconds: delta.sum, slow: slowCount(delta, s.cfg.LatencySLO.Seconds()),
		}, from, pointSeconds(dp.Timestamp(), t), now)
	}
}

func (s *state) consumeRollout(service string, m pmetric.Metric, now int64) {
	var points pmetric.NumberDataPointSlice
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		points = m.Gauge().DataPoints()
	case pmetric.MetricTypeSum:
		points = m.Sum().DataPoints()
	default:
		return
	}
	for _, dp := range points.All() {
		migration, ok := dp.Attributes().Get(attrMigration)
		if !ok {
			continue
		}
		value := dp.DoubleValue()
		if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
			value = float64(dp.IntValue())
		}
		key := [2]string{service, migration.AsString()}
		r, ok := s.rollouts[key]
		if !ok {
			if s.full() {
				s.refuse(reasonMaxSeries)
				continue
			}
			r = &rolloutState{value: value, since: now}
			s.rollouts[key] = r
		}
		if r.value != value {
			// A new percent, or instances that disagree: no single split to expect for an hour.
			r.value, r.since = value, now
		}
		r.lastSeen = now
	}
}

func intAttr(m pcommon.Map, key string) (int64, error) {
	v, ok := m.Get(key)
	if !ok {
		return 0, fmt.Errorf("attribute %s is missing", key)
	}
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), nil
	case pcommon.ValueTypeDouble:
		if d := v.Double(); d == float64(int64(d)) {
			return int64(d), nil
		}
	case pcommon.ValueTypeStr:
		n, err := strconv.ParseInt(v.Str(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("attribute %s: %w", key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("attribute %s is not an integer: %s", key, v.AsString())
}

// parseSketch checks one sketch record against the contract.
func parseSketch(lr plog.LogRecord) (key sketchKey, start int64, registers []byte, err error) {
	attrs := lr.Attributes()
	get := func(k string) string {
		if v, ok := attrs.Get(k); ok {
			return v.AsString()
		}
		return ""
	}
	key = sketchKey{migration: get(attrMigration), version: get(attrVersion), kind: get(attrSketchKind)}
	if key.migration == "" || key.version == "" {
		return key, 0, nil, fmt.Errorf("sketch without %s or %s", attrMigration, attrVersion)
	}
	if key.kind != kindUsers && key.kind != kindSessions && key.kind != kindErrorUsers {
		return key, 0, nil, fmt.Errorf("sketch of unknown kind %q", key.kind)
	}
	precision, err := intAttr(attrs, attrSketchPrecision)
	if err != nil {
		return key, 0, nil, err
	}
	if precision != hllPrecision {
		return key, 0, nil, fmt.Errorf("sketch precision %d, only %d is accepted", precision, hllPrecision)
	}
	width, err := intAttr(attrs, attrSketchWidth)
	if err != nil {
		return key, 0, nil, err
	}
	start, err = intAttr(attrs, attrSketchStart)
	if err != nil {
		return key, 0, nil, err
	}
	if width <= 0 || shortWidth%width != 0 || start%width != 0 {
		return key, 0, nil, fmt.Errorf("sketch bucket start %d width %d: the width must divide %d and the start be a multiple of it", start, width, shortWidth)
	}
	if lr.Body().Type() != pcommon.ValueTypeBytes || lr.Body().Bytes().Len() != hllRegisters {
		return key, 0, nil, fmt.Errorf("sketch body must be %d bytes, got %s of length %d", hllRegisters, lr.Body().Type(), len(lr.Body().AsString()))
	}
	registers = lr.Body().Bytes().AsRaw()
	for i, r := range registers {
		if r > hllValueBits+1 {
			return key, 0, nil, fmt.Errorf("sketch register %d is %d, above the largest rank %d", i, r, hllValueBits+1)
		}
	}
	return key, start, registers, nil
}

func isSketch(lr plog.LogRecord) bool {
	if lr.EventName() == sketchEvent {
		return true
	}
	v, ok := lr.Attributes().Get(attrEventName)
	return ok && v.AsString() == sketchEvent
}

func (s *state) consumeLogs(ld plog.Logs, now int64) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, rl := range ld.ResourceLogs().All() {
		service, instance := resourceIdentity(rl.Resource())
		s.seen(service, instance, now)
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				if !isSketch(lr) {
					continue
				}
				key, start, registers, err := parseSketch(lr)
				if err != nil {
					s.refuse(reasonInvalid)
					errs = append(errs, fmt.Errorf("service %s: %w", service, err))
					continue
				}
				t, ok := s.pointTime(pcommon.Timestamp(start*1e9), now)
				if !ok {
					continue
				}
				key.service = service
				w, ok := s.sketches[key]
				if !ok {
					if s.full() {
						s.refuse(reasonMaxSeries)
						continue
					}
					w = newWindows[*hll]()
					s.sketches[key] = w
				}
				w.add(t, resetSketch, func(h **hll) {
					if *h == nil {
						*h = &hll{}
					}
					(*h).mergeBytes(registers)
				})
			}
		}
	}
	return errs
}

// expire drops what left the longest window, instances silent for stream_ttl with their
// baselines (only with them: a live instance's baseline that expired on its own would make its
// next point count twice), and rollouts no instance reports any more: memory follows the live
// fleet, not its history.
func (s *state) expire(now int64) {
	for key, sr := range s.series {
		empty := true
		if sr.sum != nil {
			empty = sr.sum.expire(now, resetFloat)
		} else {
			empty = sr.hist.expire(now, resetHist)
		}
		if empty {
			delete(s.series, key)
		}
	}
	for key, w := range s.sketches {
		if w.expire(now, releaseSketch) {
			delete(s.sketches, key)
		}
	}
	ttl := int64(s.cfg.StreamTTL / time.Second)
	for key, in := range s.instances {
		if in.lastSeen <= now-ttl {
			delete(s.instances, key)
		}
	}
	for key, st := range s.streams {
		if _, alive := s.instances[st.instance]; !alive {
			delete(s.streams, key)
		}
	}
	for key, r := range s.rollouts {
		if r.lastSeen <= now-ttl {
			delete(s.rollouts, key)
		}
	}
	s.expireHealth(now)
}
