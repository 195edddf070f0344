#!/usr/bin/env python3
"""Scale figures of real agents on loopback: a large backlog to the local cloud, an agent with a
large outbox, and a new peer catching up on it (docs/benchmarks.md, table 4).

Rows:
  drain     a three-lane store (full mesh, every lane pointed at the local cloud: real
            PostgreSQL + Deno through scripts/cloud-up.sh) with L1's uploader paused; a backlog
            of --drain-messages (100,000) is published to L1 in batches and waited for until
            all are peer_ack; then L1's uploader is resumed and timed until every message is
            cloud_ack (default CLOUD_BATCH_SIZE; L2 and L3 idle)
  startup   an outbox of --outbox-messages (1,000,000) own messages written by
            build/bench/outbox_fill; the agent on it is started --starts times: time from exec
            until GET /healthz answers 200, and VmRSS / VmHWM after the start and after a
            GET /v1/status
  catchup   a new lane with an empty outbox joins that lane: time from its exec until it holds
            every message, and until the old lane has them all peer_ack

Prints one table; writes the results as JSON into --out (bench/results/).

Usage: scale_bench.py [--bin build/lanesync] [--loadgen build/bench/lanesync_loadgen]
                      [--fill build/bench/outbox_fill] [--rows drain,startup,catchup]
                      [--drain-messages N] [--outbox-messages N] [--smoke] [--out DIR]
"""
import argparse
import datetime
from http import client as http_client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from lanes import REPO as ROOT, Cloud, Store, child_env, http, wait_for  # noqa: E402
from store_bench import Loadgen, die_with_parent, print_rows, write_results  # noqa: E402

FULL = {"drain_messages": 100_000, "outbox_messages": 1_000_000, "starts": 3,
        "backlog_batch": 500, "backlog_inflight": 8}
SMOKE = {"drain_messages": 1_000, "outbox_messages": 5_000, "starts": 1,
         "backlog_batch": 100, "backlog_inflight": 4}
ROWS = ("drain", "startup", "catchup")


def log(msg):
    sys.stderr.write(f"scale_bench: {msg}\n")
    sys.stderr.flush()


def proc_mem(pid):
    """VmRSS and VmHWM of a process in MB (from /proc/PID/status)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def proc_written_mb(pid):
    """Bytes the process asked the kernel to write so far (wchar of /proc/PID/io), in MB."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "wchar":
                return int(value) / 1e6
    return 0.0


def post(lane, path):
    r = http("POST", lane.api + path, timeout=10)
    if r.status not in (200, 202):
        raise RuntimeError(f"POST {path} on {lane.id} answered {r.status}: {r.body!r}")


