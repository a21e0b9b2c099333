// Command tinycontainer is the TinyContainer runtime's command line; see
// `tinycontainer --help`.
package main

import (
	"os"

	"github.com/tinycontainer/tinycontainer/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
