"""The market feed under load, through the live service (gunicorn as `oi.service` runs it, the Dhan source against
the fake Dhan REST server, the feed against the fake feed on loopback).

1. 10 (symbol, expiry) pairs × 82 legs (ATM ± 20), 2,000 ticks/s for SECONDS: tick-to-/api/oi latency p50/p99 of
   probe ticks (a marker OI pushed on a reserved leg, polled every 10 ms; goal p99 <= 1 s), ticks dropped (sent by
   the fake minus counted by the service's feed; goal 0) and whether every leg ends on the fake's last value, the
   service's CPU (goal <= 0.3 core) and RSS growth.
2. 50 underlyings (stocks included, via OI_UNDERLYINGS) × 42 legs (ATM ± 10) on one connection at 2,000 ticks/s:
   the service's RSS.

    python benchmarks/feed.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path

import requests
from common import cpu_seconds, free_port, memory_kb, service, service_env

from oi.feed import protocol
from oi.feed.instruments import fno_segment
from tests.fakes.dhan import FakeDhan
from tests.fakes.feed import FakeFeed

RATE = 2000
STEP = 50.0


def underlyings(n_index: int, n_stock: int) -> list[tuple[str, int, str]]:
    names = [("NIFTY", 13), ("BANKNIFTY", 25), ("FINNIFTY", 27), ("MIDCPNIFTY", 442), ("SENSEX", 51)][:n_index]
    out = [(s, i, "IDX_I") for s, i in names]
    out += [(f"STOCK{k:02d}", 5000 + k, "NSE_EQ") for k in range(n_stock)]
    return out


def chain_maker(unders: list[tuple[str, int, str]], expiries: list[str], each_side: int):
    """payload → a synthetic option-chain response with its own security ids per (underlying, expiry, strike, leg)."""
    index_of = {sid: n for n, (_, sid, _) in enumerate(unders)}

    def make(payload: dict) -> dict:
        u = index_of[payload["UnderlyingScrip"]]
        e = expiries.index(payload["Expiry"]) if payload["Expiry"] in expiries else 0
        spot = 20000.0 + 100 * u + 3.0
        atm = round(spot / STEP) * STEP
        oc = {}
        for i in range(-each_side, each_side + 1):
            strike = atm + i * STEP
            legs = {}
            for side, off in (("ce", 0), ("pe", 1)):
                legs[side] = {
                    "last_price": 100.0,
                    "oi": 100_000,
                    "previous_oi": 90_000,
                    "volume": 1000,
                    "previous_close_price": 95.0,
                    "implied_volatility": 12.5,
                    "greeks": {"delta": 0.5, "theta": -5.0, "gamma": 0.001, "vega": 10.0},
                    "top_bid_price": 99.95,
                    "top_bid_quantity": 75,
                    "top_ask_price": 100.05,
                    "top_ask_quantity": 75,
                    "security_id": 1_000_000 + u * 10_000 + e * 1_000 + (i + each_side) * 2 + off,
                }
            oc[f"{strike:.6f}"] = legs
        return {"data": {"last_price": spot, "oc": oc}, "status": "success"}

    return make


async def stream(feed: FakeFeed, keys: list[tuple[int, int]], rate: int, seconds: float, sent: list[int]) -> None:
    """Full packets at `rate` a second over `keys` (random legs, OI moving by a lot each tick), for `seconds`."""
    loop = asyncio.get_running_loop()
    conn = feed.open_connections()[0]
    start, n = loop.time(), 0
    rng = random.Random(1)
    while (elapsed := loop.time() - start) < seconds:
        due = int(elapsed * rate)
        while n < due:
            key = keys[rng.randrange(len(keys))]
            q = feed.quotes.setdefault(key, {"ltp": 100.0, "oi": 100_000})
            q["oi"] += 75
            q["ltp"] = round(max(0.05, q["ltp"] + rng.choice((-0.05, 0.05))), 2)
            await conn.ws.send(protocol.full_packet(*key, **q))
            n += 1
        sent[0] = n
        await asyncio.sleep(0.005)


def feed_process(pipe) -> None:
    """The fake feed and its tick stream in a process of their own, so the probes' polling here cannot slow the
    stream (one GIL); commands arrive over `pipe`."""
    feed = FakeFeed().start()
    job = None
    sent = [0]
    while True:
        cmd, *args = pipe.recv()
        if cmd == "url":
            pipe.send(feed.url)
        elif cmd == "held":
            conns = feed.open_connections()
            pipe.send(dict(conns[0].held) if conns else {})
        elif cmd == "stream":
            job = asyncio.run_coroutine_threadsafe(stream(feed, *args, sent), feed.loop)
            pipe.send(True)
        elif cmd == "push":
            pipe.send(feed.push(*args[0], **args[1]))
        elif cmd == "done":
            pipe.send(job is not None and job.done())
        elif cmd == "sent":
            pipe.send(sent[0])
        elif cmd == "quotes":
            pipe.send({k: dict(v) for k, v in feed.quotes.items()})
        elif cmd == "stop":
            feed.stop()
            pipe.send(True)
            return


class Remote:
    def __init__(self) -> None:
        self.pipe, child = multiprocessing.Pipe()
        self.proc = multiprocessing.Process(target=feed_process, args=(child,), daemon=True)
        self.proc.start()

    def __call__(self, *cmd):
        self.pipe.send(cmd)
        return self.pipe.recv()


def health(url: str) -> dict:
    return requests.get(url + "/healthz", timeout=10).json()


def run(unders, expiries_per_symbol: int, each_side: int, seconds: float, probe: bool, tmp: Path) -> dict[str, object]:
    dhan = FakeDhan().start()
    feed = Remote()
    expiries = sorted(dhan.expiries["data"])
    dhan.known_ids |= {sid for _, sid, _ in unders}
    dhan.chain_for = chain_maker(unders, expiries, each_side)
    env = service_env(tmp, dhan.base_url, ",".join(s for s, _, _ in unders))
    env.update(
        OI_UNDERLYINGS=",".join(f"{s}:{sid}:{seg}" for s, sid, seg in unders),
        OI_EXPIRIES_PER_SYMBOL=str(expiries_per_symbol),
        OI_FEED="on",
        DHAN_FEED_URL=feed("url"),
        OI_FEED_STRIKES=str(each_side),
        DHAN_MIN_INTERVAL_SECONDS="3" if probe else "0.2",  # the first: production pace (and tick, 0.3 s)
        DHAN_INSTRUMENTS_URL=f"http://127.0.0.1:{free_port()}/closed",  # ids come with the chains
        OI_STRIKES_AROUND_ATM=str(each_side),
    )
    pairs = len(unders) * expiries_per_symbol
    out: dict[str, object] = {}
    try:
        with service(env) as svc:
            deadline = time.monotonic() + 180
            want = pairs * (2 * (2 * each_side + 1)) + len(unders)
            while time.monotonic() < deadline:
                f = health(svc.url).get("feed") or {}
                if f.get("state") == "live" and f.get("instruments") == want:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"feed not live with {want} instruments: {health(svc.url)}")
            time.sleep(2.0)  # let the subscription burst (prev-close and snapshot packets) settle
            held = sorted(k for k, mode in feed("held").items() if mode == "full")
            views = {}
            symbols = requests.get(svc.url + "/api/symbols", timeout=10).json()["symbols"]
            for s in symbols:
                for e in s["expiries"]:
                    if e != "all":
                        views[(s["symbol"], e)] = None
            probes = []
            if probe:
                # one reserved ATM call per pair, never touched by the stream
                for symbol, expiry in views:
                    body = requests.get(
                        f"{svc.url}/api/oi", params={"symbol": symbol, "expiry": expiry}, timeout=10
                    ).json()
                    atm = body["atm"]
                    u = next(n for n, (s, _, _) in enumerate(unders) if s == symbol)
                    e = expiries.index(expiry)
                    sid = 1_000_000 + u * 10_000 + e * 1_000 + int((atm - (atm - each_side * STEP)) / STEP) * 2
                    probes.append((symbol, expiry, atm, (protocol.SEGMENTS[fno_segment(symbol)], sid)))
            reserved = {p[3] for p in probes}
            keys = [k for k in held if k not in reserved]
            before = health(svc.url)["feed"]["packets"]
            pids = svc.pids()
            rss0 = sum(memory_kb(p)[0] for p in pids)
            cpu0, t0 = cpu_seconds(pids), time.monotonic()
            feed("stream", keys, RATE, seconds)
            latencies: list[float] = []
            misses = 0
            session = requests.Session()
            marker = 9_000_000
            while not feed("done"):
                if not probes:
                    time.sleep(0.5)
                    continue
                symbol, expiry, atm, key = probes[len(latencies) % len(probes)]
                marker += 75
                start = time.monotonic()
                feed("push", key, {"oi": marker, "ltp": 100.0})
                seen = False
                while time.monotonic() - start < 5:
                    body = session.get(
                        f"{svc.url}/api/oi", params={"symbol": symbol, "expiry": expiry, "strikes": "1"}, timeout=10
                    ).json()
                    row = next((s for s in body["strikes"] if s["strike"] == atm), None)
                    if row and row["ce"]["oi"] == marker:
                        latencies.append(time.monotonic() - start)
                        seen = True
                        break
                    time.sleep(0.01)
                misses += not seen
                # a random phase against the once-a-second publication, as real ticks have (a fixed short pause
                # would land every probe just after a publication and measure the worst case each time)
                time.sleep(random.uniform(0.0, 1.3))
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(pids) - cpu0) / elapsed
            time.sleep(2.0)  # the last ticks' publish
            rss1 = sum(memory_kb(p)[0] for p in pids)
            received = health(svc.url)["feed"]["packets"] - before
            total_sent = feed("sent") + len(latencies) + misses
            quotes = feed("quotes")
            # every leg must end on the fake's last value
            stale_legs = 0
            if probe:
                for symbol, expiry in views:
                    body = session.get(
                        f"{svc.url}/api/oi", params={"symbol": symbol, "expiry": expiry, "strikes": "all"}, timeout=10
                    ).json()
                    u = next(n for n, (s, _, _) in enumerate(unders) if s == symbol)
                    e = expiries.index(expiry)
                    lo = body["strikes"][0]["strike"]
                    for row in body["strikes"]:
                        for side, off in (("ce", 0), ("pe", 1)):
                            sid = 1_000_000 + u * 10_000 + e * 1_000 + int((row["strike"] - lo) / STEP) * 2 + off
                            q = quotes.get((protocol.SEGMENTS[fno_segment(symbol)], sid))
                            if q is not None and row[side]["oi"] != q["oi"]:
                                stale_legs += 1
            out = {
                "pairs": pairs,
                "instruments": want,
                "ticks sent": total_sent,
                "ticks counted by the service": received,
                "ticks dropped": total_sent - received,
                "legs not on their last value": stale_legs if probe else "n/a",
                "rate (ticks/s)": round(total_sent / elapsed),
                "service CPU (cores)": round(cpu, 3),
                "RSS start (MB)": round(rss0 / 1024, 1),
                "RSS end (MB)": round(rss1 / 1024, 1),
                "RSS growth (MB)": round((rss1 - rss0) / 1024, 1),
            }
            if latencies:
                qs = statistics.quantiles(latencies, n=100)
                out.update(
                    probes=len(latencies),
                    probe_misses=misses,
                    latency_p50_s=round(statistics.median(latencies), 3),
                    latency_p99_s=round(qs[98], 3),
                    latency_max_s=round(max(latencies), 3),
                )
    finally:
        feed("stop")
        dhan.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=("latency", "breadth"), default=None)
    args = parser.parse_args()
    if args.only in (None, "latency"):
        with tempfile.TemporaryDirectory() as tmp:
            print("== 10 pairs x 82 legs, 2,000 ticks/s")
            for k, v in run(underlyings(5, 0), 2, 20, args.seconds, True, Path(tmp)).items():
                print(f"  {k}: {v}")
    if args.only in (None, "breadth"):
        with tempfile.TemporaryDirectory() as tmp:
            print("== 50 underlyings (5 indices, 45 stocks) x 42 legs, one connection, 2,000 ticks/s")
            for k, v in run(underlyings(5, 45), 1, 10, min(args.seconds, 30.0), False, Path(tmp)).items():
                print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
