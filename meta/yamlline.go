package meta

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/tinycontainer/tinycontainer/internal/lazyre"
)

// The YAML parser reports some errors on the line where the enclosing
// construct started, and its parser (not scanner) errors one line early:
// a tab on line 6 reads "line 5". The line a person must fix is found
// instead as the first line at which the document, cut after it, fails
// with the same message; only documents this short are searched, so the
// search stays cheap on hostile input.
const maxLineSearch = 400

var yamlLineErr = lazyre.New(`^yaml: line (\d+): (.*)$`)

// yamlSyntaxError rewrites the parser's error err for data with the line
// of the problem.
func yamlSyntaxError(data []byte, err error) error {
	m := yamlLineErr().FindStringSubmatch(err.Error())
	if m == nil || bytes.Count(data, []byte("\n")) > maxLineSearch {
		return err
	}
	msg := m[2]
	end := 0
	for line := 1; end < len(data); line++ {
		nl := bytes.IndexByte(data[end:], '\n')
		if nl < 0 {
			end = len(data)
		} else {
			end += nl + 1
		}
		if perr := parseYAMLPrefix(data[:end]); perr != nil {
			if pm := yamlLineErr().FindStringSubmatch(perr.Error()); pm != nil && pm[2] == msg {
				return fmt.Errorf("yaml: line %d: %s", line, msg)
			}
		}
	}
	return err
}

// parseYAMLPrefix parses a prefix of a document, reporting only a syntax
// error.
func parseYAMLPrefix(data []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = nil
		}
	}()
	var n yaml.Node
	return yaml.Unmarshal(data, &n)
}
