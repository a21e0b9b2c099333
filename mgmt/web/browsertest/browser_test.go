package browsertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tinycontainer/tinycontainer/cli"
	"github.com/tinycontainer/tinycontainer/mgmt"
	"github.com/tinycontainer/tinycontainer/mgmt/web"
)

// browser starts a headless chromium with a fresh profile and returns a
// tab's context. Without chromium the test skips, unless
// TC_REQUIRE_CHROMIUM=1.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("TC_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("chromium is required (TC_REQUIRE_CHROMIUM=1): %v", err)
		}
		t.Skipf("no chromium: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	return ctx
}

// eventually evaluates the JavaScript expression js until it is true,
// polling; the deadline is generous because the machine may be busy.
func eventually(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 4000)`))
			t.Fatalf("timed out waiting for %s (last error: %v); the page shows:\n%s", what, last, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// screenshot saves the page as a PNG test artifact and returns its path:
// under $TC_ARTIFACTS, or the temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("TC_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "tinycontainer-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	return p
}

// rowIsRed is true when the row of container name is drawn red: its
// background's red channel clearly above green and blue.
func rowIsRed(name string) string {
	return fmt.Sprintf(`(() => {
	  const r = document.querySelector('#containers tr[data-name=%q]');
	  if (!r) return false;
	  const m = getComputedStyle(r).backgroundColor.match(/\d+/g);
	  if (!m) return false;
	  const [R, G, B] = m.map(Number);
	  return R > G + 20 && R > B + 20 && r.innerText.includes('faulted');
	})()`, name)
}

// fake is a device the test changes while the page watches it.
type fake struct {
	mu    sync.Mutex
	cs    []mgmt.ContainerStatus
	logs  []mgmt.LogLine
	audit []mgmt.AuditEntry
}

func (f *fake) List(context.Context) ([]mgmt.ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mgmt.ContainerStatus(nil), f.cs...), nil
}

func (f *fake) Logs(_ context.Context, name string, after uint64, max int) ([]mgmt.LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mgmt.LogLine
	for _, l := range f.logs {
		if l.Seq > after && (name == "" || l.Container == name) && len(out) < max {
			out = append(out, l)
		}
	}
	return out, nil
}

func (f *fake) WatchLogs(context.Context, string, uint64) (<-chan mgmt.LogLine, error) {
	return nil, errors.ErrUnsupported
}

func (f *fake) Audit(_ context.Context, limit int) ([]mgmt.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.audit
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return append([]mgmt.AuditEntry(nil), out...), nil
}

func (f *fake) Info(context.Context) (mgmt.DeviceInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info := mgmt.DeviceInfo{UptimeS: 42, Containers: map[string]int{},
		Runtimes: []mgmt.RuntimeInfo{{Kind: "wasm", Engine: "compiler"}}, LogSeq: uint64(len(f.logs))}
	for _, c := range f.cs {
		info.Containers[c.State]++
	}
	return info, nil
}

func (f *fake) update(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fake) log(container, text string) {
	f.update(func(f *fake) {
		f.logs = append(f.logs, mgmt.LogLine{Seq: uint64(len(f.logs) + 1), Time: time.Now(), Container: container, Text: text})
	})
}

// TestBrowserDashboard watches a device change in a real browser: names
// and states appear, a fault turns a row red, a denied call appears in
// the audit, and new log lines arrive without a reload.
func TestBrowserDashboard(t *testing.T) {
	ctx := browser(t)
	f := &fake{cs: []mgmt.ContainerStatus{
		{Name: "alpha", Tenant: "acme", Runtime: "wasm", State: mgmt.StateRunning, Version: 1, MemoryBytes: 65536},
		{Name: "beta", Tenant: "acme", Runtime: "ebpf", State: mgmt.StateRunning, Version: 2},
		{Name: "gamma", Tenant: "globex", Runtime: "wasm", State: mgmt.StateStopped, Version: 1},
	}}
	f.log("alpha", "hello from alpha")
	srv := httptest.NewServer(web.NewHandler(f, web.Options{}))
	defer srv.Close()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the three containers with their states", `(() => {
	  const rows = [...document.querySelectorAll('#containers tbody tr')].map(r => r.innerText);
	  return rows.length === 3 && rows[0].includes('alpha') && rows[0].includes('running') &&
	    rows[1].includes('beta') && rows[1].includes('running') && rows[2].includes('gamma') && rows[2].includes('stopped');
	})()`)
	eventually(t, ctx, "the first log line", `document.getElementById('logs').innerText.includes('hello from alpha')`)
	if eval[bool](t, ctx, rowIsRed("beta")) {
		t.Fatal("beta is red before its fault")
	}
	// Nothing below may reload the page: a reload would lose this mark.
	eval[int](t, ctx, `window.__mark = 7`)

	f.update(func(f *fake) {
		f.cs[1].State, f.cs[1].Faults, f.cs[1].LastFault = mgmt.StateFaulted, 3, mgmt.FaultBudget
	})
	eventually(t, ctx, "beta's row turning red", rowIsRed("beta"))
	if eval[bool](t, ctx, rowIsRed("alpha")) {
		t.Fatal("alpha is red too")
	}

	f.update(func(f *fake) {
		f.audit = append(f.audit, mgmt.AuditEntry{Time: time.Now(), Container: "gamma", Tenant: "globex",
			Endpoint: "actuator/led0", Op: "write", Reason: "not granted"})
	})
	eventually(t, ctx, "the denied call in the audit", `(() => {
	  const r = document.querySelector('#audit tbody tr');
	  return !!r && r.innerText.includes('gamma') && r.innerText.includes('globex') &&
	    r.innerText.includes('write on actuator/led0') && r.innerText.includes('not granted');
	})()`)

	f.log("gamma", "a line written after the page loaded")
	eventually(t, ctx, "the new log line", `document.getElementById('logs').innerText.includes('a line written after the page loaded')`)
	if eval[int](t, ctx, `window.__mark`) != 7 {
		t.Fatal("the page reloaded")
	}

	// A tab left open keeps a bounded log however many lines arrive.
	for i := range 1000 {
		f.log("alpha", fmt.Sprintf("flood %d", i))
	}
	eventually(t, ctx, "the last flooded line", `document.getElementById('logs').innerText.includes('flood 999')`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#logs li').length`); n > 301 {
		t.Fatalf("%d log lines kept on the page", n)
	}
	if n := eval[int](t, ctx, `(() => { const r = new TC.Ring(60); for (let i = 0; i < 1000; i++) r.push(i); return r.v.length; })()`); n != 60 {
		t.Fatalf("a chart keeps %d points", n)
	}
	screenshot(t, ctx, "dashboard-fake.png")
}

