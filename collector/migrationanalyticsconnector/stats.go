package migrationanalyticsconnector

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// The statistics of otel_migration/_analytics/statistics/ on weighted samples: a merged histogram is a
// list of (value, count) pairs, and each function gives what the Python function gives on the
// expanded arrays (tests/fixtures/fleet_statistics.json holds the cases both are tested against).

var errEmptySample = errors.New("empty sample")

func normalSF(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// normalPPF is the inverse of the standard normal CDF.
func normalPPF(p float64) float64 {
	switch {
	case p <= 0:
		return math.Inf(-1)
	case p >= 1:
		return math.Inf(1)
	}
	return -math.Sqrt2 * math.Erfcinv(2*p)
}

type mannWhitneyResult struct {
	u, pValue  float64
	nControl   float64
	nCandidate float64
	exact      bool
}

// mannWhitneyU is the two-sided Mann-Whitney U test of candidate against control: midranks,
// tie and continuity corrections, and the exact null distribution when there are no ties and the
// smaller side has at most 8 values (scipy's "auto", as in Python).
func mannWhitneyU(control, candidate []weightedValue) (mannWhitneyResult, error) {
	x, y := sortWeighted(control), sortWeighted(candidate)
	m, n := total(x), total(y)
	if m == 0 || n == 0 {
		return mannWhitneyResult{}, fmt.Errorf("mann-whitney: %w (n_control=%v, n_candidate=%v)", errEmptySample, m, n)
	}
	rankSumY, tieTerm, below := 0.0, 0.0, 0.0
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		var v float64
		switch {
		case j >= len(y) || (i < len(x) && x[i].value < y[j].value):
			v = x[i].value
		default:
			v = y[j].value
		}
		a, b := 0.0, 0.0
		if i < len(x) && x[i].value == v {
			a = x[i].count
			i++
		}
		if j < len(y) && y[j].value == v {
			b = y[j].count
			j++
		}
		t := a + b
		rankSumY += b * (below + (t+1)/2)
		tieTerm += t*t*t - t
		below += t
	}
	u := rankSumY - n*(n+1)/2
	statistic := math.Max(u, m*n-u)
	res := mannWhitneyResult{u: u, nControl: m, nCandidate: n}
	var p float64
	if tieTerm == 0 && math.Min(m, n) <= 8 {
		res.exact = true
		p = exactUSF(math.Round(statistic), int(m), int(n))
	} else {
		p = asymptoticUSF(statistic, m, n, tieTerm)
	}
	res.pValue = math.Min(1, 2*p)
	return res, nil
}

func asymptoticUSF(u, m, n, tieTerm float64) float64 {
	total := m + n
	variance := m * n / 12 * ((total + 1) - tieTerm/(total*(total-1)))
	if variance <= 0 {
		return 1
	}
	return normalSF((u - m*n/2 - 0.5) / math.Sqrt(variance))
}

// uCounts: how many arrangements give each U from 0 to upTo, the coefficients of the Gaussian
// binomial [m+n choose m]_q (the Python code's _u_counts, in float64).
func uCounts(m, n, upTo int) []float64 {
	m, n = min(m, n), max(m, n)
	counts := make([]float64, upTo+1)
	counts[0] = 1
	for i := 1; i <= m; i++ {
		shift := n + i
		if shift <= upTo {
			for k := upTo; k >= shift; k-- {
				counts[k] -= counts[k-shift]
			}
		}
		for k := i; k <= upTo; k++ {
			counts[k] += counts[k-i]
		}
	}
	return counts
}

func logComb(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

func comb(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	k = min(k, n-k)
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	if math.IsInf(r, 0) {
		return math.Exp(logComb(n, k))
	}
	return math.Round(r)
}

// exactUSF is P(U >= u) under the null hypothesis without ties.
func exactUSF(u float64, m, n int) float64 {
	if u <= 0 {
		return 1
	}
	if u > float64(m*n) {
		return 0
	}
	total := comb(m+n, m)
	lower := m*n - int(u)
	sum := func(c []float64) float64 {
		s := 0.0
		for _, v := range c {
			s += v
		}
		return s
	}
	if lower < int(u) {
		return sum(uCounts(m, n, lower)) / total
	}
	return 1 - sum(uCounts(m, n, int(u)-1))/total
}

type shiftEstimate struct {
	estimate, low, high float64
}

// ordinal maps float64s to int64s in the same order, so bisection can walk every double.
func ordinal(f float64) int64 {
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return -int64(b & (1<<63 - 1))
	}
	return int64(b)
}

