// OI dashboard. One script for the live page (data from /api/*) and the static snapshot (data embedded by
// upload.py as window.OI_SNAPSHOT, so it also works from file:// where fetch() is not allowed). Both providers answer
// the same questions with the same shapes: symbols(), history(), oi({... interval, at}).
// Everything user- or data-controlled is written with textContent: no HTML is ever built from data.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("oi-config").textContent);
  const $ = (id) => document.getElementById(id);
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
  // at: ISO time of the replayed snapshot, null = the latest data
  const state = {
    symbol: null,
    expiry: null,
    strikes: String(cfg.strikes),
    interval: store.get("interval") ?? "5",
    units: store.get("units") || "units",
    greeks: store.get("greeks") === "1",
    quotes: store.get("quotes") === "1",
    at: null,
    points: [],
    historyKey: null,
    historyAt: 0,
    timer: null,
    inflight: false,
    pending: false,
    last: null,
  };

  // --- data providers ------------------------------------------------------------------------------------------
  async function getJson(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
    const r = await fetch(path + "?" + q.toString(), { cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
    return body;
  }
  const live = {
    async symbols() {
      return (await getJson("api/symbols", {})).symbols;
    },
    async history(symbol, expiry) {
      return getJson("api/history", { symbol, expiry });
    },
    async oi(q) {
      return getJson("api/oi", { symbol: q.symbol, expiry: q.expiry, strikes: q.strikes, interval: q.interval, at: q.at });
    },
  };
  const provider = cfg.mode === "static" && window.OI_SNAPSHOT ? window.OI_SNAPSHOT.provider(cfg) : live;

  // --- formatting ----------------------------------------------------------------------------------------------
  const nf0 = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });
  const nf2 = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const dash = "—";
  const none = (v) => v === null || v === undefined;
  const int = (v) => (none(v) ? dash : nf0.format(v));
  const money = (v) => (none(v) ? dash : nf2.format(v));
  const signedMoney = (v) => (none(v) ? dash : (v > 0 ? "+" : "") + nf2.format(v));
  // A zero IV or Greek means "not available" (illiquid leg, expiry day), not a real zero.
  const fixed = (digits) => (v) => (!v ? dash : v.toFixed(digits));
  const strikeText = (v) => (none(v) ? dash : nf0.format(v));
  const lot = () => (state.units === "lots" && state.last && state.last.lot_size) || null;
  // Contracts (OI, volume, their changes) in units with Indian grouping, or in lots.
  const qty = (v) => (none(v) ? dash : nf0.format(lot() ? Math.round(v / lot()) : v));
  const signedQty = (v) => (none(v) ? dash : (v > 0 ? "+" : "") + qty(v));
  // Lakh/crore shorthand ("4.12 Cr", "10.39 L") in units or lots; `trim` drops trailing zeros ("50 L").
  function indianShort(v, digits, trim) {
    const n = lot() ? v / lot() : v;
    const a = Math.abs(n);
    const fmt = (x) => (trim ? String(+x.toFixed(digits)) : x.toFixed(digits));
    if (a >= 1e7) return fmt(n / 1e7) + " Cr";
    if (a >= 1e5) return fmt(n / 1e5) + " L";
    return nf0.format(Math.round(n));
  }
  const compact = (v) => (none(v) ? dash : indianShort(v, 2, false));
  // Axis labels: short, no decimals that only add width.
  const axisQty = (v) => indianShort(v, 1, true);
  // A y range around the data with some room, never collapsing to a line when the data is flat.
  function pad(lo, hi, frac) {
    if (lo === null || hi === null) return [0, 1];
    const room = Math.max((hi - lo) * 0.1, Math.abs(hi) * frac);
    return [lo - room, hi + room];
  }
  const signedCompact = (v) => (none(v) ? dash : (v > 0 ? "+" : "") + compact(v));
  const trend = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");
  const ratio = (v) => (none(v) ? dash : v.toFixed(2));

  function setText(el, text, cls) {
    el.textContent = text;
    if (cls !== undefined) el.className = cls;
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
  const charts = {
    oi: null,
    change: null,
    intraday: null,
    marks: {},
    colors() {
      const css = getComputedStyle(document.documentElement);
      const v = (n) => css.getPropertyValue(n).trim();
      return { ce: v("--ce"), pe: v("--pe"), fg: v("--fg"), muted: v("--muted"), line: v("--line"), accent: v("--accent") };
    },
    width(el) {
      return Math.max(260, el.clientWidth || 300);
    },
    axes(c, yFmt, xFmt) {
      const axis = { stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line } };
      return [Object.assign({}, axis, xFmt ? { values: xFmt } : {}), Object.assign({ size: 64, values: yFmt }, axis)];
    },
    // Vertical markers drawn on the canvas (spot, max pain, the replayed minute): name → [x value, colour, label]
    markerHook(name) {
      return (u) => {
        const ctx = u.ctx;
        for (const [x, color, label] of charts.marks[name] || []) {
          if (none(x)) continue;
          const px = u.valToPos(x, "x", true);
          if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
          ctx.save();
          ctx.strokeStyle = color;
          ctx.fillStyle = color;
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(px, u.bbox.top);
          ctx.lineTo(px, u.bbox.top + u.bbox.height);
          ctx.stroke();
          if (label) {
            ctx.font = 11 * devicePixelRatio + "px system-ui, sans-serif";
            ctx.fillText(label, px + 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
          }
          ctx.restore();
        }
      };
    },
    bars(el, name, data, c) {
      const bars = (align) => window.uPlot.paths.bars({ size: [0.42, 40], align });
      const step = data[0].length > 1 ? data[0][1] - data[0][0] : 1;
      const opts = {
        width: charts.width(el),
        height: 220,
        legend: { show: true },
        cursor: { points: { show: false } },
        scales: { x: { time: false, range: (u, lo, hi) => [lo - step, hi + step] } },
        axes: charts.axes(c, (u, ticks) => ticks.map(axisQty), (u, ticks) => ticks.map(strikeText)),
        series: [
          { label: "Strike", value: (u, v) => strikeText(v) },
          { label: "Calls", fill: c.ce, stroke: c.ce, width: 0, paths: bars(-1), points: { show: false }, value: (u, v) => signedQtyOrQty(name, v) },
          { label: "Puts", fill: c.pe, stroke: c.pe, width: 0, paths: bars(1), points: { show: false }, value: (u, v) => signedQtyOrQty(name, v) },
        ],
        hooks: { draw: [charts.markerHook(name)] },
      };
      return new window.uPlot(opts, data, el);
    },
    line(el, data, c) {
      const opts = {
        width: charts.width(el),
        height: 200,
        legend: { show: true },
        scales: {
          // A session just begun has one or two points: show at least half an hour rather than uPlot's years.
          x: { time: true, range: (u, lo, hi) => (hi - lo < 1800 ? [lo - 900, hi + 900] : [lo, hi]) },
          y: { range: (u, lo, hi) => pad(lo, hi, 0.001) },
          pcr: { range: (u, lo, hi) => pad(lo, hi, 0.05) },
        },
        axes: [
          { stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line } },
          { stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line }, size: 60, values: (u, t) => t.map((v) => nf0.format(v)) },
          { side: 1, scale: "pcr", stroke: c.muted, grid: { show: false }, size: 44, values: (u, t) => t.map((v) => v.toFixed(2)) },
        ],
        series: [
          { label: "Time", value: (u, v) => (none(v) ? dash : hhmm(new Date(v * 1000).toISOString(), true)) },
          { label: "Spot", stroke: c.accent, width: 2, value: (u, v) => money(v) },
          { label: "PCR", scale: "pcr", stroke: c.fg, width: 1.5, dash: [6, 4], value: (u, v) => ratio(v) },
        ],
        hooks: { draw: [charts.markerHook("intraday")] },
        tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Asia/Kolkata"),
      };
      return new window.uPlot(opts, data, el);
    },
    update(d) {
      if (!window.uPlot) return; // charts are an addition: the table and cards work without them
      const c = charts.colors();
      const ks = d.strikes.map((s) => s.strike);
      const useInterval = !none(d.interval);
      charts.marks.oi = [
        [d.spot > 0 ? d.spot : null, c.accent, "spot"],
        [d.max_pain, c.fg, "max pain"],
      ];
      charts.marks.change = charts.marks.oi;
      const oiData = [ks, d.strikes.map((s) => s.ce.oi), d.strikes.map((s) => s.pe.oi)];
      const chg = (leg) => (useInterval ? leg.oi_change_interval : leg.oi_change);
      const changeData = [ks, d.strikes.map((s) => chg(s.ce)), d.strikes.map((s) => chg(s.pe))];
      setText($("chart-change-title"), useInterval ? "Change in OI by strike, last " + d.interval + " min" : "Change in OI by strike, since the previous session");
      charts.set("oi", oiData, () => charts.bars($("chart-oi"), "oi", oiData, c));
      charts.set("change", changeData, () => charts.bars($("chart-change"), "change", changeData, c));
      const pts = state.points;
      const times = pts.map((p) => Date.parse(p.as_of) / 1000);
      charts.marks.intraday = [[state.at ? Date.parse(d.as_of) / 1000 : null, c.ce, ""]];
      const dayData = [times, pts.map((p) => p.spot || null), pts.map((p) => p.pcr)];
      charts.set("intraday", dayData, () => charts.line($("chart-intraday"), dayData, c));
    },
    set(name, data, make) {
      const chart = charts[name];
      const sameX = chart && chart.data[0].length === data[0].length && chart.data[0].every((x, i) => x === data[0][i]);
      if (chart && sameX) chart.setData(data, name === "intraday");
      else {
        if (chart) chart.destroy();
        charts[name] = make();
      }
    },
    rebuild() {
      for (const name of ["oi", "change", "intraday"]) {
        if (charts[name]) charts[name].destroy();
        charts[name] = null;
      }
      if (state.last) charts.update(state.last);
    },
    resize() {
      for (const [name, id] of [["oi", "chart-oi"], ["change", "chart-change"], ["intraday", "chart-intraday"]]) {
        const chart = charts[name];
        if (chart) chart.setSize({ width: charts.width($(id)), height: chart.height });
      }
    },
  };
  const signedQtyOrQty = (name, v) => (name === "change" ? signedQty(v) : qty(v));

  // --- rendering -----------------------------------------------------------------------------------------------
  function fillSelect(select, values, selected, label) {
    const current = Array.from(select.options).map((o) => o.value).join("|");
    if (current !== values.join("|")) {
      select.replaceChildren(
        ...values.map((v) => {
          const o = document.createElement("option");
          o.value = v;
          o.textContent = label ? label(v) : v;
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

  const hhmm = (iso, utcToIst) => {
    if (utcToIst) return new Date(Date.parse(iso) + 19800000).toISOString().slice(11, 16);
    return iso.slice(11, 16);
  };

  function renderStatus(d) {
    const pill = $("market-status");
    if (cfg.mode === "static") setText(pill, "Session closed", "pill closed");
    else if (d.source === "demo") setText(pill, "Demo · always open", "pill open");
    else setText(pill, d.market_open ? "Market open" : "Market closed", "pill " + (d.market_open ? "open" : "closed"));
    const t = new Date(d.as_of);
    $("as-of").dateTime = d.as_of;
    $("as-of").textContent = t.toLocaleString("en-IN", { timeZone: "Asia/Kolkata", dateStyle: "medium", timeStyle: "medium" }) + " IST";
    // The market feed (issue #13): live ticks, or why data moves at REST's pace instead ("REST, every N s").
    if (d.feed) $("as-of").textContent += d.feed.state === "live" ? " · live feed" : " · " + (d.feed.reason || "REST");
    if (cfg.mode === "static") showBanner(cfg.banner || "");
    else if (d.stale) showBanner("Stale data — " + (d.stale_reason || "not updating") + ". Showing the last good snapshot.");
    else if (state.at) showBanner("Replaying " + hhmm(d.as_of) + " IST — press Live to return to the latest data.");
    else if (!d.market_open) showBanner("Market closed — showing data as of the last refresh.");
    else showBanner("");
  }

  function renderSummary(d) {
    const iv = !none(d.interval);
    const t = d.totals;
    setText($("spot"), money(d.spot));
    setText(
      $("spot-change"),
      none(d.spot_change) ? "" : signedMoney(d.spot_change) + " (" + (d.spot_change_pct > 0 ? "+" : "") + d.spot_change_pct.toFixed(2) + "%)",
      trend(d.spot_change)
    );
    setText($("atm"), strikeText(d.atm));
    setText($("pcr"), ratio(d.pcr));
    const pcrChange = iv ? d.pcr_change_interval : d.pcr_change;
    setText($("pcr-change"), "of change " + ratio(pcrChange) + (iv ? " · " + d.interval + " min" : ""));
    setText($("max-pain"), strikeText(d.max_pain));
    setText($("ce-oi"), compact(t.ce_oi));
    setText($("pe-oi"), compact(t.pe_oi));
    const ceChg = iv ? t.ce_oi_change_interval : t.ce_oi_change;
    const peChg = iv ? t.pe_oi_change_interval : t.pe_oi_change;
    const span = iv ? " in " + d.interval + " min" : " today";
    setText($("ce-oi-change"), signedCompact(ceChg) + span, trend(ceChg));
    setText($("pe-oi-change"), signedCompact(peChg) + span, trend(peChg));
    const lv = d.levels || {};
    setText($("support"), strikeText(lv.support));
    setText($("resistance"), strikeText(lv.resistance));
    const supChg = iv ? lv.support_by_interval : lv.support_by_change;
    const resChg = iv ? lv.resistance_by_interval : lv.resistance_by_change;
    setText($("support-change"), "by change " + strikeText(supChg));
    setText($("resistance-change"), "by change " + strikeText(resChg));
  }

  // Table columns, calls side from the outside in; the puts side mirrors it. Each: [key, header, title, format, cls]
  function columns(d) {
    const iv = !none(d.interval);
    const cols = [
      ["oi", "OI", "Open interest", (l) => qty(l.oi)],
      ["oi_change", "Chg OI", "Change in OI since the previous session", (l) => signedQty(l.oi_change), (l) => trend(l.oi_change)],
    ];
    if (iv) cols.push(["oi_change_interval", "Chg " + d.interval + "m", "Change in OI over the last " + d.interval + " minutes", (l) => signedQty(l.oi_change_interval), (l) => trend(l.oi_change_interval)]);
    cols.push(["volume", "Volume", "Volume today", (l) => qty(l.volume)]);
    cols.push(["iv", "IV", "Implied volatility, %", (l) => fixed(2)(l.iv)]);
    if (state.greeks) {
      cols.push(["delta", "Δ", "Delta", (l) => fixed(3)(l.delta)]);
      cols.push(["gamma", "Γ", "Gamma", (l) => fixed(4)(l.gamma)]);
      cols.push(["theta", "Θ", "Theta per day", (l) => fixed(2)(l.theta)]);
      cols.push(["vega", "Vega", "Vega per IV point", (l) => fixed(2)(l.vega)]);
    }
    if (state.quotes) {
      cols.push(["bid", "Bid", "Best bid", (l) => (l.bid ? money(l.bid) : dash)]);
      cols.push(["ask", "Ask", "Best ask", (l) => (l.ask ? money(l.ask) : dash)]);
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

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderTable(d) {
    const cols = columns(d);
    const key = cols.map((c) => c[0] + c[1]).join("|") + state.units;
    const head = $("chain-head");
    if (head.dataset.key !== key) {
      const sides = document.createElement("tr");
      sides.className = "sides";
      sides.append(
        th("Calls", null, { colspan: cols.length, scope: "colgroup", class: "ce" }),
        th("", null, { "aria-hidden": "true" }),
        th("Puts", null, { colspan: cols.length, scope: "colgroup", class: "pe" })
      );
      const names = document.createElement("tr");
      names.append(
        ...cols.map((c) => th(c[1], c[2], { scope: "col", "data-col": "ce-" + c[0] })),
        th("Strike", "Strike price", { scope: "col", class: "strike" }),
        ...cols
          .slice()
          .reverse()
          .map((c) => th(c[1], c[2], { scope: "col", "data-col": "pe-" + c[0] }))
      );
      head.replaceChildren(sides, names);
      head.dataset.key = key;
    }
    const maxOi = Math.max(1, ...d.strikes.flatMap((s) => [s.ce.oi, s.pe.oi]));
    const rows = d.strikes.map((s) => {
      const tr = document.createElement("tr");
      const ceCells = cols.map((c) => cell(c[3](s.ce), "c " + (c[4] ? c[4](s.ce) : "") + (c[0] === "oi" ? " oi ce" : "")));
      const peCells = cols.map((c) => cell(c[3](s.pe), "p " + (c[4] ? c[4](s.pe) : "") + (c[0] === "oi" ? " oi pe" : "")));
      ceCells[0].style.setProperty("--w", ((100 * s.ce.oi) / maxOi).toFixed(1) + "%");
      peCells[0].style.setProperty("--w", ((100 * s.pe.oi) / maxOi).toFixed(1) + "%");
      const strike = document.createElement("th");
      strike.scope = "row";
      strike.className = "strike";
      strike.textContent = strikeText(s.strike);
      tr.append(...ceCells, strike, ...peCells.reverse());
      tr.dataset.strike = s.strike;
      if (s.strike === d.atm) tr.classList.add("atm");
      if (d.spot > 0 && s.strike < d.spot) tr.classList.add("itm-ce");
      if (d.spot > 0 && s.strike > d.spot) tr.classList.add("itm-pe");
      return tr;
    });
    $("rows").replaceChildren(...rows);
    setText(
      $("units-note"),
      (lot() ? "OI and volume in lots of " + lot() + "." : "OI and volume in units (lots × lot size), Indian grouping.") +
        " Change in OI is against the previous session" +
        (none(d.interval) ? "" : ", and over the last " + d.interval + " minutes") +
        ". Support = strike with the most put OI, resistance = the most call OI." +
        (d.combined ? " Combined view: OI summed over the expiries; prices, IV and Greeks do not add up, so they show —." : "")
    );
  }

  function renderReplay(d) {
    const pts = state.points;
    const box = $("replay-box");
    box.hidden = pts.length === 0;
    if (!pts.length) return;
    const slider = $("replay");
    slider.max = String(pts.length - 1);
    let i = pts.length - 1;
    if (state.at) {
      const when = Date.parse(d.as_of);
      i = Math.max(0, pts.findLastIndex((p) => Date.parse(p.as_of) <= when));
    }
    slider.value = String(i);
    const label = (state.at ? hhmm(d.as_of) : hhmm(pts[i].as_of)) + " IST";
    setText($("replay-time"), state.at || cfg.mode === "static" ? label : "Live");
    slider.setAttribute("aria-valuetext", state.at ? label : "live");
    $("replay-latest").disabled = !state.at;
  }

  function render(d) {
    state.last = d;
    renderStatus(d);
    renderReplay(d);
    renderSummary(d);
    renderTable(d);
    charts.update(d);
    document.body.dataset.loaded = d.as_of + "|" + (d.interval || "") + "|" + d.expiry + "|" + state.units + "|" + state.greeks + state.quotes;
  }

  // --- flow ----------------------------------------------------------------------------------------------------
  async function loadSymbols() {
    const symbols = await provider.symbols();
    const names = symbols.map((s) => s.symbol);
    if (!state.symbol || !names.includes(state.symbol)) state.symbol = names[0] || null;
    fillSelect($("symbol"), names, state.symbol);
    const expiries = (symbols.find((s) => s.symbol === state.symbol) || { expiries: [] }).expiries;
    if (!expiries.includes(state.expiry)) state.expiry = expiries[0] || null;
    fillSelect($("expiry"), expiries, state.expiry, (e) => (e === "all" ? "All expiries (combined)" : e));
  }

  // The series grows by one point a minute, so the live page re-reads it at most every 20 s, not on every poll.
  const HISTORY_MAX_AGE_MS = 20000;
  async function loadHistory() {
    const key = state.symbol + "|" + state.expiry;
    if (key === state.historyKey && Date.now() - state.historyAt < HISTORY_MAX_AGE_MS) return;
    try {
      state.points = (await provider.history(state.symbol, state.expiry)).points || [];
    } catch (e) {
      state.points = []; // no history yet (first minute of the day): replay and the intraday chart wait
    }
    state.historyKey = key;
    state.historyAt = Date.now();
    if (provider.archive) {
      const href = provider.archive(state.symbol, state.expiry);
      const link = $("archive-link");
      link.hidden = !href;
      if (href) link.href = href;
    }
  }

  async function refresh() {
    if (state.inflight) {
      state.pending = true; // a control changed mid-flight: run again with the new state when this one ends
      return;
    }
    state.inflight = true;
    try {
      await loadSymbols();
      if (!state.symbol) {
        showBanner("Waiting for the first data…");
        return;
      }
      await loadHistory();
      const d = await provider.oi({
        symbol: state.symbol,
        expiry: state.expiry,
        strikes: state.strikes,
        interval: state.interval,
        at: state.at,
        detail: state.greeks || state.quotes,
      });
      render(d);
    } catch (err) {
      showBanner("Could not load data: " + err.message + ". Retrying…");
    } finally {
      state.inflight = false;
      if (state.pending) {
        state.pending = false;
        refresh();
      }
    }
  }

  function schedule() {
    clearInterval(state.timer);
    if (cfg.mode !== "static") state.timer = setInterval(refresh, cfg.refresh_ms);
  }

  function init() {
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
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    $("replay").addEventListener("input", (e) => {
      const i = Number(e.target.value);
      state.at = i >= state.points.length - 1 ? null : state.points[i].as_of;
      refresh();
    });
    $("replay-latest").addEventListener("click", () => {
      state.at = null;
      refresh();
    });
    $("symbol").addEventListener("change", (e) => {
      state.symbol = e.target.value;
      state.expiry = null;
      state.at = null;
      refresh();
    });
    $("expiry").addEventListener("change", (e) => {
      state.expiry = e.target.value;
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
    let theme = THEMES.includes(store.get("theme")) ? store.get("theme") : "auto";
    applyTheme(theme);
    $("theme").addEventListener("click", () => {
      theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
      store.set("theme", theme);
      applyTheme(theme);
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => charts.rebuild());
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(charts.resize, 150);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh(); // catch up at once when the tab comes back
    });
    refresh();
    schedule();
  }

  window.OI = { state, refresh, render, charts }; // for tests and scripts
  init();
})();
