#!/usr/bin/env python3
"""A three-lane store on loopback (full mesh, no cloud) under build/bench/lanesync_loadgen, and
with --jetstream a JetStream R3 cluster and an R1 server under the same client and schedules.

Rows (all load goes to lane L1's local API; JetStream's to its first server):
  ingest         POST /v1/messages -> 201 (fsync'd on L1) at 100, 1,000 and 5,000 msg/s, open loop
  peer_ack       publish -> peer_ack at the same rates: ?wait=peer_ack when the lane supports it,
                 else peer_acked_at - created_at from GET /v1/messages/{id} (ms resolution)
  max peer_ack   closed loop, 256 in flight, 50,000 messages, until the last peer_ack
  raw SQLite     fsync'd single-row commits/s and rows/s in 100-row commits on this disk
                 (WAL, synchronous=FULL, as the outbox), measured in the same run

Latency is measured from each request's intended send time (see docs/benchmarks.md).
Prints one table; writes the results as JSON into --out (bench/results/).

Usage: store_bench.py [--bin build/lanesync] [--loadgen build/bench/lanesync_loadgen]
                      [--smoke] [--jetstream] [--out DIR]
"""
import argparse
import ctypes
import datetime
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lanes import REPO as ROOT, Store, child_env, free_port, http, wait_for  # noqa: E402

# (rate msg/s, seconds) of the open-loop schedules; the closed loop (in flight, messages).
FULL = {"rates": [(100, 20), (1000, 10), (5000, 10)], "closed": (256, 50000), "batch": 10,
        "sqlite_s": 2.0, "connections": 256}
SMOKE = {"rates": [(100, 1), (1000, 1), (5000, 0.4)], "closed": (256, 2000), "batch": 10,
         "sqlite_s": 0.3, "connections": 64}


def log(msg):
    sys.stderr.write(f"store_bench: {msg}\n")
    sys.stderr.flush()


def die_with_parent():
    """preexec_fn: SIGKILL when this process dies (PR_SET_PDEATHSIG = 1)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


# ---- raw SQLite -----------------------------------------------------------------------------
def sqlite_limit(folder, seconds):
    """fsync'd single-row commits/s and rows/s in 100-row commits, WAL + synchronous=FULL."""
    path = os.path.join(folder, "sqlite-probe.db")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE m (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                   "topic TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL)")
        data = json.dumps({"receipt": "R-00000001", "lines": [{"sku": "4006381333931"}] * 3,
                           "note": "x" * 150})
        seq = 0

        def rows(n):
            nonlocal seq
            for _ in range(n):
                seq += 1
                yield (seq, f"id-{seq}", "transaction", data, seq)

        def commits_per_s(batch):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?)", rows(batch))
                db.execute("COMMIT")
                n += 1
            return n / (time.perf_counter() - t0)

        single = commits_per_s(1)
        batched = commits_per_s(100) * 100
    finally:
        db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return {"single_commits_per_s": single, "batched_rows_per_s": batched, "batch_rows": 100}


# ---- the load generator ---------------------------------------------------------------------
class Loadgen:
    def __init__(self, binary):
        self.binary = binary

    def run(self, *args, timeout=600):
        """One lanesync_loadgen run: its JSON line (with "skipped" when the target lacks
        the feature). Raises on a fatal failure."""
        cmd = [self.binary, *map(str, args)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=child_env(), preexec_fn=die_with_parent)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines:
            detail = json.loads(lines[-1]).get("fatal") if lines else p.stderr.strip()
            raise RuntimeError(f"lanesync_loadgen {' '.join(map(str, args))}: {detail}")
        return json.loads(lines[-1])


