package coap

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// resource identifies one entry of the resource table.
type resource int

const (
	resCore           resource = iota + 1 // /.well-known/core
	resList                               // /c
	resStatus                             // /c/{name}
	resMeta                               // /c/{name}/meta
	resLogs                               // /c/{name}/logs
	resContainerStats                     // /c/{name}/stats
	resStats                              // /stats
	resAudit                              // /audit
	resDeploy                             // /deploy
	resExec                               // /exec
	resInfo                               // /d
	resTenants                            // /t
)

// Defaults and ceilings of the numeric query parameters; the ceilings keep
// one response within a bounded number of blocks.
const (
	defaultLogMax  = 100
	maxLogMax      = 1000
	defaultAudit   = 100
	maxAuditLimit  = 1000
	maxSegmentLen  = 64 // longer than any valid path segment
	maxQueryLength = 64
)

// request is a parsed request line: which resource and its parameters.
type request struct {
	res   resource
	name  string // container name for the /c/{name} family
	after uint64 // logs: lines with Seq > after
	max   int    // logs: at most this many lines
	limit int    // audit: at most this many entries
	table bool   // list and stats: the compact form (form=table)
	// filter is the RFC 6690 query filter of /.well-known/core, as
	// attribute and value (a trailing '*' matches a prefix).
	filterKey, filterVal string
}

// parseRequest checks method, path and query of a request. segments are the
// Uri-Path options, queries the Uri-Query options, both undecoded.
func parseRequest(method codes.Code, segments, queries []string) (request, error) {
	for _, s := range segments {
		if s == "" || len(s) > maxSegmentLen {
			return request{}, fmt.Errorf("%w: no resource /%s", mgmt.ErrNotFound, pathString(segments))
		}
	}
	var r request
	switch {
	case len(segments) == 2 && segments[0] == ".well-known" && segments[1] == "core":
		r.res = resCore
	case len(segments) == 1 && segments[0] == "c":
		r.res = resList
	case len(segments) == 1 && segments[0] == "stats":
		r.res = resStats
	case len(segments) == 1 && segments[0] == "d":
		r.res = resInfo
	case len(segments) == 1 && segments[0] == "t":
		r.res = resTenants
	case len(segments) == 1 && segments[0] == "audit":
		r.res = resAudit
	case len(segments) == 1 && segments[0] == "deploy":
		r.res = resDeploy
	case len(segments) == 1 && segments[0] == "exec":
		r.res = resExec
	case (len(segments) == 2 || len(segments) == 3) && segments[0] == "c":
		if !validName(segments[1]) {
			return request{}, fmt.Errorf("%w: %q is not a container name", mgmt.ErrInvalid, segments[1])
		}
		r.name = segments[1]
		r.res = resStatus
		if len(segments) == 3 {
			switch segments[2] {
			case "meta":
				r.res = resMeta
			case "logs":
				r.res = resLogs
			case "stats":
				r.res = resContainerStats
			default:
				return request{}, fmt.Errorf("%w: no resource /%s", mgmt.ErrNotFound, pathString(segments))
			}
		}
	default:
		return request{}, fmt.Errorf("%w: no resource /%s", mgmt.ErrNotFound, pathString(segments))
	}
	want := codes.GET
	if r.res == resDeploy || r.res == resExec {
		want = codes.POST
	}
	if method != want {
		return request{}, fmt.Errorf("%w: /%s takes %v, not %v", errMethodNotAllowed, pathString(segments), want, method)
	}
	if err := r.parseQueries(queries); err != nil {
		return request{}, err
	}
	return r, nil
}

func (r *request) parseQueries(queries []string) error {
	r.max, r.limit = defaultLogMax, defaultAudit
	seen := make(map[string]bool, len(queries))
	for _, q := range queries {
		if len(q) > maxQueryLength {
			return fmt.Errorf("%w: query parameter longer than %d bytes", mgmt.ErrInvalid, maxQueryLength)
		}
		key, val, ok := strings.Cut(q, "=")
		if !ok || key == "" {
			return fmt.Errorf("%w: query parameter %q is not key=value", mgmt.ErrInvalid, q)
		}
		if seen[key] {
			return fmt.Errorf("%w: query parameter %q given twice", mgmt.ErrInvalid, key)
		}
		seen[key] = true
		var err error
		switch {
		case r.res == resCore:
			// RFC 6690 section 4.1: one filter on a link attribute.
			if len(seen) > 1 {
				return fmt.Errorf("%w: /.well-known/core takes one filter", mgmt.ErrInvalid)
			}
			if strings.Contains(strings.TrimSuffix(val, "*"), "*") {
				return fmt.Errorf("%w: filter %q: '*' only at the end", mgmt.ErrInvalid, q)
			}
			r.filterKey, r.filterVal = key, val
		case r.res == resLogs && key == "after":
			r.after, err = strconv.ParseUint(val, 10, 64)
		case r.res == resLogs && key == "max":
			r.max, err = parseCount(val, maxLogMax)
		case (r.res == resList || r.res == resStats) && key == "form":
			if val != "table" {
				err = fmt.Errorf("form %q", val)
			}
			r.table = true
		case r.res == resAudit && key == "limit":
			r.limit, err = parseCount(val, maxAuditLimit)
		default:
			return fmt.Errorf("%w: unknown query parameter %q", mgmt.ErrInvalid, key)
		}
		if err != nil {
			return fmt.Errorf("%w: query parameter %q: not a number in range", mgmt.ErrInvalid, q)
		}
	}
	return nil
}

// parseCount reads a decimal count in 1..ceiling.
func parseCount(s string, ceiling int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > ceiling || s[0] == '+' {
		return 0, fmt.Errorf("%q is not in 1..%d", s, ceiling)
	}
	return n, nil
}

// validName reports whether s is a container name of SPEC section 5:
// [a-z0-9][a-z0-9-]{0,31}.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// pathString renders path segments for messages, quoting what is not plain.
func pathString(segments []string) string {
	var b strings.Builder
	for i, s := range segments {
		if i > 0 {
			b.WriteByte('/')
		}
		if len(s) > maxSegmentLen {
			s = s[:maxSegmentLen] + "..."
		}
		q := strconv.Quote(s)
		if q[1:len(q)-1] == s && !strings.ContainsAny(s, "/ ") {
			b.WriteString(s)
		} else {
			b.WriteString(q)
		}
	}
	return b.String()
}
