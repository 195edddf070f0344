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
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"bench: timed out waiting for {what}")


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


class Lane:
    def __init__(self, work, lane_id, secret, extra=None):
        self.id = lane_id
        self.peer_port = free_port()
        self.api_port = free_port()
        self.env = {"TERMINAL_ID": lane_id, "STORE_ID": "bench", "TERMINAL_BIND": "127.0.0.1",
                    "TERMINAL_PORT": self.peer_port, "LOCAL_API_PORT": self.api_port,
                    "PEER_SECRET": secret, "OUTBOX_PATH": os.path.join(work, lane_id + ".db"),
                    "LOG_LEVEL": "warn"}
        self.env.update(extra or {})
        self.path = os.path.join(work, lane_id + ".env")
        self.log = os.path.join(work, lane_id + ".log")
        self.proc = None

    def start(self, bin_path, peers):
        env = dict(self.env)
        if peers:
            env["PEER_TERMINALS"] = ",".join(f"ws://127.0.0.1:{p.peer_port}/v1/peer" for p in peers)
        with open(self.path, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in env.items())
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "PEER_"))}
        self.proc = subprocess.Popen([bin_path, "agent", "--env", self.path],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=clean)
        wait_for(lambda: self.get("/healthz")[0] == 200, 20, f"{self.id} healthy")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=30)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def get(self, path):
        return self.request("GET", path)

    def status(self):
        return json.loads(self.get("/v1/status")[1])


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


def cloud_up(work):
    env = dict(os.environ, CLOUD_DIR=os.path.join(work, "cloud"), CLOUD_API_PORT=str(free_port()),
               CLOUD_DB_PORT=str(free_port()))
    r = subprocess.run([os.path.join(ROOT, "scripts", "cloud-up.sh")], env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit("bench: cloud-up failed:\n" + r.stderr[-2000:])
    lines = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    return env, lines


def cloud_down(env):
    subprocess.run([os.path.join(ROOT, "scripts", "cloud-down.sh"), "--purge"], env=env,
                   capture_output=True)


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
    lanes = []
    cloud_env = None
    rows = []
    try:
        secret = "bench-secret-0123456789"
        l1, l2 = Lane(work, "L1", secret), Lane(work, "L2", secret)
        lanes = [l1, l2]
        extra = {}
        if not a.no_cloud:
            cloud_env, lines = cloud_up(work)
            extra = {"SUPABASE_URL": lines["SUPABASE_URL"], "SUPABASE_SERVICE_KEY": lines["SUPABASE_SERVICE_KEY"],
                     "CLOUD_SYNC_INTERVAL_MS": 200, "CLOUD_BATCH_SIZE": a.batch,
                     "SYNC_BACKOFF_BASE_MS": 50, "SYNC_BACKOFF_MAX_MS": 1000}
            l1.env.update(extra)
        l1.start(a.bin, [l2])
        l2.start(a.bin, [l1])
        if cloud_env:
            l1.request("POST", "/v1/cloud/pause")

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

        if cloud_env:
            t0 = time.monotonic()
            l1.request("POST", "/v1/cloud/resume")
            wait_for(lambda: l1.status()["outbox"]["cloud_ack"] == len(ids), 600, "backlog drained")
            drain = time.monotonic() - t0
            rows.append(("cloud drain (backlog)", f"{len(ids)} msgs, batch {a.batch}",
                         f"{len(ids) / drain:,.0f} msg/s", f"{drain:.2f} s"))
    finally:
        for l in lanes:
            l.stop()
        if cloud_env:
            cloud_down(cloud_env)
        shutil.rmtree(work, ignore_errors=True)

    w = [max(len(r[i]) for r in rows + [("benchmark", "size", "result", "time")]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w[i]) for i, c in enumerate(r))
    print(line(("benchmark", "size", "result", "time")))
    print(line(tuple("-" * x for x in w)))
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