# ---- lanesync -------------------------------------------------------------------------------
def start_store(folder, binary):
    store = Store("store-bench", folder=folder, store_id="bench", binary=binary,
                  secret="bench-secret-0123456789", env={"LOG_LEVEL": "warn"})
    lanes = [store.lane(f"L{i}") for i in (1, 2, 3)]
    for lane in lanes:
        lane.peer_with(*[o for o in lanes if o is not lane])
    try:
        for lane in lanes:
            lane.start(timeout=30)
        wait_for(lambda: all(all(p["connected"] for p in l.status()["peers"]) for l in lanes),
                 30, "full mesh connected")
    except BaseException:
        store.close()
        raise
    return store, lanes[0]


def wait_peer_acked(lane, timeout=300):
    """Until the lane has no pending message (every one is peer_ack: there is no cloud)."""
    wait_for(lambda: lane.status()["outbox"]["pending"] == 0, timeout, "every message peer_ack")
    return time.monotonic()


def bench_lanesync(cfg, gen, lane, work):
    """Open-loop ingest and peer_ack rows, then the closed-loop max; returns the results."""
    out = {"ingest": {}, "peer_ack": {}, "peer_ack_method": None}
    conns = cfg["connections"]
    for rate, secs in cfg["rates"]:
        ids = os.path.join(work, f"ids-{rate}.txt")
        log(f"lanesync ingest at {rate}/s for {secs} s")
        out["ingest"][rate] = gen.run("--url", lane.api, "--rate", rate, "--duration", secs,
                                      "--connections", conns, "--ids-out", ids,
                                      "--label", f"lanesync ingest {rate}/s")
        wait_peer_acked(lane)
        res = gen.run("--url", lane.api, "--rate", rate, "--duration", secs, "--wait",
                      "peer_ack", "--connections", conns, "--label", f"lanesync peer_ack {rate}/s")
        out["peer_ack_method"] = "wait"
        if "skipped" in res:
            out["peer_ack_method"] = "timestamps"
            out["peer_ack_skipped_wait"] = res["skipped"]
            res = gen.run("--url", lane.api, "--timestamps", ids, "--connections", 16,
                          "--label", f"lanesync peer_ack {rate}/s (timestamps)")
        out["peer_ack"][rate] = res
        wait_peer_acked(lane)
    out["max"] = closed_max(cfg, gen, lane, 1)
    out["max_batch"] = closed_max(cfg, gen, lane, cfg["batch"])
    return out


def closed_max(cfg, gen, lane, batch):
    """Closed loop until the last peer_ack: with ?wait=peer_ack when supported, else ingest
    then the time until L1 has no pending message."""
    inflight, n = cfg["closed"]
    common = ["--url", lane.api, "--inflight", inflight, "--messages", n, "--batch", batch]
    log(f"lanesync closed loop, {inflight} in flight, {n} messages, batch {batch}")
    res = gen.run(*common, "--wait", "peer_ack", "--label", f"lanesync max peer_ack b{batch}")
    if "skipped" not in res:
        res["peer_ack_rate"], res["method"] = res["achieved_rate"], "wait"
        wait_peer_acked(lane)
        return res
    res = gen.run(*common, "--label", f"lanesync max ingest+peer_ack b{batch}")
    if "skipped" in res:
        return res
    done = time.monotonic()
    acked = wait_peer_acked(lane)
    elapsed = res["duration_s"] + (acked - done)
    res["peer_ack_rate"] = res["count"] / elapsed if elapsed > 0 else 0.0
    res["peer_ack_s"], res["method"] = elapsed, "until pending = 0"
    return res


