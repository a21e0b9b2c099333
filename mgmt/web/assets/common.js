// Shared by the device and fleet pages: small DOM helpers, formatting,
// tenant colours, sparklines and the containers table. Plain JavaScript,
// no build step; everything the pages show is set as text, never as HTML.
"use strict";

const TC = (() => {
  // el makes an element with attributes and children (strings become text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  const svgNS = "http://www.w3.org/2000/svg";

  // setText changes a node's text only when it differs (no layout churn).
  function setText(node, text) {
    text = String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function fmtCount(n) {
    if (n < 10000) return String(n);
    if (n < 1e6) return (n / 1e3).toFixed(n < 1e5 ? 1 : 0) + "k";
    if (n < 1e9) return (n / 1e6).toFixed(n < 1e7 ? 2 : 1) + "M";
    return (n / 1e9).toFixed(2) + "G";
  }

  function fmtBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1 << 20) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + " KiB";
    return (n / (1 << 20)).toFixed(1) + " MiB";
  }

  // fmtUS shows a duration given in microseconds.
  function fmtUS(us) {
    if (us < 1000) return us + " µs";
    if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 1 : 0) + " ms";
    return (us / 1e6).toFixed(us < 1e7 ? 2 : 1) + " s";
  }

  function fmtUptime(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + (s % 60) + "s";
    return s + "s";
  }

  function fmtTime(iso) {
    const t = new Date(iso);
    if (isNaN(t)) return "";
    return t.toLocaleTimeString([], { hour12: false }) + "." + String(t.getMilliseconds()).padStart(3, "0");
  }

  // Tenant colours: distinct hues, none of them the red of a fault.
  const HUES = [210, 150, 35, 270, 185, 95, 300, 240];

  // tenantHue gives each tenant a stable colour (FNV-1a of its name).
  function tenantHue(name) {
    let h = 2166136261;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
    return HUES[h % HUES.length];
  }

  function tenantChip(name) {
    const c = el("span", { class: "chip", text: name || "(none)" });
    c.style.setProperty("--hue", tenantHue(name || ""));
    return c;
  }

  function stateBadge(state) {
    return el("span", { class: "badge " + state, text: state });
  }

  // Ring keeps the last n numbers: a page open for hours holds no more.
  class Ring {
    constructor(n) { this.n = n; this.v = []; }
    push(x) { this.v.push(x); if (this.v.length > this.n) this.v.shift(); }
  }

  // sparkline draws values as a small area chart into svg (w×h).
  function sparkline(svg, values, w, h) {
    const max = Math.max(1e-9, ...values);
    const step = values.length > 1 ? w / (values.length - 1) : w;
    let d = "";
    values.forEach((v, i) => {
      const x = (i * step).toFixed(1), y = (h - 1 - (v / max) * (h - 3)).toFixed(1);
      d += (i ? "L" : "M") + x + " " + y;
    });
    let area = svg.firstChild, line = svg.lastChild;
    if (!area) {
      area = document.createElementNS(svgNS, "path");
      area.setAttribute("class", "area");
      line = document.createElementNS(svgNS, "path");
      line.setAttribute("class", "line");
      svg.append(area, line);
    }
    if (values.length < 2) { area.setAttribute("d", ""); line.setAttribute("d", ""); return; }
    line.setAttribute("d", d);
    area.setAttribute("d", d + "L" + ((values.length - 1) * step).toFixed(1) + " " + h + "L0 " + h + "Z");
  }

  function newSparkSVG(w, h) {
    const s = document.createElementNS(svgNS, "svg");
    s.setAttribute("class", "spark");
    s.setAttribute("width", w);
    s.setAttribute("height", h);
    s.setAttribute("viewBox", "0 0 " + w + " " + h);
    s.setAttribute("aria-hidden", "true");
    return s;
  }

  // getJSON fetches a JSON document; it fails on any non-2xx answer.
  async function getJSON(url, signal) {
    const r = await fetch(url, { cache: "no-store", signal });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(url + ": " + msg);
    }
    return r.json();
  }

  // poll calls tick every period ms, one call at a time, slower while it
  // fails, and reports the connection in the element conn.
  function poll(tick, period, conn) {
    let failures = 0;
    async function loop() {
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), 10000);
      try {
        await tick(ctl.signal);
        failures = 0;
        conn.className = "conn live";
        setText(conn, "live · updated " + new Date().toLocaleTimeString([], { hour12: false }));
      } catch (e) {
        failures++;
        conn.className = "conn down";
        setText(conn, "disconnected, retrying: " + e.message);
      } finally {
        clearTimeout(timer);
      }
      setTimeout(loop, failures ? Math.min(10000, period * (1 + failures)) : period);
    }
    loop();
  }

  // SPARK_POINTS samples (one per poll) make a container's chart.
  const SPARK_POINTS = 60, SPARK_W = 100, SPARK_H = 22;

  // ContainerTable keeps one row per container (keyed by key(c)) and each
  // row's recent activity. update(cs, now) takes the objects of
  // `ps --json`; rows of containers gone are removed with their history.
  class ContainerTable {
    constructor(tbody, opts) {
      this.tbody = tbody;
      this.opts = Object.assign({ device: false }, opts);
      this.rows = new Map();
    }

    key(c) { return (this.opts.device ? c.device + "/" : "") + c.name; }

    update(cs, now) {
      const seen = new Set();
      let prev = null;
      for (const c of cs) {
        const k = this.key(c);
        seen.add(k);
        let r = this.rows.get(k);
        if (!r) {
          r = this.newRow(c);
          this.rows.set(k, r);
        }
        // Keep the device's order (by name) in the table.
        const want = prev ? prev.tr.nextSibling : this.tbody.firstChild;
        if (want !== r.tr) this.tbody.insertBefore(r.tr, want);
        this.fill(r, c, now);
        prev = r;
      }
      for (const [k, r] of this.rows) {
        if (!seen.has(k)) { r.tr.remove(); this.rows.delete(k); }
      }
    }

    newRow(c) {
      const cells = {};
      const tr = el("tr", { "data-name": c.name });
      if (this.opts.device) tr.setAttribute("data-device", c.device);
      const td = (name, cls) => { const d = el("td", cls ? { class: cls } : {}); cells[name] = d; tr.append(d); return d; };
      const svg = newSparkSVG(SPARK_W, SPARK_H);
      td("spark").append(svg);
      if (this.opts.device) td("device", "device").append(c.device);
      td("name", "name").append(c.name);
      td("tenant").append(tenantChip(c.tenant));
      td("runtime", "runtime");
      td("state");
      for (const n of ["version", "activations", "faults", "missed", "denied", "cpu", "memory", "preemptions", "throttled", "ratelimited"]) {
        td(n, "num");
      }
      return { tr, cells, svg, last: null, rate: new Ring(SPARK_POINTS), pressure: 0, stateText: "" };
    }

    fill(r, c, now) {
      const x = r.cells;
      let cpuPct = null;
      if (r.last) {
        const dt = (now - r.last.now) / 1000;
        if (dt > 0) {
          r.rate.push(Math.max(0, c.activations - r.last.c.activations) / dt);
          cpuPct = Math.max(0, c.cpu_time_us - r.last.c.cpu_time_us) / 1e4 / dt;
        }
        // A container held back lately (preempted, throttled or rate
        // limited since the last poll) is marked for the next 10 polls.
        if (c.preemptions > r.last.c.preemptions || c.throttled_us > r.last.c.throttled_us ||
            c.rate_limited_calls > r.last.c.rate_limited_calls) r.pressure = 10;
        else if (r.pressure > 0) r.pressure--;
      }
      r.last = { c, now };
      sparkline(r.svg, r.rate.v, SPARK_W, SPARK_H);
      r.tr.className = "state-" + c.state + (r.pressure ? " pressed" : "");
      if (r.stateText !== c.state) {
        x.state.replaceChildren(stateBadge(c.state));
        r.stateText = c.state;
      }
      setText(x.runtime, c.runtime);
      setText(x.version, "v" + c.version);
      setText(x.activations, fmtCount(c.activations));
      setText(x.faults, c.faults ? fmtCount(c.faults) + (c.last_fault ? " (" + c.last_fault + ")" : "") : "0");
      x.faults.classList.toggle("bad", c.faults > 0);
      setText(x.missed, fmtCount(c.missed_deadlines));
      setText(x.denied, fmtCount(c.denied_calls));
      x.denied.classList.toggle("warn", c.denied_calls > 0);
      setText(x.cpu, fmtUS(c.cpu_time_us) + (cpuPct === null ? "" : " · " + cpuPct.toFixed(cpuPct < 1 ? 2 : cpuPct < 10 ? 1 : 0) + "%"));
      setText(x.memory, fmtBytes(c.memory_bytes));
      setText(x.preemptions, fmtCount(c.preemptions));
      setText(x.throttled, fmtUS(c.throttled_us));
      setText(x.ratelimited, fmtCount(c.rate_limited_calls));
      for (const [n, v] of [["preemptions", c.preemptions], ["throttled", c.throttled_us], ["ratelimited", c.rate_limited_calls]]) {
        x[n].classList.toggle("warn", v > 0);
      }
    }
  }

  return { el, setText, fmtCount, fmtBytes, fmtUS, fmtUptime, fmtTime, tenantHue, tenantChip, stateBadge,
    Ring, sparkline, newSparkSVG, getJSON, poll, ContainerTable };
})();
