#!/usr/bin/env python3
"""Fleet-scale cloud ingest: 100, 250 and 500 simulated lanes uploading at once through the real
edge function (Deno) to the real PostgreSQL of the local cloud (scripts/cloud-up.sh), driven by
`build/bench/lanesync_loadgen --fleet` (the uploader's request shape: one keep-alive connection
and one request in flight per lane, CLOUD_BATCH_SIZE messages per request, seqs gap-free).

Rows:
  backlog      every lane has a backlog: sustained messages/s, request p50/p99/max, errors
  pool N       the same at the largest lane count with LANESYNC_DB_POOL_MAX=N (--pools)
  rate R/s     each lane produces R msg/s (--lane-rates): message latency to the cloud's answer
Beside each row: CPU of Deno (all threads, and its busiest thread), of PostgreSQL (postmaster
and backends) and of the load generator, each in % of one core; the function's connections
in pg_stat_activity (active on average); what they waited on (wait_event samples, 4 per second);
lock waits (ungranted pg_locks). Below: per-statement time from pg_stat_statements (track =
all, so statements inside lanesync.apply_batch show) and WAL syncs per commit (pg_stat_wal).

Usage: fleet_bench.py [--loadgen build/bench/lanesync_loadgen] [--smoke] [--lanes 100,250,500]
                      [--duration S] [--pools 10,20] [--lane-rates 2,10] [--no-stats] [--out DIR]
"""
import argparse
import ctypes
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lanes import REPO as ROOT, Cloud, child_env  # noqa: E402

FULL = {"lanes": [100, 250, 500], "duration": 12.0, "warmup": 2.0, "stores": 5,
        "pools": [10, 20], "lane_rates": [2, 10], "batch": 50,
        "claims_probe": (200, 50, 5)}
SMOKE = {"lanes": [20], "duration": 1.5, "warmup": 0.5, "stores": 2, "pools": [],
         "lane_rates": [5], "batch": 50, "claims_probe": None}
TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.25


def log(msg):
    sys.stderr.write(f"fleet_bench: {msg}\n")
    sys.stderr.flush()


def die_with_parent():
    """preexec_fn: SIGKILL when this process dies (PR_SET_PDEATHSIG = 1)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


# ---- CPU from /proc -------------------------------------------------------------------------
def stat_fields(path):
    """(comm, fields after the comm) of a /proc/.../stat file, or None when it is gone."""
    try:
        with open(path) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.index("(") + 1:s.rindex(")")], s[s.rindex(")") + 2:].split()


def ticks(fields, children=False):
    """utime + stime (+ cutime + cstime): fields[11..14] after the comm."""
    t = int(fields[11]) + int(fields[12])
    return t + int(fields[13]) + int(fields[14]) if children else t


def deno_cpu(pid):
    """Deno's ticks in all, and by thread id (name, ticks)."""
    threads = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, {}
    for tid in tids:
        st = stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if st:
            threads[tid] = (st[0], ticks(st[1]))
    return sum(t for _, t in threads.values()), threads


def pg_cpu(postmaster):
    """PostgreSQL's ticks: the postmaster with its reaped children, plus every live child."""
    st = stat_fields(f"/proc/{postmaster}/stat")
    if not st:
        return 0
    total = ticks(st[1], children=True)
    for name in os.listdir("/proc"):
        if name.isdigit():
            c = stat_fields(f"/proc/{name}/stat")
            if c and c[1][1] == str(postmaster):
                total += ticks(c[1])
    return total


def machine_busy():
    """Busy and total ticks of the whole machine (/proc/stat), to show others' load."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


# ---- PostgreSQL -----------------------------------------------------------------------------
class Psql:
    """One long-lived psql session: cheap enough to sample 4 times a second."""

    def __init__(self, db_url):
        self.p = subprocess.Popen(["psql", db_url, "-X", "-q", "-A", "-t", "-F", "|"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1, env=child_env(PGCONNECT_TIMEOUT="5"),
                                  preexec_fn=die_with_parent)
        self.lock = threading.Lock()

    def rows(self, sql):
        with self.lock:
            self.p.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __END__\n")
            self.p.stdin.flush()
            out = []
            for line in self.p.stdout:
                line = line.rstrip("\n")
                if line == "__END__":
                    return [l.split("|") for l in out if l]
                out.append(line)
        raise RuntimeError("psql ended")

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()


ACTIVITY = """
select state, coalesce(wait_event_type || ':' || wait_event, 'running'), count(*),
       (select count(*) from pg_locks where not granted)
