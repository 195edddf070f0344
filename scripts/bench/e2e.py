#!/usr/bin/env python3
"""End-to-end benchmarks of real agent processes on loopback (standard library only).

Measures, and prints as a table:
  publish      POST /v1/messages throughput with C concurrent keep-alive clients
  peer_ack     publish -> peer_ack latency p50/p99/max (from each message's timestamps)
  cloud drain  how fast a backlog of peer_ack messages drains to the local cloud (cloud_ack/s)

Usage: e2e.py --bin build/lanesync [--messages N] [--clients C] [--no-cloud] [--smoke]
"""
import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lanes import REPO as ROOT, Cloud, Store, wait_for  # noqa: E402


def parse_ts(s):
    # 2026-11-22T03:57:20.123Z -> unix ms
    import datetime
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return d.timestamp() * 1000.0


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def request(lane, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", lane.api_port, timeout=30)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def publish_load(lane, n, clients, payload):
    ids = []
    lock = threading.Lock()
    errors = []
    blob = "x" * payload

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", lane.api_port, timeout=30)
        mine = []
        for i in range(k, n, clients):
            body = json.dumps({"topic": "transaction", "data": {"total": i, "pad": blob}})
            conn.request("POST", "/v1/messages", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 201:
                errors.append((r.status, data[:200]))
                continue
            mine.append(json.loads(data)["id"])
        conn.close()
        with lock:
            ids.extend(mine)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise SystemExit(f"bench: {len(errors)} publishes failed, first: {errors[0]}")
    return ids, elapsed


def message_latencies(lane, ids, field):
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", lane.api_port, timeout=30)
    for mid in ids:
        conn.request("GET", f"/v1/messages/{mid}")
        r = conn.getresponse()
        m = json.loads(r.read())
        if m.get(field):
            out.append(parse_ts(m[field]) - parse_ts(m["created_at"]))
    conn.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "lanesync"))
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--payload", type=int, default=100, help="bytes of padding per message")
    ap.add_argument("--batch", type=int, default=500, help="CLOUD_BATCH_SIZE for the drain")
    ap.add_argument("--no-cloud", action="store_true", help="skip the cloud drain benchmark")
    ap.add_argument("--smoke", action="store_true", help="small sizes, finishes well under 60 s")
    a = ap.parse_args()
    if a.smoke:
        a.messages, a.clients = 1000, 16
    work = tempfile.mkdtemp(prefix="lanesync-bench-")
    os.chmod(work, 0o755)  # the local cloud runs PostgreSQL as the postgres user inside it
    store = Store("bench", folder=work, store_id="bench", secret="bench-secret-0123456789",
                  binary=os.path.abspath(a.bin), env={"LOG_LEVEL": "warn"})
    cloud = None
    rows = []
    try:
        extra = {}
        if not a.no_cloud:
            cloud = Cloud(os.path.join(work, "cloud"))
            cloud.up()
            extra = {"SUPABASE_URL": cloud.url, "SUPABASE_SERVICE_KEY": cloud.key,
                     "CLOUD_SYNC_INTERVAL_MS": 200, "CLOUD_BATCH_SIZE": a.batch,
                     "SYNC_BACKOFF_BASE_MS": 50, "SYNC_BACKOFF_MAX_MS": 1000}
        l1, l2 = store.lane("L1", **extra), store.lane("L2")
        l1.peer_with(l2).start(timeout=20)
        l2.peer_with(l1).start(timeout=20)
        if cloud:
            request(l1, "POST", "/v1/cloud/pause")

        ids, elapsed = publish_load(l1, a.messages, a.clients, a.payload)
        rows.append(("publish (201, fsync'd)", f"{len(ids)} msgs, {a.clients} clients",
                     f"{len(ids) / elapsed:,.0f} msg/s", f"{elapsed:.2f} s"))
        t0 = time.monotonic()
        wait_for(lambda: l1.status()["outbox"]["peer_ack"] == len(ids), 300, "all peer_ack")
        tail = time.monotonic() - t0
        lat = message_latencies(l1, ids, "peer_acked_at")
        rows.append(("publish -> peer_ack", f"{len(lat)} msgs",
                     f"p50 {pct(lat, 50):.1f} ms  p99 {pct(lat, 99):.1f} ms  max {max(lat):.0f} ms",
                     f"last ack {tail:.2f} s after load"))

        if cloud:
            t0 = time.monotonic()
            request(l1, "POST", "/v1/cloud/resume")
            wait_for(lambda: l1.status()["outbox"]["cloud_ack"] == len(ids), 600, "backlog drained")
            drain = time.monotonic() - t0
            rows.append(("cloud drain (backlog)", f"{len(ids)} msgs, batch {a.batch}",
                         f"{len(ids) / drain:,.0f} msg/s", f"{drain:.2f} s"))
    finally:
        for lane in store.lanes:
            lane.terminate(timeout=15)
        if cloud:
            cloud.purge(check=False)
        shutil.rmtree(work, ignore_errors=True)

    w = [max(len(r[i]) for r in rows + [("benchmark", "size", "result", "time")]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w[i]) for i, c in enumerate(r))
    print(line(("benchmark", "size", "result", "time")))
    print(line(tuple("-" * x for x in w)))
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
