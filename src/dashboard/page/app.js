// The page's wiring: one WebSocket to the dashboard server (src/dashboard/server.ts) carries
// the guest console both ways (binary frames out, {t:"input"} in), the trace batches for the
// timeline, the panels' data, and the buttons' QMP commands with their replies.
"use strict";

(function () {
  const token = document.body.dataset.token;
  const $ = (id) => document.getElementById(id);

  const term = new Terminal({ cols: 80, rows: 24, fontSize: 15, convertEol: false, scrollback: 2000, theme: { background: "#000000" } });
  term.open($("console"));
  const lanes = new MinivmLanes($("lanes"), 10_000);
  const pageMap = new MinivmPanels.PageMap($("pagemap"));
  const histograms = new MinivmPanels.Histograms($("histograms"));

  let ws = null;
  let nextId = 1;
  // Event ids of the postcopy page requests, from the server's hello (src/trace/events.ts).
  let evRequested = -1, evReceived = -1;
  const pending = new Map();

  function send(msg) {
    if (ws !== null && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  term.onData((data) => send({ t: "input", data }));

  /** Log a command at once, as it will go on the wire; the reply fills in when it comes. */
  function qmp(execute, args, oob) {
    const id = nextId++;
    const li = document.createElement("li");
    li.dataset.id = String(id);
    li.dataset.command = execute;
    const sent = document.createElement("div");
    sent.className = "sent";
    sent.textContent = JSON.stringify({ [oob ? "exec-oob" : "execute"]: execute, ...(args ? { arguments: args } : {}) });
    const reply = document.createElement("div");
    reply.className = "reply pending";
    reply.textContent = "waiting…";
    li.append(sent, reply);
    $("qmp-log").prepend(li);
    pending.set(id, li);
    send({ t: "qmp", id, execute, ...(args ? { arguments: args } : {}), oob: oob === true });
  }

  function onQmpReply(msg) {
    const li = pending.get(msg.id);
    if (li === undefined) return;
    pending.delete(msg.id);
    li.querySelector(".sent").textContent = msg.sent;
    const reply = li.querySelector(".reply");
    reply.className = "error" in msg.reply ? "reply error" : "reply";
    reply.textContent = JSON.stringify(msg.reply);
    li.dataset.done = "error" in msg.reply ? "error" : "return";
  }

  for (const b of document.querySelectorAll("button[data-execute]")) {
    b.addEventListener("click", () => {
      let args = b.dataset.args ? JSON.parse(b.dataset.args) : undefined;
      if (b.dataset.uri) args = { uri: $("migrate-uri").value };
      qmp(b.dataset.execute, args, b.dataset.oob === "1");
    });
  }
  $("free").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("free-args").value.trim();
    let args;
    try {
      args = text === "" ? undefined : JSON.parse(text);
    } catch (err) {
      $("free-args").setCustomValidity(String(err));
      $("free-args").reportValidity();
      return;
    }
    $("free-args").setCustomValidity("");
    qmp($("free-cmd").value.trim(), args, $("free-oob").checked);
  });
  $("hist-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const boundaries = $("hist-bounds").value.split(",").map((s) => Number(s.trim())).filter((n) => Number.isFinite(n));
    qmp("block-latency-histogram-set", { id: $("hist-id").value.trim(), boundaries }, false);
  });

  function onMessage(msg) {
    switch (msg.t) {
      case "hello":
        lanes.hello(msg);
        pageMap.setPages(msg.ramPages);
        evRequested = msg.events.indexOf("migration_page_requested");
        evReceived = msg.events.indexOf("migration_page_received");
        break;
      case "trace":
        lanes.ingest(msg);
        for (let i = 0; i + 6 < msg.records.length; i += 7) {
          const e = msg.records[i + 1];
          if (e === evRequested) pageMap.pageRequested(msg.records[i + 3]);
          else if (e === evReceived) pageMap.pageReceived();
        }
        $("bql-holder").textContent = msg.bql.holder ?? "none";
        $("missed").textContent = msg.missed > 0 ? `${msg.missed} trace records overwritten before they were read` : "";
        break;
      case "pages":
        pageMap.draw(msg.dirty, msg.present);
        $("mig-out").textContent = $("mig-live").dataset.outgoing = msg.outgoing;
        $("mig-in").textContent = $("mig-live").dataset.incoming = msg.incoming;
        break;
      case "migrate":
        MinivmPanels.showMigration($("migration").tBodies[0], msg.info);
        break;
      case "blockstats":
        histograms.show(msg.stats);
        if ($("hist-id").value === "" && msg.stats[0]) $("hist-id").value = msg.stats[0].qdev || msg.stats[0].device || "";
        break;
      case "qmp":
        onQmpReply(msg);
        break;
      case "qmp-state":
        $("qmp-link").textContent = msg.connected ? "QMP: connected" : `QMP: ${msg.error ?? "not connected"}`;
        $("qmp-link").className = msg.connected ? "badge" : "badge off";
        break;
    }
  }

  function connect() {
    ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      $("link").textContent = "live";
      $("link").className = "badge";
    };
    ws.onmessage = (e) => {
      if (e.data instanceof ArrayBuffer) term.write(new Uint8Array(e.data));
      else onMessage(JSON.parse(e.data));
    };
    ws.onclose = () => {
      $("link").textContent = "disconnected (the VM has stopped)";
      $("link").className = "badge off";
    };
  }
  connect();
  term.focus();
})();
