"""The measuring side of scripts/bench/fleet_bench.py: CPU of processes from /proc, a long-lived
psql session, a sampler of CPU and pg_stat_activity, statement and WAL statistics, and the
claims probe (scripts/bench/claims_probe.sql)."""
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lanes import child_env  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.25


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
        env = child_env(PGCONNECT_TIMEOUT="5", PGOPTIONS="-c client_min_messages=warning")
        self.p = subprocess.Popen(["psql", db_url, "-X", "-q", "-A", "-t", "-F", "|"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1, env=env, preexec_fn=die_with_parent)
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
        out["lock_us_per_call"] = {}
        for kind in ("lock_lane", "inlined", "lock_lane", "inlined"):
            t = time.monotonic()
            psql.rows(f"call lanesync_bench.locks('{kind}', 20000)")
            out["lock_us_per_call"].setdefault(kind, []).append(
                1e6 * (time.monotonic() - t) / 20000)
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
