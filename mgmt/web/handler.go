package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tinycontainer/tinycontainer/mgmt"
)

// assets are the page's files: plain HTML, CSS and JavaScript, no build
// step and nothing fetched from elsewhere, so the page works on a device
// with no internet.
//
//go:embed assets
var assets embed.FS

// NewHandler serves src's dashboard, /api/ and /metrics. Serve uses it;
// it is exported for servers of one's own (say, behind TLS).
func NewHandler(src mgmt.Reader, opts Options) http.Handler {
	opts = opts.withDefaults()
	a := &api{src: src, timeout: opts.CallTimeout}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page("device.html"))
	mux.Handle("GET /assets/", assetHandler())
	mux.Handle("GET /metrics", gzipFast(promhttp.HandlerFor(&gatherer{src: src, timeout: opts.CallTimeout}, promhttp.HandlerOpts{
		ErrorHandling: promhttp.HTTPErrorOnError,
		// gzipFast compresses, faster than promhttp's default level.
		DisableCompression: true,
		// Scrapes past this many at once get 503: a scrape reads every
		// container, so a crowd of scrapers must not queue up.
		MaxRequestsInFlight: 2,
	})))
	mux.HandleFunc("GET /api/info", reader(opts.CallTimeout, a.info))
	mux.HandleFunc("GET /api/containers", reader(opts.CallTimeout, a.containers))
	mux.HandleFunc("GET /api/containers/{name}", a.container)
	mux.HandleFunc("GET /api/logs", a.logs)
	mux.HandleFunc("GET /api/audit", a.audit)
	mux.HandleFunc("/", notFound)
	return guard(mux, !opts.AllowRemote)
}

// guard refuses what no endpoint serves before it reaches one: methods
// other than GET and HEAD (nothing here changes state), and, when serving
// loopback only, a Host that is not loopback. It also sets the headers
// every answer carries.
func guard(next http.Handler, loopbackHost bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "+
			"frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "read-only: only GET and HEAD are served; state changes are signed CLI verbs")
			return
		}
		if loopbackHost && !isLoopbackHost(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, "this dashboard serves loopback names only (localhost, 127.0.0.1, [::1])")
			return
		}
		if r.Method == http.MethodHead {
			w = headOnly{w}
		}
		next.ServeHTTP(w, r)
	})
}

// headOnly answers HEAD: headers, and no body whatever the handler writes.
type headOnly struct{ http.ResponseWriter }

func (h headOnly) Write(b []byte) (int, error) { return len(b), nil }

// isLoopbackHost tells whether a Host header names this host.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no such page: "+truncate(r.URL.Path, 80))
}

// page serves one page of the assets (device.html, fleet.html) in the
// frame of layout.html, rendered once.
func page(name string) http.Handler {
	b, err := render(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			writeError(w, http.StatusInternalServerError, "page missing from this build: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}

// render executes the page name (WHAT.html) in the frame of layout.html.
func render(name string) ([]byte, error) {
	t, err := template.ParseFS(assets, "assets/layout.html", "assets/"+name)
	if err != nil {
		return nil, err
	}
	what := strings.TrimSuffix(name, ".html")
	var b bytes.Buffer
	err = t.ExecuteTemplate(&b, "layout", struct {
		What  string
		Fleet bool
	}{what, what == "fleet"})
	return b.Bytes(), err
}

// assetHandler serves the page's scripts and style sheet.
func assetHandler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory exists at build time
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No directory listings, no HTML from here, and a name the file
		// system refuses (bad UTF-8: fuzzing found a 500) is not found.
		name := strings.TrimPrefix(r.URL.Path, "/assets/")
		if strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, ".html") || !fs.ValidPath(name) {
			notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
