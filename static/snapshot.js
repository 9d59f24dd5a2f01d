// Static-snapshot data provider: replays the session from datasets that upload.py wrote as scripts
// (data/<SYMBOL>_<EXPIRY>.<hash>.js calls OI_SNAPSHOT.add). Scripts, not fetch(), so the page works from file://.
(function () {
  "use strict";

  const datasets = {};
  const waiting = {};
  const key = (symbol, expiry) => symbol + "|" + expiry;

  // Columns arrive delta-encoded along time: row i holds row i − row i−1. Rebuild absolute values once.
  function decode(raw) {
    const columns = {};
    for (const [name, rows] of Object.entries(raw.columns)) {
      let prev = null;
      columns[name] = rows.map((row) => (prev = prev ? row.map((v, j) => v + prev[j]) : row.slice()));
    }
    return Object.assign({}, raw, { columns });
  }

  function load(entry) {
    const k = key(entry.symbol, entry.expiry);
    if (datasets[k]) return Promise.resolve(datasets[k]);
    return new Promise((resolve, reject) => {
      (waiting[k] = waiting[k] || []).push(resolve);
      if (waiting[k].length > 1) return;
      const s = document.createElement("script");
      s.src = entry.src;
      s.onerror = () => reject(new Error("could not load " + entry.src));
      document.head.appendChild(s);
    });
  }

  const istIso = (epoch) => new Date((epoch + 19800) * 1000).toISOString().replace(/\.\d+Z$/, "+05:30");

  function view(d, frame, strikes) {
    const i = frame === null || frame === undefined || frame >= d.t.length ? d.t.length - 1 : Math.max(0, frame);
    const atm = d.atm[i];
    let centre = d.strikes.indexOf(atm);
    if (centre < 0) centre = Math.floor(d.strikes.length / 2);
    const around = strikes === "all" ? d.strikes.length : Number(strikes);
    const lo = Math.max(0, centre - around);
    const hi = Math.min(d.strikes.length, centre + around + 1);
    const c = d.columns;
    const leg = (side, j) => {
      const oi = c[side + "_oi"][i][j];
      const ltp = c[side + "_ltp"][i][j] / d.scale.ltp;
      const close = d.prev[side + "_close"][j];
      return {
        oi,
        oi_change: oi - d.prev[side + "_oi"][j],
        previous_oi: d.prev[side + "_oi"][j],
        ltp,
        ltp_change: close ? Math.round((ltp - close) * 100) / 100 : null,
        iv: c[side + "_iv"][i][j] / d.scale.iv,
        volume: c[side + "_volume"][i][j],
      };
    };
    const rows = [];
    for (let j = lo; j < hi; j++) rows.push({ strike: d.strikes[j], ce: leg("ce", j), pe: leg("pe", j) });
    const [ce_oi, pe_oi, ce_oi_change, pe_oi_change] = d.totals[i];
    return {
      stale: false,
      market_open: false,
      symbol: d.symbol,
      expiry: d.expiry,
      spot: d.spot[i],
      as_of: istIso(d.t[i]),
      source: d.source,
      atm,
      pcr: d.pcr[i],
      max_pain: d.max_pain[i],
      totals: { ce_oi, pe_oi, ce_oi_change, pe_oi_change },
      frame: i,
      frames: d.t.length,
      strikes: rows,
    };
  }

  window.OI_SNAPSHOT = {
    add(raw) {
      const k = key(raw.symbol, raw.expiry);
      datasets[k] = decode(raw);
      (waiting[k] || []).forEach((resolve) => resolve(datasets[k]));
      delete waiting[k];
    },
    provider(cfg) {
      const list = cfg.snapshot.datasets;
      const find = (symbol, expiry) =>
        list.find((d) => d.symbol === symbol && (!expiry || d.expiry === expiry)) || null;
      return {
        replay: true,
        async symbols() {
          return cfg.symbols.map((symbol) => ({
            symbol,
            expiries: list.filter((d) => d.symbol === symbol).map((d) => d.expiry),
          }));
        },
        async times(symbol, expiry) {
          const entry = find(symbol, expiry);
          return entry ? (await load(entry)).t.map(istIso) : [];
        },
        async oi(symbol, expiry, strikes, frame) {
          const entry = find(symbol, expiry);
          if (!entry) throw new Error("no data for " + symbol);
          return view(await load(entry), frame, strikes);
        },
        archive(symbol, expiry) {
          const entry = find(symbol, expiry);
          return entry ? entry.archive : null;
        },
      };
    },
  };
})();
