"""The dashboard (GET /) in a real headless Chromium: two lanes and the local cloud; the page
of L1 shows both lanes (L2 through ?lanes=, which needs CORS), its numbers follow the traffic,
it loads nothing it is not allowed to (no CSP violation, no script error), and it says so when
a lane stops. Saves build/test-artifacts/dashboard.png."""
import json
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import ARTIFACTS, Cloud, StoreTestCase, http, wait_for  # noqa: E402

from cdp import Chromium, chromium_binary

# Everything the page rendered, as the test reads it: the lanes table and the detail tiles.
READ_PAGE = """JSON.stringify({
  updates: +document.body.dataset.updates,
  selected: document.body.dataset.selected,
  lanes: Object.fromEntries([...document.querySelectorAll('#lanes tbody tr')].map(tr => [
    tr.dataset.lane,
    Object.fromEntries([...tr.querySelectorAll('[data-k]')].map(td => [td.dataset.k, td.dataset.v]))])),
  tiles: Object.fromEntries([...document.querySelectorAll('.tiles [data-k], .legend [data-k], #c-word')]
    .map(e => [e.dataset.k, e.dataset.v])),
  peers: [...document.querySelectorAll('#peers tbody tr')].map(tr => tr.dataset.peer),
  points: +document.getElementById('tp-chart').dataset.points,
  banner: document.getElementById('d-banner').classList.contains('hidden') ? '' :
          document.getElementById('d-banner').textContent,
  live: document.getElementById('live-text').textContent
})"""


