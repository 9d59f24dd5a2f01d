// OI dashboard. One script for the live page (data from /api/*) and the static snapshot (data embedded by
// upload.py as window.OI_SNAPSHOT, so it also works from file:// where fetch() is not allowed). Both providers answer
// the same questions with the same shapes: symbols(), history(), oi({... interval, at}), strikes().
// Everything user- or data-controlled is written with textContent: no HTML is ever built from data.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("oi-config").textContent);
  const $ = (id) => document.getElementById(id);
  const STATIC = cfg.mode === "static";
  const store = {
    get(k) {
      try {
        return localStorage.getItem("oi-" + k);
      } catch (e) {
        return null; // storage can be off (privacy settings, some file:// setups)
      }
    },
    set(k, v) {
      try {
        localStorage.setItem("oi-" + k, v);
      } catch (e) {
        /* not remembered, still works */
      }
    },
  };
  // at: ISO time of the replayed snapshot, null = the latest data. interval "custom" = the from–to window.
  const state = {
    symbol: store.get("symbol"),
    expiry: null, // not remembered: expiries roll over; a URL can name one
    asked: {}, // what the URL asked for: an unknown one is said on the page, a remembered one falls back quietly
    strikes: String(cfg.strikes),
    interval: store.get("interval") ?? "5",
    from: null,
    to: null,
    units: store.get("units") || "units",
    greeks: store.get("greeks") === "1",
    quotes: store.get("quotes") === "1",
    allcols: false,
    picks: [],
    at: null,
    symbols: null,
    points: [],
    historyKey: null,
    picked: null,
    pickedKey: null,
    vs: null, // day over day: the earlier session (YYYY-MM-DD) whose close the OI is compared with
    closes: null, // the earlier sessions' closes for this expiry, oldest first
    closesKey: null,
    closesAt: 0,
    askedVs: null, // a day the URL asked to compare with: said on the page if no close of it is stored
    timer: null,
    playTimer: null,
    inflight: false,
    pending: false,
    last: null,
    version: null,
    offset: Infinity, // client clock − data clock, the smallest seen: when the next version can be expected
    idle: 0,
  };
  const period = cfg.refresh_ms || 6000;

  // --- data providers ------------------------------------------------------------------------------------------
  async function getJson(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
    const r = await fetch(path + "?" + q.toString());
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(body.error || "HTTP " + r.status), { warmingUp: !!body.warming_up });
    return body;
  }
  const live = {
    async symbols() {
      return (await getJson("api/symbols", {})).symbols;
    },
    async history(symbol, expiry, since) {
      return getJson("api/history", { symbol, expiry, since });
    },
    async oi(q) {
      return getJson("api/oi", { symbol: q.symbol, expiry: q.expiry, strikes: q.strikes, interval: q.interval, at: q.at });
    },
    async strikes(symbol, expiry, strikes) {
      return getJson("api/strikes", { symbol, expiry, strikes: strikes.join(",") });
    },
    async closes(symbol, expiry) {
      return getJson("api/closes", { symbol, expiry });
    },
  };
  const provider = STATIC && window.OI_SNAPSHOT ? window.OI_SNAPSHOT.provider(cfg) : live;

  // --- formatting ----------------------------------------------------------------------------------------------
  const nf0 = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });
  const nf2 = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const dash = "—";
  const none = (v) => v === null || v === undefined;
  const money = (v) => (none(v) ? dash : nf2.format(v));
  // Spot arrives with float32 noise from some sources (22952.94921875): round it to the index's 0.01 (an index is
  // quoted to the paisa, not on an option's 0.05 tick), everywhere it is shown or charted.
  const tick = (v) => (none(v) ? v : Math.round(v * 100) / 100);
  const signedMoney = (v) => (none(v) ? dash : (v > 0 ? "+" : "") + nf2.format(v));
  // A zero IV or Greek means "not available" (illiquid leg, expiry day), not a real zero.
  const fixed = (digits) => (v) => (!v ? dash : v.toFixed(digits));
  const strikeText = (v) => (none(v) ? dash : nf0.format(v));
  const lot = () => (state.units === "lots" && state.last && state.last.lot_size) || null;
  // Contracts in the chosen units: as stored (lots × lot size) or in lots.
  const inUnits = (v) => (none(v) ? null : lot() ? Math.round(v / lot()) : v);
  const qty = (v) => (none(v) ? dash : nf0.format(inUnits(v)));
  const signedQty = (v) => (none(v) ? dash : (v > 0 ? "+" : "") + qty(v));
  // One Indian shorthand for cards, axes and tooltips, of a number already in the chosen units:
  // 4.12 Cr, 10.39 L, 50,000. `trim` drops trailing zeros ("50 L") for axis ticks.
  function indian(n, digits, trim) {
    const a = Math.abs(n);
    const fmt = (x) => (trim ? String(+x.toFixed(digits)) : x.toFixed(digits));
    if (a >= 1e7) return fmt(n / 1e7) + " Cr";
    if (a >= 1e5) return fmt(n / 1e5) + " L";
    return nf0.format(Math.round(n));
  }
  const compact = (v) => (none(v) ? dash : indian(inUnits(v), 2, false));
  const signedCompact = (v) => (none(v) ? dash : (v > 0 ? "+" : "") + compact(v));
  const axisQty = (v) => (none(v) ? "" : indian(v, 1, true));
  const trend = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");
  const ratio = (v) => (none(v) ? dash : v.toFixed(2));
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  // Every time on the page is 24-hour IST, whatever the reader's time zone.
  const ist = (ms) => new Date(ms + 19800000).toISOString();
  const hhmm = (iso) => ist(Date.parse(iso)).slice(11, 16);
  const hhmmss = (iso) => ist(Date.parse(iso)).slice(11, 19);
  const epochHhmm = (sec) => ist(sec * 1000).slice(11, 16);
  function longTime(iso) {
    const s = ist(Date.parse(iso));
    return s.slice(8, 10) + " " + MONTHS[Number(s.slice(5, 7)) - 1] + " " + s.slice(0, 4) + ", " + s.slice(11, 19) + " IST";
  }
  const sessionDay = () => (state.last ? ist(Date.parse(state.last.as_of)).slice(0, 10) : ist(Date.now()).slice(0, 10));
  // "01 Dec (Tue) · 2 d": the date traders say, its weekday, and the days left.
  function expiryText(e) {
    if (e === "all") return "All expiries (combined)";
    const d = new Date(e + "T00:00:00Z");
    if (isNaN(d)) return e;
    const days = Math.round((d - new Date(sessionDay() + "T00:00:00Z")) / 864e5);
    return e.slice(8, 10) + " " + MONTHS[d.getUTCMonth()] + " (" + DAYS[d.getUTCDay()] + ") · " + (days === 0 ? "expires today" : days + " d");
  }
  // "26 Nov", and "Thu 26 Nov 2026" where there is room: a session's day.
  const dayShort = (day) => day.slice(8, 10) + " " + MONTHS[Number(day.slice(5, 7)) - 1];
  const dayLong = (day) => DAYS[new Date(day + "T00:00:00Z").getUTCDay()] + " " + dayShort(day) + " " + day.slice(0, 4);
  function pad(lo, hi, frac) {
    if (none(lo) || none(hi)) return [0, 1];
    const room = Math.max((hi - lo) * 0.1, Math.abs(hi) * frac);
    return [lo - room, hi + room];
  }

  function setText(el, text, cls) {
    if (el.textContent !== text) el.textContent = text;
    if (cls !== undefined && el.className !== cls) el.className = cls;
  }

  // --- the URL: every view is shareable ------------------------------------------------------------------------
  // The snapshot reads the query or the hash (file:// and S3 both keep either); it writes the hash.
  const URL_KEYS = ["symbol", "expiry", "strikes", "interval", "from", "to", "units", "greeks", "quotes", "cols", "at", "pick", "vs"];
  function readUrl() {
    const q = new URLSearchParams(location.search);
    const h = new URLSearchParams(location.hash.replace(/^#/, ""));
    const out = {};
    for (const k of URL_KEYS) {
      const v = h.get(k) ?? q.get(k);
      if (v !== null) out[k] = v;
    }
    return out;
  }
  function writeUrl() {
    const q = new URLSearchParams();
    if (state.symbol) q.set("symbol", state.symbol);
    if (state.expiry) q.set("expiry", state.expiry);
    q.set("strikes", state.strikes);
    q.set("interval", state.interval || "0");
    if (state.interval === "custom" && state.from && state.to) {
      q.set("from", state.from);
      q.set("to", state.to);
    }
    q.set("units", state.units);
    if (state.greeks) q.set("greeks", "1");
    if (state.quotes) q.set("quotes", "1");
    if (state.allcols) q.set("cols", "all");
    if (state.at) q.set("at", state.at);
    if (state.picks.length) q.set("pick", state.picks.join(","));
    if (state.vs) q.set("vs", state.vs);
    const text = q.toString();
    const url = STATIC ? location.pathname + location.search + "#" + text : location.pathname + "?" + text;
    if (location.href.endsWith(STATIC ? "#" + text : "?" + text)) return;
    try {
      history.replaceState(null, "", url);
    } catch (e) {
      location.replace("#" + text); // file:// documents may refuse replaceState; a hash change never reloads
    }
  }
  function notice(text) {
    const n = $("notice");
    n.hidden = !text;
    n.textContent = text || "";
  }

  // --- theme ---------------------------------------------------------------------------------------------------
  const THEMES = ["auto", "light", "dark"];
  const THEME_LABEL = { auto: "◐ Auto", light: "☀ Light", dark: "☾ Dark" };
  function applyTheme(theme) {
    if (theme === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    const b = $("theme");
    b.textContent = THEME_LABEL[theme];
    b.setAttribute("aria-label", "Colour theme: " + (theme === "auto" ? "follows the system" : theme) + ". Change");
    charts.rebuild();
  }

  // --- charts (uPlot, vendored) --------------------------------------------------------------------------------
  // Every change of data, interval, units or window goes through put(): same x values and the same shape → setData
  // with the scales reset (uPlot redraws); anything else → a new chart. Never a setData that leaves a stale drawing.
  const CHARTS = {
    oi: "chart-oi",
    change: "chart-change",
    intraday: "chart-intraday",
    totals: "chart-totals",
    straddle: "chart-straddle",
    smile: "chart-smile",
    picked: "chart-picked",
    sessions: "chart-sessions",
  };
  const charts = {
    live: {}, // name → uPlot; also charts[name], for tests and scripts
    oi: null,
    change: null,
    intraday: null,
    marks: {},
    labels: {}, // name → the marker labels' boxes as drawn, CSS px in the canvas (tests check they never overlap)
    colors() {
      const theme = (document.documentElement.dataset.theme || "auto") + matchMedia("(prefers-color-scheme: dark)").matches;
      if (charts._colors && charts._colors.theme === theme) return charts._colors;
      const css = getComputedStyle(document.documentElement);
      const v = (n) => css.getPropertyValue(n).trim();
      const out = {
        ce: v("--ce"),
        pe: v("--pe"),
        fg: v("--fg"),
        muted: v("--muted"),
        line: v("--line"),
        accent: v("--accent"),
        up: v("--up"),
        down: v("--down"),
        card: v("--card"),
      };
      charts._colors = Object.assign(out, { theme });
      return out;
    },
    width(el) {
      return Math.max(260, el.clientWidth || 300);
    },
    axis(c, extra) {
      const axis = Object.assign({ stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line } }, extra);
      if (extra.values && !extra.splits) axis.splits = charts.readableSplits(extra.values);
      return axis;
    },
    timeAxis(c) {
      return Object.assign(charts.axis(c, {}), { values: (u, ticks) => ticks.map(epochHhmm) });
    },
    // uPlot spaces a numeric axis' ticks by pixels alone, so on a narrow range they come finer than the labels print
    // ("307", "307"). The ticks go instead at the first 1/2/2.5/5 step, no finer than uPlot's, that is a whole
    // multiple of the labels' own step (labelStep): no two ticks share a label, and none is labelled with a rounded
    // neighbour (2.5 on an integer axis).
    readableSplits(values) {
      const whole = (x, p) => Math.abs(x / p - Math.round(x / p)) < 1e-6;
      return (u, axisIdx, min, max, incr) => {
        const label = (v) => values(u, [v])[0];
        const p = Math.max(charts.labelStep(label, min), charts.labelStep(label, max));
        const step = charts.STEPS.find((x) => x >= incr * (1 - 1e-9) && (!p || (x >= p * (1 - 1e-9) && whole(x, p)))) || incr;
        const dec = Math.max(0, 1 - Math.floor(Math.log10(step))); // enough for 0.25: k × step without float noise
        const ticks = [];
        for (let k = Math.ceil(min / step - 1e-9); k * step <= max + step * 1e-9; k++) ticks.push(+(k * step).toFixed(dec));
        return ticks;
      };
    },
    // The step between the labels `label` prints near v (1 for "307", 0.1 for "14.0", 10 L for "4.1 Cr"): the
    // smallest power of ten whose neighbouring multiples all print differently; 0 if none does.
    labelStep(label, v) {
      for (const p of charts.POWERS) {
        const k = Math.floor(v / p);
        const a = label(k * p), b = label((k + 1) * p), c = label((k + 2) * p);
        if (a !== b && b !== c) return p;
      }
      return 0;
    },
    // A line chart's range spans at least two label steps, so even a flat series has ticks its labels can name.
    roomy(range, label) {
      const p = Math.max(charts.labelStep(label, range[0]), charts.labelStep(label, range[1]));
      const mid = (range[0] + range[1]) / 2;
      return range[1] - range[0] >= 2.1 * p ? range : [mid - 1.05 * p, mid + 1.05 * p];
    },
    POWERS: Array.from({ length: 19 }, (_, i) => +("1e" + (i - 4))),
    STEPS: Array.from({ length: 19 }, (_, i) => [1, 2, 2.5, 5].map((m) => +(m + "e" + (i - 4)))).flat(),
    // Vertical markers (spot, max pain, the replayed minute): name → [x, colour, label]. Labels that would touch
    // go to the next row down, and flip to the left of their line at the right edge: never printed over each other.
    markerHook(name) {
      return (u) => {
        const ctx = u.ctx;
        const dpr = devicePixelRatio;
        const placed = [];
        const marks = (charts.marks[name] || [])
          .filter((m) => !none(m[0]))
          .map((m) => [u.valToPos(m[0], "x", true), m[1], m[2]])
          .filter((m) => m[0] >= u.bbox.left && m[0] <= u.bbox.left + u.bbox.width)
          .sort((a, b) => a[0] - b[0]);
        ctx.save();
        ctx.font = 11 * dpr + "px system-ui, sans-serif";
        for (const [px, color, label] of marks) {
          ctx.strokeStyle = color;
          ctx.fillStyle = color;
          ctx.lineWidth = 1.5 * dpr;
          ctx.setLineDash([5 * dpr, 4 * dpr]);
          ctx.beginPath();
          ctx.moveTo(px, u.bbox.top);
          ctx.lineTo(px, u.bbox.top + u.bbox.height);
          ctx.stroke();
          if (!label) continue;
          const w = ctx.measureText(label).width + 4 * dpr;
          const h = 14 * dpr;
          let x = px + 3 * dpr;
          if (x + w > u.bbox.left + u.bbox.width) x = px - 3 * dpr - w;
          let y = u.bbox.top + 2 * dpr;
          const hits = (b) => !(x + w <= b.x || b.x + b.w <= x || y + h <= b.y || b.y + b.h <= y);
          while (placed.some(hits)) y += h;
          placed.push({ x, y, w, h, text: label });
          ctx.fillStyle = charts.colors().card || "#fff";
          ctx.globalAlpha = 0.85;
          ctx.fillRect(x, y, w, h);
          ctx.globalAlpha = 1;
          ctx.fillStyle = color;
          ctx.textBaseline = "top";
          ctx.fillText(label, x + 2 * dpr, y + 2 * dpr);
        }
        ctx.restore();
        charts.labels[name] = placed.map((b) => ({ x: b.x / dpr, y: b.y / dpr, w: b.w / dpr, h: b.h / dpr, text: b.text }));
      };
    },
    // A tooltip beside the cursor (and under a finger: touches move uPlot's cursor), listing every series' value.
    tooltip() {
      let tip = null;
      return {
        hooks: {
          init: (u) => {
            tip = document.createElement("div");
            tip.className = "tip";
            tip.hidden = true;
            u.root.parentNode.appendChild(tip);
            const touch = (e) => {
              const t = e.touches[0];
              if (!t) return;
              const r = u.over.getBoundingClientRect();
              u._touched = Date.now();
              u.setCursor({ left: t.clientX - r.left, top: t.clientY - r.top });
            };
            u.over.addEventListener("touchstart", touch, { passive: true });
            u.over.addEventListener("touchmove", touch, { passive: true });
          },
          destroy: () => tip && tip.remove(),
          setCursor: (u) => {
            const { left, top, idx } = u.cursor;
            if (none(idx) || left < 0) {
              tip.hidden = true;
              return;
            }
            const lines = u.series.map((s, i) => {
              const v = u.data[i][idx];
              const text = s.value ? s.value(u, v, i, idx) : String(v);
              return (i === 0 ? "" : s.label + ": ") + (none(v) ? dash : text);
            });
            tip.textContent = lines.join("\n");
            tip.hidden = false;
            const box = u.over.getBoundingClientRect();
            const host = u.root.parentNode.getBoundingClientRect();
            let x = box.left - host.left + left + 12;
            const y = box.top - host.top + top + 12;
            if (x + tip.offsetWidth > host.width) x = box.left - host.left + left - 12 - tip.offsetWidth;
            tip.style.transform = "translate(" + Math.round(x) + "px," + Math.round(y) + "px)";
            tip.style.left = "0";
            tip.style.top = "0";
          },
        },
      };
    },
    base(el, height, c, name) {
      return {
        width: charts.width(el),
        height,
        legend: { show: true, live: false },
        cursor: {
          points: { show: false },
          drag: { x: false, y: false },
          // After a tap the browser's compatibility mouse events end with a mouseleave: keep the finger's tooltip.
          bind: { mouseleave: (u, targ, handler) => (e) => (Date.now() - (u._touched || 0) < 1500 ? null : handler(e)) },
        },
        plugins: [charts.tooltip()],
        hooks: { draw: [charts.markerHook(name)] },
      };
    },
    bars(el, name, data, c, signed) {
      const bars = (align) => window.uPlot.paths.bars({ size: [0.42, 40], align });
      const step = data[0].length > 1 ? data[0][1] - data[0][0] : 1;
      const fmt = (u, v) => (none(v) ? dash : (signed && v > 0 ? "+" : "") + nf0.format(v));
      return Object.assign(charts.base(el, 220, c, name), {
        scales: { x: { time: false, range: (u, lo, hi) => [lo - step, hi + step] } },
        axes: [charts.axis(c, { values: (u, t) => t.map(strikeText) }), charts.axis(c, { size: 60, values: (u, t) => t.map(axisQty) })],
        series: [
          { label: "Strike", value: (u, v) => strikeText(v) },
          { label: "Calls", fill: c.ce, stroke: c.ce, width: 0, paths: bars(-1), points: { show: false }, value: fmt },
          { label: "Puts", fill: c.pe, stroke: c.pe, width: 0, paths: bars(1), points: { show: false }, value: fmt },
        ],
      });
    },
    lines(el, name, c, right, series, rightFmt, leftFmt) {
      const opts = Object.assign(charts.base(el, 200, c, name), {
        scales: {
          // A session just begun has one or two points: show at least half an hour rather than uPlot's years.
          x: { time: true, range: (u, lo, hi) => (none(lo) ? [0, 1] : hi - lo < 1800 ? [lo - 900, hi + 900] : [lo, hi]) },
          y: { range: (u, lo, hi) => charts.roomy(pad(lo, hi, 0.001), leftFmt) },
          r: { range: (u, lo, hi) => charts.roomy(pad(lo, hi, 0.02), rightFmt) },
        },
        axes: [
          charts.timeAxis(c),
          charts.axis(c, { size: 64, values: (u, t) => t.map(leftFmt) }),
          charts.axis(c, { side: 1, scale: "r", grid: { show: false }, size: 56, values: (u, t) => t.map(rightFmt) }),
        ],
        series: [{ label: "Time", value: (u, v) => (none(v) ? dash : epochHhmm(v) + " IST") }, ...series],
      });
      if (!right) opts.axes.pop();
      return opts;
    },
    put(name, data, key, makeOpts) {
      const el = $(CHARTS[name]);
      const chart = charts.live[name];
      // The key holds what the options depend on (units, theme, the strikes a bar chart's x range was made for).
      if (chart && chart._key === key) {
        chart.setData(data, true);
        return;
      }
      if (chart) chart.destroy();
      const made = new window.uPlot(makeOpts(el), data, el);
      made._key = key;
      charts.live[name] = charts[name] = made;
    },
    update(d) {
      if (!window.uPlot) return; // charts are an addition: the table and cards work without them
      const c = charts.colors();
      const ks = d.strikes.map((s) => s.strike);
      const key = state.units + "|" + document.documentElement.dataset.theme + "|" + ks.join(",");
      const spot = d.spot > 0 ? tick(d.spot) : null;
      const close = !none(spot) && !none(d.max_pain) && Math.abs(spot - d.max_pain) < 1e-9;
      charts.marks.oi = close ? [[spot, c.accent, "spot · max pain"]] : [[spot, c.accent, "spot " + money(spot)], [d.max_pain, c.fg, "max pain " + strikeText(d.max_pain)]];
      charts.marks.change = charts.marks.oi;
      charts.marks.smile = [[spot, c.accent, "spot"]];
      const oiData = [ks, d.strikes.map((s) => inUnits(s.ce.oi)), d.strikes.map((s) => inUnits(s.pe.oi))];
      const changeData = [ks, d.strikes.map((s) => inUnits(changeOf(d, s.ce))), d.strikes.map((s) => inUnits(changeOf(d, s.pe)))];
      setText($("chart-oi-title"), "OI by strike" + (lot() ? ", lots" : ""));
      setText($("chart-change-title"), "Change in OI by strike, " + changeSpan(d));
      charts.put("oi", oiData, key, (el) => charts.bars(el, "oi", oiData, c, false));
      charts.put("change", changeData, key, (el) => charts.bars(el, "change", changeData, c, true));
      const iv = (v) => (v ? v : null);
      const smile = [ks, d.strikes.map((s) => iv(s.ce.iv)), d.strikes.map((s) => iv(s.pe.iv))];
      charts.put("smile", smile, key, (el) =>
        Object.assign(charts.base(el, 200, c, "smile"), {
          scales: { x: { time: false } },
          axes: [charts.axis(c, { values: (u, t) => t.map(strikeText) }), charts.axis(c, { size: 60, values: (u, t) => t.map((v) => v.toFixed(1) + "%") })],
          series: [
            { label: "Strike", value: (u, v) => strikeText(v) },
            { label: "Call IV", stroke: c.ce, width: 2, value: (u, v) => fixed(2)(v) + "%" },
            { label: "Put IV", stroke: c.pe, width: 2, value: (u, v) => fixed(2)(v) + "%" },
          ],
        })
      );
      const pts = state.points;
      const times = pts.map((p) => Date.parse(p.as_of) / 1000);
      const replayMark = [[state.at ? Date.parse(d.as_of) / 1000 : null, c.accent, ""]];
      charts.marks.intraday = charts.marks.totals = charts.marks.straddle = charts.marks.picked = replayMark;
      const dayKey = key.split("|").slice(0, 2).join("|");
      const dayData = [times, pts.map((p) => tick(p.spot) || null), pts.map((p) => p.pcr)];
      charts.put("intraday", dayData, dayKey, (el) =>
        charts.lines(el, "intraday", c, true, [
          { label: "Spot", stroke: c.accent, width: 2, value: (u, v) => money(v) },
          { label: "PCR", scale: "r", stroke: c.fg, width: 1.5, dash: [6, 4], value: (u, v) => ratio(v) },
        ], (v) => v.toFixed(2), (v) => nf0.format(v))
      );
      const totals = [times, pts.map((p) => inUnits(p.ce_oi)), pts.map((p) => inUnits(p.pe_oi)), pts.map((p) => p.max_pain)];
      charts.put("totals", totals, dayKey, (el) =>
        charts.lines(el, "totals", c, true, [
          { label: "Call OI", stroke: c.ce, width: 2, value: (u, v) => indian(v, 2) },
          { label: "Put OI", stroke: c.pe, width: 2, value: (u, v) => indian(v, 2) },
          { label: "Max pain", scale: "r", stroke: c.fg, width: 1.5, dash: [6, 4], value: (u, v) => strikeText(v) },
        ], strikeText, axisQty)
      );
      const straddle = [times, pts.map((p) => (none(p.straddle) ? null : p.straddle)), pts.map((p) => p.atm_iv || null)];
      charts.put("straddle", straddle, dayKey, (el) =>
        charts.lines(el, "straddle", c, true, [
          { label: "ATM straddle ₹", stroke: c.accent, width: 2, value: (u, v) => money(v) },
          { label: "ATM IV %", scale: "r", stroke: c.fg, width: 1.5, dash: [6, 4], value: (u, v) => fixed(2)(v) },
        ], (v) => v.toFixed(1), (v) => nf0.format(v))
      );
      charts.updatePicked(c, dayKey);
      charts.updateSessions(c, d);
    },
    // Day over day: OI at each earlier session's close and now (or at the replayed minute), for the chosen strikes —
    // the ATM strike when none is chosen. One point per session; the compared-with session is marked.
    updateSessions(c, d) {
      const box = $("sessions-box");
      const list = state.closes || [];
      box.hidden = !list.length;
      if (box.hidden) {
        if (charts.live.sessions) charts.live.sessions.destroy();
        delete charts.live.sessions;
        charts.sessions = null;
        return;
      }
      const strikes = state.picks.length ? state.picks : [d.atm];
      const n = list.length;
      const xs = list.map((_, i) => i).concat([n]);
      const last = state.at ? hhmm(d.as_of) : STATIC ? dayShort(sessionDay()) : "Now";
      const labels = list.map((s) => dayShort(s.day)).concat([last]);
      const now = new Map(d.strikes.map((s) => [s.strike, s]));
      const data = [xs];
      const series = [];
      strikes.forEach((k, i) => {
        for (const side of ["ce", "pe"]) {
          const vals = list.map((s) => {
            const j = s.strikes.indexOf(k);
            return j < 0 ? null : inUnits(s[side + "_oi"][j]);
          });
          vals.push(now.has(k) ? inUnits(now.get(k)[side].oi) : null);
          data.push(vals);
          const color = side === "ce" ? c.ce : c.pe;
          series.push({
            label: strikeText(k) + " " + side.toUpperCase(),
            stroke: color,
            width: 2,
            dash: i % 2 ? [6, 3] : undefined,
            points: { show: true, size: 7, fill: color },
            value: (u, v) => indian(v, 2),
          });
        }
      });
      const vs = list.findIndex((s) => s.day === state.vs);
      charts.marks.sessions = vs < 0 ? [] : [[vs, c.accent, "vs " + dayShort(state.vs)]];
      setText($("chart-sessions-title"), "OI at each session's close: " + strikes.map(strikeText).join(", ") + (lot() ? " (lots)" : ""));
      const key = state.units + "|" + document.documentElement.dataset.theme + "|" + labels.join(",") + "|" + strikes.join(",");
      charts.put("sessions", data, key, (el) =>
        Object.assign(charts.base(el, 200, c, "sessions"), {
          scales: {
            x: { time: false, range: [-0.5, n + 0.5] },
            // Headroom for the "vs" marker's label, which sits at the top of the plot: it never covers a point.
            y: { range: (u, lo, hi) => ((r) => [r[0], r[1] + 0.15 * (r[1] - r[0])])(pad(lo, hi, 0.05)) },
          },
          axes: [
            // Every session gets a tick; on a narrow chart only every k-th is labelled (and always the last).
            charts.axis(c, {
              splits: () => xs,
              values: (u, t) => {
                const every = Math.max(1, Math.ceil((xs.length * 52) / Math.max(1, u.bbox.width / devicePixelRatio)));
                return t.map((v) => ((n - v) % every === 0 ? labels[v] : ""));
              },
            }),
            charts.axis(c, { size: 64, values: (u, t) => t.map(axisQty) }),
          ],
          series: [{ label: "Session", value: (u, v) => (none(v) ? dash : labels[v]) }, ...series],
        })
      );
    },
    // OI through the session of the strikes clicked in the chain: one line per strike and leg.
    updatePicked(c, dayKey) {
      const box = $("picked-box");
      const p = state.picked;
      box.hidden = !state.picks.length || !p;
      if (box.hidden) {
        if (charts.live.picked) charts.live.picked.destroy();
        delete charts.live.picked;
        charts.picked = null;
        return;
      }
      const times = p.t.map((t) => Date.parse(t) / 1000);
      const series = [];
      const data = [times];
      const shades = [1, 0.7, 0.45, 0.3];
      state.picks.forEach((k, i) => {
        const leg = p.strikes[String(k)];
        if (!leg) return;
        for (const side of ["ce", "pe"]) {
          data.push(leg[side + "_oi"].map(inUnits));
          series.push({
            label: strikeText(k) + " " + side.toUpperCase(),
            stroke: side === "ce" ? c.ce : c.pe,
            width: 2,
            dash: i % 2 ? [6, 3] : undefined,
            alpha: shades[i % shades.length],
            value: (u, v) => indian(v, 2),
          });
        }
      });
      setText($("chart-picked-title"), "OI through the session: " + state.picks.map(strikeText).join(", ") + (lot() ? " (lots)" : ""));
      charts.put("picked", data, dayKey + "|" + state.picks.join(","), (el) => charts.lines(el, "picked", c, false, series, String, axisQty));
    },
    rebuild() {
      for (const name of Object.keys(charts.live)) {
        charts.live[name].destroy();
        charts[name] = null;
      }
      charts.live = {};
      if (state.last) charts.update(state.last);
    },
    resize() {
      for (const [name, chart] of Object.entries(charts.live)) chart.setSize({ width: charts.width($(CHARTS[name])), height: chart.height });
    },
  };
  // The change a view shows: over the chosen interval or window, else since the previous session.
  const changeOf = (d, leg) => (none(d.interval) ? leg.oi_change : leg.oi_change_interval);
  const changeSpan = (d) => (d.window ? d.window : none(d.interval) ? "since the previous session" : "last " + d.interval + " min");

  // --- rendering -----------------------------------------------------------------------------------------------
  function fillSelect(select, values, selected, label) {
    const labels = values.map((v) => (label ? label(v) : v));
    const current = Array.from(select.options).map((o) => o.value + "=" + o.textContent).join("|");
    if (current !== values.map((v, i) => v + "=" + labels[i]).join("|")) {
      select.replaceChildren(
        ...values.map((v, i) => {
          const o = document.createElement("option");
          o.value = v;
          o.textContent = labels[i];
          return o;
        })
      );
    }
    if (selected !== null && values.includes(selected)) select.value = selected;
  }

  function showBanner(text) {
    const b = $("banner");
    b.hidden = !text;
    b.textContent = text || "";
  }

  function renderStatus(d) {
    const pill = $("market-status");
    if (STATIC) setText(pill, "Session closed", "pill closed");
    else if (d.source === "demo") setText(pill, "Demo · always open", "pill open");
    else setText(pill, d.market_open ? "Market open" : "Market closed", "pill " + (d.market_open ? "open" : "closed"));
    $("as-of").dateTime = d.as_of;
    // The market feed (issue #13): live ticks, or why data moves at REST's pace instead ("REST, every N s").
    const feedNote = !d.feed ? "" : d.feed.state === "live" ? " · live feed" : " · " + (d.feed.reason || "REST");
    setText($("as-of"), longTime(d.as_of) + feedNote);
    if (STATIC) showBanner(cfg.banner || "");
    else if (d.stale) showBanner("Stale data — " + (d.stale_reason || "not updating") + ". Showing the last good snapshot.");
    else if (state.at) showBanner("Replaying " + hhmm(d.as_of) + " IST — press Live to return to the latest data.");
    else if (!d.market_open) showBanner("Market closed — showing data as of the last refresh.");
    else showBanner("");
    document.title = d.symbol + " " + money(tick(d.spot)) + " · OI";
  }

  // When the chosen interval cannot be computed yet (the first minutes of a session), say when it will be.
  function historyNote(d) {
    if (none(d.interval) || d.window || d.interval_from) return "";
    const first = state.points.length ? state.points[0].as_of : d.as_of;
    const at = epochHhmm(Date.parse(first) / 1000 + 60 * Number(d.interval));
    return "Collecting history: " + d.interval + "-min change available at " + at + " IST.";
  }

  function renderSummary(d) {
    const iv = !none(d.interval);
    const t = d.totals;
    setText($("spot"), money(tick(d.spot)));
    setText(
      $("spot-change"),
      none(d.spot_change) ? "" : signedMoney(d.spot_change) + " (" + (d.spot_change_pct > 0 ? "+" : "") + d.spot_change_pct.toFixed(2) + "%)",
      trend(d.spot_change)
    );
    setText($("atm"), strikeText(d.atm));
    setText($("expiry-note"), d.combined ? "all expiries" : expiryText(d.expiry));
    setText($("pcr"), ratio(d.pcr));
    const pcrChange = iv ? d.pcr_change_interval : d.pcr_change;
    setText($("pcr-change"), "of change " + ratio(pcrChange) + (iv ? " · " + (d.window || d.interval + " min") : ""));
    setText($("max-pain"), strikeText(d.max_pain));
    setText($("ce-oi"), compact(t.ce_oi));
    setText($("pe-oi"), compact(t.pe_oi));
    const ceChg = iv ? t.ce_oi_change_interval : t.ce_oi_change;
    const peChg = iv ? t.pe_oi_change_interval : t.pe_oi_change;
    const span = d.window ? " " + d.window : iv ? " in " + d.interval + " min" : " today";
    setText($("ce-oi-change"), signedCompact(ceChg) + span, trend(ceChg));
    setText($("pe-oi-change"), signedCompact(peChg) + span, trend(peChg));
    const lv = d.levels || {};
    setText($("support"), strikeText(lv.support));
    setText($("resistance"), strikeText(lv.resistance));
    const supChg = iv ? lv.support_by_interval : lv.support_by_change;
    const resChg = iv ? lv.resistance_by_interval : lv.resistance_by_change;
    setText($("support-change"), "by change " + strikeText(supChg));
    setText($("resistance-change"), "by change " + strikeText(resChg));
    setText($("history-note"), historyNote(d));
  }

  // Build-up over the interval from the price and OI changes; thresholds: one tick (₹0.05) and one lot.
  const BUILDUP = { LB: "Long build-up (price ↑ OI ↑)", SB: "Short build-up (price ↓ OI ↑)", SC: "Short covering (price ↑ OI ↓)", LU: "Long unwinding (price ↓ OI ↓)" };
  function buildup(d, l) {
    const doi = l.oi_change_interval;
    const dp = l.ltp_change_interval;
    if (none(doi) || none(dp)) return "";
    const minOi = d.lot_size || 1;
    const oi = doi >= minOi ? 1 : doi <= -minOi ? -1 : 0;
    const p = dp >= 0.05 ? 1 : dp <= -0.05 ? -1 : 0;
    if (!oi || !p) return "";
    return oi > 0 ? (p > 0 ? "LB" : "SB") : p > 0 ? "SC" : "LU";
  }

  // Table columns, calls side from the outside in; the puts side mirrors it.
  // Each: [key, header, title, format, class, core]; core columns stay on a phone, the others on demand.
  function columns(d) {
    const iv = !none(d.interval);
    const label = d.window ? "Chg " + d.window : "Chg " + d.interval + "m";
    const cols = [["oi", "OI", "Open interest", (l) => qty(l.oi), null, true]];
    cols.push(["oi_change", "Chg OI", "Change in OI since the previous session", (l) => signedQty(l.oi_change), (l) => trend(l.oi_change), !iv && !d.vs]);
    if (d.vs) cols.push(["oi_vs", "Δ " + dayShort(d.vs), "Change in OI since the close of " + dayLong(d.vs), (l) => signedQty(l.oi_vs), (l) => trend(l.oi_vs), true]);
    if (iv) {
      const title = d.window ? "Change in OI from " + d.window : "Change in OI over the last " + d.interval + " minutes";
      cols.push(["oi_change_interval", label, title, (l) => signedQty(l.oi_change_interval), (l) => trend(l.oi_change_interval), !d.vs]);
      cols.push(["buildup", "B/U", "Build-up over the interval: LB, SB, SC, LU (see the note below the charts)", (l) => buildup(d, l), () => "bu"]);
    }
    cols.push(["volume", "Volume", "Volume today", (l) => qty(l.volume)]);
    cols.push(["iv", "IV", "Implied volatility, %", (l) => fixed(2)(l.iv)]);
    if (state.greeks) {
      cols.push(["delta", "Δ", "Delta", (l) => fixed(3)(l.delta)]);
      cols.push(["gamma", "Γ", "Gamma", (l) => fixed(4)(l.gamma)]);
      cols.push(["theta", "Θ", "Theta per day", (l) => fixed(2)(l.theta)]);
      cols.push(["vega", "Vega", "Vega per IV point", (l) => fixed(2)(l.vega)]);
    }
    if (state.quotes) {
      cols.push(["bid_qty", "Bid qty", "Quantity at the best bid", (l) => (l.bid_qty ? qty(l.bid_qty) : dash)]);
      cols.push(["bid", "Bid", "Best bid", (l) => (l.bid ? money(l.bid) : dash)]);
      cols.push(["ask", "Ask", "Best ask", (l) => (l.ask ? money(l.ask) : dash)]);
      cols.push(["ask_qty", "Ask qty", "Quantity at the best ask", (l) => (l.ask_qty ? qty(l.ask_qty) : dash)]);
    }
    cols.push(["ltp_change", "LTP chg", "Change in last price since the previous close", (l) => signedMoney(l.ltp_change), (l) => trend(l.ltp_change)]);
    cols.push(["ltp", "LTP", "Last traded price", (l) => (l.ltp ? money(l.ltp) : dash)]);
    return cols;
  }

  function th(text, title, attrs) {
    const el = document.createElement("th");
    el.textContent = text;
    if (title) el.title = title;
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }

  function cell(text, cls, title) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    if (title) td.title = title;
    return td;
  }

  const PHONE = window.matchMedia("(max-width: 600px)");
  function renderTable(d) {
    const cols = columns(d);
    const x = (c) => (c[5] ? "" : " x");
    // On a phone only the core columns show (unless "All columns"): the side headers span just those.
    const span = PHONE.matches && !state.allcols ? cols.filter((c) => c[5]).length : cols.length;
    const key = cols.map((c) => c[0] + c[1] + (c[5] ? "*" : "")).join("|") + state.units + span;
    const head = $("chain-head");
    $("chain").classList.toggle("all-cols", state.allcols);
    if (head.dataset.key !== key) {
      const sides = document.createElement("tr");
      sides.className = "sides";
      sides.append(
        th("Calls (CE)", null, { colspan: span, scope: "colgroup", class: "ce" }),
        th("", null, { "aria-hidden": "true", class: "strike" }),
        th("Puts (PE)", null, { colspan: span, scope: "colgroup", class: "pe" })
      );
      const names = document.createElement("tr");
      names.append(
        ...cols.map((c) => th(c[1], c[2], { scope: "col", "data-col": "ce-" + c[0], class: x(c).trim() })),
        th("Strike", "Strike price; click to chart its OI through the session", { scope: "col", class: "strike" }),
        ...cols
          .slice()
          .reverse()
          .map((c) => th(c[1], c[2], { scope: "col", "data-col": "pe-" + c[0], class: x(c).trim() }))
      );
      head.replaceChildren(sides, names);
      head.dataset.key = key;
    }
    const maxOi = Math.max(1, ...d.strikes.flatMap((s) => [s.ce.oi, s.pe.oi]));
    // Each row as [text, class, title] per cell (calls outside-in, strike, puts inside-out).
    const legCells = (l, side) =>
      cols.map((c) => {
        const text = c[3](l);
        const cls = side + " " + (c[4] ? c[4](l) : "") + (c[0] === "oi" ? " oi " + (side === "c" ? "ce" : "pe") : "") + x(c);
        return [text, cls, c[0] === "buildup" && text ? BUILDUP[text] : ""];
      });
    const rowClass = (s) =>
      [s.strike === d.atm ? "atm" : "", state.picks.includes(s.strike) ? "picked" : "", d.spot > 0 && s.strike < d.spot ? "itm-ce" : "", d.spot > 0 && s.strike > d.spot ? "itm-pe" : ""]
        .filter(Boolean)
        .join(" ");
    const body = $("rows");
    const shape = key + "|" + d.strikes.map((s) => s.strike).join(",");
    if (body.dataset.key === shape) {
      // Same columns and strikes as drawn: patch what changed in place (a poll changes numbers, not the grid).
      d.strikes.forEach((s, r) => {
        const tr = body.children[r];
        const cls = rowClass(s);
        if (tr.className !== cls) tr.className = cls;
        const cells = legCells(s.ce, "c").concat([null], legCells(s.pe, "p").reverse());
        cells.forEach((v, i) => {
          if (!v) return;
          const td = tr.children[i];
          if (td.textContent !== v[0]) td.textContent = v[0];
          if (td.className !== v[1]) td.className = v[1];
          if (td.title !== v[2]) td.title = v[2];
        });
        tr.children[0].style.setProperty("--w", ((100 * s.ce.oi) / maxOi).toFixed(1) + "%");
        tr.children[cells.length - 1].style.setProperty("--w", ((100 * s.pe.oi) / maxOi).toFixed(1) + "%");
      });
    } else {
      const make = (v) => cell(v[0], v[1], v[2]);
      const rows = d.strikes.map((s) => {
        const tr = document.createElement("tr");
        const ceCells = legCells(s.ce, "c").map(make);
        const peCells = legCells(s.pe, "p").map(make);
        ceCells[0].style.setProperty("--w", ((100 * s.ce.oi) / maxOi).toFixed(1) + "%");
        peCells[0].style.setProperty("--w", ((100 * s.pe.oi) / maxOi).toFixed(1) + "%");
        const strike = document.createElement("th");
        strike.scope = "row";
        strike.className = "strike";
        strike.tabIndex = 0;
        strike.textContent = strikeText(s.strike);
        tr.append(...ceCells, strike, ...peCells.reverse());
        tr.dataset.strike = s.strike;
        tr.className = rowClass(s);
        return tr;
      });
      body.replaceChildren(...rows);
      body.dataset.key = shape;
    }
    // Totals over every strike of the chain (not only the rows shown), from the API's totals.
    const t = d.totals;
    const iv = !none(d.interval);
    const total = { ce: { oi: t.ce_oi, oi_change: t.ce_oi_change }, pe: { oi: t.pe_oi, oi_change: t.pe_oi_change } };
    if (iv) {
      total.ce.oi_change_interval = t.ce_oi_change_interval;
      total.pe.oi_change_interval = t.pe_oi_change_interval;
    }
    if (d.vs) {
      total.ce.oi_vs = t.ce_oi_vs;
      total.pe.oi_vs = t.pe_oi_vs;
    }
    const footCells = (side) =>
      cols.map((c) => {
        const l = total[side];
        const shown = ["oi", "oi_change", "oi_change_interval", "oi_vs"].includes(c[0]);
        return cell(shown ? c[3](l) : "", (side === "ce" ? "c " : "p ") + (shown && c[4] ? c[4](l) : "") + x(c));
      });
    const foot = document.createElement("tr");
    foot.append(...footCells("ce"), th("Total", "Totals over every strike of the chain", { scope: "row", class: "strike" }), ...footCells("pe").reverse());
    $("chain-foot").replaceChildren(foot);
    setText(
      $("units-note"),
      (lot() ? "OI and volume in lots of " + lot() + "." : "OI and volume in units (lots × lot size), Indian grouping.") +
        " Change in OI is against the previous session" +
        (d.window ? ", and from " + d.window : none(d.interval) ? "" : ", and over the last " + d.interval + " minutes") +
        (d.vs ? "; Δ " + dayShort(d.vs) + " is against the close of " + dayLong(d.vs) : "") +
        ". Support = strike with the most put OI, resistance = the most call OI. Totals are over every strike." +
        (d.combined ? " Combined view: OI summed over the expiries; prices, IV and Greeks do not add up, so they show —." : "")
    );
  }

  function replayIndex(d) {
    const pts = state.points;
    if (!state.at) return pts.length - 1;
    const when = Date.parse(d.as_of);
    return Math.max(0, pts.findLastIndex((p) => Date.parse(p.as_of) <= when));
  }

  function renderReplay(d) {
    const pts = state.points;
    const box = $("replay-box");
    box.hidden = pts.length === 0;
    if (!pts.length) return;
    const slider = $("replay");
    slider.max = String(pts.length - 1);
    const i = replayIndex(d);
    slider.value = String(i);
    const label = (state.at ? hhmm(d.as_of) : hhmm(pts[i].as_of)) + " IST";
    setText($("replay-time"), state.at || STATIC ? label : "Live");
    slider.setAttribute("aria-valuetext", state.at ? label : "live");
    setText($("replay-latest"), STATIC ? "Latest" : "Live");
    $("replay-latest").disabled = !state.at;
    $("replay-back").disabled = i <= 0;
    $("replay-fwd").disabled = !state.at;
    setText($("replay-play"), state.playTimer ? "❚❚" : "▶");
    $("replay-play").setAttribute("aria-label", state.playTimer ? "Pause the replay" : "Play the session");
    // the custom window's minutes
    const minutes = pts.map((p) => p.as_of);
    const label2 = (v) => hhmm(v);
    fillSelect($("window-from"), minutes, state.from, label2);
    fillSelect($("window-to"), minutes, state.to, label2);
  }

  // Day over day on the table: OI now (or at the replayed minute) minus OI at the chosen session's close, per leg
  // (null where that session had no such strike) and in total (both over every strike of the chain).
  function applyVs(d) {
    const close = (state.vs && (state.closes || []).find((s) => s.day === state.vs)) || null;
    d.vs = close ? close.day : null;
    if (!close) return;
    const at = new Map(close.strikes.map((k, j) => [k, j]));
    for (const s of d.strikes) {
      const j = at.get(s.strike);
      s.ce.oi_vs = j === undefined ? null : s.ce.oi - close.ce_oi[j];
      s.pe.oi_vs = j === undefined ? null : s.pe.oi - close.pe_oi[j];
    }
    d.totals.ce_oi_vs = d.totals.ce_oi - close.ce_oi_total;
    d.totals.pe_oi_vs = d.totals.pe_oi - close.pe_oi_total;
  }

  function fillVs() {
    const list = (state.closes || []).map((s) => s.day).reverse(); // newest first
    if (state.vs && !list.includes(state.vs)) state.vs = null; // another expiry, or a session no longer kept
    $("vs-box").hidden = !list.length;
    fillSelect($("vs"), [""].concat(list), state.vs || "", (day) => (day ? DAYS[new Date(day + "T00:00:00Z").getUTCDay()] + " " + dayShort(day) : "—"));
  }

  function render(d) {
    state.last = d;
    applyVs(d);
    fillVs();
    renderStatus(d);
    renderReplay(d);
    renderSummary(d);
    renderTable(d);
    charts.update(d);
    fillSelect($("expiry"), Array.from($("expiry").options).map((o) => o.value), state.expiry, expiryText);
    $("window-box").hidden = state.interval !== "custom";
    writeUrl();
    document.body.dataset.loaded = d.as_of + "|" + (d.window || d.interval || "") + "|" + d.expiry + "|" + state.units + "|" + state.greeks + state.quotes + "|" + state.picks.join(",");
  }

  // Indices and stocks in groups of their own once both are followed (each symbol has a kind: /api/symbols, snapshot).
  function fillSymbols(select, symbols, selected) {
    const kindOf = (s) => (s.kind === "stock" ? "stock" : "index");
    if (!symbols.some((s) => kindOf(s) === "stock")) return fillSelect(select, symbols.map((s) => s.symbol), selected);
    const shape = symbols.map((s) => kindOf(s) + ":" + s.symbol).join("|");
    if (select.dataset.shape !== shape) {
      const groups = [["index", "Indices"], ["stock", "Stocks"]].map(([kind, label]) => {
        const group = document.createElement("optgroup");
        group.label = label;
        for (const s of symbols.filter((x) => kindOf(x) === kind)) {
          const o = document.createElement("option");
          o.value = o.textContent = s.symbol;
          group.append(o);
        }
        return group;
      });
      select.replaceChildren(...groups.filter((g) => g.children.length));
      select.dataset.shape = shape;
    }
    if (selected !== null && symbols.some((s) => s.symbol === selected)) select.value = selected;
  }

  // --- flow ----------------------------------------------------------------------------------------------------
  // The symbol list is read once: symbols and expiries change at most daily, and a reload picks that up.
  async function loadSymbols() {
    if (!state.symbols) state.symbols = await provider.symbols();
    const symbols = state.symbols;
    const names = symbols.map((s) => s.symbol);
    if (!names.length) state.symbols = null; // nothing stored yet: ask again on the next poll
    const problems = [];
    if (state.symbol && names.length && !names.includes(state.symbol)) {
      if (state.asked.symbol) problems.push("Unknown symbol “" + state.symbol + "”: showing " + (names[0] || "nothing") + " instead.");
      state.symbol = null;
      state.expiry = null;
    }
    if (!state.symbol) state.symbol = names[0] || null;
    fillSymbols($("symbol"), symbols, state.symbol);
    const expiries = (symbols.find((s) => s.symbol === state.symbol) || { expiries: [] }).expiries;
    if (state.expiry && expiries.length && !expiries.includes(state.expiry)) {
      if (state.asked.expiry) problems.push("No data for expiry “" + state.expiry + "” of " + state.symbol + ": showing the nearest expiry instead.");
      state.expiry = null;
    }
    if (!state.expiry) state.expiry = expiries[0] || null;
    fillSelect($("expiry"), expiries, state.expiry, expiryText);
    if (problems.length) notice(problems.join(" "));
    state.asked = {};
  }

  // Merge by time: idempotent, so a server that ignores `since` (and sends everything) is as good as one that doesn't.
  function mergePoints(old, add) {
    if (!add.length) return old;
    const last = old.length ? old[old.length - 1].as_of : null;
    if (last && add.every((p) => Date.parse(p.as_of) > Date.parse(last))) return old.concat(add);
    const byTime = new Map(old.map((p) => [p.as_of, p]));
    for (const p of add) byTime.set(p.as_of, p);
    return Array.from(byTime.values()).sort((a, b) => Date.parse(a.as_of) - Date.parse(b.as_of));
  }

  // History is fetched incrementally (since the last point) and only when the data has moved past it.
  async function loadHistory(d) {
    const key = state.symbol + "|" + state.expiry;
    if (key !== state.historyKey) {
      state.points = [];
      state.historyKey = key;
    }
    const pts = state.points;
    const last = pts.length ? pts[pts.length - 1].as_of : null;
    if (last && d && Date.parse(d.as_of) <= Date.parse(last)) return;
    try {
      const body = await provider.history(state.symbol, state.expiry, last);
      if (state.historyKey === key) state.points = mergePoints(state.points, body.points || []);
    } catch (e) {
      /* no history yet (first minute of the day): replay and the intraday charts wait */
    }
    if (provider.archive) {
      const href = provider.archive(state.symbol, state.expiry);
      const link = $("archive-link");
      link.hidden = !href;
      if (href) link.href = href;
    }
  }

  async function loadPicked() {
    if (!state.picks.length) {
      state.picked = null;
      return;
    }
    const key = state.symbol + "|" + state.expiry + "|" + state.picks.join(",") + "|" + state.points.length;
    if (key === state.pickedKey) return;
    try {
      state.picked = await provider.strikes(state.symbol, state.expiry, state.picks);
      state.pickedKey = key;
    } catch (e) {
      state.picked = null;
    }
  }

  // Day over day: the earlier sessions' closes for this expiry (/api/closes, or the snapshot's dataset). They change
  // a few times a day at most: read again when the expiry changes and, live, every ten minutes.
  async function loadCloses() {
    const key = state.symbol + "|" + state.expiry;
    if (key === state.closesKey && (STATIC || Date.now() - state.closesAt < 600000)) return;
    try {
      state.closes = (await provider.closes(state.symbol, state.expiry)).sessions || [];
    } catch (e) {
      state.closes = []; // none stored yet: the comparison and its chart stay hidden
    }
    state.closesKey = key;
    state.closesAt = Date.now();
    if (state.askedVs && !state.closes.some((s) => s.day === state.askedVs)) {
      notice("No stored close for " + state.askedVs + " on this expiry: showing the change since the previous session.");
    }
    state.askedVs = null;
  }

  // The custom window: two as-of views, diffed here per strike and leg and in total.
  async function windowView(q) {
    const [a, b] = [state.from, state.to].sort((x, y) => Date.parse(x) - Date.parse(y));
    const [then, now] = await Promise.all([provider.oi(Object.assign({}, q, { at: a, interval: null })), provider.oi(Object.assign({}, q, { at: b, interval: null }))]);
    const before = new Map(then.strikes.map((s) => [s.strike, s]));
    const diff = (x, y) => (none(x) || none(y) ? null : x - y);
    const price = (x, y) => (!x || !y ? null : Math.round((x - y) * 100) / 100);
    for (const s of now.strikes) {
      const old = before.get(s.strike);
      for (const side of ["ce", "pe"]) {
        s[side].oi_change_interval = old ? diff(s[side].oi, old[side].oi) : null;
        s[side].ltp_change_interval = old ? price(s[side].ltp, old[side].ltp) : null;
      }
    }
    const t = now.totals;
    t.ce_oi_change_interval = t.ce_oi - then.totals.ce_oi;
    t.pe_oi_change_interval = t.pe_oi - then.totals.pe_oi;
    now.interval = hhmm(then.as_of) + "–" + hhmm(now.as_of);
    now.window = hhmm(then.as_of) + "–" + hhmm(now.as_of);
    now.interval_from = then.as_of;
    now.pcr_change_interval = t.ce_oi_change_interval ? Math.round((t.pe_oi_change_interval / t.ce_oi_change_interval) * 1e4) / 1e4 : null;
    now.levels.support_by_interval = null;
    now.levels.resistance_by_interval = null;
    return now;
  }

  async function refresh() {
    if (state.inflight) {
      state.pending = true; // a control changed mid-flight: run again with the new state when this one ends
      return;
    }
    state.inflight = true;
    let d = null;
    try {
      await loadSymbols();
      if (!state.symbol) {
        showBanner("Waiting for the first data…");
        return;
      }
      const q = { symbol: state.symbol, expiry: state.expiry, strikes: state.strikes, interval: state.interval, at: state.at, detail: state.greeks || state.quotes };
      if (!state.points.length || state.historyKey !== state.symbol + "|" + state.expiry) await loadHistory(null);
      if (state.interval === "custom") {
        if (!state.from || !state.to) {
          const pts = state.points;
          state.to = state.to || (pts.length ? pts[pts.length - 1].as_of : null);
          state.from = state.from || (pts.length ? pts[Math.max(0, pts.length - 31)].as_of : null);
        }
        d = state.from && state.to ? await windowView(q) : await provider.oi(Object.assign({}, q, { interval: null }));
      } else d = await provider.oi(q);
      if (!state.at) await loadHistory(d);
      await loadPicked();
      await loadCloses();
      performance.mark("oi:response"); // every answer of this poll is in: from here on it is the page's time
      render(d);
      renderEvents();
      loadEvents();
      performance.mark("oi:rendered");
      // The frame is painted right after the next animation frame's callbacks: a message posted from there runs
      // once that paint is done.
      requestAnimationFrame(() => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => {
          performance.mark("oi:painted");
          try {
            performance.measure("oi:render", "oi:response", "oi:rendered");
            performance.measure("oi:poll", "oi:response", "oi:painted");
          } catch (e) {
            /* marks cleared by a reader */
          }
        };
        ch.port2.postMessage(0);
      });
    } catch (err) {
      state.symbols = null; // an expiry may have rolled over: re-read the list before the retry
      // 503 "warming up": the service has no data for this symbol yet (start-up), a loading state, not an error
      showBanner(err.warmingUp ? "Waiting for the first data…" : "Could not load data: " + err.message + ". Retrying…");
    } finally {
      state.inflight = false;
      if (state.pending) {
        state.pending = false;
        refresh();
      } else schedule(d);
    }
  }

  // Poll on the data's cadence: a new version is due one refresh period after the last one's time (mapped to this
  // clock by the smallest lag seen), not on a fixed timer. A poll that finds nothing new backs off (up to a period).
  // Nothing while the tab is hidden: the visibility handler catches up on return.
  function schedule(d) {
    clearTimeout(state.timer);
    state.timer = null;
    if (STATIC || document.hidden) return;
    let wait = period;
    if (d && !state.at) {
      const t = Date.parse(d.as_of);
      if (t !== state.version) {
        state.version = t;
        state.idle = 0;
        state.offset = Math.min(state.offset, Date.now() - t);
        wait = t + period + state.offset + 300 - Date.now();
      } else {
        state.idle += 1;
        wait = Math.min(period, 500 * 2 ** Math.min(state.idle, 5));
      }
      if (!d.market_open && d.source !== "demo") wait = Math.max(wait, 60000);
    }
    state.timer = setTimeout(refresh, Math.max(250, wait));
  }

  // --- day picker (snapshot): every published session has a folder sessions/YYYY-MM-DD/; the index of them comes
  // as a script (sessions/index.js) so it works from file://. A missing index or day just leaves it out.
  const DAY_KEYS = ["symbol", "strikes", "interval", "units", "greeks", "quotes", "cols"]; // not expiry, at: per day
  function dayHref(day) {
    const carry = new URLSearchParams();
    const here = new URLSearchParams(location.hash.replace(/^#/, ""));
    for (const k of DAY_KEYS) if (here.has(k)) carry.set(k, here.get(k));
    const text = carry.toString();
    return (cfg.root || "") + "sessions/" + day + "/index.html" + (text ? "#" + text : "");
  }
  function initDays() {
    const index = window.OI_SESSIONS;
    const current = cfg.snapshot && cfg.snapshot.session;
    if (!STATIC || !index || !Array.isArray(index.sessions) || !current) return;
    const days = index.sessions.filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d)).sort().reverse(); // newest first
    if (!days.includes(current)) {
      days.push(current);
      days.sort().reverse();
    }
    const sel = $("day");
    sel.replaceChildren(
      ...days.map((d) => {
        const o = document.createElement("option");
        o.value = d;
        const when = new Date(d + "T00:00:00Z");
        o.textContent = d.slice(8, 10) + " " + MONTHS[when.getUTCMonth()] + " " + d.slice(0, 4) + " (" + DAYS[when.getUTCDay()] + ")";
        return o;
      })
    );
    sel.value = current;
    const i = days.indexOf(current);
    const link = (el, day) => {
      el.toggleAttribute("href", !!day);
      el.setAttribute("aria-disabled", String(!day));
      if (day) el.dataset.day = day;
      el.addEventListener("click", (e) => {
        if (!day) return;
        e.preventDefault();
        location.href = dayHref(day);
      });
      if (day) el.href = dayHref(day);
    };
    link($("day-prev"), days[i + 1]);
    link($("day-next"), days[i - 1]);
    sel.addEventListener("change", () => {
      if (sel.value !== current) location.href = dayHref(sel.value);
    });
    $("days").hidden = false;
  }

  // --- events strip: the session's fired alerts (oi/alerts/), newest first; a click replays that minute ----------
  // The live page re-reads /api/events at most once a minute (a handful of events a day: no need for increments);
  // the snapshot carries them all in its page config.
  const EVENTS_EVERY = 60000;
  const events = { key: null, at: 0, list: [], busy: false };
  async function loadEvents() {
    const symbol = state.symbol;
    if (!symbol || events.busy) return;
    if (events.key === symbol && (STATIC || Date.now() - events.at < EVENTS_EVERY)) return;
    events.busy = true;
    try {
      const list = STATIC ? (cfg.events || []).filter((e) => e.symbol === symbol) : (await getJson("api/events", { symbol })).events || [];
      if (state.symbol === symbol) {
        events.key = symbol;
        events.at = Date.now();
        events.list = list;
        renderEvents();
      }
    } catch (e) {
      events.at = Date.now(); // the strip is a convenience: keep what it shows and try again later
    } finally {
      events.busy = false;
    }
  }
  function renderEvents() {
    const box = $("events");
    const list = events.key === state.symbol ? events.list : [];
    $("events-box").hidden = list.length === 0;
    const shown = state.at ? Date.parse(state.at) : null;
    const sig = list.map((e) => e.id).join("\n") + "|" + shown;
    if (box.dataset.sig === sig) return;
    box.dataset.sig = sig;
    box.replaceChildren(
      ...list.map((e) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.id = e.id;
        b.title = "Replay " + hhmm(e.at) + " IST, " + e.expiry + (e.interval ? ", OI change over " + e.interval + " min" : "");
        if (shown !== null && Date.parse(e.at) === shown) b.setAttribute("aria-current", "true");
        const t = document.createElement("time");
        t.dateTime = e.at;
        t.textContent = hhmm(e.at);
        b.append(t, document.createTextNode(e.text));
        b.addEventListener("click", () => replayEvent(e));
        li.append(b);
        return li;
      })
    );
  }
  // As opening the event's shareable URL: its expiry, its interval (if the rule had one) and its minute.
  function replayEvent(e) {
    const expiries = ((state.symbols || []).find((s) => s.symbol === state.symbol) || { expiries: [] }).expiries;
    if (expiries.includes(e.expiry)) state.expiry = e.expiry;
    if (e.interval && Array.from($("interval").options).some((o) => o.value === String(e.interval))) {
      state.interval = String(e.interval);
      $("interval").value = state.interval;
    }
    if (state.playTimer) togglePlay();
    state.at = e.at;
    notice("");
    refresh();
  }

  // --- actions -------------------------------------------------------------------------------------------------
  function stepReplay(delta) {
    const pts = state.points;
    if (!pts.length || !state.last) return;
    const i = Math.min(pts.length - 1, Math.max(0, replayIndex(state.last) + delta));
    state.at = i >= pts.length - 1 ? null : pts[i].as_of;
    refresh();
  }
  function togglePlay() {
    if (state.playTimer) {
      clearInterval(state.playTimer);
      state.playTimer = null;
    } else {
      if (!state.at && state.points.length) state.at = state.points[0].as_of; // from the open
      state.playTimer = setInterval(() => {
        if (!state.at) {
          clearInterval(state.playTimer);
          state.playTimer = null;
        } else stepReplay(1);
      }, 700);
    }
    refresh();
  }
  function togglePick(strike) {
    const i = state.picks.indexOf(strike);
    if (i >= 0) state.picks.splice(i, 1);
    else state.picks = state.picks.concat([strike]).slice(-4);
    state.pickedKey = null;
    refresh();
  }
  // The chain as shown (columns, units and all), as CSV.
  function downloadCsv() {
    const rows = [];
    const visible = (el) => getComputedStyle(el).display !== "none";
    const text = (el) => '"' + el.textContent.replace(/"/g, '""') + '"';
    const head = Array.from(document.querySelectorAll("#chain-head tr:last-child th")).filter(visible);
    // The day-over-day column names its session: "ce-oi_vs_2026-11-20".
    const name = (h) => (h.dataset.col || "strike").replace(/oi_vs$/, "oi_vs_" + (state.last && state.last.vs));
    rows.push(head.map((h) => '"' + name(h) + '"').join(","));
    for (const tr of document.querySelectorAll("#rows tr, #chain-foot tr")) rows.push(Array.from(tr.children).filter(visible).map(text).join(","));
    const blob = new Blob([rows.join("\r\n") + "\r\n"], { type: "text/csv" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    const d = state.last;
    a.download = (d ? d.symbol + "_" + d.expiry + "_" + hhmm(d.as_of).replace(":", "") : "chain") + ".csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  function restore() {
    const u = readUrl();
    if (u.symbol) state.symbol = u.symbol.toUpperCase();
    if (u.expiry) state.expiry = u.expiry;
    state.asked = { symbol: !!u.symbol, expiry: !!u.expiry };
    if (u.symbol && !u.expiry) state.expiry = null;
    if (u.strikes && /^(\d{1,3}|all)$/.test(u.strikes)) state.strikes = u.strikes;
    if (u.interval !== undefined) state.interval = u.interval === "0" ? "" : u.interval;
    if (u.from && u.to && !isNaN(Date.parse(u.from)) && !isNaN(Date.parse(u.to))) {
      state.from = u.from;
      state.to = u.to;
    }
    if (u.units === "lots" || u.units === "units") state.units = u.units;
    if (u.greeks !== undefined) state.greeks = u.greeks === "1";
    if (u.quotes !== undefined) state.quotes = u.quotes === "1";
    if (u.cols !== undefined) state.allcols = u.cols === "all";
    if (u.at && !isNaN(Date.parse(u.at))) state.at = u.at;
    if (u.vs && /^\d{4}-\d{2}-\d{2}$/.test(u.vs)) state.vs = state.askedVs = u.vs;
    if (u.pick) state.picks = u.pick.split(",").map(Number).filter((k) => k > 0).slice(0, 4);
  }

  function init() {
    restore();
    initDays();
    const strikesSel = $("strikes");
    if (!Array.from(strikesSel.options).some((o) => o.value === state.strikes)) {
      const o = document.createElement("option");
      o.value = state.strikes;
      o.textContent = "ATM ± " + state.strikes;
      strikesSel.prepend(o);
    }
    strikesSel.value = state.strikes;
    $("interval").value = state.interval;
    if ($("interval").value !== state.interval) state.interval = $("interval").value;
    $("units").value = state.units;
    $("greeks").checked = state.greeks;
    $("quotes").checked = state.quotes;
    $("allcols").checked = state.allcols;
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    $("controls-toggle").addEventListener("click", () => {
      const open = $("controls").classList.toggle("open");
      $("controls-toggle").setAttribute("aria-expanded", String(open));
    });
    $("replay").addEventListener("input", (e) => {
      const i = Number(e.target.value);
      state.at = i >= state.points.length - 1 ? null : state.points[i].as_of;
      refresh();
    });
    $("replay-latest").addEventListener("click", () => {
      state.at = null;
      refresh();
    });
    $("replay-back").addEventListener("click", () => stepReplay(-1));
    $("replay-fwd").addEventListener("click", () => stepReplay(1));
    $("replay-play").addEventListener("click", togglePlay);
    $("symbol").addEventListener("change", (e) => {
      state.symbol = e.target.value;
      state.expiry = null;
      state.at = null;
      state.picks = [];
      store.set("symbol", state.symbol);
      notice("");
      refresh();
    });
    $("expiry").addEventListener("change", (e) => {
      state.expiry = e.target.value;
      notice("");
      refresh();
    });
    strikesSel.addEventListener("change", (e) => {
      state.strikes = e.target.value;
      refresh();
    });
    const remember = (id, key, read) =>
      $(id).addEventListener("change", (e) => {
        state[key] = read(e.target);
        store.set(key, typeof state[key] === "boolean" ? (state[key] ? "1" : "0") : state[key]);
        refresh();
      });
    remember("interval", "interval", (el) => el.value);
    remember("units", "units", (el) => el.value);
    remember("greeks", "greeks", (el) => el.checked);
    remember("quotes", "quotes", (el) => el.checked);
    $("allcols").addEventListener("change", (e) => {
      state.allcols = e.target.checked;
      refresh();
    });
    for (const id of ["window-from", "window-to"])
      $(id).addEventListener("change", () => {
        state.from = $("window-from").value;
        state.to = $("window-to").value;
        refresh();
      });
    $("vs").addEventListener("change", (e) => {
      state.vs = e.target.value || null;
      if (state.last) render(state.last); // the closes are in hand: no need to ask the server again
    });
    $("csv").addEventListener("click", downloadCsv);
    const pick = (e) => {
      const cellEl = e.target.closest("#rows th.strike");
      if (cellEl) togglePick(Number(cellEl.parentNode.dataset.strike));
    };
    $("rows").addEventListener("click", pick);
    $("rows").addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        pick(e);
      }
    });
    let theme = THEMES.includes(store.get("theme")) ? store.get("theme") : "auto";
    applyTheme(theme);
    $("theme").addEventListener("click", () => {
      theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
      store.set("theme", theme);
      applyTheme(theme);
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => charts.rebuild());
    PHONE.addEventListener("change", () => state.last && renderTable(state.last));
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(charts.resize, 150);
    });
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        clearTimeout(state.timer); // no polling for a tab nobody sees
        state.timer = null;
      } else refresh(); // catch up at once when the tab comes back
    });
    refresh();
  }

  window.OI = { state, refresh, render, charts, mergePoints }; // for tests and scripts
  init();
})();
