package tflite

//go:generate go run ./gen/cmd/demogen -model testdata/demo_model.tflite -header ../../examples/mlcompare/demo_model.h
