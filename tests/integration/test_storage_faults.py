"""Storage faults (docs/bad-input.md "Storage"): a full disk (a small tmpfs as the outbox's
folder) refuses writes with 503 and says so in /healthz, status and /metrics while reads,
and sending what the lane holds to its peers, go on; everything resumes by itself when space
returns. A corrupt outbox or a read-only one stops the agent at start with a clear error naming
the file (exit 1), never a silent reset. check-db reports the integrity check.

Mounting needs root (CI runs as root); without it these tests are skipped, saying so."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import StoreTestCase, http, wait_for  # noqa: E402


def can_mount():
    if os.geteuid() != 0:
        return False
    d = tempfile.mkdtemp(prefix="lanesync-mount-probe-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], check=True)
        return ok
    finally:
        os.rmdir(d)


MOUNT = can_mount()


class StorageFaults(StoreTestCase):
    def mount(self, *args):
        """A mount point in the store's folder; unmounted on every exit (also on failure)."""
        d = tempfile.mkdtemp(prefix="mnt-", dir=self.store.dir)
        subprocess.run(["mount", *args, d], check=True)
        # Cleanups run last-in first-out: this one runs before the store closes, so it stops
        # the lanes first (their files live here); -l detaches whatever still holds it.
        def unmount():
            for lane in self.store.lanes:
                lane.cleanup()
            subprocess.run(["umount", "-l", d])
        self.addCleanup(unmount)
        return d

    def fill(self, folder):
        """Writes a filler file until the file system is full; returns its path."""
        path = os.path.join(folder, "filler")
        with open(path, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        return path

    @unittest.skipUnless(MOUNT, "needs root and tmpfs mounts (CI runs as root)")
    def test_disk_full_refuses_writes_serves_reads_and_recovers(self):
        disk = self.mount("-t", "tmpfs", "-o", "size=16m", "tmpfs")
        l1, l2 = self.pair()
        l1.env["OUTBOX_PATH"] = os.path.join(disk, "L1.db")
        l1.start()
        ids = [l1.publish(data={"n": i}).json()["id"] for i in range(20)]
        filler = self.fill(disk)

        # Writes are refused with 503; /healthz, status and /metrics say the disk is full.
        # (What still fitted in the WAL's room was accepted and counts like the others.)
        fitted = []

        def refused():
            r = l1.publish(data={"big": "x" * 200000})
            if r.status == 201:
                fitted.append(r.json()["id"])
            return r.status == 503 and "full" in r.json()["error"]
        wait_for(refused, 20, what="a publish refused with 503 disk full")
        h = http("GET", l1.api + "/healthz")
        self.assertEqual(h.status, 503)
        self.assertEqual(h.json()["status"], "disk_full")
        st = l1.status()
        self.assertTrue(st["outbox"]["disk_full"])
        self.assertFalse(st["outbox"]["writable"])
        self.assertIn("full", st["outbox"]["storage_error"])
        self.assertEqual(l1.metric("lanesync_outbox_disk_full"), 1)
        self.assertEqual(l1.metric("lanesync_outbox_writable"), 0)
        # Reads go on.
        self.assertEqual(l1.message(ids[0]).status, 200)
        held = 20 + len(fitted)
        self.assertEqual(st["outbox"]["pending"], held)
        self.assertIn("disk full", l1.cli("status", "--env", l1.env_path, cwd=l1.folder).stdout)

        # L1 still sends what it holds to a peer; the peer's messages cannot be stored on L1
        # (1011) and are retried with backoff, L1 stays up.
        l2.start()
        wait_for(lambda: l2.status()["replicas"].get("L1") == held, 30, what="L2 holds L1's")
        mine = [l2.publish(data={"m": i}).json()["id"] for i in range(5)]
        wait_for(lambda: l1.log_lines("peer.store_failed"), 20, what="L1 fails to store L2's batch")
        self.assertTrue(l1.running())
        self.assertEqual(http("GET", l1.api + "/healthz").status, 503)

        # Space comes back: everything resumes by itself.
        os.remove(filler)
        wait_for(lambda: http("GET", l1.api + "/healthz").status == 200, 30, what="/healthz 200")
        self.assertEqual(l1.metric("lanesync_outbox_disk_full"), 0)
        self.assertEqual(l1.publish(data={"after": 1}).status, 201)
        wait_for(lambda: l2.counts()["peer_ack"] == 5, 60, what="L2's messages stored on L1")
        wait_for(lambda: l1.counts()["peer_ack"] == held + 1, 60, what="L1's messages peer_ack")
        for mid in mine:
            self.assertEqual(l1.message(mid).status, 200)
        # Retried with backoff, not in a loop: a handful of attempts, not thousands.
        self.assertLess(len(l1.log_lines("peer.store_failed", limit=100000)), 200)
        code, out = l1.check_db()
        self.assertEqual(code, 0, out)
        self.assertIn("integrity check passed", out)

    def corrupt_start(self, lane):
        """Starts the agent on a bad outbox: it must exit 1, naming the file."""
        lane.start(wait=False)
        rc = lane.proc.wait(timeout=30)
        log = lane.log_text()
        self.assertEqual(rc, 1, log)
        self.assertIn(lane.outbox_path, log)
        return log

    def test_garbage_outbox_stops_the_agent_naming_the_file(self):
        lane = self.store.lane("L1")
        with open(lane.outbox_path, "wb") as f:
            f.write(os.urandom(3) + b"this is not a database" * 500)
        with open(lane.outbox_path, "rb") as f:
            before = f.read()
        log = self.corrupt_start(lane)
        self.assertIn("agent.start_failed", log)
        self.assertIn("not a database", log)
        with open(lane.outbox_path, "rb") as f:
            self.assertEqual(f.read(), before, "the file was changed")
        code, out = lane.check_db()
        self.assertEqual(code, 1)
        self.assertIn(lane.outbox_path, out)

    def test_corrupted_page_stops_the_agent_and_check_db_reports_it(self):
        lane = self.store.lane("L1")
        lane.start()
        for i in range(300):
            self.assertEqual(lane.publish(data={"n": i, "pad": "p" * 200}).status, 201)
        lane.stop()
        code, out = lane.check_db()
        self.assertEqual(code, 0, out)
        size = os.path.getsize(lane.outbox_path)
        self.assertGreater(size, 8 * 4096)
        with open(lane.outbox_path, "r+b") as f:  # page 2 on: the header stays, a b-tree breaks
            f.seek(4096)
            f.write(os.urandom(4 * 4096))
        code, out = lane.check_db()
        self.assertEqual(code, 1, out)
        self.assertIn(lane.outbox_path, out)
        log = self.corrupt_start(lane)
        self.assertIn("agent.start_failed", log)

    def test_truncated_outbox_stops_the_agent(self):
        lane = self.store.lane("L1")
        lane.start()
        for i in range(300):
            self.assertEqual(lane.publish(data={"n": i, "pad": "p" * 200}).status, 201)
        lane.stop()
        with open(lane.outbox_path, "r+b") as f:
            f.truncate(os.path.getsize(lane.outbox_path) // 2)
        code, out = lane.check_db()
        self.assertEqual(code, 1, out)
        self.corrupt_start(lane)

    @unittest.skipUnless(MOUNT, "needs root and bind mounts (CI runs as root)")
    def test_read_only_outbox_stops_the_agent_naming_the_file(self):
        src = tempfile.mkdtemp(prefix="ro-src-", dir=self.store.dir)
        lane = self.store.lane("L1", OUTBOX_PATH=os.path.join(src, "L1.db"))
        lane.start()
        self.assertEqual(lane.publish().status, 201)
        lane.stop()
        ro = self.mount("--bind", src)
        subprocess.run(["mount", "-o", "remount,ro,bind", ro], check=True)
        lane.env["OUTBOX_PATH"] = os.path.join(ro, "L1.db")
        log = self.corrupt_start(lane)
        self.assertIn("read-only", log.lower())
        # check-db cannot open a WAL outbox on a read-only mount either (SQLite must create its
        # -shm file): it fails, naming the file, and changes nothing.
        code, out = lane.check_db()
        self.assertEqual(code, 1, out)
        self.assertIn(lane.outbox_path, out)


if __name__ == "__main__":
    unittest.main()
