// OI dashboard. One script for the live page (data from /api/*) and the static snapshot (data embedded by
// upload.py as window.OI_SNAPSHOT, so it also works from file:// where fetch() is not allowed).
// Everything user- or data-controlled is written with textContent: no HTML is ever built from data.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("oi-config").textContent);
  const $ = (id) => document.getElementById(id);
  // frame: index into the session's replay, null = the latest data
  const state = { symbol: null, expiry: null, strikes: String(cfg.strikes), frame: null, timer: null, inflight: false };

  // --- data providers ------------------------------------------------------------------------------------------
  const live = {
    async symbols() {
      const r = await fetch("api/symbols", { cache: "no-store" });
      if (!r.ok) throw new Error("symbols: HTTP " + r.status);
      return (await r.json()).symbols;
    },
    async oi(symbol, expiry, strikes) {
      const q = new URLSearchParams({ symbol, strikes });
      if (expiry) q.set("expiry", expiry);
      const r = await fetch("api/oi?" + q.toString(), { cache: "no-store" });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
      return body;
    },
  };
  const provider = cfg.mode === "static" && window.OI_SNAPSHOT ? window.OI_SNAPSHOT.provider(cfg) : live;

  // --- formatting ----------------------------------------------------------------------------------------------
  const nf0 = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });
  const nf2 = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const dash = "—";
  const int = (v) => (v === null || v === undefined ? dash : nf0.format(v));
  const money = (v) => (v === null || v === undefined ? dash : nf2.format(v));
  const signed = (v) => (v === null || v === undefined ? dash : (v > 0 ? "+" : "") + nf0.format(v));
  const pct = (v) => (!v ? dash : v.toFixed(2)); // IV of 0 means "not available", not zero volatility

  function setText(el, text, cls) {
    el.textContent = text;
    if (cls !== undefined) el.className = cls;
  }
  const trend = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");

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

  function renderStatus(d) {
    const pill = $("market-status");
    if (cfg.mode === "static") setText(pill, "Session closed", "pill closed");
    else if (d.source === "demo") setText(pill, "Demo · always open", "pill open");
    else setText(pill, d.market_open ? "Market open" : "Market closed", "pill " + (d.market_open ? "open" : "closed"));
    const t = new Date(d.as_of);
    $("as-of").dateTime = d.as_of;
    $("as-of").textContent = t.toLocaleString("en-IN", { timeZone: "Asia/Kolkata", dateStyle: "medium", timeStyle: "medium" }) + " IST";
    if (cfg.mode === "static") showBanner(cfg.banner || "");
    else if (d.stale) showBanner("Stale data — " + (d.stale_reason || "not updating") + ". Showing the last good snapshot.");
    else if (!d.market_open) showBanner("Market closed — showing data as of the last refresh.");
    else showBanner("");
  }

  function renderSummary(d) {
    setText($("spot"), money(d.spot));
    setText($("atm"), int(d.atm));
    setText($("pcr"), d.pcr === null ? dash : d.pcr.toFixed(2));
    setText($("max-pain"), int(d.max_pain));
    setText($("ce-oi"), int(d.totals.ce_oi));
    setText($("pe-oi"), int(d.totals.pe_oi));
    setText($("ce-oi-change"), signed(d.totals.ce_oi_change) + " chg", trend(d.totals.ce_oi_change));
    setText($("pe-oi-change"), signed(d.totals.pe_oi_change) + " chg", trend(d.totals.pe_oi_change));
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderTable(d) {
    const maxOi = Math.max(1, ...d.strikes.flatMap((s) => [s.ce.oi, s.pe.oi]));
    const rows = d.strikes.map((s) => {
      const tr = document.createElement("tr");
      const ceW = ((100 * s.ce.oi) / maxOi).toFixed(1) + "%";
      const peW = ((100 * s.pe.oi) / maxOi).toFixed(1) + "%";
      const ceOi = cell(int(s.ce.oi), "c oi ce");
      ceOi.style.setProperty("--w", ceW);
      const peOi = cell(int(s.pe.oi), "p oi pe");
      peOi.style.setProperty("--w", peW);
      tr.append(
        ceOi,
        cell(signed(s.ce.oi_change), "c " + trend(s.ce.oi_change)),
        cell(int(s.ce.volume), "c"),
        cell(pct(s.ce.iv), "c"),
        cell(money(s.ce.ltp), "c"),
        cell(nf0.format(s.strike), "strike"),
        cell(money(s.pe.ltp), "p"),
        cell(pct(s.pe.iv), "p"),
        cell(int(s.pe.volume), "p"),
        cell(signed(s.pe.oi_change), "p " + trend(s.pe.oi_change)),
        peOi
      );
      tr.dataset.strike = s.strike;
      if (s.strike === d.atm) tr.classList.add("atm");
      if (d.spot > 0 && s.strike < d.spot) tr.classList.add("itm-ce");
      if (d.spot > 0 && s.strike > d.spot) tr.classList.add("itm-pe");
      return tr;
    });
    $("rows").replaceChildren(...rows);
  }

  const hhmm = (iso) => iso.slice(11, 16);

  async function loadReplay() {
    if (!provider.replay) return;
    const times = await provider.times(state.symbol, state.expiry);
    const slider = $("replay");
    $("replay-box").hidden = times.length === 0;
    slider.max = String(Math.max(0, times.length - 1));
    slider.dataset.times = JSON.stringify(times.map(hhmm));
    if (provider.archive) {
      const href = provider.archive(state.symbol, state.expiry);
      const link = $("archive-link");
      link.hidden = !href;
      if (href) link.href = href;
    }
  }

  function renderReplay(d) {
    if (d.frame === undefined) return;
    const slider = $("replay");
    slider.value = String(d.frame);
    const times = JSON.parse(slider.dataset.times || "[]");
    setText($("replay-time"), (times[d.frame] || "") + " IST");
    slider.setAttribute("aria-valuetext", (times[d.frame] || "") + " IST");
  }

  function render(d) {
    renderStatus(d);
    renderReplay(d);
    renderSummary(d);
    renderTable(d);
    document.body.dataset.loaded = d.as_of; // lets tests and scripts wait for a render
  }

  // --- flow ----------------------------------------------------------------------------------------------------
  let symbols = [];

  async function loadSymbols() {
    symbols = await provider.symbols();
    const names = symbols.map((s) => s.symbol);
    if (!state.symbol || !names.includes(state.symbol)) state.symbol = names[0] || null;
    fillSelect($("symbol"), names, state.symbol);
    const expiries = (symbols.find((s) => s.symbol === state.symbol) || { expiries: [] }).expiries;
    if (!expiries.includes(state.expiry)) state.expiry = expiries[0] || null;
    fillSelect($("expiry"), expiries, state.expiry);
  }

  async function refresh() {
    if (state.inflight) return;
    state.inflight = true;
    try {
      await loadSymbols();
      if (!state.symbol) {
        showBanner("Waiting for the first data…");
        return;
      }
      await loadReplay();
      render(await provider.oi(state.symbol, state.expiry, state.strikes, state.frame));
    } catch (err) {
      showBanner("Could not load data: " + err.message + ". Retrying…");
    } finally {
      state.inflight = false;
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
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    $("replay").addEventListener("input", (e) => {
      const value = Number(e.target.value);
      state.frame = value >= Number(e.target.max) ? null : value;
      refresh();
    });
    $("replay-latest").addEventListener("click", () => {
      state.frame = null;
      refresh();
    });
    $("symbol").addEventListener("change", (e) => {
      state.symbol = e.target.value;
      state.expiry = null;
      state.frame = null;
      refresh();
    });
    $("expiry").addEventListener("change", (e) => {
      state.expiry = e.target.value;
      state.frame = null;
      refresh();
    });
    strikesSel.addEventListener("change", (e) => {
      state.strikes = e.target.value;
      refresh();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh(); // catch up at once when the tab comes back
    });
    refresh();
    schedule();
  }

  window.OI = { state, refresh, render }; // for the snapshot's replay and for tests
  init();
})();