// syncBuffer is an io.Writer the test reads while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBrowserDemo runs `tinycontainer demo --http` and checks that its
// story can be seen on the page without the terminal: both tenants, the
// denied call, the live permission change (snoop's metadata v3 and its
// readings in the log), the runaway stopped (a red row). With
// TC_UPDATE_SCREENSHOT=1 it also writes the README's picture,
// docs/dashboard.png.
func TestBrowserDemo(t *testing.T) {
	ctx := browser(t)
	// Start the browser before the demo, so the page is open early.
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(context.Background())
	out := &syncBuffer{}
	// The story's 20 s leave snoop (the lowest priority) several periods
	// of its 6 s grant even on a machine loaded many times over.
	done := make(chan int, 1)
	go func() {
		done <- cli.MainContext(dctx, []string{"demo", "--http", "127.0.0.1:0", "--for", "20s"}, out, io.Discard)
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("demo exit %d:\n%s", code, out)
		}
	}()
	re := regexp.MustCompile(`Dashboard: (http://\S+)`)
	var url string
	for deadline := time.Now().Add(2 * time.Minute); url == ""; time.Sleep(20 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				url = m[1]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dashboard address:\n%s", out)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "both tenants", `(() => { const t = document.getElementById('tenants').innerText;
	  return t.includes('acme') && t.includes('globex'); })()`)
	eventually(t, ctx, "the runaway stopped: its row red", rowIsRed("runaway"))
	eventually(t, ctx, "snoop's denied call in the audit", `(() => [...document.querySelectorAll('#audit tbody tr')].some(r =>
	  r.innerText.includes('snoop') && r.innerText.includes('globex') && r.innerText.includes('open on sensor/temperature')))()`)
	// As a person would: show snoop's lines only (the page keeps the newest
	// 300 lines, and on a busy machine the page may open late).
	eval[bool](t, ctx, `(() => { const s = document.getElementById('log-filter');
	  s.value = 'snoop'; s.dispatchEvent(new Event('change')); return s.value === 'snoop'; })()`)
	eventually(t, ctx, "snoop granted live: a reading in its log", `(() => [...document.querySelectorAll('#logs li')].some(l =>
	  l.dataset.container === 'snoop' && /temperature: \d+ mC/.test(l.innerText)))()`)
	eventually(t, ctx, "snoop's denied reads in its log too", `(() => [...document.querySelectorAll('#logs li')].some(l =>
	  l.dataset.container === 'snoop' && l.innerText.includes('temperature: denied')))()`)
	eventually(t, ctx, "snoop's rulebook at v3 after the owner revoked it", `(() => {
	  const r = document.querySelector('#containers tr[data-name="snoop"]');
	  return !!r && r.innerText.includes('v3'); })()`)
	if os.Getenv("TC_UPDATE_SCREENSHOT") == "1" {
		// Let the charts fill a little for the picture.
		eventually(t, ctx, "thermo's chart filling", `(() => {
		  const p = document.querySelector('#containers tr[data-name="thermo"] path.line');
		  return !!p && (p.getAttribute('d').match(/L/g) || []).length >= 25; })()`)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "..", "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	screenshot(t, ctx, "dashboard-demo.png")
}
