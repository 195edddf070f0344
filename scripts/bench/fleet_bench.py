#!/usr/bin/env python3
"""Fleet-scale cloud ingest: 100, 250 and 500 simulated lanes uploading at once through the real
edge function (Deno) to the real PostgreSQL of the local cloud (scripts/cloud-up.sh), driven by
`build/bench/lanesync_loadgen --fleet` (the uploader's request shape: one keep-alive connection
and one request in flight per lane, CLOUD_BATCH_SIZE messages per request, seqs gap-free).

Rows:
  backlog      every lane has a backlog: sustained messages/s, request p50/p99/max, errors
  pool N       the same at the largest lane count with LANESYNC_DB_POOL_MAX=N (--pools)
  rate R/s     each lane produces R msg/s (--lane-rates): message latency to the cloud's answer;
               at pool 5 and again at the last pool of the sweep
Beside each row: CPU of Deno (all threads, and its busiest thread), of PostgreSQL (postmaster
and backends) and of the load generator, each in % of one core; the function's connections
in pg_stat_activity (active on average); what they waited on (wait_event samples, 4 per second);
lock waits (ungranted pg_locks). Below: per-statement time from pg_stat_statements (track =
all, so statements inside lanesync.apply_batch show), WAL syncs per commit (pg_stat_wal), and
the claims probe (scripts/bench/claims_probe.sql): the insert cost of a partitioned
pos_messages with a global message_ids table, and of the lane lock, on this machine.

Usage: fleet_bench.py [--loadgen build/bench/lanesync_loadgen] [--smoke] [--lanes 100,250,500]
                      [--duration S] [--pools 10,20] [--lane-rates 2,10] [--no-stats]
                      [--no-claims-probe] [--out DIR]
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lanes import REPO as ROOT, Cloud, child_env  # noqa: E402
from store_bench import write_results  # noqa: E402
from fleet_stats import (SAMPLE_S, Psql, Sampler, claims_probe, db_stats,  # noqa: E402
                         die_with_parent, enable_statement_stats, reset_stats, window_stats)

FULL = {"lanes": [100, 250, 500], "duration": 12.0, "warmup": 2.0, "stores": 5,
        "pools": [10, 20], "lane_rates": [2, 10], "batch": 50,
        "claims_probe": (200, 50, 5)}
SMOKE = {"lanes": [20], "duration": 1.5, "warmup": 0.5, "stores": 2, "pools": [],
         "lane_rates": [5], "batch": 50, "claims_probe": None}


def log(msg):
    sys.stderr.write(f"fleet_bench: {msg}\n")
    sys.stderr.flush()


# ---- one run --------------------------------------------------------------------------------
class Fleet:
    def __init__(self, args, cfg, cloud, psql):
        self.a, self.cfg, self.cloud, self.psql = args, cfg, cloud, psql
        self.key_file = os.path.join(cloud.dir, "service_key")
        self.runs = 0

    def pids(self):
        with open(os.path.join(self.cloud.dir, "run", "functions.pid")) as f:
            deno = int(f.read().strip())
        with open(os.path.join(self.cloud.dir, "pg", "data", "postmaster.pid")) as f:
            pm = int(f.readline().strip())
        return deno, pm

    def run(self, lanes, pool, lane_rate=None):
        """One lanesync_loadgen --fleet run with the samplers around it: its result line."""
        self.runs += 1
        cfg = self.cfg
        cmd = [self.a.loadgen, "--fleet", "--url", self.cloud.url, "--key-file", self.key_file,
               "--lanes", lanes, "--stores", cfg["stores"], "--cloud-batch-size", cfg["batch"],
               "--duration", cfg["duration"], "--warmup", cfg["warmup"],
               "--id-prefix", f"fleet{os.getpid()}r{self.runs}"]
        if lane_rate:
            cmd += ["--lane-rate", lane_rate]
        what = f"{lanes} lanes, pool {pool}" + (f", {lane_rate} msg/s each" if lane_rate else "")
        log(f"{what}: {cfg['duration']} s")
        before = reset_stats(self.psql, not self.a.no_stats)
        sampler = Sampler(self.psql, *self.pids())
        sampler.start()
        p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env(),
                             preexec_fn=die_with_parent)
        started, err = None, []
        for line in p.stderr:
            if "fleet clock started" in line and started is None:
                started = time.monotonic()
            err.append(line)
        out, _ = p.communicate(timeout=120)
        time.sleep(SAMPLE_S)  # one more sample after the end
        sampler.stop()
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines or started is None:
            detail = json.loads(lines[-1]).get("fatal") if lines else "".join(err)[-2000:]
            raise RuntimeError(f"lanesync_loadgen --fleet ({what}): {detail}")
        res = json.loads(lines[-1])
        res["pool"] = pool
        res["host"] = window_stats(sampler.samples, started + cfg["warmup"],
                                   started + cfg["duration"])
        res["db"] = db_stats(self.psql, before, not self.a.no_stats)
        return res

    def restart_function(self, pool):
        """The function again with LANESYNC_DB_POOL_MAX=pool (None: its default)."""
        self.cloud.down("functions")
        if pool is None:
            os.environ.pop("LANESYNC_DB_POOL_MAX", None)
        else:
            os.environ["LANESYNC_DB_POOL_MAX"] = str(pool)
        self.cloud.up()


# ---- output ---------------------------------------------------------------------------------
def ms(us):
    return f"{us / 1000.0:,.0f}" if us >= 10000 else f"{us / 1000.0:.1f}"


def errors_text(r):
    e = dict(r.get("errors", {}))
    if r.get("rejected"):
        e["rejected"] = r["rejected"]
    return " ".join(f"{k}:{v}" for k, v in sorted(e.items())) or "0"


def top_wait(h, n=2):
    return ", ".join(f"{w} {100 * s:.0f}%" for w, s in list(h.get("wait_share", {}).items())[:n])


def per_msg(pct, r):
    """CPU microseconds per message answered from a % of one core."""
    return f"{pct * 1e4 / r['msgs_per_s']:.0f}" if r.get("msgs_per_s") else "-"


def others(h, r):
    """% of one core used by every other process on the machine during the row."""
    ours = h.get("deno_cpu_pct", 0) + h.get("pg_cpu_pct", 0) + 100 * r["loadgen_cpu_share"]
    return max(0.0, h.get("machine_busy_pct", 0) - ours)


def table_rows(res):
    rows = []
    for r in res["runs"]:
        h, rate = r["host"], r.get("lane_rate") or 0
        kind = f"rate {rate:g}/s" if rate else "backlog"
        lat = r["message_latency"] if rate else r["request"]
        row = [kind, str(r["lanes"]), str(r["pool"]), f"{r['msgs_per_s']:,.0f}",
               f"{r['requests_per_s']:,.0f}", ms(r["request"]["p50_us"]),
               ms(r["request"]["p99_us"]), ms(r["request"]["max_us"]),
               (f"{ms(lat['p50_us'])}/{ms(lat['p99_us'])}" if rate else "-"),
               f"{r.get('backlog_at_end', 0):,}" if rate else "-", errors_text(r),
               f"{h.get('deno_cpu_pct', 0):.0f} ({h.get('deno_top_thread_pct', 0):.0f})",
               f"{h.get('pg_cpu_pct', 0):.0f}", f"{100 * r['loadgen_cpu_share']:.0f}",
               per_msg(h.get("deno_cpu_pct", 0), r), per_msg(h.get("pg_cpu_pct", 0), r),
               f"{others(h, r):.0f}",
               f"{h.get('active_avg', 0):.1f}/{h.get('connections_max', 0)}",
               f"{h.get('ungranted_locks_avg', 0):.1f}", top_wait(h)]
        rows.append(row)
    return rows


def print_rows(header, rows):
    w = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    cell = lambda i, c: c.ljust(w[i]) if i in (0, len(header) - 1) else c.rjust(w[i])
    print("  ".join(cell(i, c) for i, c in enumerate(header)))
    print("  ".join("-" * x for x in w))
    for r in rows:
        print("  ".join(cell(i, c) for i, c in enumerate(r)))


def print_table(res):
    c = res["config"]
    print(f"fleet of lanes uploading to the local cloud (edge function on Deno -> PostgreSQL "
          f"{res['pg']['version']}), {c['stores']} stores, CLOUD_BATCH_SIZE {c['batch']}, "
          f"{c['duration']:g} s per row ({c['warmup']:g} s warm-up not counted); "
          f"{res['host']['cores']} cores, load average {res['host']['loadavg']:.2f} at start")
    print("request latency (ms) from send to answer; msg p50/p99 (rate rows): from each "
          "message's creation to its answer; CPU in % of one core (Deno: all threads (busiest "
          "thread)); deno/pg us: CPU microseconds per message; others %: every other process "
          "on the machine (noise); pg act: active backends avg / connections max; locks: "
          "ungranted pg_locks avg")
    header = ["row", "lanes", "pool", "msg/s", "req/s", "req p50", "p99", "max", "msg p50/p99",
              "backlog", "errors", "deno %", "pg %", "gen %", "deno us", "pg us", "others %",
              "pg act", "locks", "backends waited on (share of non-idle samples)"]
    print_rows(header, table_rows(res))
    big = max(res["runs"], key=lambda r: (r["msgs_per_s"] if not r.get("lane_rate") else 0))
    db = big["db"]
    sync_ms = (f", {db['wal_sync_ms'] / max(db['wal_syncs'], 1):.2f} ms each"
               if db["wal_sync_ms"] else "")
    print()
    print(f"at {big['lanes']} lanes, pool {big['pool']}: {db['commits']:,} commits, "
          f"{db['wal_syncs']:,} WAL syncs ({db['commits'] / max(db['wal_syncs'], 1):.1f} commits "
          f"per sync{sync_ms}), "
          f"{db['wal_bytes'] / max(big['stored'], 1):,.0f} WAL bytes per stored message")
    if db.get("statements"):
        print("statements by total time (pg_stat_statements, track = all; nested ones are "
              "inside apply_batch's time):")
        print_rows(["calls", "total ms", "mean ms", "query"],
                   [[f"{s['calls']:,}", f"{s['total_ms']:,.0f}", f"{s['mean_ms']:.3f}",
                     s["query"]] for s in db["statements"]])
    print_claims(res)


def print_claims(res):
    c = res.get("claims_probe")
    if not c:
        return
    med = lambda v: sorted(v)[len(v) // 2]
    u = {k: med(v) for k, v in c["us_per_msg"].items()}
    m = {k: min(v) for k, v in c["us_per_msg"].items()}
    b = c["bytes_per_msg"]
    print()
    print(f"claims probe (one session, {c['tx']} commits of {c['batch']} messages, "
          f"{c['rounds']} rounds in rotating order), insert cost per message, median (min):")
    print(f"  today's pos_messages {u['today']:.1f} ({m['today']:.1f}) us; + a message_ids claim "
          f"{u['claimed']:.1f} ({m['claimed']:.1f}) us, {u['claimed'] / u['today']:.2f}x "
          f"({m['claimed'] / m['today']:.2f}x); partitioned by hash(store_id) 8 ways + claim "
          f"{u['parted']:.1f} ({m['parted']:.1f}) us, {u['parted'] / u['today']:.2f}x "
          f"({m['parted'] / m['today']:.2f}x)")
    lk = {k: min(v) for k, v in c.get("lock_us_per_call", {}).items()}
    if lk:
        print(f"  lane lock per call: lanesync.lock_lane {lk['lock_lane']:.1f} us, the same "
              f"lock in an inlinable SQL function {lk['inlined']:.1f} us (min of 2)")
    print(f"  bytes per message: message_ids {b['message_ids_total']:.0f} (its index "
          f"{b['message_ids_pkey']:.0f}), pos_messages with its indexes {b['today_total']:.0f}")


def problems(res):
    out = []
    for r in res["runs"]:
        name = f"{r['lanes']} lanes pool {r['pool']} rate {r.get('lane_rate') or 0}"
        if not r.get("messages"):
            out.append(f"{name}: no message counted")
        if r.get("failed_requests_all") or r.get("rejected"):
            out.append(f"{name}: errors {errors_text(r)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build", "bench", "lanesync_loadgen"))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench works")
    ap.add_argument("--lanes", help="comma-separated lane counts (100,250,500)")
    ap.add_argument("--duration", type=float, help="seconds per row (12)")
    ap.add_argument("--pools", help="LANESYNC_DB_POOL_MAX values tried at the largest lane "
                    "count after the default (10,20); 'none' for no sweep")
    ap.add_argument("--lane-rates", help="msg/s per lane of the rate rows at the largest lane "
                    "count (2,10); 'none' for none")
    ap.add_argument("--no-stats", action="store_true",
                    help="no pg_stat_statements (saves a PostgreSQL restart)")
    ap.add_argument("--no-claims-probe", action="store_true",
                    help="skip the insert-cost probe of a partitioned pos_messages")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    cfg = dict(SMOKE if a.smoke else FULL)
    nums = lambda s, f: [] if s == "none" else [f(x) for x in s.split(",")]
    if a.lanes:
        cfg["lanes"] = nums(a.lanes, int)
    if a.duration:
        cfg["duration"] = a.duration
    if a.pools:
        cfg["pools"] = nums(a.pools, int)
    if a.lane_rates:
        cfg["lane_rates"] = nums(a.lane_rates, float)
    a.no_stats = a.no_stats or a.smoke
    a.loadgen = os.path.abspath(a.loadgen)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks stop everything
    os.environ.pop("LANESYNC_DB_POOL_MAX", None)
    res = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "smoke": a.smoke, "config": cfg, "runs": [],
           "host": {"cores": os.cpu_count(), "loadavg": os.getloadavg()[0]}}
    work = tempfile.mkdtemp(prefix="lanesync-fleet-bench-")
    os.chmod(work, 0o755)  # PostgreSQL runs as the postgres user inside it
    cloud, psql = Cloud(os.path.join(work, "cloud")), None
    try:
        log(f"starting the local cloud in {work}")
        cloud.up()
        if not a.no_stats:
            enable_statement_stats(cloud)
        psql = Psql(cloud.db_url)
        res["pg"] = dict(zip(["version", "max_connections", "synchronous_commit", "shared_buffers"],
                             psql.rows("select current_setting('server_version'), "
                                       "current_setting('max_connections'), "
                                       "current_setting('synchronous_commit'), "
                                       "current_setting('shared_buffers')")[0]))
        fleet = Fleet(a, cfg, cloud, psql)
        for n in cfg["lanes"]:
            res["runs"].append(fleet.run(n, 5))
        top = max(cfg["lanes"])
        for rate in cfg["lane_rates"]:
            res["runs"].append(fleet.run(top, 5, rate))
        for pool in cfg["pools"]:
            fleet.restart_function(pool)
            res["runs"].append(fleet.run(top, pool))
        for rate in cfg["lane_rates"] if cfg["pools"] else []:
            res["runs"].append(fleet.run(top, cfg["pools"][-1], rate))
        if cfg["claims_probe"] and not a.no_claims_probe:
            log("claims probe: today's pos_messages against partitioned + message_ids")
            res["claims_probe"] = claims_probe(psql, *cfg["claims_probe"])
    finally:
        if psql:
            psql.close()
        os.environ.pop("LANESYNC_DB_POOL_MAX", None)
        cloud.purge(check=False)
        shutil.rmtree(work, ignore_errors=True)
    print_table(res)
    return write_results("fleet", res, a.out, a.smoke, problems(res))


if __name__ == "__main__":
    sys.exit(main())