# ---- drain ----------------------------------------------------------------------------------
def bench_drain(cfg, gen, work, binary):
    """Backlog of peer_ack messages on L1, then the time from resuming its uploader until every
    one is cloud_ack, checked against the cloud's own count of L1's rows."""
    os.chmod(work, 0o755)  # the local cloud runs PostgreSQL as the postgres user inside it
    n = cfg["drain_messages"]
    cloud = Cloud(os.path.join(work, "cloud"))
    store = None
    try:
        log("local cloud up (scripts/cloud-up.sh)")
        cloud.up()
        env = {"LOG_LEVEL": "warn", "SUPABASE_URL": cloud.url, "SUPABASE_SERVICE_KEY": cloud.key}
        if "SUPABASE_CA_FILE" in cloud.lines:
            env["SUPABASE_CA_FILE"] = cloud.lines["SUPABASE_CA_FILE"]
        if cfg.get("cloud_batch"):
            env["CLOUD_BATCH_SIZE"] = cfg["cloud_batch"]
        store = Store("scale-drain", folder=os.path.join(work, "drain"), store_id="bench",
                      secret="bench-secret-0123456789", binary=binary, env=env)
        lanes = [store.lane(f"L{i}") for i in (1, 2, 3)]
        for lane in lanes:
            lane.peer_with(*[o for o in lanes if o is not lane])
        for lane in lanes:
            lane.start(timeout=30)
        l1 = lanes[0]
        post(l1, "/v1/cloud/pause")
        wait_for(lambda: all(all(p["connected"] for p in l.status()["peers"]) for l in lanes),
                 30, "full mesh connected")
        log(f"backlog: {n:,} messages to L1 in batches of {cfg['backlog_batch']}")
        built = gen.run("--url", l1.api, "--inflight", cfg["backlog_inflight"], "--messages", n,
                        "--batch", cfg["backlog_batch"], "--label", "drain backlog")
        if built.get("failed") or built.get("count") != n:
            raise RuntimeError(f"backlog not built: {built}")
        # The load generator's first request probes the batch shape: its messages are stored
        # (not counted in `built`) and drained with the rest.
        wait_for(lambda: l1.counts()["pending"] == 0, 600, "backlog all peer_ack")
        counts = l1.counts()
        n = counts["peer_ack"]
        if counts["cloud_ack"] or counts["failed"] or n < built["count"]:
            raise RuntimeError(f"backlog not all peer_ack: {counts}")
        log("resuming L1's uploader")
        t0 = time.monotonic()
        post(l1, "/v1/cloud/resume")
        wait_for(lambda: l1.counts()["cloud_ack"] == n, 900, "backlog cloud_ack", interval=0.05)
        drain_s = time.monotonic() - t0
        st = l1.status()
        in_cloud = cloud.origin_rows("bench", "L1")
        return {"messages": n, "drain_s": drain_s, "rate": n / drain_s,
                "cloud_rows": in_cloud, "batch_size": cfg.get("cloud_batch"),
                "cloud": st["cloud"], "backlog": built,
                "failed": st["outbox"]["failed"]}
    except BaseException:
        if store is not None:
            store.close(failed=True, artifacts=os.path.join(ROOT, "bench", "results", "failed"))
            store = None
        raise
    finally:
        if store is not None:
            store.close()
        cloud.purge(check=False)


# ---- a large outbox: start-up, RSS, catch-up ------------------------------------------------
def fill_outbox(fill_bin, lane, n):
    log(f"writing {n:,} own messages into {lane.id}'s outbox (outbox_fill)")
    p = subprocess.run([fill_bin, "--path", lane.env["OUTBOX_PATH"], "--terminal", lane.id,
                        "--store", lane.store_id, "--messages", str(n),
                        # the local API's batch limit (requests as large as the API's)
                        "--batch", "500"], capture_output=True,
                       text=True, timeout=1200, env=child_env(), preexec_fn=die_with_parent)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    res = json.loads(lines[-1]) if lines else {"fatal": p.stderr.strip()}
    if p.returncode != 0 or "fatal" in res or res.get("failed_requests"):
        raise RuntimeError(f"outbox_fill failed: {res}")
    return res


def healthz_200(port):
    """True once GET /healthz answers 200; False while the port refuses or answers otherwise."""
    c = http_client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("GET", "/healthz")
        return c.getresponse().status == 200
    except OSError:
        return False
    finally:
        c.close()


def timed_start(lane, timeout=60):
    """Starts the lane; seconds from exec until /healthz answered 200 (polled every ~1 ms)."""
    t0 = time.monotonic()
    lane.start(wait=False)
    while not healthz_200(lane.api_port):
        if lane.proc.poll() is not None:
            raise RuntimeError(f"lane {lane.id} exited with {lane.proc.returncode}:\n"
                               f"{lane.log_tail()}")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"lane {lane.id} not healthy after {timeout} s")
        time.sleep(0.001)
    return time.monotonic() - t0


def bench_startup(cfg, lane):
    """--starts starts of the lane on its full outbox; the last one is left running."""
    starts = []
    for k in range(cfg["starts"]):
        if k:
            lane.stop()
        secs = timed_start(lane)
        after_start = proc_mem(lane.proc.pid)
        lane.status()
        after_status = proc_mem(lane.proc.pid)
        starts.append({"startup_s": secs, "after_start": after_start,
                       "after_status": after_status})
        log(f"start {k + 1}: {secs * 1000:.0f} ms to /healthz 200, "
            f"VmRSS {after_start['VmRSS']:.1f} MB")
    return starts


def replicas_of(lane, origin):
    return lane.status()["replicas"].get(origin, 0)


def start_perf(out, pids):
    """perf record -g of these processes until stop_perf (None when perf is missing)."""
    if not shutil.which("perf"):
        raise SystemExit("scale_bench: --perf needs perf (Debian linux-perf)")
    return subprocess.Popen(["perf", "record", "-g", "-o", out, "-p", ",".join(map(str, pids))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)


def stop_perf(p):
    if p is not None:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=120)


