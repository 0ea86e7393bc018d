// The timeline: trace records (src/trace/events.ts) turned into spans on lanes, drawn on a
// plain canvas. The pairing follows src/trace/chrome.ts: a BQL hold runs from bql_acquired to
// bql_released (still open = held now), a QMP request from dispatch to reply, a vCPU slice ends
// at its record. An out-of-band reply that arrives while an in-band request dispatched before
// it is still pending is an overtake, the moment x-oob-test exists to show.
"use strict";

(function () {
  const PALETTE = ["#ff9800", "#4fc3f7", "#ab47bc", "#66bb6a", "#ef5350", "#ffee58", "#26a69a", "#ec407a"];
  const LANE_H = 26;
  const LABEL_W = 170;

  class Lanes {
    constructor(canvas, windowMs) {
      this.canvas = canvas;
      this.windowMs = windowMs;
      this.events = [];
      this.commands = [];
      this.bqlNames = [];
      this.lanes = new Map(); // lane name -> { spans: [{start, end|null, label, color}], marks: [] }
      this.openBql = new Map(); // BQL slot -> open span
      this.openQmp = { 0: [], 1: [] }; // oob flag -> open spans, oldest first
      this.openBlocked = null;
      this.serverNow = 0;
      this.localAtServerNow = 0;
      this.overtakes = 0;
      this.oobAnswered = 0;
      requestAnimationFrame(() => this.frame());
    }

    hello(msg) {
      this.events = msg.events;
      this.commands = msg.commands;
      this.ev = Object.fromEntries(msg.events.map((n, i) => [n, i]));
    }

    lane(name) {
      let l = this.lanes.get(name);
      if (l === undefined) {
        l = { spans: [], marks: [] };
        this.lanes.set(name, l);
      }
      return l;
    }

    colour(name) {
      let h = 0;
      for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
      return PALETTE[h % PALETTE.length];
    }

    bqlLane(slot) {
      return `BQL: ${this.bqlNames[slot] ?? `thread ${slot}`}`;
    }

    /** A batch from the server: flat records (7 numbers each) and the BQL's state now. */
    ingest(msg) {
      this.serverNow = msg.now;
      this.localAtServerNow = performance.now();
      this.bqlNames = msg.bql.names;
      const ev = this.ev;
      const r = msg.records;
      for (let i = 0; i + 6 < r.length; i += 7) {
        const e = r[i + 1], t = r[i + 2], a0 = r[i + 3], a1 = r[i + 4], a2 = r[i + 5], a3 = r[i + 6];
        if (e === ev.bql_acquired) {
          const name = this.bqlLane(a0);
          const span = { start: t, end: null, label: "holds", color: this.colour(name) };
          this.lane(name).spans.push(span);
          this.openBql.set(a0, span);
        } else if (e === ev.bql_released) {
          const open = this.openBql.get(a0);
          this.openBql.delete(a0);
          if (open !== undefined) open.end = t;
          else { const name = this.bqlLane(a0); this.lane(name).spans.push({ start: t - a1 / 1e6, end: t, label: "holds", color: this.colour(name) }); }
        } else if (e === ev.qmp_request_dispatched) {
          const oob = a2 === 1 ? 1 : 0;
          const span = { start: t, end: null, label: this.commands[a1] ?? `#${a1}`, color: oob ? "#ef5350" : "#4fc3f7", command: a1 };
          this.lane(oob ? "QMP out-of-band" : "QMP in-band").spans.push(span);
          this.openQmp[oob].push(span);
        } else if (e === ev.qmp_request_answered) {
          const oob = a2 === 1 ? 1 : 0;
          const open = this.openQmp[oob];
          const k = open.findIndex((s) => s.command === a1);
          if (k >= 0) open.splice(k, 1)[0].end = t;
          else this.lane(oob ? "QMP out-of-band" : "QMP in-band").spans.push({ start: t - a3 / 1e6, end: t, label: this.commands[a1] ?? `#${a1}`, color: oob ? "#ef5350" : "#4fc3f7" });
          if (oob) {
            this.oobAnswered++;
            if (this.openQmp[0].some((s) => s.start < t)) {
              this.overtakes++;
              this.lane("QMP out-of-band").marks.push({ t, label: "overtakes" });
            }
          }
        } else if (e === ev.vcpu_slice) {
          this.lane("vCPU 0").spans.push({ start: t - a1 / 1e6, end: t, label: "runs", color: "#66bb6a" });
        } else if (e === ev.vcpu_blocked) {
          this.openBlocked = { start: t, end: null, label: ["blocked: WFI", "blocked: x-oob-test", "blocked: postcopy page", "blocked: throttle"][a0] ?? "blocked", color: "#757575" };
          this.lane("vCPU 0").spans.push(this.openBlocked);
        } else if (e === ev.vcpu_woken) {
          if (this.openBlocked !== null) this.openBlocked.end = t;
          this.openBlocked = null;
        }
      }
      this.prune();
      const held = [...this.openBql.keys()].map((s) => this.bqlNames[s] ?? `thread ${s}`);
      this.canvas.dataset.held = held.join(",");
      this.canvas.dataset.overtakes = String(this.overtakes);
      this.canvas.dataset.oobAnswered = String(this.oobAnswered);
    }

    now() {
      return this.serverNow + (performance.now() - this.localAtServerNow);
    }

    prune() {
      const from = this.serverNow - this.windowMs;
      for (const l of this.lanes.values()) {
        // Keep open spans; merge nothing: spans shorter than a pixel are drawn as one pixel.
        l.spans = l.spans.filter((s) => s.end === null || s.end >= from);
        l.marks = l.marks.filter((m) => m.t >= from);
      }
    }

    order() {
      const names = [...this.lanes.keys()];
      const rank = (n) => (n.startsWith("BQL") ? 0 : n.startsWith("vCPU") ? 1 : n.includes("in-band") ? 2 : 3);
      return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    }

    frame() {
      requestAnimationFrame(() => this.frame());
      const c = this.canvas;
      const names = this.order();
      const dpr = window.devicePixelRatio || 1;
      const w = c.clientWidth;
      const h = Math.max(LANE_H * (names.length + 1), 120);
      c.style.height = `${h}px`;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
      }
      const g = c.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      g.font = "13px system-ui, sans-serif";
      g.textBaseline = "middle";
      if (this.serverNow === 0) return;
      const now = this.now();
      const from = now - this.windowMs;
      const plotW = w - LABEL_W - 8;
      const x = (t) => LABEL_W + Math.max(0, Math.min(plotW, ((t - from) / this.windowMs) * plotW));
      names.forEach((name, i) => {
        const y = i * LANE_H;
        const l = this.lanes.get(name);
        g.fillStyle = i % 2 ? "#20262e" : "#1b2027";
        g.fillRect(0, y, w, LANE_H);
        g.fillStyle = "#e8e8e8";
        g.fillText(name, 6, y + LANE_H / 2);
        for (const s of l.spans) {
          const x0 = x(s.start), x1 = x(s.end ?? now);
          if (x1 < LABEL_W) continue;
          g.fillStyle = s.color;
          g.globalAlpha = s.end === null ? 1 : 0.85;
          g.fillRect(x0, y + 4, Math.max(1, x1 - x0), LANE_H - 8);
          g.globalAlpha = 1;
          if (x1 - x0 > 60) {
            g.fillStyle = "#111";
            g.fillText(s.end === null ? `${s.label} (still)` : s.label, x0 + 4, y + LANE_H / 2);
          }
        }
        for (const m of l.marks) {
          g.fillStyle = "#ffeb3b";
          g.fillText("✦", x(m.t) - 5, y + LANE_H / 2);
        }
      });
      // A time axis: one tick per second, labelled in seconds before now.
      const y = names.length * LANE_H;
      g.fillStyle = "#9aa4b0";
      for (let s = 0; s <= this.windowMs / 1000; s++) {
        const tx = x(now - s * 1000);
        g.fillRect(tx, 0, 1, y + 4);
        g.fillText(s === 0 ? "now" : `-${s}s`, tx - 10, y + 14);
      }
    }
  }

  window.MinivmLanes = Lanes;
})();