from pg_stat_activity
where datname = current_database() and backend_type = 'client backend'
  and pid <> pg_backend_pid()
group by 1, 2"""


class Sampler(threading.Thread):
    """Every SAMPLE_S: CPU ticks of Deno (and threads), PostgreSQL, the machine; activity."""

    def __init__(self, psql, deno_pid, postmaster):
        super().__init__(daemon=True)
        self.psql, self.deno, self.pm = psql, deno_pid, postmaster
        self.samples, self.stop_ev = [], threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            t = time.monotonic()
            d_total, d_threads = deno_cpu(self.deno)
            s = {"t": t, "deno": d_total, "threads": d_threads, "pg": pg_cpu(self.pm),
                 "machine": machine_busy(), "activity": self.psql.rows(ACTIVITY)}
            self.samples.append(s)
            self.stop_ev.wait(max(0.0, SAMPLE_S - (time.monotonic() - t)))

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=10)


def window_stats(samples, start, end):
    """CPU (% of one core) and activity over the samples between start and end."""
    inside = [s for s in samples if start <= s["t"] <= end]
    if len(inside) < 2:
        return {}
    a, b = inside[0], inside[-1]
    secs = b["t"] - a["t"]
    pct = lambda x: 100.0 * x / TICK / secs
    top = max(((b["threads"][tid][1] - a["threads"].get(tid, ("", 0))[1], name)
               for tid, (name, _) in b["threads"].items()), default=(0, "-"))
    busy = b["machine"][0] - a["machine"][0]
    total = b["machine"][1] - a["machine"][1]
    waits, states, ungranted = {}, {"active": 0, "idle in transaction": 0, "idle": 0}, []
    conns = []
    for s in inside:
        n = 0
        for state, wait, count, locks in s["activity"]:
            count = int(count)
            n += count
            states[state] = states.get(state, 0) + count
            if state != "idle":
                waits[wait] = waits.get(wait, 0) + count
        conns.append(n)
        ungranted.append(int(s["activity"][0][3]) if s["activity"] else 0)
    k = len(inside)
    busy_waits = sum(waits.values()) or 1
    return {
        "seconds": secs, "samples": k,
        "deno_cpu_pct": pct(b["deno"] - a["deno"]),
        "deno_top_thread_pct": pct(top[0]), "deno_top_thread": top[1],
        "pg_cpu_pct": pct(b["pg"] - a["pg"]),
        "machine_busy_pct": 100.0 * busy / total * os.cpu_count() if total else 0,
        "connections_avg": sum(conns) / k, "connections_max": max(conns),
        "active_avg": states["active"] / k,
        "idle_in_tx_avg": states["idle in transaction"] / k,
        "wait_share": {w: c / busy_waits for w, c in sorted(waits.items(), key=lambda x: -x[1])},
        "ungranted_locks_avg": sum(ungranted) / k, "ungranted_locks_max": max(ungranted),
    }


def enable_statement_stats(cloud):
    """pg_stat_statements (track = all) and WAL timing: needs a restart of PostgreSQL."""
    cloud.psql("alter system set shared_preload_libraries = 'pg_stat_statements'")
    cloud.psql("alter system set track_wal_io_timing = on")
    cloud.down("db")
    cloud.up()
    cloud.psql("create extension if not exists pg_stat_statements")
    # Known only once the library is loaded.
    cloud.psql("alter system set pg_stat_statements.track = 'all'")
    cloud.psql("select pg_reload_conf()")


def reset_stats(psql, statements):
    psql.rows("select pg_stat_reset_shared('wal')")
    if statements:
        psql.rows("select pg_stat_statements_reset()")
    return {"commits": int(psql.rows("select xact_commit from pg_stat_database "
                                     "where datname = current_database()")[0][0])}


def db_stats(psql, before, statements):
    """Commits, WAL syncs, and the statements that took the most time since reset_stats."""
    commits = int(psql.rows("select xact_commit from pg_stat_database "
                            "where datname = current_database()")[0][0]) - before["commits"]
    wal = psql.rows("select wal_records, wal_bytes, wal_write, wal_sync, wal_sync_time "
                    "from pg_stat_wal")[0]
    out = {"commits": commits, "wal_records": int(wal[0]), "wal_bytes": int(wal[1]),
           "wal_writes": int(wal[2]), "wal_syncs": int(wal[3]),
           "wal_sync_ms": float(wal[4])}
    if statements:
        rows = psql.rows("""
            select calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 4),
                   rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
            from pg_stat_statements where dbid = (select oid from pg_database
                                                  where datname = current_database())
            order by total_exec_time desc limit 8""")
        out["statements"] = [{"calls": int(r[0]), "total_ms": float(r[1]),
                              "mean_ms": float(r[2]), "rows": int(r[3]), "query": r[4]}
                             for r in rows]
    return out


def claims_probe(psql, tx, batch, rounds):
    """Per-message insert cost of today's pos_messages against a partitioned one with a
    message_ids table (scripts/bench/claims_probe.sql), alternating, one session."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "claims_probe.sql")) as f:
        psql.rows(f.read())
    kinds = ("today", "claimed", "parted")
    out = {"tx": tx, "batch": batch, "rounds": rounds, "us_per_msg": {k: [] for k in kinds}}
    try:
        seq = 0
        for i in range(rounds):
            for kind in kinds[i % 3:] + kinds[:i % 3]:
                t = time.monotonic()
                psql.rows(f"call lanesync_bench.fill('{kind}', {tx}, {batch}, {seq})")
                out["us_per_msg"][kind].append(1e6 * (time.monotonic() - t) / (tx * batch))
                seq += tx * batch
        sizes = psql.rows("""
            select pg_total_relation_size('lanesync_bench.today'),
                   pg_total_relation_size('lanesync_bench.message_ids'),
                   pg_relation_size('lanesync_bench.message_ids_pkey'),
                   (select count(*) from lanesync_bench.today)""")[0]
        n = int(sizes[3])
        out["bytes_per_msg"] = {"today_total": int(sizes[0]) / n,
                                "message_ids_total": int(sizes[1]) / n,
                                "message_ids_pkey": int(sizes[2]) / n}
    finally:
        psql.rows("drop schema if exists lanesync_bench cascade")
    return out


