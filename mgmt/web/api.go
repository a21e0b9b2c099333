package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// api serves the JSON behind the page: the objects of `ps --json`,
// `logs`, `audit --json` and `info --json`.
type api struct {
	src     mgmt.Reader
	timeout time.Duration
}

// Bounds of the query parameters.
const (
	maxQuery     = 512  // bytes of a raw query string
	maxName      = 128  // bytes of a container name
	maxLogLines  = 1000 // lines per /api/logs answer
	maxLogPages  = 8    // device reads per /api/logs answer (the device keeps 4096 lines)
	defLogLines  = 200
	maxAudit     = 1000
	defAudit     = 100
	logPageLines = 1000 // lines per device read (what every transport accepts)
)

func (a *api) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.timeout)
}

// reader answers a GET without query parameters with what read returns,
// read within timeout: the shape of every /api/ answer but logs and audit.
func reader(timeout time.Duration, read func(context.Context) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := query(w, r); !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		v, err := read(ctx)
		if err != nil {
			writeDeviceError(w, err)
			return
		}
		writeJSON(w, r, v)
	}
}

func (a *api) info(ctx context.Context) (any, error) { return a.src.Info(ctx) }

func (a *api) containers(ctx context.Context) (any, error) {
	cs, err := a.src.List(ctx)
	if cs == nil {
		cs = []mgmt.ContainerStatus{}
	}
	return cs, err
}

func (a *api) container(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if len(name) > maxName {
		writeError(w, http.StatusBadRequest, "container name too long")
		return
	}
	reader(a.timeout, func(ctx context.Context) (any, error) {
		cs, err := a.src.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.Name == name {
				return c, nil
			}
		}
		return nil, fmt.Errorf("%w: no container %q", mgmt.ErrNotFound, truncate(name, 64))
	})(w, r)
}

// logs answers ?container=NAME (default: every container) &after=SEQ
// (lines after that sequence number) and either &max=N (the oldest N of
// them) or &tail=N (the newest N); N is 1..1000, default 200 (tail).
func (a *api) logs(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "container", "after", "max", "tail")
	if !ok {
		return
	}
	name := q.Get("container")
	if len(name) > maxName {
		writeError(w, http.StatusBadRequest, "container name too long")
		return
	}
	after, err := uintParam(q, "after", 0, 0, ^uint64(0))
	if err == nil && q.Has("max") && q.Has("tail") {
		err = errors.New("give max or tail, not both")
	}
	var max, tail uint64
	if err == nil {
		max, err = uintParam(q, "max", 0, 1, maxLogLines)
	}
	if err == nil {
		tail, err = uintParam(q, "tail", defLogLines, 1, maxLogLines)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	var lines []mgmt.LogLine
	if max > 0 {
		lines, err = a.src.Logs(ctx, name, after, int(max))
	} else {
		lines, err = a.tail(ctx, name, after, int(tail))
	}
	if err != nil {
		writeDeviceError(w, err)
		return
	}
	if lines == nil {
		lines = []mgmt.LogLine{}
	}
	writeJSON(w, r, lines)
}

// tail reads the newest n lines after seq. Sequence numbers are
// device-wide, so it starts from a window below the newest one (the
// device's log_seq) that widens until it holds n lines of the container,
// then reads forward page by page, keeping only n: the device never
// collects more than a page of lines per read, however many it retains.
func (a *api) tail(ctx context.Context, name string, after uint64, n int) ([]mgmt.LogLine, error) {
	var top uint64
	if info, err := a.src.Info(ctx); err == nil {
		top = info.LogSeq
	}
	for span := uint64(n); top > after && top-after > span; span *= 4 {
		page, err := a.src.Logs(ctx, name, top-span, logPageLines)
		if err != nil {
			return nil, err
		}
		if len(page) >= n {
			after = top - span
			break
		}
	}
	return a.forward(ctx, name, after, n)
}

// forward reads the lines after seq page by page, keeping the last n.
func (a *api) forward(ctx context.Context, name string, after uint64, n int) ([]mgmt.LogLine, error) {
	var keep []mgmt.LogLine
	for range maxLogPages {
		page, err := a.src.Logs(ctx, name, after, logPageLines)
		if err != nil {
			return nil, err
		}
		keep = append(keep, page...)
		if len(keep) > n {
			keep = append(keep[:0], keep[len(keep)-n:]...)
		}
		if len(page) < logPageLines {
			break
		}
		after = page[len(page)-1].Seq
	}
	return keep, nil
}

// audit answers ?limit=N: the newest N entries (1..1000, default 100),
// oldest first.
func (a *api) audit(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "limit")
	if !ok {
		return
	}
	limit, err := uintParam(q, "limit", defAudit, 1, maxAudit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	es, err := a.src.Audit(ctx, int(limit))
	if err != nil {
		writeDeviceError(w, err)
		return
	}
	if es == nil {
		es = []mgmt.AuditEntry{}
	}
	writeJSON(w, r, es)
}

// query parses r's query string, which may hold only the keys allowed,
// each at most once; otherwise it answers 400 and returns false.
func query(w http.ResponseWriter, r *http.Request, allowed ...string) (url.Values, bool) {
	raw := r.URL.RawQuery
	if len(raw) > maxQuery {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query string longer than %d bytes", maxQuery))
		return nil, false
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed query string")
		return nil, false
	}
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || k == a
		}
		if !known {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", truncate(k, 32)))
			return nil, false
		}
		if len(vs) > 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q given more than once", k))
			return nil, false
		}
	}
	return q, true
}

// uintParam reads q[key] as a decimal in lo..hi, def when absent.
func uintParam(q url.Values, key string, def, lo, hi uint64) (uint64, error) {
	if !q.Has(key) {
		return def, nil
	}
	v, err := strconv.ParseUint(q.Get(key), 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s must be a whole number in %d..%d", key, lo, hi)
	}
	return v, nil
}

// writeJSON answers v as JSON. The API's answers change every second, so
// nothing caches them.
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeDeviceError maps the error classes of mgmt to HTTP statuses.
func writeDeviceError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, mgmt.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, mgmt.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, mgmt.ErrDenied):
		status = http.StatusForbidden
	case errors.Is(err, mgmt.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, mgmt.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	writeError(w, status, err.Error())
}

// truncate shortens s, which may come from the request, for an answer.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