def bench_catchup(old, new, n, perf_out=None):
    """The new, empty lane starts; time until it holds all n of the old lane's messages."""
    log(f"catch-up: new lane {new.id} joins {old.id} ({n:,} messages)")
    t0 = time.monotonic()
    new.start(wait=False)
    perf = None
    if perf_out:  # once the new lane's threads exist (perf -p follows no thread made later)
        wait_for(lambda: healthz_200(new.api_port), 30, f"{new.id} healthy", interval=0.001)
        perf = start_perf(perf_out, [old.proc.pid, new.proc.pid])
    try:
        wait_for(lambda: new.proc.poll() is None and replicas_of(new, old.id) >= n, 1200,
                 f"{new.id} holds {n} messages of {old.id}", interval=0.05)
        held_s = time.monotonic() - t0
        wait_for(lambda: old.counts()["pending"] == 0, 600, f"{old.id} all peer_ack",
                 interval=0.05)
        acked_s = time.monotonic() - t0
    finally:
        stop_perf(perf)
    return {"messages": n, "held_s": held_s, "rate": n / held_s, "all_peer_ack_s": acked_s,
            "old_mem": proc_mem(old.proc.pid), "new_mem": proc_mem(new.proc.pid),
            "new_written_mb": proc_written_mb(new.proc.pid)}


def outbox_copy(fill_bin, lane, n, keep):
    """outbox_fill, or with `keep` (a folder) a copy of the file a run before left there."""
    if not keep:
        return fill_outbox(fill_bin, lane, n)
    saved = os.path.join(keep, f"{lane.store_id}-{lane.id}-{n}.db")
    if not os.path.exists(saved):
        res = fill_outbox(fill_bin, lane, n)
        os.makedirs(keep, exist_ok=True)
        db = sqlite3.connect(lane.env["OUTBOX_PATH"])
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        shutil.copyfile(lane.env["OUTBOX_PATH"], saved + ".tmp")
        with open(saved + ".json", "w") as f:
            json.dump(res, f)
        os.rename(saved + ".tmp", saved)
        return res
    log(f"copying {saved} (--keep-outbox)")
    shutil.copyfile(saved, lane.env["OUTBOX_PATH"])
    with open(saved + ".json") as f:
        return dict(json.load(f), copied_from=saved)


def bench_big_outbox(cfg, rows, work, binary, fill_bin):
    n = cfg["outbox_messages"]
    store = Store("scale-outbox", folder=os.path.join(work, "outbox"), store_id="bench",
                  secret="bench-secret-0123456789", binary=binary, env={"LOG_LEVEL": "warn"})
    old, new = store.lane("L1"), store.lane("L2")
    old.peer_with(new)
    new.peer_with(old)
    out = {}
    try:
        out["fill"] = outbox_copy(fill_bin, old, n, cfg.get("keep_outbox"))
        if "startup" in rows:
            out["startup"] = bench_startup(cfg, old)
        else:
            old.start(timeout=60)
        if "catchup" in rows:
            out["catchup"] = bench_catchup(old, new, n, cfg.get("perf"))
    except BaseException:
        store.close(failed=True, artifacts=os.path.join(ROOT, "bench", "results", "failed"))
        raise
    store.close()
    return out


# ---- output ---------------------------------------------------------------------------------
def mb(m):
    return f"{m['VmRSS']:.1f} / {m['VmHWM']:.1f}"


