// The device page: polls /api once a second and redraws what changed.
"use strict";

(() => {
  const { el, setText, fmtCount, fmtBytes, fmtUS, fmtUptime, fmtTime, tenantChip, getJSON, poll, ContainerTable } = TC;
  const $ = (id) => document.getElementById(id);

  const MAX_LOG_LINES = 300; // lines kept on the page, however long it stays open
  const AUDIT_ROWS = 100;

  const table = new ContainerTable($("containers").tBodies[0]);
  let lastSeq = 0;
  let logFilter = "";
  let auditSig = "";

  $("log-filter").addEventListener("change", (e) => {
    logFilter = e.target.value;
    lastSeq = 0;
    $("logs").replaceChildren();
  });

  function card(title, ...body) {
    return el("div", { class: "card" }, el("div", { class: "title", text: title }), el("div", { class: "body" }, ...body));
  }

  function count(n, cls, word) {
    return el("span", { class: "count " + (n ? cls : "") }, el("b", { text: String(n) }), " " + word);
  }

  function renderSummary(info) {
    const c = info.containers || {};
    const rts = (info.runtimes || []).map((r) => r.kind + " (" + r.engine + ")").join(", ");
    const w = info.watchdog || {};
    const b = info.bus || {};
    const m = info.mqtt;
    const cards = [
      card("uptime", fmtUptime(info.uptime_s)),
      card("containers", count(c.running || 0, "running", "running"), " · ", count(c.stopped || 0, "stopped", "stopped"),
        " · ", count(c.faulted || 0, "faulted", "faulted")),
      card("runtimes", rts || "none"),
      card("watchdog", w.stopped ? fmtCount(w.stopped) + " runaway activations stopped; p99 " + fmtUS(w.overshoot_p99_us) +
        " past budget" : "no runaway activation yet"),
      card("message bus", fmtCount(b.published || 0) + " published · " + fmtCount(b.delivered || 0) + " delivered · " +
        fmtCount(b.dropped || 0) + " dropped"),
      ...(info.storage ? [card("storage", storageText(info.storage))] : []),
      card("MQTT", m ? (m.connected ? "connected" : "disconnected") + " · " + fmtCount(m.sent) + " sent · " +
        fmtCount(m.received) + " received" + (m.last_error ? " · " + m.last_error : "") : "none (messages stay on the device)"),
    ];
    $("summary").replaceChildren(...cards);
  }

  function storageText(s) {
    const errs = s.errors ? " · " + fmtCount(s.errors) + " kv errors" : "";
    if (s.error) return "free space unknown: " + s.error + errs;
    if (!s.total_bytes) return "in memory" + errs;
    const text = fmtBytes(s.free_bytes) + " free of " + fmtBytes(s.total_bytes) + errs;
    return s.low_space ? el("span", { class: "count faulted" }, el("b", { text: "LOW SPACE " }), text) : text;
  }

  function renderTenants(cs) {
    const ts = new Map();
    for (const c of cs) {
      const t = ts.get(c.tenant) || { n: 0, running: 0, stopped: 0, faulted: 0, denied: 0 };
      t.n++;
      t[c.state] = (t[c.state] || 0) + 1;
      t.denied += c.denied_calls;
      ts.set(c.tenant, t);
    }
    const items = [...ts.keys()].sort().map((name) => {
      const t = ts.get(name);
      const parts = [t.n + (t.n === 1 ? " container" : " containers"), t.running + " running"];
      if (t.stopped) parts.push(t.stopped + " stopped");
      const d = el("div", { class: "tenant", "data-tenant": name }, tenantChip(name), " " + parts.join(" · "));
      if (t.faulted) d.append(" · ", el("span", { class: "count faulted" }, el("b", { text: String(t.faulted) }), " faulted"));
      if (t.denied) d.append(" · ", el("span", { class: "count denied" }, el("b", { text: fmtCount(t.denied) }), " denied calls"));
      return d;
    });
    $("tenants").replaceChildren(...items);
  }

  function renderFilter(cs) {
    const sel = $("log-filter");
    const names = cs.map((c) => c.name);
    const have = [...sel.options].slice(1).map((o) => o.value);
    if (have.join("\n") === names.join("\n")) return;
    sel.replaceChildren(el("option", { value: "", text: "all" }), ...names.map((n) => el("option", { value: n, text: n })));
    sel.value = names.includes(logFilter) ? logFilter : "";
  }

  function addLogs(lines) {
    if (!lines.length) return;
    const list = $("logs");
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    for (const l of lines) {
      if (lastSeq && !logFilter && l.seq > lastSeq + 1) {
        list.append(el("li", { class: "gap", text: "… " + (l.seq - lastSeq - 1) + " lines not shown" }));
      }
      const li = el("li", { "data-seq": String(l.seq), "data-container": l.container },
        el("time", { text: fmtTime(l.time) }), " ", tenantless(l.container), " ", el("span", { class: "text", text: l.text }));
      list.append(li);
      lastSeq = l.seq;
    }
    while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function tenantless(name) { return el("span", { class: "who", text: name }); }

  function renderAudit(es) {
    const last = es[es.length - 1];
    const sig = es.length + "|" + (last ? last.time + last.container + last.reason : "");
    if (sig === auditSig) return;
    auditSig = sig;
    $("audit-empty").hidden = es.length > 0;
    const rows = es.slice().reverse().map((e) => el("tr", { "data-container": e.container },
      el("td", { class: "time", text: fmtTime(e.time) }),
      el("td", { class: "name", text: e.container || "—" }),
      el("td", {}, tenantChip(e.tenant)),
      el("td", { class: "denied", text: e.op + " on " + e.endpoint }),
      el("td", { class: "reason", text: e.reason })));
    $("audit").tBodies[0].replaceChildren(...rows);
  }

  async function tick(signal) {
    const q = new URLSearchParams();
    if (logFilter) q.set("container", logFilter);
    if (lastSeq) q.set("after", String(lastSeq));
    q.set("tail", String(MAX_LOG_LINES));
    const filter = logFilter;
    const [info, cs, logs, audit] = await Promise.all([
      getJSON("/api/info", signal), getJSON("/api/containers", signal),
      getJSON("/api/logs?" + q, signal).catch((e) => { if (filter) return []; throw e; }),
      getJSON("/api/audit?limit=" + AUDIT_ROWS, signal)]);
    renderSummary(info);
    renderTenants(cs);
    table.update(cs, performance.now());
    $("empty").hidden = cs.length > 0;
    renderFilter(cs);
    if (filter === logFilter) addLogs(logs);
    renderAudit(audit);
  }

  poll(tick, 1000, $("conn"));
})();
