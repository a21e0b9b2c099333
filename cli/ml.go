package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/ml/tflite"
)

func newMLCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ml", Short: "TinyML on this host"}
	var out string
	run := &cobra.Command{
		Use:   "run MODEL INPUT [-o OUT]",
		Short: "Run an int8 .tflite model on raw int8 input bytes; write the raw output bytes",
		Long: `Run executes the model with the engine behind the ml endpoint (bit-exact with
TFLite Micro's reference kernels). The input file holds the input tensor's
raw int8 bytes; the output goes to -o, or to stdout as raw bytes.`,
		Example: `  tinycontainer ml run model.tflite input.int8.bin -o output.bin
  tinycontainer ml run ml/tflite/testdata/demo_model.tflite in.bin | xxd`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := tflite.RunFile(args[0], args[1])
			if err != nil {
				return usageError{err}
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(res)
				return err
			}
			if err := os.WriteFile(out, res, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d bytes to %s\n", len(res), out)
			return nil
		},
	}
	run.Flags().StringVarP(&out, "out", "o", "", "output file (default stdout)")
	cmd.AddCommand(run)
	return cmd
}
