package tflite

import (
	"fmt"
	"os"
)

// Run parses model, runs it once on input and returns the output tensor.
func Run(model, input []byte) ([]byte, error) {
	m, err := Parse(model)
	if err != nil {
		return nil, err
	}
	it, err := NewInterpreter(m)
	if err != nil {
		return nil, err
	}
	out := make([]byte, m.Output().Bytes)
	n, err := it.run(model, input, out, nil)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// RunFile runs the .tflite model at modelPath on the raw int8 input bytes
// at inputPath and returns the raw output bytes (the `ml run` verb).
func RunFile(modelPath, inputPath string) ([]byte, error) {
	model, err := os.ReadFile(modelPath)
	if err != nil {
		return nil, err
	}
	input, err := os.ReadFile(inputPath)
	if err != nil {
		return nil, err
	}
	out, err := Run(model, input)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modelPath, err)
	}
	return out, nil
}
