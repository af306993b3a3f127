// keel dashboard: the client table. Rows come from GET /api/clients with the filters applied by
// the server (service, q: a room, address or nick substring, limit), so a server with 10,000
// clients sends the page only the rows it shows. Sorting orders the rows shown.
"use strict";

window.keel = window.keel || {};

keel.clients = (function () {
  const $ = (id) => document.getElementById(id);
  // The table refreshes once a second, but no faster than once a second per 1,000 clients on
  // the server (at most every 10 s): keel walks every client for each /api/clients, on the
  // services' own loops, so a big server's refreshes would otherwise cost its clients latency.
  const kRefreshMs = 1000, kMaxRefreshMs = 10000;
  let refreshMs = kRefreshMs;
  let readOnly = true, inflight = false, lastFetch = 0, rows = [], sort = { key: "id", dir: "asc" };
  let knownServices = [];

  function init(options) {
    readOnly = options.readOnly;
    if (readOnly) {
      const hint = $("action-hint");
      hint.hidden = false;
      hint.textContent = "Read-only: no admin token. Open the URL keel logged at start " +
                         "(http://127.0.0.1:PORT/#token=…) to send, kick and attach.";
    }
    $("broadcast-open").disabled = readOnly;
    let debounce = 0;
    const refilter = () => { clearTimeout(debounce); debounce = setTimeout(() => refresh(true), 250); };
    $("filter-q").addEventListener("input", refilter);
    $("filter-service").addEventListener("change", refilter);
    $("filter-limit").addEventListener("change", refilter);
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); refresh(true); });
    for (const th of document.querySelectorAll("#clients th[data-key]"))
      th.addEventListener("click", () => {
        sort = { key: th.dataset.key, dir: sort.key === th.dataset.key && sort.dir === "asc" ? "desc" : "asc" };
        render();
      });
    $("broadcast-open").addEventListener("click", openBroadcast);
    $("send-dialog").addEventListener("close", onSendClosed);
    $("send-cancel").addEventListener("click", () => $("send-dialog").close("cancel"));
  }

  function onServices(names) {
    if (names.join("\n") === knownServices.join("\n")) return;
    knownServices = names;
    const select = $("filter-service"), chosen = select.value;
    const all = document.createElement("option");
    all.value = "";
    all.textContent = "all";
    select.replaceChildren(all, ...names.map((name) => {
      const option = document.createElement("option");
      option.value = option.textContent = String(name);
      return option;
    }));
    select.value = names.includes(chosen) ? chosen : "";
  }

  // Called on every stats event with the server's client count: the SSE stream paces the
  // table's refresh.
  function tick(serverClients) {
    refreshMs = Math.min(kMaxRefreshMs, Math.max(kRefreshMs, serverClients || 0));
    if ($("filter-live").checked && Date.now() - lastFetch >= refreshMs - 100) refresh(false);
  }

  async function refresh(force) {
    if (inflight && !force) return;
    inflight = true;
    lastFetch = Date.now();
    const query = new URLSearchParams();
    if ($("filter-service").value) query.set("service", $("filter-service").value);
    if ($("filter-q").value.trim()) query.set("q", $("filter-q").value.trim());
    query.set("limit", $("filter-limit").value);
    try {
      const body = await keel.getJson("/api/clients?" + query);
      rows = body.clients || [];
      const total = typeof body.total === "number" ? body.total : typeof body.matched === "number" ? body.matched : null;
      $("clients-count").textContent = total !== null && total > rows.length
        ? "(" + rows.length + " shown of " + total + ")" : "(" + rows.length + ")";
      render();
    } catch (e) {
      showResult("clients: " + e.message, true);
    } finally {
      inflight = false;
    }
  }

  // Ids are decimal strings of up to 20 digits: compare by length, then by digits.
  function compare(a, b, key) {
    const x = a[key], y = b[key];
    if (key === "id") return String(x).length - String(y).length || (String(x) < String(y) ? -1 : String(x) > String(y) ? 1 : 0);
    if (typeof x === "number" || typeof y === "number") return (Number(x) || 0) - (Number(y) || 0);
    return String(x ?? "").localeCompare(String(y ?? ""));
  }

  // Rows are kept by id and updated in place, so a button keeps its state (a kick waiting for
  // its confirming click) and a click is never lost to a refresh that replaced the row.
  const shown = new Map();  // id -> {tr, cells, client}

  function render() {
    const sorted = rows.slice().sort((a, b) => compare(a, b, sort.key) * (sort.dir === "asc" ? 1 : -1));
    for (const th of document.querySelectorAll("#clients th[data-key]"))
      if (th.dataset.key === sort.key) th.dataset.sort = sort.dir;
      else delete th.dataset.sort;
    const body = $("clients").tBodies[0], keep = new Set();
    sorted.forEach((c, index) => {
      const id = String(c.id);
      keep.add(id);
      let entry = shown.get(id);
      if (!entry) shown.set(id, (entry = newRow(c)));
      entry.client = c;
      columns(c).forEach((value, k) => {
        if (entry.cells[k].textContent !== value) entry.cells[k].textContent = value;
      });
      if (body.children[index] !== entry.tr) body.insertBefore(entry.tr, body.children[index] || null);
    });
    for (const [id, entry] of shown)
      if (!keep.has(id)) {
        entry.tr.remove();
        shown.delete(id);
      }
  }

  const kNumeric = [true, false, false, false, false, false, true, true, true, true];
  function columns(c) {
    const show = (v) => (v === undefined || v === null ? "" : String(v));
    return [show(c.id), show(c.service), show(c.peer), show(c.room), show(c.nick),
            show(c.state) + (c.attached ? " (attached)" : ""), formatAge(c.connected_s),
            keel.formatNumber(Number(c.bytes_in) || 0, "B"), keel.formatNumber(Number(c.bytes_out) || 0, "B"),
            keel.formatNumber(Number(c.queued) || 0, "B")];
  }

  function button(label, title, onClick, enabled) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "action";
    b.textContent = label;
    b.dataset.action = label;
    b.disabled = readOnly || !enabled;
    b.title = readOnly ? "read-only: no admin token" : title;
    b.addEventListener("click", onClick);
    return b;
  }

  const attachable = (c) => c.service === "hub";

  function newRow(c) {
    const tr = document.createElement("tr");
    const entry = { tr, cells: [], client: c };
    tr.dataset.id = String(c.id);
    tr.dataset.peer = String(c.peer);
    for (const numeric of kNumeric) {
      const td = document.createElement("td");
      if (numeric) td.className = "num";
      entry.cells.push(tr.appendChild(td));
    }
    const actions = document.createElement("td");
    actions.append(
      button("send", "send one line to this client", () => openSend(entry.client), true),
      button("kick", "disconnect this client (click twice)", (e) => kick(entry.client, e.currentTarget), true),
      button("attach", attachable(c) ? "talk with this hub client" : "only hub clients can be attached",
             () => keel.terminal.open(entry.client), attachable(c)));
    tr.appendChild(actions);
    return entry;
  }

  function formatAge(seconds) {
    const s = Math.floor(Number(seconds) || 0);
    return s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m" : Math.floor(s / 3600) + "h";
  }

  function showResult(message, isError) {
    const result = $("action-result");
    result.textContent = message;
    result.classList.toggle("error", !!isError);
  }

  // Kick asks once more on the button itself (no modal): a second click within 3 s kicks.
  async function kick(c, b) {
    if (b.dataset.armed !== "1") {
      b.dataset.armed = "1";
      b.textContent = "kick?";
      setTimeout(() => { b.dataset.armed = ""; b.textContent = "kick"; }, 3000);
      return;
    }
    b.disabled = true;
    try {
      await keel.post("/api/kick", { id: String(c.id), reason: "kicked from the dashboard" });
      showResult("kicked " + c.id + " (" + c.peer + ")");
      refresh(true);
    } catch (e) {
      showResult("kick " + c.id + ": " + e.message, true);
      b.disabled = false;
    }
  }

  let pending = null;  // what the send dialog will do: {path, request, label}
  function openSend(c) {
    pending = { path: "/api/send", request: { to: String(c.id) }, label: "sent to " + c.id };
    $("send-title").textContent = "send to " + c.id + " (" + c.peer + ")";
    openDialog();
  }

  function openBroadcast() {
    const request = {}, service = $("filter-service").value, q = $("filter-q").value.trim();
    if (service) request.service = service;
    if (q.startsWith("#")) request.room = q;
    pending = { path: "/api/broadcast", request, label: "broadcast" };
    $("send-title").textContent = "broadcast to " + (request.room ? "room " + request.room + " of " : "") +
                                  (service ? "service " + service : "every service");
    openDialog();
  }

  function openDialog() {
    $("send-text").value = "";
    $("send-dialog").returnValue = "";  // Escape closes without a new value: never resend
    $("send-dialog").showModal();
  }

  async function onSendClosed() {
    const dialog = $("send-dialog"), text = $("send-text").value;
    if (dialog.returnValue !== "send" || !pending || !text) return;
    const { path, request, label } = pending;
    try {
      const reply = await keel.post(path, Object.assign({ text }, request));
      showResult(label + (typeof reply.recipients === "number" ? " (" + reply.recipients + " clients)" : ""));
    } catch (e) {
      showResult(label + ": " + e.message, true);
    }
  }

  return { init, onServices, tick, refresh, showResult };
})();
