// keel dashboard: the in-page terminal for one hub client (attach). POST /api/attach opens a
// session (the operator now holds the client); GET /api/attach/events?session=S streams what the
// client sent while parked, then live (SSE events "data" with the bytes as base64, "eof",
// "closed", "detached"); POST /api/attach/say sends a line; POST /api/attach/detach parks the
// client again. Client text is shown with textContent and its control characters made visible,
// so it can neither inject markup nor fake terminal output.
"use strict";

window.keel = window.keel || {};

keel.terminal = (function () {
  const $ = (id) => document.getElementById(id);
  let session = null, events = null, wired = false;

  // Control characters (other than tab) as \xNN, so a client cannot hide or rewrite lines.
  const visible = (text) => String(text).replace(/[\x00-\x08\x0b-\x1f\x7f]/g,
    (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));

  // A note (attach failed, session ended) or an operator's line: a line of its own.
  function append(text, kind) {
    const line = document.createElement("div");
    line.textContent = kind === "note" ? text : visible(text);
    line.className = kind;
    addLine(line);
    current = null;
  }

  // The client's bytes arrive in any pieces: complete lines become lines, a partial one grows.
  let current = null, decoder = null;
  function appendClient(bytes) {
    const text = decoder.decode(bytes, { stream: true });
    const parts = text.split("\n");
    parts.forEach((part, k) => {
      if (k > 0) current = null;
      if (!part && k === parts.length - 1) return;
      if (!current) {
        current = document.createElement("div");
        current.dataset.raw = "";
        addLine(current);
      }
      current.dataset.raw += part;
      current.textContent = visible(current.dataset.raw.replace(/\r$/, ""));
    });
  }

  function addLine(line) {
    const log = $("terminal-log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(line);
    while (log.childElementCount > 2000) log.firstElementChild.remove();  // bounded scrollback
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function base64Bytes(text) {
    const binary = atob(text || "");
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; ++i) bytes[i] = binary.charCodeAt(i);
    return bytes;
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
      const reply = await keel.post("/api/attach", { to: String(client.id) });
      session = String(reply.session);
      append("attached: " + reply.held + " bytes held while parked, " + reply.framing, "note");
    } catch (e) {
      append("attach failed: " + e.message, "note");
      setState("not attached");
      return;
    }
    const mine = session;
    current = null;
    decoder = new TextDecoder("utf-8");
    events = new EventSource("/api/attach/events?session=" + encodeURIComponent(mine));
    const parse = (e) => { try { return JSON.parse(e.data); } catch (err) { return {}; } };
    events.addEventListener("data", (e) => appendClient(base64Bytes(parse(e).data)));
    events.addEventListener("eof", () => append("the client finished sending (FIN)", "note"));
    events.addEventListener("closed", (e) => {
      const reason = parse(e).reason;
      append("the client left" + (reason ? ": " + reason : ""), "note");
      finish(mine, "client left");
    });
    events.addEventListener("detached", (e) => {
      const reason = parse(e).reason;
      append("detached" + (reason ? ": " + reason : ""), "note");
      finish(mine, "detached");
    });
    events.onerror = () => { if (session === mine) { append("the event stream broke", "note"); finish(mine, "lost"); } };
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
      await keel.post("/api/attach/say", { session, text });
      append(text, "from-operator");
      input.value = "";
    } catch (e) {
      append("send failed: " + e.message, "note");
    }
  }

  async function detach() {
    const which = session;
    if (which) {
      try { await keel.post("/api/attach/detach", { session: which }); }
      catch (e) { append("detach: " + e.message, "note"); }
      finish(which, "detached");
    }
    $("terminal").close();
    keel.clients.refresh(true);
  }

  return { open, detach };
})();