func fromOrdinal(o int64) float64 {
	if o < 0 {
		return -math.Float64frombits(uint64(-o))
	}
	return math.Float64frombits(uint64(o))
}

// pairsAtMost counts the pairs (x, y), with multiplicity, whose difference y - x (as float64
// computes it, like numpy's subtract.outer) is at most d. Both samples sorted ascending.
func pairsAtMost(x, y []weightedValue, cumY []float64, d float64) float64 {
	count, j := 0.0, 0
	for _, xv := range x {
		for j < len(y) && y[j].value-xv.value <= d {
			j++
		}
		count += xv.count * cumY[j]
	}
	return count
}

// orderStatistic is the k-th (from 0) smallest of all pairwise differences y - x: the smallest
// double d with at least k+1 differences <= d, found by bisection over the doubles (64 steps of
// O(len(x) + len(y))), so no pair is ever materialised.
func orderStatistic(x, y []weightedValue, cumY []float64, k float64) float64 {
	lo := ordinal(y[0].value - x[len(x)-1].value)
	hi := ordinal(y[len(y)-1].value - x[0].value)
	for lo < hi {
		mid := lo>>1 + hi>>1 + lo&hi&1 // floor((lo+hi)/2) without overflow
		if pairsAtMost(x, y, cumY, fromOrdinal(mid)) >= k+1 {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return fromOrdinal(lo)
}

// hodgesLehmann is the median of the n1*n2 differences candidate - control with the
// Lehmann/Bauer interval [D(k), D(N-1-k)], k = floor(N/2 - 1/2 - z*sqrt(n1*n2*(n1+n2+1)/12));
// infinite bounds when k < 0.
func hodgesLehmann(control, candidate []weightedValue, confidence float64) (shiftEstimate, error) {
	x, y := sortWeighted(control), sortWeighted(candidate)
	n1, n2 := total(x), total(y)
	if n1 == 0 || n2 == 0 {
		return shiftEstimate{}, fmt.Errorf("hodges-lehmann: %w (n_control=%v, n_candidate=%v)", errEmptySample, n1, n2)
	}
	if !(confidence > 0 && confidence < 1) {
		return shiftEstimate{}, fmt.Errorf("hodges-lehmann: confidence must be strictly between 0 and 1, got %v", confidence)
	}
	cumY := make([]float64, len(y)+1)
	for i, w := range y {
		cumY[i+1] = cumY[i] + w.count
	}
	n := n1 * n2
	sigma := math.Sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
	k := math.Floor(n/2 - 0.5 - normalPPF(0.5+confidence/2)*sigma)
	a := orderStatistic(x, y, cumY, math.Floor((n-1)/2))
	b := orderStatistic(x, y, cumY, math.Floor(n/2))
	res := shiftEstimate{estimate: 0.5 * (a + b), low: math.Inf(-1), high: math.Inf(1)}
	if k >= 0 {
		res.low = orderStatistic(x, y, cumY, k)
		res.high = orderStatistic(x, y, cumY, n-1-k)
	}
	return res, nil
}

// holm returns Holm-Bonferroni step-down adjusted p-values in the order given.
func holm(p []float64) []float64 {
	m := len(p)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p[order[a]] < p[order[b]] })
	out := make([]float64, m)
	running := 0.0
	for rank, idx := range order {
		running = math.Max(running, float64(m-rank)*p[idx])
		out[idx] = math.Min(running, 1)
	}
	return out
}

type proportionResult struct {
	pValue, rateControl, rateCandidate, difference, low, high float64
}

func wilson(successes, n, z float64) (float64, float64) {
	rate := successes / n
	z2 := z * z
	den := 1 + z2/n
	centre := (rate + z2/(2*n)) / den
	half := z * math.Sqrt(rate*(1-rate)/n+z2/(4*n*n)) / den
	low, high := math.Max(0, centre-half), math.Min(1, centre+half)
	if successes == 0 {
		low = 0
	}
	if successes == n {
		high = 1
	}
	return low, high
}

