// keel dashboard: the token, the JSON API, the live stats stream (SSE), charts and counters.
// Everything a client or the server sends is put on the page with textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const kHistorySeconds = 300;  // the charts show the last five minutes

  // The admin token comes in the URL keel logs (http://127.0.0.1:PORT/#token=...). It is kept
  // for this tab only (sessionStorage) and removed from the address bar at once.
  function takeToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("keel-token", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("keel-token") || "";
  }
  keel.token = takeToken();
  // A #token= URL pasted into this open tab changes only the fragment: start again with it.
  window.addEventListener("hashchange", () => { if (takeToken() !== keel.token) location.reload(); });

  // Client ids are 64-bit: JSON numbers above 2^53 would lose digits in JavaScript, so ids are
  // read as strings (a quoted "id": key cannot occur inside a JSON string, whose quotes are escaped).
  keel.parseJson = (text) => JSON.parse(text.replace(/"(id|kicked)"\s*:\s*(\d+)/g, '"$1":"$2"'));

  // Reads carry the token too when there is one: off loopback keel asks for it on every request.
  const authorization = () => (keel.token ? { Authorization: "Bearer " + keel.token } : {});
  keel.getJson = async function (path) {
    const response = await fetch(path, { cache: "no-store", headers: authorization() });
    const body = keel.parseJson(await response.text());
    if (!response.ok || body.ok === false) throw new Error(body.error || response.statusText);
    return body;
  };

  // State-changing requests: POST with the bearer token (the server also checks the Origin).
  keel.post = async function (path, request) {
    if (!keel.token) throw new Error("no admin token: open the URL keel logged (…/#token=…)");
    const response = await fetch(path, {
      method: "POST",
      cache: "no-store",
      headers: Object.assign({ "Content-Type": "application/json" }, authorization()),
      body: JSON.stringify(request),
    });
    let body = {};
    try { body = keel.parseJson(await response.text()); } catch (e) { body = {}; }
    if (!response.ok || body.ok === false)
      throw new Error(body.error || response.status + " " + response.statusText);
    return body;
  };

  const charts = {
    connections: new keel.TimeChart($("chart-connections"), [{ name: "connections", color: "#2563eb" }], "", kHistorySeconds),
    msgs: new keel.TimeChart($("chart-msgs"), [{ name: "in", color: "#0e9f6e" }, { name: "out", color: "#d97706" }], "", kHistorySeconds),
    bytes: new keel.TimeChart($("chart-bytes"), [{ name: "in", color: "#0e9f6e" }, { name: "out", color: "#d97706" }], "B", kHistorySeconds),
  };

  const num = (v) => (typeof v === "number" && isFinite(v) ? v : 0);
  const first = (row, names) => { for (const n of names) if (typeof row[n] === "number") return row[n]; return 0; };

  // One stats event (or /api/stats reply) reduced to totals over every service.
  function totalsOf(stats) {
    const t = { connections: 0, msgs_in: 0, msgs_out: 0, bytes_in: 0, bytes_out: 0, closed: {} };
    for (const s of stats.services || []) {
      t.connections += num(s.connections);
      t.msgs_in += first(s, ["messages_in", "msgs_in"]);
      t.msgs_out += first(s, ["messages_out", "msgs_out"]);
      t.bytes_in += num(s.bytes_in);
      t.bytes_out += num(s.bytes_out);
      for (const [reason, count] of Object.entries(s.closed || {}))
        t.closed[reason] = (t.closed[reason] || 0) + num(count);
    }
    return t;
  }

  function timeOf(stats) {
    if (typeof stats.time === "number") return stats.time > 1e11 ? stats.time / 1000 : stats.time;
    const parsed = typeof stats.time === "string" ? Date.parse(stats.time) : NaN;
    return isFinite(parsed) ? parsed / 1000 : Date.now() / 1000;
  }

  let previous = null;  // {time, totals} of the last event, for the rates
  // fromStream: an SSE event (charted); else the /api/stats reply at load (tables only).
  function onStats(stats, fromStream) {
    const time = timeOf(stats), totals = totalsOf(stats);
    const rate = (key) => {
      if (!previous || time <= previous.time) return 0;
      const delta = totals[key] - previous.totals[key];
      return delta > 0 ? delta / (time - previous.time) : 0;  // a restart's reset reads as 0
    };
    const msgsIn = rate("msgs_in"), msgsOut = rate("msgs_out");
    const bytesIn = rate("bytes_in"), bytesOut = rate("bytes_out");
    if (fromStream && (!previous || time > previous.time)) {
      charts.connections.push(time, [totals.connections]);
      charts.msgs.push(time, [msgsIn, msgsOut]);
      charts.bytes.push(time, [bytesIn, bytesOut]);
      previous = { time, totals };
    }
    $("now-connections").textContent = keel.formatNumber(totals.connections, "");
    $("now-msgs").textContent = keel.formatNumber(msgsIn, "") + " / " + keel.formatNumber(msgsOut, "");
    $("now-bytes").textContent = keel.formatNumber(bytesIn, "B") + " / " + keel.formatNumber(bytesOut, "B");
    if (typeof stats.uptime_s === "number") $("uptime").textContent = "up " + formatDuration(stats.uptime_s);
    if (typeof stats.rss_kib === "number") $("rss").textContent = "RSS " + keel.formatNumber(stats.rss_kib * 1024, "B");
    renderServices(stats.services || []);
    renderClosed(totals.closed);
    keel.clients.onServices((stats.services || []).map((s) => s.service));
    keel.clients.tick((stats.services || []).reduce((n, s) => n + (s.connections || 0), 0));
    drawCharts();
  }

  function formatDuration(seconds) {
    const s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m ? m + "m " + (s % 60) + "s" : s + "s";
  }

  function cell(row, text, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "num";
    row.appendChild(td);
    return td;
  }

  function renderServices(services) {
    const body = $("services").tBodies[0];
    body.replaceChildren(...services.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.service = String(s.service);
      cell(tr, String(s.service));
      cell(tr, String(s.model || ""));
      cell(tr, (s.endpoints || []).join(" "));
      cell(tr, String(num(s.connections)), true);
      cell(tr, String(num(s.accepted)), true);
      cell(tr, String(num(s.rejected_over_cap) + num(s.rejected_per_ip)), true);
      cell(tr, String(first(s, ["messages_in", "msgs_in"])), true);
      cell(tr, String(first(s, ["messages_out", "msgs_out"])), true);
      cell(tr, keel.formatNumber(num(s.bytes_in), "B"), true);
      cell(tr, keel.formatNumber(num(s.bytes_out), "B"), true);
      cell(tr, keel.formatNumber(num(s.queued_bytes), "B"), true);
      cell(tr, String(num(s.slow_consumer_drops)), true);
      cell(tr, String(num(s.open_failures)), true);
      return tr;
    }));
  }

  function renderClosed(closed) {
    const rows = Object.entries(closed).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    const body = $("closed").tBodies[0];
    if (!rows.length) rows.push(["(none yet)", ""]);
    body.replaceChildren(...rows.map(([reason, count]) => {
      const tr = document.createElement("tr");
      tr.dataset.reason = reason;
      cell(tr, reason);
      cell(tr, String(count), true);
      return tr;
    }));
  }

  function drawCharts() { for (const chart of Object.values(charts)) chart.draw(); }
  window.addEventListener("resize", drawCharts);

  function setLive(state, text) {
    $("live").dataset.state = state;
    $("live").textContent = text;
  }

  function connect() {
    // EventSource cannot send headers: off loopback the stream takes the token in its URL.
    const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(location.hostname);
    const events = new EventSource("/api/events" + (keel.token && !loopback
      ? "?token=" + encodeURIComponent(keel.token) : ""));
    events.addEventListener("stats", (e) => {
      setLive("live", "live");
      try { onStats(keel.parseJson(e.data), true); } catch (err) { console.error("stats event", err); }
    });
    events.onopen = () => setLive("live", "live");
    // EventSource reconnects by itself (keel restarting, a proxy timing out).
    events.onerror = () => setLive(events.readyState === EventSource.CLOSED ? "down" : "connecting",
                                   events.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting");
  }

  function showTokenState() {
    const badge = $("token-state");
    badge.textContent = keel.token ? "admin" : "read-only";
    badge.title = keel.token ? "actions enabled (admin token from the URL keel logged)"
                             : "no admin token: open the URL keel logged at start (…/#token=…) to send, kick and attach";
  }

  showTokenState();
  keel.clients.init({ readOnly: !keel.token });
  keel.getJson("/api/stats").then((s) => onStats(s, false)).catch((e) => console.error("stats", e));
  connect();
})();
