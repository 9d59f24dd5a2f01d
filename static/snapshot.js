// Static-snapshot data provider: replays the session from datasets that upload.py wrote as scripts
// (data/<SYMBOL>_<EXPIRY>.<hash>.js calls OI_SNAPSHOT.add, the .detail file OI_SNAPSHOT.addDetail). Scripts, not
// fetch(), so the page works from file://. It answers like the live API (same fields, same definitions as
// oi/analytics.py): interval changes against the frame at or before t − M minutes, levels, PCR of change.
(function () {
  "use strict";

  const datasets = {};
  const details = {};
  const waiting = {};
  const key = (symbol, expiry) => symbol + "|" + expiry;

  // Columns arrive delta-encoded along time: row i holds row i − row i−1. Rebuild absolute values once.
  function decodeColumns(raw) {
    const columns = {};
    for (const [name, rows] of Object.entries(raw)) {
      let prev = null;
      columns[name] = rows.map((row) => (prev = prev ? row.map((v, j) => v + prev[j]) : row.slice()));
    }
    return columns;
  }

  function loadScript(k, src) {
    const have = k.endsWith("|detail") ? details[k.slice(0, -7)] : datasets[k];
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      (waiting[k] = waiting[k] || []).push(resolve);
      if (waiting[k].length > 1) return;
      const s = document.createElement("script");
      s.src = src;
      s.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(s);
    });
  }

  function arrived(k, value) {
    (waiting[k] || []).forEach((resolve) => resolve(value));
    delete waiting[k];
  }

  const istIso = (epoch) => new Date((epoch + 19800) * 1000).toISOString().replace(/\.\d+Z$/, "+05:30");
  const ratio = (pe, ce) => (ce ? Math.round((pe / ce) * 1e4) / 1e4 : null);
  // Index of the latest frame at or before epoch second `t`, −1 if none.
  function frameAt(d, t) {
    let lo = 0;
    let hi = d.t.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (d.t[mid] <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  function view(d, q) {
    const last = d.t.length - 1;
    const i = q.at ? Math.max(0, frameAt(d, Date.parse(q.at) / 1000)) : last;
    const interval = q.interval ? Number(q.interval) : null;
    const ref = interval ? frameAt(d, d.t[i] - 60 * interval) : -1;
    const atm = d.atm[i];
    let centre = d.strikes.indexOf(atm);
    if (centre < 0) centre = Math.floor(d.strikes.length / 2);
    const around = q.strikes === "all" ? d.strikes.length : Number(q.strikes);
    const lo = Math.max(0, centre - around);
    const hi = Math.min(d.strikes.length, centre + around + 1);
    const c = d.columns;
    const x = details[key(d.symbol, d.expiry)];
    const combined = d.expiry === "all";
    const price = (v) => (combined ? null : v);
    const leg = (side, j) => {
      const oi = c[side + "_oi"][i][j];
      const ltp = c[side + "_ltp"][i][j] / d.scale.ltp;
      const close = c[side + "_close"][i][j] / d.scale.close;
      const previous = c[side + "_prev_oi"][i][j];
      const out = {
        oi,
        oi_change: oi - previous,
        previous_oi: previous,
        ltp: price(ltp),
        ltp_change: !combined && close ? Math.round((ltp - close) * 100) / 100 : null,
        iv: price(c[side + "_iv"][i][j] / d.scale.iv),
        volume: c[side + "_volume"][i][j],
      };
      for (const name of ["delta", "gamma", "theta", "vega", "bid", "bid_qty", "ask", "ask_qty"]) {
        const col = x && !combined ? x.columns[side + "_" + name] : null;
        out[name] = col ? col[i][j] / d.scale[name] : null;
      }
      if (interval) {
        out.oi_change_interval = ref >= 0 ? oi - c[side + "_oi"][ref][j] : null;
        // As analytics.interval_price_changes: null when either price is missing (0) or in the combined view.
        const now = c[side + "_ltp"][i][j];
        const then = ref >= 0 ? c[side + "_ltp"][ref][j] : 0;
        out.ltp_change_interval = !combined && now > 0 && then > 0 ? (now - then) / d.scale.ltp : null;
      }
      return out;
    };
    const rows = [];
    for (let j = lo; j < hi; j++) rows.push({ strike: d.strikes[j], ce: leg("ce", j), pe: leg("pe", j) });
    const [ce_oi, pe_oi, ce_oi_change, pe_oi_change] = d.totals[i];
    const totals = { ce_oi, pe_oi, ce_oi_change, pe_oi_change };
    const [support, resistance, support_by_change, resistance_by_change] = d.levels[i];
    const levels = { support, resistance, support_by_change, resistance_by_change };
    const spot = d.spot[i];
    const close = d.prev_close;
    const out = {
      stale: false,
      market_open: false,
      symbol: d.symbol,
      expiry: d.expiry,
      combined,
      spot,
      spot_prev_close: close,
      spot_change: close && spot > 0 ? Math.round((spot - close) * 100) / 100 : null,
      spot_change_pct: close && spot > 0 ? Math.round((10000 * (spot - close)) / close) / 100 : null,
      as_of: istIso(d.t[i]),
      source: d.source,
      lot_size: d.lot_size,
      atm,
      pcr: d.pcr[i],
      pcr_change: ratio(pe_oi_change, ce_oi_change),
      max_pain: d.max_pain[i],
      totals,
      levels,
      strike_count: d.strike_count[i],
      strikes: rows,
    };
    if (interval) {
      // Totals over every strike: Σ(now − then) = total now − total then, so the frame totals are enough.
      totals.ce_oi_change_interval = ref >= 0 ? ce_oi - d.totals[ref][0] : null;
      totals.pe_oi_change_interval = ref >= 0 ? pe_oi - d.totals[ref][1] : null;
      const [sup, res] = d.levels_interval[String(interval)][i];
      levels.support_by_interval = sup;
      levels.resistance_by_interval = res;
      out.interval = interval;
      out.interval_from = ref >= 0 ? istIso(d.t[ref]) : null;
      out.pcr_change_interval = ref >= 0 ? ratio(totals.pe_oi_change_interval, totals.ce_oi_change_interval) : null;
    }
    if (q.at) out.at = q.at;
    return out;
  }

  window.OI_SNAPSHOT = {
    add(raw) {
      const k = key(raw.symbol, raw.expiry);
      datasets[k] = Object.assign({}, raw, { columns: decodeColumns(raw.columns) });
      arrived(k, datasets[k]);
    },
    addDetail(raw) {
      const k = key(raw.symbol, raw.expiry);
      details[k] = { columns: decodeColumns(raw.columns) };
      arrived(k + "|detail", details[k]);
    },
    provider(cfg) {
      const list = cfg.snapshot.datasets;
      const find = (symbol, expiry) =>
        list.find((d) => d.symbol === symbol && (!expiry || d.expiry === expiry)) || null;
      const load = (entry) => loadScript(key(entry.symbol, entry.expiry), entry.src);
      return {
        async symbols() {
          return cfg.symbols.map((symbol) => ({
            symbol,
            kind: (cfg.kinds || {})[symbol] || "index",
            expiries: list.filter((d) => d.symbol === symbol).map((d) => d.expiry),
          }));
        },
        async history(symbol, expiry, since) {
          const entry = find(symbol, expiry);
          if (!entry) return { points: [] };
          const d = await load(entry);
          const after = since ? Date.parse(since) / 1000 : -Infinity;
          const points = [];
          d.t.forEach((t, i) => {
            if (t <= after) return;
            points.push({
              as_of: istIso(t),
              spot: d.spot[i],
              pcr: d.pcr[i],
              max_pain: d.max_pain[i],
              ce_oi: d.totals[i][0],
              pe_oi: d.totals[i][1],
              straddle: d.straddle ? d.straddle[i] : null,
              atm_iv: d.atm_iv ? d.atm_iv[i] : null,
            });
          });
          return { symbol, expiry: d.expiry, session: cfg.snapshot.session, points };
        },
        // As /api/strikes: per minute, OI and LTP of the chosen strikes' legs (strikes outside the data are left out).
        async strikes(symbol, expiry, strikes) {
          const entry = find(symbol, expiry);
          if (!entry) throw new Error("no data for " + symbol);
          const d = await load(entry);
          const c = d.columns;
          const out = {};
          for (const k of strikes) {
            const j = d.strikes.indexOf(k);
            if (j < 0) continue;
            const price = (v) => (v > 0 && d.expiry !== "all" ? v / d.scale.ltp : null);
            out[String(k)] = {
              ce_oi: c.ce_oi.map((row) => row[j]),
              pe_oi: c.pe_oi.map((row) => row[j]),
              ce_ltp: c.ce_ltp.map((row) => price(row[j])),
              pe_ltp: c.pe_ltp.map((row) => price(row[j])),
            };
          }
          return { symbol, expiry: d.expiry, t: d.t.map(istIso), strikes: out };
        },
        async oi(q) {
          const entry = find(q.symbol, q.expiry);
          if (!entry) throw new Error("no data for " + q.symbol);
          const d = await load(entry);
          if (q.detail && entry.detail) await loadScript(key(entry.symbol, entry.expiry) + "|detail", entry.detail);
          return view(d, q);
        },
        // As /api/closes: the earlier sessions' closing OI, carried in the dataset by upload.py.
        async closes(symbol, expiry) {
          const entry = find(symbol, expiry);
          if (!entry) throw new Error("no data for " + symbol);
          const d = await load(entry);
          return { symbol, expiry: d.expiry, sessions: d.closes || [] };
        },
        archive(symbol, expiry) {
          const entry = find(symbol, expiry);
          return entry ? entry.archive : null;
        },
      };
    },
  };
})();
