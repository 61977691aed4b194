package migrationanalyticsconnector

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// Property tests: merges do not depend on order or grouping, so a collector may receive the
// instances' state in any order and in any batching.

func randomSketch(r *rand.Rand) *hll {
	h := &hll{}
	for range r.IntN(5000) {
		h.add(r.Uint64())
	}
	return h
}

func mergedSketch(parts ...*hll) *hll {
	out := &hll{}
	for _, p := range parts {
		out.merge(p)
	}
	return out
}

func TestHLLMergeIsAssociativeAndCommutative(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		a, b, c := randomSketch(r), randomSketch(r), randomSketch(r)
		require.Equal(t, mergedSketch(a, b), mergedSketch(b, a))
		require.Equal(t, mergedSketch(mergedSketch(a, b), c), mergedSketch(a, mergedSketch(b, c)))
		require.Equal(t, mergedSketch(a, a), a, "merging is idempotent: a re-sent sketch never double counts")
	}
}

// bucketIndex is the bucket of a positive value at a scale: (base^i, base^(i+1)].
func bucketIndex(v float64, scale int32) int32 {
	return int32(math.Ceil(math.Log2(v)*math.Exp2(float64(scale)))) - 1
}

// histOf builds the histogram an SDK would export for these values at this scale.
func histOf(values []float64, scale int32) *expHist {
	h := &expHist{scale: scale}
	for _, v := range values {
		h.count++
		h.sum += v
		switch {
		case v == 0:
			h.zero++
		case v > 0:
			h.pos.add(expBuckets{offset: bucketIndex(v, scale), counts: []uint64{1}})
		default:
			h.neg.add(expBuckets{offset: bucketIndex(-v, scale), counts: []uint64{1}})
		}
	}
	return h
}

func randomValues(r *rand.Rand) []float64 {
	out := make([]float64, r.IntN(300))
	for i := range out {
		switch r.IntN(20) {
		case 0:
			out[i] = 0
		case 1:
			out[i] = -math.Exp(r.NormFloat64())
		default:
			out[i] = math.Exp(r.NormFloat64()*2 - 3) // ~ 1 ms to 1 s
		}
	}
	return out
}

func mergedHist(maxSize int, parts ...*expHist) *expHist {
	out := parts[0].clone()
	for _, p := range parts[1:] {
		out.merge(p, maxSize)
	}
	return out
}

// sameHist compares two histograms at the same scale, ignoring how the bucket slices are padded.
func sameHist(t *testing.T, a, b *expHist) {
	t.Helper()
	require.Equal(t, a.scale, b.scale)
	require.Equal(t, a.count, b.count)
	require.Equal(t, a.zero, b.zero)
	require.InDelta(t, a.sum, b.sum, 1e-9*math.Max(1, math.Abs(a.sum)))
	for _, pair := range [][2]expBuckets{{a.pos, b.pos}, {a.neg, b.neg}} {
		x, y := pair[0], pair[1]
		x.trim()
		y.trim()
		require.Equal(t, x.offset, y.offset)
		require.Equal(t, x.counts, y.counts)
	}
}

func TestHistogramMergeIsAssociativeCommutativeAndExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 100 {
		scales := [3]int32{int32(r.IntN(5) + 2), int32(r.IntN(5) + 2), int32(r.IntN(5) + 2)}
		maxSize := []int{2048, 160, 40}[trial%3]
		values := [3][]float64{randomValues(r), randomValues(r), randomValues(r)}
		a, b, c := histOf(values[0], scales[0]), histOf(values[1], scales[1]), histOf(values[2], scales[2])
		ab := mergedHist(maxSize, a, b)
		sameHist(t, ab, mergedHist(maxSize, b, a))
		left := mergedHist(maxSize, ab, c)
		right := mergedHist(maxSize, a, mergedHist(maxSize, b, c))
		sameHist(t, left, right)
		// Exact: the merge equals the histogram of all the values at the merged scale.
		all := append(append(append([]float64{}, values[0]...), values[1]...), values[2]...)
		sameHist(t, left, histOf(all, left.scale))
		require.LessOrEqual(t, len(left.pos.counts), maxSize)
	}
}

func TestHistogramSubtractUndoesMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		before := histOf(randomValues(r), 6)
		more := histOf(randomValues(r), 6)
		after := mergedHist(2048, before, more)
		delta, ok := after.subtract(before)
		require.True(t, ok)
		sameHist(t, delta, histOf(nil, after.scale).withMerged(more, 2048))
	}
	// A count that went down is a reset, not a negative delta.
	_, ok := histOf([]float64{1}, 6).subtract(histOf([]float64{1, 2}, 6))
	require.False(t, ok)
}

func (h *expHist) withMerged(o *expHist, maxSize int) *expHist {
	c := h.clone()
	c.merge(o, maxSize)
	return c
}

func TestCounterMergeIsOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	now := int64(1_800_000_000)
	for range 20 {
		deltas := make([]float64, 200)
		times := make([]int64, len(deltas))
		want := [2]float64{}
		for i := range deltas {
			deltas[i] = float64(r.IntN(1000))
			times[i] = now - int64(r.IntN(horizon-1))
			if times[i] > now-shortWidth*shortCount && times[i]/shortWidth > now/shortWidth-shortCount {
				want[short] += deltas[i]
			}
			if times[i]/longWidth > now/longWidth-longCount {
				want[long] += deltas[i]
			}
		}
		for _, order := range [][]int{r.Perm(len(deltas)), r.Perm(len(deltas))} {
			w := newWindows[float64]()
			for _, i := range order {
				w.add(times[i], resetFloat, func(v *float64) { *v += deltas[i] })
			}
			for which := range 2 {
				got := 0.0
				w.each(which, now, func(v *float64) { got += *v })
				require.Equal(t, want[which], got)
			}
		}
	}
}

func TestDistinctCountsWithinTheSketchError(t *testing.T) {
	for _, n := range []int{10_000, 1_000_000} {
		h := &hll{}
		for i := range n {
			h.add(splitmix64(uint64(i) + 42<<40))
		}
		est := h.estimate()
		sigma := hllRelativeError * float64(n)
		t.Logf("n=%d estimate=%.0f error=%+.2f%% (3 sigma = %.1f%%)", n, est, (est/float64(n)-1)*100, 3*hllRelativeError*100)
		require.InDelta(t, float64(n), est, 3*sigma)
	}
	// Two instances' sketches with overlapping users: the union counts each user once.
	a, b := &hll{}, &hll{}
	for i := range 60_000 {
		a.add(splitmix64(uint64(i)))
	}
	for i := 40_000; i < 100_000; i++ {
		b.add(splitmix64(uint64(i)))
	}
	require.InDelta(t, 100_000, mergedSketch(a, b).estimate(), 3*hllRelativeError*100_000)
}

func TestPercentileErrorOfScaleSix(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	values := make([]float64, 20000)
	for i := range values {
		values[i] = math.Exp(r.NormFloat64()*0.5 + math.Log(0.04))
	}
	h := histOf(values, 6)
	sample := sortWeighted(h.weighted())
	exact := sortWeighted(weightedOf(values))
	for _, q := range []float64{50, 95, 99} {
		got, want := percentile(sample, q), percentile(exact, q)
		require.InDelta(t, 0, got/want-1, 0.0055, "p%v: %v vs %v", q, got, want)
	}
}

func weightedOf(values []float64) []weightedValue {
	out := make([]weightedValue, len(values))
	for i, v := range values {
		out[i] = weightedValue{v, 1}
	}
	return out
}