# ---- one run --------------------------------------------------------------------------------
class Fleet:
    def __init__(self, args, cfg, cloud, psql, work):
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
               f"{max(0, h.get('machine_busy_pct', 0) - h.get('deno_cpu_pct', 0) - h.get('pg_cpu_pct', 0) - 100 * r['loadgen_cpu_share']):.0f}",
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
    b = c["bytes_per_msg"]
    print()
    print(f"claims probe (one session, {c['tx']} commits of {c['batch']} messages, median of "
          f"{c['rounds']} rounds in rotating order), insert cost per message:")
    print(f"  today's pos_messages {u['today']:.1f} us; + a message_ids claim {u['claimed']:.1f} "
          f"us ({u['claimed'] / u['today']:.2f}x); partitioned by hash(store_id) 8 ways + claim "
          f"{u['parted']:.1f} us ({u['parted'] / u['today']:.2f}x)")
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
        fleet = Fleet(a, cfg, cloud, psql, work)
        for n in cfg["lanes"]:
            res["runs"].append(fleet.run(n, 5))
        top = max(cfg["lanes"])
        for rate in cfg["lane_rates"]:
            res["runs"].append(fleet.run(top, 5, rate))
        for pool in cfg["pools"]:
            fleet.restart_function(pool)
            res["runs"].append(fleet.run(top, pool))
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
    os.makedirs(a.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(a.out, f"fleet-{'smoke-' if a.smoke else ''}{stamp}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    shown = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
    print(f"\nresults: {shown}")
    bad = problems(res)
    for p in bad:
        print(f"fleet_bench: FAILED {p}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