class Dashboard(StoreTestCase):
    cloud = None

    @classmethod
    def setUpClass(cls):
        if not chromium_binary():
            raise AssertionError("chromium not found: scripts/setup.sh installs Debian's chromium")
        cls.cloud = Cloud().up()

    @classmethod
    def tearDownClass(cls):
        cls.cloud.destroy()

    def read(self, page):
        return json.loads(page.evaluate(READ_PAGE))

    def test_page_follows_two_lanes_live_and_saves_a_screenshot(self):
        self.store.store_id = "store-" + uuid.uuid4().hex[:6]
        env = dict(self.cloud.lane_env())
        l1 = self.store.lane("L1", LOG_LEVEL="info", **env)
        l2 = self.store.lane("L2", LOG_LEVEL="info", **env)
        l1.peer_with(l2)
        l2.peer_with(l1)
        l1.start()
        l2.start()
        wait_for(lambda: all(p["connected"] for p in l1.status()["peers"]), 20, what="L1-L2 connected")

        browser = Chromium(width=1440, height=1000).start()
        self.addCleanup(browser.stop)
        page = browser.open(f"{l1.api}/?lanes=127.0.0.1:{l2.api_port}")

        # Both lanes appear, live, before any traffic.
        def both_lanes_up():
            s = self.read(page)
            return s["updates"] >= 2 and all(s["lanes"].get(k, {}).get("running") == "yes" for k in ("L1", "L2")) and s
        s = wait_for(both_lanes_up, 15, interval=0.1, what="both lanes shown as up")
        self.assertEqual(s["selected"], "L1")
        self.assertEqual(s["lanes"]["L1"]["pending"], "0")
        self.assertEqual(s["tiles"]["cloud"], "ok")
        self.assertEqual(s["peers"], ["L2"])
        updates_before = s["updates"]

        # Traffic for a few seconds from both lanes, paced so the charts show a shape.
        sent = {"L1": 0, "L2": 0}
        stop = threading.Event()
        errors = []

        def publisher(lane, per_round):
            while not stop.is_set():
                for _ in range(per_round):
                    r = lane.publish("transaction", {"total": 1.5, "lane": lane.id})
                    if r.status != 201:
                        errors.append(r.status)
                    else:
                        sent[lane.id] += 1
                time.sleep(0.05)  # pacing, not synchronisation
        threads = [threading.Thread(target=publisher, args=(l1, 6)), threading.Thread(target=publisher, args=(l2, 3))]
        for t in threads:
            t.start()
        try:
            # The page sees messages flowing: rates above zero, counts rising, latency measured.
            s = wait_for(lambda: (lambda s: s["tiles"].get("peak-accepted") and float(s["tiles"]["peak-accepted"]) > 0
                                  and s["tiles"].get("peak-cloud_acked") and float(s["tiles"]["peak-cloud_acked"]) > 0
                                  and s["tiles"].get("lat-peer") and s["tiles"].get("lat-cloud") and s)(self.read(page)),
                         20, interval=0.2, what="rates and latencies on the page")
            mid = wait_for(lambda: (lambda s: s["lanes"]["L2"]["cloud_ack"] and int(s["lanes"]["L2"]["cloud_ack"]) > 0 and s)(self.read(page)),
                           15, interval=0.2, what="L2's cloud_ack on L1's page")
            # Let the charts gather a few seconds of history.
            wait_for(lambda: self.read(page)["updates"] >= mid["updates"] + 4, 15, interval=0.2, what="four more refreshes")
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertGreater(s["updates"], updates_before)
        self.assertGreater(s["points"], 0)
        self.assertGreater(float(s["tiles"]["lat-peer"]), 0)

        # Everything reaches the cloud; the page shows the exact final counts of both lanes.
        for lane in (l1, l2):
            wait_for(lambda lane=lane: lane.counts()["cloud_ack"] == sent[lane.id], 60, what=f"{lane.id} all cloud_ack")

        def page_matches():
            s = self.read(page)
            return (s["lanes"]["L1"]["cloud_ack"] == str(sent["L1"]) and s["lanes"]["L2"]["cloud_ack"] == str(sent["L2"])
                    and s["tiles"]["cloud_ack"] == str(sent["L1"]) and s["tiles"]["pending"] == "0" and s)
        s = wait_for(page_matches, 10, interval=0.2, what="final counts on the page")
        self.assertEqual(s["lanes"]["L1"]["failed"], "0")
        self.assertEqual(s["tiles"]["last_seq"], str(sent["L1"]))

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        with open(shot, "wb") as f:
            f.write(page.screenshot(width=1440))
        self.assertGreater(os.path.getsize(shot), 20000)

        # Selecting L2 shows L2's own numbers.
        page.evaluate("document.querySelector('#lanes tr[data-lane=\"L2\"]').click(), true")
        s = wait_for(lambda: (lambda s: s["selected"] == "L2" and s["tiles"]["cloud_ack"] == str(sent["L2"]) and s)(self.read(page)),
                     5, interval=0.1, what="L2 selected")
        self.assertEqual(s["peers"], ["L1"])

        # A lane that stops is shown as unreachable, with its last known numbers.
        self.assertEqual(l2.stop(), 0)
        s = wait_for(lambda: (lambda s: s["lanes"]["L2"]["running"] == "no" and s["banner"] and s)(self.read(page)),
                     10, interval=0.2, what="L2 shown as unreachable")
        self.assertIn("does not answer", s["banner"])
        self.assertEqual(s["lanes"]["L2"]["cloud_ack"], str(sent["L2"]))
        page.evaluate("document.querySelector('#lanes tr[data-lane=\"L1\"]').click(), true")
        wait_for(lambda: (lambda s: s["lanes"]["L1"]["peers_up"] == "0" and s)(self.read(page)), 10, interval=0.2,
                 what="L1 has lost its peer")
        with open(os.path.join(ARTIFACTS, "dashboard-lane-down.png"), "wb") as f:
            f.write(page.screenshot(width=1440))

        # Nothing was blocked or broken along the way: no script error, no CSP violation.
        # (Network errors are expected: fetches of the stopped lane fail.)
        self.assertEqual([e for e in page.errors if not e.startswith("log (network)")], [])

        # The policy holds in the browser: anything external is blocked, and reported the way
        # the check above would have seen it. 192.0.2.1 is TEST-NET-1, never routed.
        page.evaluate("fetch('http://192.0.2.1/x').catch(() => 0), "
                      "document.body.appendChild(Object.assign(document.createElement('img'), {src: 'http://192.0.2.1/y.png'})), 1")
        def violations():
            page.evaluate("1")  # a round trip, so pending console events are read
            return [e for e in page.errors if e.startswith("log (security)") and "192.0.2.1" in e]
        blocked = wait_for(lambda: len(violations()) >= 2 and violations(), 10, interval=0.1,
                           what="CSP violations reported")
        self.assertEqual(len(blocked), 2, blocked)

        # A lane list that is not loopback host:port is refused by the page itself.
        page.navigate(f"{l1.api}/?lanes=evil.example:80,127.0.0.1:{l2.api_port}")
        notes = page.wait_for("document.getElementById('notes').textContent", 10, what="the note")
        self.assertIn('ignored "evil.example:80"', notes)

    def test_page_headers_forbid_external_loads(self):
        l1 = self.store.lane("L1")
        l1.start()
        r = http("GET", l1.api + "/")
        self.assertEqual(r.status, 200)
        csp = r.headers["Content-Security-Policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self' http://127.0.0.1:* http://localhost:*", csp)
        self.assertNotIn("unsafe", csp)
        body = r.body.decode()
        for needle in ("src=\"http", "href=\"http", "@import", "url(http"):
            self.assertNotIn(needle, body)
        # CORS: another loopback page may read the status; any other origin may not.
        ok = http("GET", l1.api + "/v1/status", headers={"Origin": "http://127.0.0.1:9999"})
        self.assertEqual(ok.headers.get("Access-Control-Allow-Origin"), "http://127.0.0.1:9999")
        no = http("GET", l1.api + "/v1/status", headers={"Origin": "http://evil.example"})
        self.assertNotIn("Access-Control-Allow-Origin", no.headers)
        no = http("GET", l1.api + "/v1/messages?state=pending", headers={"Origin": "http://127.0.0.1:9999"})
        self.assertNotIn("Access-Control-Allow-Origin", no.headers)


if __name__ == "__main__":
    unittest.main()