def table_rows(res):
    rows = []
    d = res.get("drain")
    if d:
        rows.append(["drain to the cloud (peer_ack -> cloud_ack)",
                     f"{d['messages']:,} msgs, CLOUD_BATCH_SIZE {d['batch_size'] or 'default'}",
                     f"{d['drain_s']:.2f} s", f"{d['rate']:,.0f} msg/s",
                     f"{d['cloud']['requests_ok']:,} requests, cloud rows {d['cloud_rows']:,}"])
        b = d["backlog"]
        rows.append(["  (building it: batch publish, 201)",
                     f"{b['count']:,} msgs, batch {res['config']['backlog_batch']}",
                     f"{b['duration_s']:.2f} s", f"{b['achieved_rate']:,.0f} msg/s", ""])
    big = res.get("outbox", {})
    f = big.get("fill")
    if f:
        note = f"{f['file_bytes'] / 1e6:,.0f} MB file"
        if f.get("copied_from"):
            note += f"; copied from {f['copied_from']}, time of the run that filled it"
        rows.append(["  (outbox_fill: publish_batch, no HTTP)", f"{f['messages']:,} msgs",
                     f"{f['seconds']:.2f} s", f"{f['rate']:,.0f} msg/s", note])
    for k, s in enumerate(big.get("startup", [])):
        rows.append([f"start-up, exec -> /healthz 200 (#{k + 1})", f"{f['messages']:,} own msgs",
                     f"{s['startup_s'] * 1000:.0f} ms", "-",
                     f"RSS/HWM MB: {mb(s['after_start'])} started, "
                     f"{mb(s['after_status'])} after status"])
    c = big.get("catchup")
    if c:
        rows.append(["catch-up of a new empty peer", f"{c['messages']:,} msgs",
                     f"{c['held_s']:.2f} s", f"{c['rate']:,.0f} msg/s",
                     f"all peer_ack on the old lane at {c['all_peer_ack_s']:.2f} s; RSS/HWM MB "
                     f"old {mb(c['old_mem'])}, new {mb(c['new_mem'])}; the new lane wrote "
                     f"{c['new_written_mb']:,.0f} MB"])
    return rows


def print_table(res):
    print(f"scale on loopback; {res['host']['cores']} cores, load average "
          f"{res['host']['loadavg']:.2f} at start")
    header = ["row", "size", "time", "rate", "notes"]
    print_rows(header, table_rows(res))


def problems(res):
    out = []
    d = res.get("drain")
    if d and (d["cloud_rows"] != d["messages"] or d["failed"]):
        out.append(f"drain: cloud holds {d['cloud_rows']} of {d['messages']}, "
                   f"{d['failed']} failed")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "lanesync"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build", "bench", "lanesync_loadgen"))
    ap.add_argument("--fill", default=os.path.join(ROOT, "build", "bench", "outbox_fill"))
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="comma-separated subset of drain,startup,catchup")
    ap.add_argument("--drain-messages", type=int)
    ap.add_argument("--outbox-messages", type=int)
    ap.add_argument("--cloud-batch", type=int,
                    help="CLOUD_BATCH_SIZE of the drain's lanes (default: the agent's default)")
    ap.add_argument("--keep-outbox", metavar="DIR",
                    help="keep the filled outbox in DIR and copy it from there next time")
    ap.add_argument("--perf", metavar="FILE",
                    help="perf record -g both agents during the catch-up into FILE")
    ap.add_argument("--smoke", action="store_true", help="small sizes: checks the bench works")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    rows = [r for r in a.rows.split(",") if r]
    if not rows or any(r not in ROWS for r in rows):
        ap.error(f"--rows: choose from {','.join(ROWS)}")
    cfg = dict(SMOKE if a.smoke else FULL)
    if a.drain_messages:
        cfg["drain_messages"] = a.drain_messages
    if a.outbox_messages:
        cfg["outbox_messages"] = a.outbox_messages
    if a.cloud_batch:
        cfg["cloud_batch"] = a.cloud_batch
    if a.keep_outbox:
        cfg["keep_outbox"] = os.path.abspath(a.keep_outbox)
    if a.perf:
        cfg["perf"] = os.path.abspath(a.perf)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks stop everything
    binary = os.path.abspath(a.bin)
    gen = Loadgen(os.path.abspath(a.loadgen))
    res = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "smoke": a.smoke, "config": cfg, "rows": rows,
           "host": {"cores": os.cpu_count(), "loadavg": os.getloadavg()[0]}}
    work = tempfile.mkdtemp(prefix="lanesync-scale-bench-")
    try:
        if "drain" in rows:
            res["drain"] = bench_drain(cfg, gen, work, binary)
        if "startup" in rows or "catchup" in rows:
            res["outbox"] = bench_big_outbox(cfg, rows, work, binary, os.path.abspath(a.fill))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(res)
    return write_results("scale", res, a.out, a.smoke, problems(res))


if __name__ == "__main__":
    sys.exit(main())
