"""`lanesync init-store` against the real binary: the files it writes pass `check-config`, start
a working three-lane store (a message published on one lane is stored by the others), are
mode 0600 with one fresh PEER_SECRET, and are never overwritten without --force."""
import os
import re
import socket
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import BIN, Lane, StoreTestCase, free_port, wait_for  # noqa: E402


def consecutive_free_ports(n):
    """A first port such that it and the n - 1 after it are free on 127.0.0.1 right now."""
    for _ in range(200):
        first = free_port()
        if first + n > 65535:
            continue
        try:
            socks = []
            for p in range(first, first + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports found")


def read_text(path):
    with open(path) as f:
        return f.read()


def read_env(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                out[k] = v
    return out


class InitStore(StoreTestCase):
    def init_store(self, *args):
        return subprocess.run([BIN, "init-store", *args], capture_output=True, text=True, timeout=30)

    def test_three_lane_store_from_its_files(self):
        d = os.path.join(self.store.dir, "etc")
        port, api = consecutive_free_ports(3), consecutive_free_ports(3)
        while abs(port - api) < 3:
            api = consecutive_free_ports(3)
        r = self.init_store("--dir", d, "--lanes", "L1,L2,L3", "--store", "store-init",
                            "--port", str(port), "--api-port", str(api))
        self.assertEqual(r.returncode, 0, r.stderr)
        envs = {}
        for i, lane in enumerate(["L1", "L2", "L3"]):
            path = os.path.join(d, f"{lane}.env")
            st = os.stat(path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, lane)
            envs[lane] = e = read_env(path)
            self.assertEqual(e["TERMINAL_ID"], lane)
            self.assertEqual(e["STORE_ID"], "store-init")
            self.assertEqual(e["TERMINAL_PORT"], str(port + i))
            self.assertEqual(e["LOCAL_API_PORT"], str(api + i))
            self.assertEqual(e["TERMINAL_BIND"], "127.0.0.1")
            self.assertRegex(e["PEER_SECRET"], r"^[0-9a-f]{64}$")
            others = [f"ws://127.0.0.1:{port + j}/v1/peer" for j in range(3) if j != i]
            self.assertEqual(e["PEER_TERMINALS"], ",".join(others))
            # Every key written is explained by a comment naming it.
            with open(path) as f:
                text = f.read()
            for key in e:
                self.assertRegex(text, rf"#.*\b{key}\b", key)
            self.assertNotIn(e["PEER_SECRET"], r.stdout + r.stderr)
            c = subprocess.run([BIN, "check-config", "--env", path], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
            self.assertEqual(c.stdout, f"ok: {path}: lane {lane}, store store-init, 2 peers, cloud off\n")
        self.assertEqual(len({e["PEER_SECRET"] for e in envs.values()}), 1)

        # Run the three lanes from exactly these files (the lane library does not rewrite them).
        lanes = []
        for lane in ["L1", "L2", "L3"]:
            e = envs[lane]
            ln = Lane(self.store.dir, lane, store_id="store-init",
                      peer_port=int(e["TERMINAL_PORT"]), api_port=int(e["LOCAL_API_PORT"]),
                      env={"OUTBOX_PATH": os.path.join(self.store.dir, "data", f"{lane}.db")})
            ln.env_path = os.path.join(d, f"{lane}.env")
            ln.write_env = lambda path=ln.env_path: path
            self.store.lanes.append(ln)
            lanes.append(ln)
        for ln in lanes:
            ln.start()
        r = lanes[0].publish(data={"total": 4.5})
        self.assertEqual(r.status, 201, r.body)
        mid = r.json()["id"]
        wait_for(lambda: lanes[0].message(mid).json()["state"] == "peer_ack", 30, "peer_ack on L1")
        for ln in lanes[1:]:
            wait_for(lambda ln=ln: ln.status()["replicas"].get("L1", 0) == 1, 30, f"replica on {ln.id}")
        # The default OUTBOX_PATH (data/L1.db) is relative to the working directory.
        self.assertTrue(os.path.exists(os.path.join(self.store.dir, "data", "L1.db")))

    def test_refuses_to_overwrite_without_force(self):
        d = os.path.join(self.store.dir, "etc")
        r = self.init_store("--dir", d, "--lanes", "L1,L2")
        self.assertEqual(r.returncode, 0, r.stderr)
        before = {f: read_text(os.path.join(d, f)) for f in os.listdir(d)}
        self.assertEqual(sorted(before), ["L1.env", "L2.env"])
        r = self.init_store("--dir", d, "--lanes", "L1,L2,L3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("L1.env exists (use --force to overwrite)", r.stderr)
        self.assertIn("L2.env exists", r.stderr)
        # Nothing written, not even the new L3.
        self.assertEqual({f: read_text(os.path.join(d, f)) for f in os.listdir(d)}, before)
        r = self.init_store("--dir", d, "--lanes", "L1,L2", "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        after = read_env(os.path.join(d, "L1.env"))
        self.assertNotEqual(after["PEER_SECRET"], read_env_text(before["L1.env"])["PEER_SECRET"])
        self.assertEqual(sorted(os.listdir(d)), ["L1.env", "L2.env"])  # no temporary file left

    def test_one_lane_per_pc(self):
        d = os.path.join(self.store.dir, "etc")
        r = self.init_store("--dir", d, "--lanes", "L1,L2,L3", "--hosts",
                            "10.0.0.11, lane2.store.example,fd00::13")
        self.assertEqual(r.returncode, 0, r.stderr)
        e = read_env(os.path.join(d, "L1.env"))
        self.assertEqual((e["TERMINAL_PORT"], e["LOCAL_API_PORT"], e["TERMINAL_BIND"]),
                         ("8123", "9123", "0.0.0.0"))
        self.assertEqual(e["PEER_TERMINALS"],
                         "ws://lane2.store.example:8123/v1/peer,ws://[fd00::13]:8123/v1/peer")
        for lane in ["L1", "L2", "L3"]:
            c = subprocess.run([BIN, "check-config", "--env", os.path.join(d, f"{lane}.env")],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(c.returncode, 0, c.stdout + c.stderr)

    def test_bad_input_exits_2_and_writes_nothing(self):
        d = os.path.join(self.store.dir, "etc")
        cases = [
            (["--lanes", "L1,L1"], "L1 is given twice"),
            (["--lanes", "L1,bad id"], "is not a valid lane id"),
            (["--lanes", "L1,,L2"], "is not a valid lane id"),
            (["--lanes", "L1,L2", "--hosts", "a"], "1 hosts for 2 lanes"),
            (["--lanes", "L1,L2", "--hosts", "a,b/c"], "is not a host name or IP address"),
            (["--lanes", "L1", "--store", "no spaces"], "is not a valid store id"),
            (["--lanes", "L1,L2", "--port", "65535"], "ports past 65535"),
            (["--lanes", "L1,L2", "--port", "9000", "--api-port", "9001"], "would both use port 9001"),
        ]
        for args, message in cases:
            r = self.init_store("--dir", d, *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(message, r.stderr, args)
            self.assertFalse(os.path.exists(d) and os.listdir(d), args)
        r = self.init_store("--lanes", "L1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--dir", r.stderr)


def read_env_text(text):
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


if __name__ == "__main__":
    unittest.main()
