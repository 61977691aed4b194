package migrationanalyticsconnector

import (
	"math"
	"sort"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// expBuckets is one range of base-2 exponential buckets: counts[i] is bucket offset+i, which at
// scale s covers (2^((offset+i)/2^s), 2^((offset+i+1)/2^s)].
type expBuckets struct {
	offset int32
	counts []uint64
}

// expHist is a merged OTLP exponential histogram: merges and differences are exact up to a
// common scale.
type expHist struct {
	scale int32
	zero  uint64
	pos   expBuckets
	neg   expBuckets
	count uint64
	sum   float64
}

func histFromPoint(p pmetric.ExponentialHistogramDataPoint) *expHist {
	h := &expHist{scale: p.Scale(), zero: p.ZeroCount(), count: p.Count(), sum: p.Sum()}
	h.pos = expBuckets{offset: p.Positive().Offset(), counts: append([]uint64(nil), p.Positive().BucketCounts().AsRaw()...)}
	h.neg = expBuckets{offset: p.Negative().Offset(), counts: append([]uint64(nil), p.Negative().BucketCounts().AsRaw()...)}
	h.pos.trim()
	h.neg.trim()
	return h
}

func (h *expHist) clone() *expHist {
	c := *h
	c.pos.counts = append([]uint64(nil), h.pos.counts...)
	c.neg.counts = append([]uint64(nil), h.neg.counts...)
	return &c
}

// trim drops empty buckets at both ends, so ranges (and merges) stay as small as the data.
func (b *expBuckets) trim() {
	lo, hi := 0, len(b.counts)
	for lo < hi && b.counts[lo] == 0 {
		lo++
	}
	for hi > lo && b.counts[hi-1] == 0 {
		hi--
	}
	if lo == hi {
		b.offset, b.counts = 0, nil
		return
	}
	b.offset += int32(lo)
	b.counts = b.counts[lo:hi]
}

// downscale lowers the scale by `by`: index i becomes i >> by (floor, negative indices too).
func (b *expBuckets) downscale(by int32) {
	if by <= 0 || len(b.counts) == 0 {
		return
	}
	first := b.offset >> by
	last := (b.offset + int32(len(b.counts)) - 1) >> by
	out := make([]uint64, last-first+1)
	for i, c := range b.counts {
		out[((b.offset+int32(i))>>by)-first] += c
	}
	b.offset, b.counts = first, out
}

func (h *expHist) downscale(by int32) {
	if by <= 0 {
		return
	}
	h.pos.downscale(by)
	h.neg.downscale(by)
	h.scale -= by
}

// span is how many buckets the union of two ranges covers.
func span(a, b expBuckets) int64 {
	if len(a.counts) == 0 {
		return int64(len(b.counts))
	}
	if len(b.counts) == 0 {
		return int64(len(a.counts))
	}
	lo := min(a.offset, b.offset)
	hi := max(a.offset+int32(len(a.counts)), b.offset+int32(len(b.counts)))
	return int64(hi - lo)
}

func (b *expBuckets) add(o expBuckets) {
	if len(o.counts) == 0 {
		return
	}
	if len(b.counts) == 0 {
		b.offset, b.counts = o.offset, append([]uint64(nil), o.counts...)
		return
	}
	lo := min(b.offset, o.offset)
	hi := max(b.offset+int32(len(b.counts)), o.offset+int32(len(o.counts)))
	if lo != b.offset || hi != b.offset+int32(len(b.counts)) {
		grown := make([]uint64, hi-lo)
		copy(grown[b.offset-lo:], b.counts)
		b.offset, b.counts = lo, grown
	}
	for i, c := range o.counts {
		b.counts[o.offset-b.offset+int32(i)] += c
	}
}

// merge adds o into h at the smaller of the two scales, lowered further while the union would
// need more than maxSize buckets on either side.
func (h *expHist) merge(o *expHist, maxSize int) {
	other := o
	if o.scale > h.scale {
		other = o.clone()
		other.downscale(o.scale - h.scale)
	} else if h.scale > o.scale {
		h.downscale(h.scale - o.scale)
	}
	for span(h.pos, other.pos) > int64(maxSize) || span(h.neg, other.neg) > int64(maxSize) {
		if other == o {
			other = o.clone()
		}
		h.downscale(1)
		other.downscale(1)
	}
	h.pos.add(other.pos)
	h.neg.add(other.neg)
	h.zero += other.zero
	h.count += other.count
	h.sum += other.sum
}

// subtract returns h - prev (a cumulative point minus the stream's previous one), or false when
// some count went down: then the stream was reset and h counts in full.
func (h *expHist) subtract(prev *expHist) (*expHist, bool) {
	cur, old := h.clone(), prev.clone()
	if old.scale > cur.scale {
		old.downscale(old.scale - cur.scale)
	} else if cur.scale > old.scale {
		cur.downscale(cur.scale - old.scale)
	}
	if cur.count < old.count || cur.zero < old.zero {
		return nil, false
	}
	for _, pair := range [2][2]*expBuckets{{&cur.pos, &old.pos}, {&cur.neg, &old.neg}} {
		c, p := pair[0], pair[1]
		for i, n := range p.counts {
			idx := p.offset + int32(i) - c.offset
			if n == 0 {
				continue
			}
			if idx < 0 || int(idx) >= len(c.counts) || c.counts[idx] < n {
				return nil, false
			}
			c.counts[idx] -= n
		}
		c.trim()
	}
	cur.zero -= old.zero
	cur.count -= old.count
	cur.sum -= old.sum
	return cur, true
}

// lowerBound of bucket index i at scale s: 2^(i / 2^s).
func lowerBound(i int32, scale int32) float64 {
	if scale <= 0 {
		return math.Ldexp(1, int(i)<<uint(-scale))
	}
	return math.Exp2(float64(i) / float64(int64(1)<<uint(scale)))
}

// midpoint represents every value of a bucket: within (b-1)/(b+1) of each (0.54 % at scale 6).
func midpoint(i int32, scale int32) float64 {
	return (lowerBound(i, scale) + lowerBound(i+1, scale)) / 2
}

// weighted is the histogram as a weighted sample: (bucket midpoint, count), ascending.
func (h *expHist) weighted() []weightedValue {
	out := make([]weightedValue, 0, len(h.pos.counts)+len(h.neg.counts)+1)
	for i := len(h.neg.counts) - 1; i >= 0; i-- {
		if c := h.neg.counts[i]; c > 0 {
			out = append(out, weightedValue{-midpoint(h.neg.offset+int32(i), h.scale), float64(c)})
		}
	}
	if h.zero > 0 {
		out = append(out, weightedValue{0, float64(h.zero)})
	}
	for i, c := range h.pos.counts {
		if c > 0 {
			out = append(out, weightedValue{midpoint(h.pos.offset+int32(i), h.scale), float64(c)})
		}
	}
	return out
}

// weightedValue is a value observed count times.
type weightedValue struct {
	value float64
	count float64
}

// total of the weights.
func total(sample []weightedValue) float64 {
	n := 0.0
	for _, w := range sample {
		n += w.count
	}
	return n
}

// sortWeighted orders a sample by value and merges equal values.
func sortWeighted(sample []weightedValue) []weightedValue {
	s := append([]weightedValue(nil), sample...)
	sort.Slice(s, func(i, j int) bool { return s[i].value < s[j].value })
	out := s[:0]
	for _, w := range s {
		if w.count <= 0 {
			continue
		}
		if len(out) > 0 && out[len(out)-1].value == w.value {
			out[len(out)-1].count += w.count
			continue
		}
		out = append(out, w)
	}
	return out
}

// valueAtRank is the rank-th (from 0) smallest value of a sorted weighted sample.
func valueAtRank(sample []weightedValue, rank float64) float64 {
	seen := 0.0
	for _, w := range sample {
		seen += w.count
		if rank < seen {
			return w.value
		}
	}
	return sample[len(sample)-1].value
}

// percentile is numpy.percentile(expanded sample, q) (linear interpolation between order
// statistics) of a sorted weighted sample, without expanding it.
func percentile(sample []weightedValue, q float64) float64 {
	n := total(sample)
	if n == 0 {
		return math.NaN()
	}
	pos := q / 100 * (n - 1)
	lo := math.Floor(pos)
	a := valueAtRank(sample, lo)
	if pos == lo {
		return a
	}
	b := valueAtRank(sample, lo+1)
	return a + (b-a)*(pos-lo)
}
