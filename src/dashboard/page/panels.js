// The migration panel (query-migrate fields as QEMU names them), the page map of guest RAM
// drawn from the shared dirty and present bitmaps, and one uPlot bar chart per block device
// from query-blockstats' latency histograms.
"use strict";

(function () {
  function fmtBytes(n) {
    if (typeof n !== "number") return "–";
    const u = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  }

  function showMigration(tbody, info) {
    const ram = info.ram ?? {};
    const rows = [
      ["status", info.status ?? "none"],
      ["pass (dirty-sync-count)", ram["dirty-sync-count"] ?? "–"],
      ["throughput", typeof ram.mbps === "number" ? `${ram.mbps.toFixed(1)} Mbit/s` : "–"],
      ["transferred", fmtBytes(ram.transferred)],
      ["remaining", fmtBytes(ram.remaining)],
      ["dirty pages rate", ram["dirty-pages-rate"] ?? "–"],
      ["expected downtime", info["expected-downtime"] !== undefined ? `${info["expected-downtime"]} ms` : "–"],
      ["downtime", info.downtime !== undefined ? `${info.downtime} ms` : "–"],
      ["total time", info["total-time"] !== undefined ? `${info["total-time"]} ms` : "–"],
      ["postcopy requests", ram["postcopy-requests"] ?? "–"],
    ];
    const f = info["x-postcopy-faults"];
    if (f) rows.push(["postcopy faults (here)", `${f.faults}: p50 ${f["p50-us"]} µs, p99 ${f["p99-us"]} µs, max ${f["max-us"]} µs`]);
    tbody.replaceChildren(...rows.map(([k, v]) => {
      const tr = document.createElement("tr");
      for (const text of [k, String(v)]) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
      return tr;
    }));
    tbody.closest("table").dataset.status = info.status ?? "none";
  }

  function decode(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  class PageMap {
    constructor(canvas) {
      this.canvas = canvas;
      this.pages = 0;
      this.last = null;
      // Pages a postcopy destination asked for (migration_page_requested in the trace), and how
      // many of those arrived (migration_page_received): drawn over the present bitmap, so a
      // request still waiting shows in one colour and a page that came on request in another.
      this.requested = new Set();
      this.received = 0;
    }

    /** Trace arguments: the page numbers (RAM page index, as the bitmaps count them). */
    pageRequested(page) {
      this.requested.add(page);
    }

    pageReceived() {
      this.received++;
    }

    setPages(pages) {
      this.pages = pages;
      const w = Math.min(256, pages);
      this.canvas.width = w;
      this.canvas.height = Math.ceil(pages / w);
    }

    draw(dirtyB64, presentB64) {
      const dirty = decode(dirtyB64), present = decode(presentB64);
      const g = this.canvas.getContext("2d");
      const img = g.createImageData(this.canvas.width, this.canvas.height);
      const px = img.data;
      let nDirty = 0, nAbsent = 0, nWaiting = 0;
      for (let p = 0; p < this.pages; p++) {
        const byte = p >>> 3, bit = 1 << (p & 7);
        const isDirty = (dirty[byte] & bit) !== 0;
        const wasDirty = this.last !== null && (this.last[byte] & bit) !== 0;
        const isPresent = (present[byte] & bit) !== 0;
        const isRequested = this.requested.has(p);
        if (isDirty) nDirty++;
        if (!isPresent) nAbsent++;
        if (isRequested && !isPresent) nWaiting++;
        const rgb = isRequested ? (isPresent ? [0x4f, 0xc3, 0xf7] : [0xff, 0xff, 0xff])
          : !isPresent ? [0xd3, 0x2f, 0x2f] : isDirty && !wasDirty ? [0xff, 0xeb, 0x3b] : isDirty ? [0xff, 0x98, 0x00] : [0x2a, 0x33, 0x40];
        px.set([...rgb, 255], p * 4);
      }
      this.last = dirty;
      g.putImageData(img, 0, 0);
      const d = this.canvas.dataset;
      d.dirtyPages = String(nDirty);
      d.absentPages = String(nAbsent);
      d.presentPages = String(this.pages - nAbsent);
      d.requestedPages = String(this.requested.size);
      d.waitingPages = String(nWaiting);
      d.receivedPages = String(this.received);
    }
  }

  /** One bar chart per device and direction; rebuilt when the boundaries change. */
  class Histograms {
    constructor(root) {
      this.root = root;
      this.charts = new Map(); // key -> { plot, key }
    }

    show(stats) {
      const seen = new Set();
      for (const s of stats) {
        const dev = s.device || s.qdev || s["node-name"] || "?";
        for (const [dir, h] of [["read", s.stats?.rd_latency_histogram], ["write", s.stats?.wr_latency_histogram]]) {
          const key = `${dev} ${dir}`;
          seen.add(key);
          this.update(key, s, dir, h);
        }
      }
      for (const [key, c] of this.charts) if (!seen.has(key)) { c.el.remove(); this.charts.delete(key); }
    }

    update(key, s, dir, h) {
      let c = this.charts.get(key);
      const sig = h ? h.boundaries.join(",") : "";
      if (c === undefined || c.sig !== sig) {
        c?.el.remove();
        const el = document.createElement("div");
        el.className = "device";
        el.dataset.device = key;
        this.root.append(el);
        c = { el, sig, plot: null, title: document.createElement("div") };
        el.append(c.title);
        if (h) {
          const labels = ["0", ...h.boundaries.map((b) => `${b / 1000}µs`)];
          c.plot = new uPlot({
            width: Math.max(300, this.root.clientWidth - 20),
            height: 160,
            legend: { show: false },
            scales: { x: { time: false } },
            axes: [
              { stroke: "#9aa4b0", grid: { show: false }, values: (_, ticks) => ticks.map((t) => (Number.isInteger(t) ? `≥${labels[t] ?? ""}` : "")) },
              { stroke: "#9aa4b0", grid: { stroke: "#2b323c" } },
            ],
            series: [{}, { label: "requests", fill: dir === "read" ? "#4fc3f7" : "#ff9800", stroke: "#e8e8e8", paths: uPlot.paths.bars({ size: [0.8, 80] }), points: { show: false } }],
          }, [h.bins.map((_, i) => i), h.bins], el);
        }
        this.charts.set(key, c);
      } else if (h && c.plot) {
        c.plot.setData([h.bins.map((_, i) => i), h.bins]);
      }
      const st = s.stats ?? {};
      const ops = dir === "read" ? st.rd_operations : st.wr_operations;
      c.title.textContent = `${key}: ${ops ?? 0} operations${h ? "" : " (no histogram: set its boundaries above)"}`;
    }
  }

  window.MinivmPanels = { showMigration, PageMap, Histograms };
})();
