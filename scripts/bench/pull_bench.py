#!/usr/bin/env python3
"""Downstream on the cloud's side (issue 13): head office publishing into the change log and
lanes pulling it through the real edge function sync-pull (Deno) from the real PostgreSQL of a
local cloud (scripts/cloud-up.sh, its own folder and free ports). No lane agents: the puller is
this script, speaking the wire format (docs/cloud.md, "sync-pull"), one request at a time.

Rows:
  publish      N products inserted in one statement (the triggers publish 2N changes)
  snapshot     a new lane's first sync of the products scope: N rows, limit 1000 per page
  catch-up     every price changed in one statement, then pulled after the lane's cursor
  serialized   W writers committing one publish_change per transaction for D s: commits/s
               and commit latency p50/p99 (the log lock serializes them)
  held back    the same while one writer, a quarter into the run, keeps one transaction open
               H s after publishing: the longest wait of the others (the cost of the scheme:
               about H)

Usage: pull_bench.py [--smoke] [--rows N] [--writers W] [--duration D] [--hold H]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lanes import Cloud, child_env  # noqa: E402

FULL = {"rows": 100000, "writers": 8, "duration": 5.0, "hold": 2.0}
SMOKE = {"rows": 2000, "writers": 3, "duration": 1.0, "hold": 0.5}


def log(msg):
    sys.stderr.write(f"pull_bench: {msg}\n")
    sys.stderr.flush()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else 0.0


class Puller:
    """One lane's cursor of one scope, pulled over HTTP."""

    def __init__(self, cloud, scope, limit=1000):
        self.url = cloud.url + "/functions/v1/sync-pull"
        self.key = cloud.key
        self.scope = scope
        self.limit = limit
        self.through, self.resume = 0, ""
        self.page_ms = []
        self.rows = 0

    def page(self):
        body = json.dumps({"store_id": "bench", "terminal_id": "L1", "limit": self.limit,
                           "cursors": {self.scope: {"through": self.through,
                                                    "resume": self.resume}}}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "content-type": "application/json", "apikey": self.key})
        t = time.monotonic()
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.load(r)
        self.page_ms.append(1000 * (time.monotonic() - t))
        p = next(s for s in answer["scopes"] if s["scope"] == self.scope)
        self.rows += len(p["changes"])
        if p["more"] and (p["reset"] or p["continues_snapshot"]):
            self.resume = p["resume"]
        else:
            self.resume = ""
            self.through = p["through"]
        return p["more"]

    def until_done(self):
        t = time.monotonic()
        while self.page():
            pass
        return time.monotonic() - t


class Writer:
    """A long-lived psql session committing one publish_change per transaction."""

    def __init__(self, cloud, scope, name):
        self.p = subprocess.Popen(["psql", cloud.db_url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1, env=child_env())
        self.scope, self.name = scope, name
        self.latencies = []

    def run(self, until, hold=0.0):
        """Commits until `until`; with `hold`, one transaction that sleeps `hold` s holding the
        log lock after publishing."""
        i = 0
        while time.monotonic() < until and not (hold and i):
            i += 1
            sleep = f"select pg_sleep({hold});" if hold else ""
            t = time.monotonic()
            self.p.stdin.write(f"begin; select lanesync.publish_change(null, '{self.scope}', "
                               f"'{self.name}-{i % 50}', '{{\"i\": {i}}}'); {sleep} commit; "
                               "select 'committed';\n")
            self.p.stdin.flush()
            while self.p.stdout.readline().strip() != "committed":
                pass  # the version, pg_sleep's empty line
            self.latencies.append(time.monotonic() - t)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def serialized(cloud, cfg, hold):
    scope = "bench-serial"
    writers = [Writer(cloud, scope, f"w{i}") for i in range(cfg["writers"])]
    until = time.monotonic() + cfg["duration"]
    threads = [threading.Thread(target=w.run, args=(until,)) for w in writers]
    holder = None
    t = time.monotonic()
    for th in threads:
        th.start()
    if hold:
        time.sleep(cfg["duration"] / 4)  # the writers are under way: the schedule of the hold
        holder = Writer(cloud, scope, "holder")
        threads.append(threading.Thread(target=holder.run, args=(until, hold)))
        threads[-1].start()
    for th in threads:
        th.join()
    took = time.monotonic() - t
    for w in writers + ([holder] if holder else []):
        w.close()
    lat = [x for w in writers for x in w.latencies]
    return {"commits": len(lat), "per_s": len(lat) / took, "p50_ms": 1000 * pct(lat, 50),
            "p99_ms": 1000 * pct(lat, 99), "max_ms": 1000 * max(lat, default=0),
            "held": len(holder.latencies) if holder else 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench works")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--writers", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--hold", type=float)
    a = ap.parse_args()
    cfg = dict(SMOKE if a.smoke else FULL)
    for k in cfg:
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    cloud = Cloud()
    try:
        log("starting a local cloud")
        cloud.up()
        n = cfg["rows"]
        t = time.monotonic()
        cloud.load_products(n, prefix="bench-")
        publish_s = time.monotonic() - t
        snap = Puller(cloud, "products")
        snap_s = snap.until_done()
        assert snap.rows >= n, f"snapshot gave {snap.rows} rows, expected {n}"
        t = time.monotonic()
        cloud.psql_script("update lanesync.products set price_cents = price_cents + 1;", timeout=900)
        update_s = time.monotonic() - t
        catch = Puller(cloud, "products")
        catch.through = snap.through
        catch_s = catch.until_done()
        assert catch.rows >= n, f"catch-up gave {catch.rows} rows, expected {n}"
        serial = serialized(cloud, cfg, 0.0)
        held = serialized(cloud, cfg, cfg["hold"])

        print(f"downstream on the local cloud (sync-pull on Deno -> PostgreSQL), {n:,} products")
        print(f"  publish   {n:,} products in one statement: {publish_s:.1f} s "
              f"({2 * n / publish_s:,.0f} changes/s); the price update of all: {update_s:.1f} s")
        print(f"  snapshot  {snap.rows:,} rows in {len(snap.page_ms)} pages: {snap_s:.1f} s "
              f"({snap.rows / snap_s:,.0f} rows/s), page p50 {pct(snap.page_ms, 50):.0f} ms "
              f"p99 {pct(snap.page_ms, 99):.0f} ms")
        print(f"  catch-up  {catch.rows:,} changes in {len(catch.page_ms)} pages: {catch_s:.1f} s "
              f"({catch.rows / catch_s:,.0f} changes/s), page p50 {pct(catch.page_ms, 50):.0f} ms "
              f"p99 {pct(catch.page_ms, 99):.0f} ms")
        print(f"  serialized {cfg['writers']} writers, {cfg['duration']:g} s: {serial['commits']:,} "
              f"commits ({serial['per_s']:,.0f}/s), commit p50 {serial['p50_ms']:.1f} ms "
              f"p99 {serial['p99_ms']:.1f} ms")
        print(f"  held back one transaction holds the log lock {cfg['hold']:g} s: the others "
              f"{held['commits']:,} commits ({held['per_s']:,.0f}/s), longest wait "
              f"{held['max_ms']:.0f} ms")
    finally:
        cloud.destroy()


if __name__ == "__main__":
    main()
