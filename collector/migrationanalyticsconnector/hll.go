package migrationanalyticsconnector

import (
	"math"
	"math/bits"
)

// The HyperLogLog of otel_migration/_analytics/sketch.py, bit for bit: precision 12 (4,096 one-byte
// registers), the index is a hash's top 12 bits, the rank the position of the first set bit of the
// remaining 52 (1 ... 53), registers merge by maximum. Relative standard error 1.04/sqrt(4096).
const (
	hllPrecision = 12
	hllRegisters = 1 << hllPrecision
	hllValueBits = 64 - hllPrecision
)

// hllRelativeError is the sketch's documented relative standard error (1.6 %).
var hllRelativeError = 1.04 / math.Sqrt(hllRegisters)

var hllAlpha = 0.7213 / (1 + 1.079/hllRegisters)

type hll [hllRegisters]uint8

func (h *hll) add(hash uint64) {
	index := hash >> hllValueBits
	rest := hash & (1<<hllValueBits - 1)
	rank := uint8(hllValueBits - bits.Len64(rest) + 1)
	if rank > h[index] {
		h[index] = rank
	}
}

// mergeBytes merges registers shipped in a log record's body.
func (h *hll) mergeBytes(registers []byte) {
	for i, r := range registers {
		if r > h[i] {
			h[i] = r
		}
	}
}

func (h *hll) merge(o *hll) { h.mergeBytes(o[:]) }

func (h *hll) estimate() float64 {
	sum, zeros := 0.0, 0
	for _, r := range h {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	raw := hllAlpha * hllRegisters * hllRegisters / sum
	if raw <= 2.5*hllRegisters && zeros > 0 {
		return hllRegisters * math.Log(float64(hllRegisters)/float64(zeros)) // linear counting
	}
	return raw
}

// splitmix64 is the 64-bit mixer the tests and the shared fixtures use to make uniform hashes.
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
