// Package tflite is a pure-Go int8 TensorFlow Lite engine for the ml
// endpoint: a bounds-checked flatbuffer reader, an arena planner and
// integer kernels that match TFLite Micro's reference kernels bit for bit.
//
// Models are read in place: a parsed Model keeps offsets, never the bytes,
// so the same model may be handed in again from a guest memory that moved.
package tflite

import "errors"

// Error classes. Every error returned by this package wraps exactly one.
var (
	// ErrInvalidModel: the bytes are not a well-formed TFLite model, or the
	// graph is inconsistent (shapes, tensor indices, quantization).
	ErrInvalidModel = errors.New("invalid model")
	// ErrUnsupported: a well-formed model uses an operator, type or option
	// this engine does not implement (the ml endpoint answers ENOSYS).
	ErrUnsupported = errors.New("unsupported model feature")
	// ErrLimit: the model would need more memory or work than allowed.
	ErrLimit = errors.New("model exceeds engine limits")
	// ErrInput: the input length does not match the model's input tensor.
	ErrInput = errors.New("bad input")
	// ErrOutputTooSmall: the output buffer cannot hold the output tensor.
	ErrOutputTooSmall = errors.New("output buffer too small")
	// ErrModelChanged: Interpreter.Invoke got bytes whose structure differs
	// from the model it was built for (weights may differ, structure not).
	ErrModelChanged = errors.New("model structure changed since parse")
	// ErrStopped: the caller's Pace function stopped the inference (the
	// activation that asked for it ran out of budget or is being stopped).
	ErrStopped = errors.New("inference stopped")
)

// Limits bound what a (possibly hostile) model may make the host do.
const (
	MaxArenaBytes  = 4 << 20  // activation arena per interpreter
	MaxTensorBytes = 16 << 20 // any single tensor
	MaxTensors     = 1 << 12
	MaxOperators   = 1 << 11
	MaxRank        = 6
	// MaxMACs bounds the multiply-accumulates of one inference (~0.1-0.3 s).
	MaxMACs = 1 << 28
	// maxParseWork bounds the vector elements and tables the parser visits,
	// so shared sub-objects cannot make parsing quadratic.
	maxParseWork = 1 << 22
)