# ---- JetStream ------------------------------------------------------------------------------
class NatsServer:
    """One nats-server with JetStream (file storage) in its own folder."""

    def __init__(self, folder, name, cluster_ports=None, index=0):
        self.folder = os.path.join(folder, name)
        os.makedirs(self.folder, exist_ok=True)
        self.name, self.port, self.http_port = name, free_port(), free_port()
        conf = [f"server_name: {name}", f"listen: 127.0.0.1:{self.port}",
                f"http: 127.0.0.1:{self.http_port}",
                f"jetstream {{ store_dir: \"{os.path.join(self.folder, 'js')}\" }}"]
        if cluster_ports:
            routes = ", ".join(f"nats://127.0.0.1:{p}" for i, p in enumerate(cluster_ports)
                               if i != index)
            conf.append(f"cluster {{ name: bench, listen: 127.0.0.1:{cluster_ports[index]}, "
                        f"routes: [{routes}] }}")
        self.conf = os.path.join(self.folder, "nats.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        with open(os.path.join(self.folder, "nats.log"), "ab") as logf:
            self.proc = subprocess.Popen(["nats-server", "-c", self.conf], stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=die_with_parent)

    def ready(self, clustered):
        if self.proc.poll() is not None:
            raise RuntimeError(f"nats-server {self.name} exited with {self.proc.returncode}")
        r = http("GET", f"http://127.0.0.1:{self.http_port}/jsz", timeout=1)
        if r.status != 200:
            return False
        return not clustered or bool(r.json().get("meta_cluster", {}).get("leader"))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nats(folder, nodes):
    ports = [free_port() for _ in range(nodes)] if nodes > 1 else None
    servers = [NatsServer(folder, f"n{i + 1}", ports, i) for i in range(nodes)]
    try:
        for s in servers:
            s.start()
        wait_for(lambda: all(s.ready(nodes > 1) for s in servers), 60, "JetStream ready")
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers


def bench_jetstream(cfg, gen, work, replicas):
    """The same schedules against a stream of `replicas` (3: a 3-node cluster; 1: one server)."""
    servers = start_nats(os.path.join(work, f"nats-r{replicas}"), replicas)
    try:
        js = ["--jetstream", servers[0].url, "--js-stream", f"R{replicas}",
              "--js-replicas", replicas]
        out = {"ack": {}}
        for rate, secs in cfg["rates"]:
            log(f"JetStream R{replicas} at {rate}/s for {secs} s")
            out["ack"][rate] = gen.run(*js, "--rate", rate, "--duration", secs,
                                       "--label", f"jetstream R{replicas} {rate}/s")
        inflight, n = cfg["closed"]
        log(f"JetStream R{replicas} closed loop, {inflight} in flight, {n} messages")
        out["max"] = gen.run(*js, "--inflight", inflight, "--messages", n,
                             "--label", f"jetstream R{replicas} max")
        out["version"] = subprocess.run(["nats-server", "--version"], capture_output=True,
                                        text=True).stdout.strip()
        return out
    finally:
        for s in servers:
            s.stop()


# ---- output ---------------------------------------------------------------------------------
JETSTREAM = (("jetstream_r3", "JetStream R3"), ("jetstream_r1", "JetStream R1"))


def ms(us):
    return f"{us / 1000.0:.2f}"


def errors_text(r):
    return " ".join(f"{k}:{v}" for k, v in sorted(r.get("errors", {}).items())) or "0"


def row(name, size, r, rate_key="achieved_rate"):
    """A table row; the rate column is "-" for a timestamps row (it measured no send)."""
    if r is None:
        return None
    if "skipped" in r:
        return [name, size, "skipped: " + r["skipped"]]
    rate = "-" if r.get("mode") == "timestamps" else f"{r[rate_key]:,.0f}"
    return [name, size, f"{r['count']:,}", ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"]),
            ms(r["max_us"]), rate, errors_text(r)]


def latency_rows(res):
    ours = res["lanesync"]
    how = {"wait": "?wait=peer_ack", "timestamps": "lane timestamps, ms"}[ours["peer_ack_method"]]
    rows = []
    for rate, _ in res["config"]["rates"]:
        rows.append(row("lanesync ingest (201, fsync'd on L1)", f"{rate:,}/s",
                        ours["ingest"][rate]))
        rows.append(row(f"lanesync publish->peer_ack ({how})", f"{rate:,}/s",
                        ours["peer_ack"][rate]))
        for key, name in JETSTREAM:
            if key in res:
                rows.append(row(f"{name} ack", f"{rate:,}/s", res[key]["ack"][rate]))
    inflight, n = res["config"]["closed"]
    size = f"{inflight} in flight"
    rows.append(row(f"lanesync max peer_ack, single ({ours['max'].get('method', '')})", size,
                    ours["max"], "peer_ack_rate"))
    rows.append(row(f"lanesync max peer_ack, batch of {res['config']['batch']}", size,
                    ours["max_batch"], "peer_ack_rate"))
    for key, name in JETSTREAM:
        if key in res:
            rows.append(row(f"{name} max ack", size, res[key]["max"]))
    return rows


def print_rows(header, rows):
    """Columns padded to the widest cell; a short row (a skipped one) ends with its note."""
    w = [max(len(r[i]) for r in [header] + rows if len(r) == len(header))
         for i in range(len(header))]
    cell = lambda i, c: c.ljust(w[i]) if i < 2 else c.rjust(w[i])
    print("  ".join(cell(i, c) for i, c in enumerate(header)))
    print("  ".join("-" * x for x in w))
    for r in rows:
        if len(r) == len(header):
            print("  ".join(cell(i, c) for i, c in enumerate(r)))
        else:
            print("  ".join(cell(i, c) for i, c in enumerate(r[:2])) + "  " + r[2])


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def print_sqlite(res):
    sq, ours = res["sqlite"], res["lanesync"]
    print(f"raw SQLite of this disk (WAL, synchronous=FULL): "
          f"{sq['single_commits_per_s']:,.0f} fsync'd single-row commits/s, "
          f"{sq['batched_rows_per_s']:,.0f} rows/s in {sq['batch_rows']}-row commits")
    header = ["lanesync / raw SQLite", "msg/s", "/ single-row commits", "/ batched rows"]
    rows = []
    for key, what in (("max", "single"), ("max_batch", f"batch of {res['config']['batch']}")):
        m = ours[key]
        if "skipped" in m:
            continue
        rate = m["peer_ack_rate"]
        rows.append([f"max peer_ack ({what})", f"{rate:,.0f}",
                     ratio(rate, sq["single_commits_per_s"]),
                     ratio(rate, sq["batched_rows_per_s"])])
        if m.get("method") != "wait":
            rate = m["achieved_rate"]
            rows.append([f"its ingest, 201 ({what})", f"{rate:,.0f}",
                         ratio(rate, sq["single_commits_per_s"]),
                         ratio(rate, sq["batched_rows_per_s"])])
    print_rows(header, rows)


def print_jetstream_ratios(res):
    """lanesync's figure divided by JetStream's: latency below 1 and rate above 1 are ours ahead."""
    cols = [k for k in ("jetstream_r3", "jetstream_r1") if k in res]
    if not cols:
        return
    ours = res["lanesync"]
    header = ["lanesync / JetStream ack", "schedule"]
    for k in cols:
        header += [f"{k[-2:].upper()} p50", f"{k[-2:].upper()} p99"]
    rows = []
    for rate, _ in res["config"]["rates"]:
        for kind in ("ingest", "peer_ack"):
            r = [f"{kind} latency", f"{rate:,}/s"]
            for k in cols:
                a, o = res[k]["ack"][rate], ours[kind][rate]
                r += [ratio(o.get("p50_us"), a.get("p50_us")),
                      ratio(o.get("p99_us"), a.get("p99_us"))]
            rows.append(r)
    r = ["max peer_ack rate (single)", f"{res['config']['closed'][0]} in flight"]
    for k in cols:
        r += [ratio(ours["max"].get("peer_ack_rate"), res[k]["max"].get("achieved_rate")), ""]
    rows.append(r)
    print_rows(header, rows)


def print_table(res):
    print(f"three-lane store on loopback (full mesh, no cloud), load on L1 from "
          f"build/bench/lanesync_loadgen; {res['host']['cores']} cores, load average "
          f"{res['host']['loadavg']:.2f} at start")
    print("latency in ms from each request's intended send time (open loop) or its send "
          "(closed loop); rate = achieved msg/s")
    header = ["row", "schedule", "msgs", "p50", "p99", "p999", "max", "rate", "errors"]
    print_rows(header, [r for r in latency_rows(res) if r])
    print()
    print_sqlite(res)
    if "jetstream_r3" in res or "jetstream_r1" in res:
        print()
        print_jetstream_ratios(res)


def write_results(kind, res, out_dir, smoke, bad):
    """Writes `res` as bench/results/KIND-[smoke-]TIME.json, names the file, reports each of
    `bad` (the run's problems) on stderr; the exit status: 1 when there were any."""
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(out_dir, f"{kind}-{'smoke-' if smoke else ''}{stamp}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    shown = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
    print(f"\nresults: {shown}")
    for p in bad:
        print(f"{kind}_bench: FAILED {p}", file=sys.stderr)
    return 1 if bad else 0


def problems(res):
    """Smoke checks: every row that ran counted messages and had no errors."""
    out = []

    def check(name, r):
        if r is None or "skipped" in r:
            return
        if not r.get("count"):
            out.append(f"{name}: no message counted")
        if r.get("failed"):
            out.append(f"{name}: {r['failed']} failed ({errors_text(r)})")

    ours = res.get("lanesync", {})
    for kind in ("ingest", "peer_ack"):
        for rate, r in ours.get(kind, {}).items():
            check(f"lanesync {kind} {rate}/s", r)
    for key in ("max", "max_batch"):
        check(f"lanesync {key}", ours.get(key))
    for key in ("jetstream_r3", "jetstream_r1"):
        for rate, r in res.get(key, {}).get("ack", {}).items():
            check(f"{key} {rate}/s", r)
        check(f"{key} max", res.get(key, {}).get("max"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "lanesync"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build", "bench", "lanesync_loadgen"))
    ap.add_argument("--jetstream", action="store_true",
                    help="also JetStream R3 (3-node cluster) and R1 (needs nats-server, libnats)")
    ap.add_argument("--smoke", action="store_true", help="small sizes: checks the bench works")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    cfg = SMOKE if a.smoke else FULL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks stop everything
    gen = Loadgen(os.path.abspath(a.loadgen))
    if a.jetstream and "Built with libnats" not in subprocess.run(
            [gen.binary, "--help"], capture_output=True, text=True).stdout:
        raise SystemExit("store_bench: lanesync_loadgen was built without libnats "
                         "(install libnats-dev and rebuild)")
    res = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "smoke": a.smoke, "config": cfg,
           "host": {"cores": os.cpu_count(), "loadavg": os.getloadavg()[0]}}
    work = tempfile.mkdtemp(prefix="lanesync-store-bench-")
    store = None
    try:
        log(f"raw SQLite probe in {work}")
        res["sqlite"] = sqlite_limit(work, cfg["sqlite_s"])
        store, l1 = start_store(os.path.join(work, "lanes"), os.path.abspath(a.bin))
        res["lanesync"] = bench_lanesync(cfg, gen, l1, work)
        store.close()
        store = None
        if a.jetstream:
            res["jetstream_r3"] = bench_jetstream(cfg, gen, work, 3)
            res["jetstream_r1"] = bench_jetstream(cfg, gen, work, 1)
    except BaseException:
        if store is not None:
            store.close(failed=True, artifacts=os.path.join(a.out, "failed"))
            store = None
        raise
    finally:
        if store is not None:
            store.close()
        shutil.rmtree(work, ignore_errors=True)
    print_table(res)
    return write_results("store", res, a.out, a.smoke, problems(res))


if __name__ == "__main__":
    sys.exit(main())
