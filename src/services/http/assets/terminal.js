// keel dashboard: the in-page terminal for one hub client (attach). POST /api/attach opens a
// session (the operator now holds the client); GET /api/attach/SESSION/events streams what the
// client sent while parked, then live (SSE events "line" and "end"); POST .../say sends a line;
// POST .../detach parks the client again. Client text is shown with textContent and its control
// characters made visible, so it can neither inject markup nor fake terminal output.
"use strict";

window.keel = window.keel || {};

keel.terminal = (function () {
  const $ = (id) => document.getElementById(id);
  let session = null, events = null, wired = false;

  // Control characters (other than tab) as \xNN, so a client cannot hide or rewrite lines.
  const visible = (text) => String(text).replace(/[\x00-\x08\x0b-\x1f\x7f]/g,
    (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));

  function append(text, kind) {
    const log = $("terminal-log");
    const line = document.createElement("div");
    line.textContent = kind === "note" ? text : visible(text);
    if (kind) line.className = kind;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(line);
    while (log.childElementCount > 2000) log.firstElementChild.remove();  // bounded scrollback
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function setState(text) { $("terminal-state").textContent = text; }

  function wire() {
    if (wired) return;
    wired = true;
    $("terminal-form").addEventListener("submit", (e) => { e.preventDefault(); say(); });
    $("terminal-detach").addEventListener("click", () => detach());
    $("terminal").addEventListener("cancel", (e) => { e.preventDefault(); detach(); });  // Escape
  }

  async function open(client) {
    wire();
    if (session) await detach();
    $("terminal-log").replaceChildren();
    $("terminal-title").textContent = "client " + client.id + " (" + client.peer + ")";
    $("terminal-input").value = "";
    $("terminal-input").disabled = $("terminal-send").disabled = true;
    setState("attaching");
    $("terminal").showModal();
    try {
      const reply = await keel.post("/api/attach", { id: String(client.id) });
      session = String(reply.session);
    } catch (e) {
      append("attach failed: " + e.message, "note");
      setState("not attached");
      return;
    }
    const mine = session;
    events = new EventSource("/api/attach/" + encodeURIComponent(mine) + "/events");
    events.addEventListener("line", (e) => {
      try { append(keel.parseJson(e.data).text, null); } catch (err) { append(e.data, null); }
    });
    events.addEventListener("end", (e) => {
      let reason = "";
      try { reason = keel.parseJson(e.data).reason || ""; } catch (err) { reason = e.data; }
      append("session ended" + (reason ? ": " + reason : ""), "note");
      finish(mine, "ended");
    });
    events.onerror = () => { if (session === mine && events.readyState === EventSource.CLOSED) finish(mine, "lost"); };
    events.onopen = () => {
      if (session !== mine) return;
      setState("attached");
      $("terminal-input").disabled = $("terminal-send").disabled = false;
      $("terminal-input").focus();
    };
  }

  function finish(which, state) {
    if (session !== which) return;
    if (events) events.close();
    events = null;
    session = null;
    setState(state);
    $("terminal-input").disabled = $("terminal-send").disabled = true;
  }

  async function say() {
    const input = $("terminal-input"), text = input.value;
    if (!session || !text) return;
    try {
      await keel.post("/api/attach/" + encodeURIComponent(session) + "/say", { text });
      append(text, "from-operator");
      input.value = "";
    } catch (e) {
      append("send failed: " + e.message, "note");
    }
  }

  async function detach() {
    const which = session;
    if (which) {
      try { await keel.post("/api/attach/" + encodeURIComponent(which) + "/detach", {}); }
      catch (e) { append("detach: " + e.message, "note"); }
      finish(which, "detached");
    }
    $("terminal").close();
    keel.clients.refresh(true);
  }

  return { open, detach };
})();
