package tflite

import (
	"math"
	"math/bits"
)

// Fixed-point helpers with exactly TFLite's (gemmlowp's) integer semantics:
// the reference kernels' double-rounding MultiplyByQuantizedMultiplier.

// quantizeMultiplier splits m into a Q31 significand and a power-of-two
// exponent like tflite::QuantizeMultiplier (frexp, round half away).
func quantizeMultiplier(m float64) (int32, int) {
	if !(m > 0) {
		return 0, 0 // zero (scales are validated non-negative, not NaN)
	}
	if m >= 1<<31 {
		return math.MaxInt32, 30 // includes +Inf from denormal scales
	}
	q, shift := math.Frexp(m)
	qf := int64(math.Round(q * (1 << 31)))
	if qf == 1<<31 {
		qf /= 2
		shift++
	}
	if shift < -31 {
		return 0, 0
	}
	if shift > 30 {
		// TFLite saturates multipliers it cannot represent.
		return math.MaxInt32, 30
	}
	return int32(qf), shift
}

func saturatingRoundingDoublingHighMul(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - 1<<30
	}
	return int32((ab + nudge) / (1 << 31))
}

func roundingDivideByPOT(x int32, exp int) int32 {
	mask := int32(1)<<exp - 1
	rem := x & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	r := x >> exp
	if rem > threshold {
		r++
	}
	return r
}

// multiplyByQuantizedMultiplier is TFLite's reference (double rounding).
func multiplyByQuantizedMultiplier(x, qm int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	return roundingDivideByPOT(saturatingRoundingDoublingHighMul(x*(1<<left), qm), right)
}

// Activation functions (schema ActivationFunctionType).
const (
	actNone   = 0
	actRelu   = 1
	actReluN1 = 2
	actRelu6  = 3
)

// activationRange is CalculateActivationRangeQuantized for int8 output:
// the real bounds quantized with float32 arithmetic, clamped to int8.
func activationRange(act uint8, scale float32, zp int32) (int32, int32, bool) {
	quant := func(f float32) int32 { return zp + int32(math.Round(float64(f/scale))) }
	lo, hi := int32(math.MinInt8), int32(math.MaxInt8)
	switch act {
	case actNone:
	case actRelu:
		lo = max(lo, quant(0))
	case actRelu6:
		lo, hi = max(lo, quant(0)), min(hi, quant(6))
	case actReluN1:
		lo, hi = max(lo, quant(-1)), min(hi, quant(1))
	default:
		return 0, 0, false
	}
	return lo, hi, true
}

// gemmlowp fixed point for softmax. Raw int32 values; the number of
// integer bits is tracked by the caller as in gemmlowp::FixedPoint.

func saturatingRoundingMulByPOT(x int32, exp int) int32 {
	if exp <= 0 {
		return roundingDivideByPOT(x, -exp)
	}
	threshold := int32(1)<<(31-exp) - 1
	switch {
	case x > threshold:
		return math.MaxInt32
	case x < -threshold:
		return math.MinInt32
	}
	return x << exp
}

// expOnIntervalNegQuarterTo0 evaluates exp(a) for a in [-1/4, 0), Q0.31.
func expOnIntervalNegQuarterTo0(a int32) int32 {
	const constantTerm = 1895147668 // exp(-1/8)
	const oneThird = 715827883
	x := a + 1<<28
	x2 := saturatingRoundingDoublingHighMul(x, x)
	x3 := saturatingRoundingDoublingHighMul(x2, x)
	x4 := saturatingRoundingDoublingHighMul(x2, x2)
	x4over4 := saturatingRoundingMulByPOT(x4, -2)
	poly := saturatingRoundingMulByPOT(saturatingRoundingDoublingHighMul(x4over4+x3, oneThird)+x2, -1)
	return constantTerm + saturatingRoundingDoublingHighMul(constantTerm, x+poly)
}

// expOnNegativeValues is gemmlowp::exp_on_negative_values for an input
// with 5 integer bits (Q5.26); the result is Q0.31.
func expOnNegativeValues(a int32) int32 {
	const fracBits = 26
	const quarter = int32(1) << (fracBits - 2)
	aModQuarterMinusQuarter := (a & (quarter - 1)) - quarter
	result := expOnIntervalNegQuarterTo0(saturatingRoundingMulByPOT(aModQuarterMinusQuarter, 5))
	remainder := aModQuarterMinusQuarter - a
	// exp(-2^k) for k = -2..4 in Q0.31.
	mults := [...]int32{1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242}
	for i, mlt := range mults {
		if remainder&(1<<(fracBits-2+i)) != 0 {
			result = saturatingRoundingDoublingHighMul(result, mlt)
		}
	}
	if a == 0 {
		return math.MaxInt32
	}
	return result
}

// oneOverOnePlusX is gemmlowp::one_over_one_plus_x_for_x_in_0_1 (Q0.31 in,
// Q0.31 out) by Newton-Raphson in Q2.29.
func oneOverOnePlusX(a int32) int32 {
	sum := int64(a) + math.MaxInt32
	sign := int64(1)
	if sum < 0 {
		sign = -1
	}
	halfDen := int32((sum + sign) / 2)
	const c48over17 = 1515870810
	const cNeg32over17 = -1010580540
	x := c48over17 + saturatingRoundingDoublingHighMul(halfDen, cNeg32over17)
	const oneQ2 = int32(1) << 29
	for range 3 {
		hdx := saturatingRoundingDoublingHighMul(halfDen, x)
		x += saturatingRoundingMulByPOT(saturatingRoundingDoublingHighMul(x, oneQ2-hdx), 2)
	}
	return saturatingRoundingMulByPOT(x, 1)
}

// getReciprocal is tflite::GetReciprocal.
func getReciprocal(x int32, intBits int) (int32, int) {
	headroom := bits.LeadingZeros32(uint32(x))
	shifted := int32(uint32(x)<<headroom - 1<<31)
	return oneOverOnePlusX(shifted), intBits - headroom
}

// QuantizeMultiplier is TFLite's QuantizeMultiplier: m ~ mult * 2^(shift-31).
// Exported for code generators that emit kernel constants.
func QuantizeMultiplier(m float64) (mult int32, shift int) { return quantizeMultiplier(m) }