// twoProportion is the pooled two-proportion z-test (two-sided) with Newcombe's hybrid score
// interval for rate_candidate - rate_control.
func twoProportion(fControl, nControl, fCandidate, nCandidate float64, confidence float64) (proportionResult, error) {
	if nControl < 1 || nCandidate < 1 || fControl < 0 || fCandidate < 0 || fControl > nControl || fCandidate > nCandidate {
		return proportionResult{}, fmt.Errorf("two-proportion: counts out of range: %v/%v vs %v/%v", fControl, nControl, fCandidate, nCandidate)
	}
	r1, r2 := fControl/nControl, fCandidate/nCandidate
	pooled := (fControl + fCandidate) / (nControl + nCandidate)
	variance := pooled * (1 - pooled) * (1/nControl + 1/nCandidate)
	p := 1.0
	if r1 != r2 && variance > 0 {
		p = math.Min(1, 2*normalSF(math.Abs(r2-r1)/math.Sqrt(variance)))
	}
	z := normalPPF(0.5 + confidence/2)
	low1, high1 := wilson(fControl, nControl, z)
	low2, high2 := wilson(fCandidate, nCandidate, z)
	d := r2 - r1
	return proportionResult{
		pValue: p, rateControl: r1, rateCandidate: r2, difference: d,
		low:  math.Max(-1, d-math.Hypot(r2-low2, high1-r1)),
		high: math.Min(1, d+math.Hypot(high2-r2, r1-low1)),
	}, nil
}

// sampleRatioMismatch is Pearson's chi-square goodness of fit of observed counts to shares.
func sampleRatioMismatch(observed []float64, shares []float64) (pValue, chiSquare float64, err error) {
	if len(observed) != len(shares) || len(observed) < 2 {
		return 0, 0, fmt.Errorf("sample ratio: %d groups observed, %d shares: need the same number, at least 2", len(observed), len(shares))
	}
	totalObserved, shareSum := 0.0, 0.0
	for i := range observed {
		if observed[i] < 0 || !(shares[i] > 0) {
			return 0, 0, fmt.Errorf("sample ratio: group %d has count %v, share %v", i, observed[i], shares[i])
		}
		totalObserved += observed[i]
		shareSum += shares[i]
	}
	if math.Abs(shareSum-1) > 1e-9 {
		return 0, 0, fmt.Errorf("sample ratio: shares sum to %v, not 1", shareSum)
	}
	if totalObserved == 0 {
		return 1, 0, nil
	}
	for i := range observed {
		e := totalObserved * shares[i]
		chiSquare += (observed[i] - e) * (observed[i] - e) / e
	}
	return chi2SF(chiSquare, len(observed)-1), chiSquare, nil
}

const (
	gammaEps     = 1e-15
	gammaTiny    = 1e-300
	gammaMaxIter = 100000
)

func gammaPrefactor(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	return math.Exp(a*math.Log(x) - x - lg)
}

// chi2SF is Q(df/2, x/2), as the Python code computes it (series below a+1, Lentz beyond).
func chi2SF(x float64, df int) float64 {
	switch {
	case x <= 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	case df == 1:
		return math.Erfc(math.Sqrt(x / 2))
	case df == 2:
		return math.Exp(-x / 2)
	}
	a, half := float64(df)/2, x/2
	if half < a+1 {
		term := 1 / a
		sum, den := term, a
		for range gammaMaxIter {
			den++
			term *= half / den
			sum += term
			if math.Abs(term) < math.Abs(sum)*gammaEps {
				break
			}
		}
		return math.Max(0, 1-sum*gammaPrefactor(a, half))
	}
	b := half + 1 - a
	c, d := 1/gammaTiny, 1/b
	h := d
	for i := 1; i < gammaMaxIter; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < gammaTiny {
			d = gammaTiny
		}
		c = b + an/c
		if math.Abs(c) < gammaTiny {
			c = gammaTiny
		}
		d = 1 / d
		delta := d * c
		h *= delta
		if math.Abs(delta-1) < gammaEps {
			break
		}
	}
	return h * gammaPrefactor(a, half)
}
