// The fleet page: polls /api once a second and redraws what changed.
"use strict";

(() => {
  const { el, setText, fmtCount, fmtTime, tenantChip, getJSON, poll, ContainerTable } = TC;
  const $ = (id) => document.getElementById(id);

  const table = new ContainerTable($("containers").tBodies[0], { device: true });
  // Job states in the order a wave's bar shows them, and their colours.
  const JOBS = ["SUCCEEDED", "IN_PROGRESS", "QUEUED", "PENDING", "TIMED_OUT", "ROLLING_BACK", "ROLLED_BACK",
    "FAILED", "REJECTED", "ROLLBACK_FAILED", "CANCELED"];
  const FAILURES = ["FAILED", "REJECTED", "TIMED_OUT", "ROLLBACK_FAILED"];
  const failures = (c) => FAILURES.reduce((n, s) => n + ((c || {})[s] || 0), 0);

  function card(title, ...body) {
    return el("div", { class: "card" }, el("div", { class: "title", text: title }), el("div", { class: "body" }, ...body));
  }

  // A device's health (fleet devices --json): its badge class and words.
  const HEALTH = { ok: ["running", "online"], warning: ["pressed", "warning"], silent: ["faulted", "silent"],
    offline: ["stopped", "offline"] };
  const health = (d) => HEALTH[d.health] || HEALTH[d.online ? "ok" : "offline"];
  const countOf = (devs, h) => devs.filter((d) => health(d) === HEALTH[h]).length;

  function renderSummary(stats, devs, cs, ros) {
    const faulted = cs.filter((c) => c.state === "faulted").length;
    const active = ros.filter((r) => r.state === "IN_PROGRESS" || r.state === "ABORTING").length;
    const devCount = (h, cls) => {
      const n = countOf(devs, h);
      return el("span", { class: "count " + (n ? cls : "") }, el("b", { text: String(n) }), " " + HEALTH[h][1]);
    };
    $("summary").replaceChildren(
      card("broker", stats.connected ? "connected" : el("span", { class: "count faulted" }, el("b", { text: "disconnected" }))),
      card("devices", devCount("ok", "running"), " · ", devCount("warning", "pressed"), " · ", devCount("silent", "faulted"),
        " · ", devCount("offline", "stopped")),
      card("containers", fmtCount(cs.length) + " · ", el("span", { class: "count " + (faulted ? "faulted" : "") },
        el("b", { text: String(faulted) }), " faulted")),
      card("rollouts", active + " in progress · " + ros.length + " in all"));
  }

  function labelChips(labels) {
    return Object.keys(labels || {}).sort().map((k) => el("span", { class: "label", text: k + "=" + labels[k] }));
  }

  function renderDevices(devs) {
    $("devices-empty").hidden = devs.length > 0;
    const rows = devs.map((d) => {
      const [cls, word] = health(d);
      const rowClass = { stopped: "state-stopped", faulted: "state-faulted", pressed: "pressed" }[cls] || "";
      return el("tr", { "data-device": d.id, "data-health": d.health || "", class: rowClass },
        el("td", { class: "name", text: d.id }),
        el("td", {}, el("span", { class: "badge " + cls, text: word })),
        el("td", { class: "labels" }, ...labelChips(d.labels)),
        el("td", { text: d.version || "" }),
        el("td", { class: "num", text: String(d.containers) }),
        el("td", { class: "time", text: d.last_seen ? fmtTime(d.last_seen) : "" }),
        el("td", { class: "reason problems", text: (d.problems || []).join("; ") }),
        el("td", { class: "reason", text: (d.refusals || []).length ? d.refusals[d.refusals.length - 1].reason : "" }));
    });
    $("devices").tBodies[0].replaceChildren(...rows);
  }

  function waveBar(w) {
    const bar = el("div", { class: "wavebar", title: "wave " + w.index + ": " + w.size + " devices" });
    for (const s of JOBS) {
      const n = (w.counts || {})[s] || 0;
      if (!n) continue;
      const seg = el("span", { class: "seg " + s.toLowerCase(), title: n + " " + s.toLowerCase().replaceAll("_", " ") });
      seg.style.flexGrow = String(n);
      bar.append(seg);
    }
    return el("div", { class: "wave" }, el("span", { class: "wname", text: w.index === 0 ? "canary" : "wave " + w.index }), bar,
      el("span", { class: "wcount", text: waveText(w) }));
  }

  function waveText(w) {
    const c = w.counts || {};
    const parts = [(c.SUCCEEDED || 0) + "/" + w.size + " updated"];
    if (failures(c)) parts.push(failures(c) + " failed");
    if (c.ROLLED_BACK || c.ROLLING_BACK) parts.push(((c.ROLLED_BACK || 0) + (c.ROLLING_BACK || 0)) + " returned");
    return parts.join(" · ");
  }

  function renderRollouts(ros) {
    $("rollouts-empty").hidden = ros.length > 0;
    const state = (s) => ({ COMPLETED: "running", ABORTED: "faulted", ABORTING: "faulted" })[s] || "pressed";
    $("rollouts").replaceChildren(...ros.map((r) => {
      const failed = failures(r.counts);
      return el("div", { class: "rollout", "data-rollout": r.id },
        el("div", { class: "rhead" }, el("b", { text: r.id }), " ", tenantChip(r.tenant), " " + r.container + " → v" + r.version + " ",
          el("span", { class: "badge " + state(r.state), text: r.state.toLowerCase().replaceAll("_", " ") }),
          r.reason ? el("span", { class: "reason", text: " " + r.reason }) : "",
          el("span", { class: "hint", text: " wave " + r.wave + " of " + Math.max(0, (r.waves || []).length - 1) +
            " · max failures " + r.params.max_failures + (failed ? " · " + failed + " failed" : "") })),
        ...(r.waves || []).map(waveBar));
    }));
  }

  async function tick(signal) {
    const [stats, devs, cs, ros] = await Promise.all([getJSON("/api/stats", signal), getJSON("/api/devices", signal),
      getJSON("/api/containers", signal), getJSON("/api/rollouts", signal)]);
    renderSummary(stats, devs, cs, ros);
    renderRollouts(ros);
    renderDevices(devs);
    table.update(cs, performance.now());
    $("empty").hidden = cs.length > 0;
  }

  poll(tick, 1000, $("conn"));
})();
