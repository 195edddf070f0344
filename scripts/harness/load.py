"""Load: deterministic message plans per lane and the concurrent POS clients that publish them.

A plan is generated from the scenario's seeded RNG before anything runs, so the same seed
publishes the same ids, topics and data (timing, and hence seqs, may differ between runs).
Each client is a thread with one keep-alive connection to its lane's local API.

Publishing rules (what a careful POS app does):
- most messages carry a client-chosen UUID (the idempotency key); a publish that fails
  without an answer (lane killed, paused, restarting) is retried with the same id until it
  gets 201 or 200. A 200 after such a failure means the first attempt was stored: accepted.
- a fraction carries no id (the agent assigns a UUIDv7). A failed attempt of such a message
  is ambiguous (stored or not?); the retry is a new message. The harness counts these and
  allows that many unknown rows from that lane in the cloud.
- after a 201, a fraction is posted again unchanged: the lane must answer 200 with the
  same id/origin/seq (duplicates suppressed); a smaller fraction is posted again with other
  data: the lane must answer 409.
Only 201s (and 200s that resolve a failed attempt) count as accepted.
"""
import random
import threading
import time
import uuid

_UNICODE = ["Zoë", "café ☕", "naïve", "Łódź", "東京", "emoji 😀", "tab\tquote\"back\\slash",
            "line\nbreak", "ümlaut"]


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Msg:
    __slots__ = ("lane", "index", "id", "topic", "data", "priority", "poison", "repost",
                 "conflict", "seq", "created_at", "accepted", "ambiguous_tries", "answered_id",
                 "tried", "elsewhere", "epoch", "peer_ack_seen", "reaccepted")

    def __init__(self, lane, index, mid, topic, data, priority, poison, repost, conflict):
        self.lane = lane
        self.index = index
        self.id = mid
        self.topic = topic
        self.data = data
        self.priority = priority
        self.poison = poison
        self.repost = repost
        self.conflict = conflict
        self.seq = None
        self.created_at = None
        self.accepted = False
        self.ambiguous_tries = 0
        self.answered_id = None
        self.tried = set()       # lanes where an attempt got no answer (it may be stored there)
        self.elsewhere = None    # "same" / "other": after the 201, post it on another lane too
        self.epoch = 0           # the lane's disk epoch when the accepting attempt was sent
        self.peer_ack_seen = False  # the AckWatcher saw it at peer_ack on its lane
        self.reaccepted = 0      # re-posts answered 201 after its lane lost its disk

    def body(self, with_id=True):
        b = {"topic": self.topic, "data": self.data}
        if self.priority is not None:
            b["priority"] = self.priority
        mid = self.id if self.id is not None else (self.answered_id if with_id else None)
        if mid is not None and with_id:
            b["id"] = mid
        return b


def make_plan(rng, lane, count, start_index, payload, poison_frac=0.0, repost_frac=0.03,
              no_id_frac=0.15, conflict_frac=0.005):
    """The messages lane `lane` will publish, numbered from start_index."""
    msgs = []
    for i in range(start_index, start_index + count):
        poison = rng.random() < poison_frac
        r = rng.random()
        topic = ("transaction" if r < 0.45 else "inventory" if r < 0.75
                 else "customer" if r < 0.9 else "pos.note")
        pad_len = max(0, payload - 120)
        pad = ("%x" % rng.getrandbits(4 * pad_len)).rjust(pad_len, "0") if pad_len else ""
        extra = rng.choice(_UNICODE)
        if topic == "transaction":
            data = {"transaction_id": f"{lane}-T{i}", "total": round(rng.uniform(0.5, 500), 2),
                    "currency": "EUR",
                    "items": [{"sku": f"SKU-{rng.randrange(40)}", "qty": rng.randrange(1, 5),
                               "price": rng.randrange(50, 5000) / 100}
                              for _ in range(rng.randrange(1, 4))],
                    "cashier": extra, "pad": pad}
            if poison:
                if rng.random() < 0.5:
                    del data["total"]
                else:
                    data["total"] = str(data["total"])
        elif topic == "inventory":
            delta = rng.choice([-3, -2, -1, 1, 2, 3, 5, 10])
            data = {"sku": f"SKU-{rng.randrange(40)}", "delta": 0 if poison else delta,
                    "reason": rng.choice(["sale", "restock", "shrink"]), "note": extra,
                    "pad": pad}
        elif topic == "customer":
            data = {"customer_id": f"C-{lane}-{rng.randrange(30)}",
                    "version": 0 if poison else i + 1,
                    "name": extra, "loyalty": {"points": rng.randrange(10000), "tier": "gold"},
                    "pad": pad}
        else:
            # A topic of our own: the cloud stores it untouched. Poison it with a version-less
            # inventory-style record instead (only the three domain topics have schemas).
            if poison:
                topic = "inventory"
                data = {"sku": "", "delta": 1, "pad": pad}
            else:
                data = {"text": extra, "n": i, "flag": rng.random() < 0.5, "none": None,
                        "nested": {"a": [1, 2.5, "x", {"b": None}], "deep": {"k": [True]}},
                        "pad": pad}
        mid = None if (not poison and rng.random() < no_id_frac) else _uuid(rng)
        prio = rng.choice([None, None, "normal", "high", "low", "critical"])
        msgs.append(Msg(lane, i, mid, topic, data, prio, poison,
                        repost=rng.random() < repost_frac,
                        conflict=rng.random() < conflict_frac))
    return msgs


class Copy:
    """A second own copy of an accepted id on another lane (a POS that retried there with its
    idempotency key): the lane's seq and the content it accepted."""
    __slots__ = ("id", "lane", "seq", "topic", "data")

    def __init__(self, mid, lane, seq, topic, data):
        self.id = mid
        self.lane = lane
        self.seq = seq
        self.topic = topic
        self.data = data


class Ledger:
    """Everything the clients learned, shared across threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.msgs = {}               # id -> Msg (accepted)
        self.by_lane = {}            # lane -> [Msg]
        self.ambiguous = {}          # lane -> failed attempts of id-less messages
        self.dups_suppressed = 0     # re-posts answered 200 with the same seq
        self.conflicts_refused = 0   # re-posts with other data answered 409
        self.retries = 0             # publish attempts repeated after a failure
        self.copies = {}             # id -> [Copy] on lanes other than the accepted one
        self.suspects = []           # (id, lane): an unanswered attempt there may have stored it
        self.violations = []
        # Disk events (disk-loss, backup-restore): a lane's epoch rises each time its outbox
        # is deleted or replaced (between the kill and the restart).
        self.epochs = {}             # lane -> number of disk events so far
        self.disk_events = []        # (lane, what, monotonic time)
        self.lost = []               # Msg: accepted, then gone with a destroyed disk
        self.lost_reposted = []      # per re-post answered 201 after a loss: was it peer_ack?
        self.watcher = None          # lanes.AckWatcher: which 201s reached peer_ack

    def epoch(self, lane):
        with self.lock:
            return self.epochs.get(lane, 0)

    def disk_event(self, lane, what):
        """The scenario destroys or replaces `lane`'s outbox: call it after the lane is killed
        or stopped and before it starts again, so that every answer of the old process came
        from an attempt sent at the old epoch and every answer of the new one at the new."""
        with self.lock:
            self.epochs[lane] = self.epochs.get(lane, 0) + 1
            self.disk_events.append((lane, what, time.monotonic()))

    def watch(self, lanes_by_id, m):
        """Has the AckWatcher (if any) learn whether m reaches peer_ack on its lane."""
        if self.watcher is None or m.lane not in lanes_by_id:
            return

        def seen(mid, body, m=m, seq=m.seq):
            if m.seq == seq:
                m.peer_ack_seen = True
        self.watcher.watch(lanes_by_id[m.lane], m.id, m.seq, seen)

    def seen_at_peer_ack(self):
        with self.lock:
            return sum(1 for m in list(self.msgs.values()) + self.lost if m.peer_ack_seen)

    def reaccept(self, m, ans, data=None):
        """A re-post of m answered 201 on its lane: the lane no longer held m (its disk was
        lost or replaced since), and has stored the re-post as a new message. Legitimate only
        if m never reached peer_ack; the message now is the new one."""
        with self.lock:
            self.lost_reposted.append(m.peer_ack_seen)
            if m.peer_ack_seen:
                self.violations.append(
                    f"{m.lane}: lost after peer_ack: {m.id} (seq {m.seq}) was peer_ack, its "
                    f"disk was replaced, and a re-post of it answered 201 as seq {ans['seq']}")
            m.reaccepted += 1
            m.seq = ans["seq"]
            m.created_at = ans.get("created_at")
            m.peer_ack_seen = False
            if data is not None:
                m.data = data

    def accept(self, m):
        with self.lock:
            if m.id in self.msgs:
                self.violations.append(f"publish: id {m.id} accepted twice by the harness "
                                       f"(lane {m.lane})")
                return
            self.msgs[m.id] = m
            self.by_lane.setdefault(m.lane, []).append(m)

    def add_copy(self, mid, lane, seq, topic, data):
        with self.lock:
            known = self.copies.setdefault(mid, [])
            if not any(c.lane == lane for c in known):
                known.append(Copy(mid, lane, seq, topic, data))

    def copies_on(self, lane):
        with self.lock:
            return [c for cs in self.copies.values() for c in cs if c.lane == lane]

    def violation(self, text):
        with self.lock:
            if len(self.violations) < 200:
                self.violations.append(text)

    def count(self, lane=None):
        with self.lock:
            return len(self.msgs) if lane is None else len(self.by_lane.get(lane, []))


class LoadRun:
    """Publishes plans on lanes with C clients per lane at R messages/s per lane."""

    def __init__(self, ledger, plans, lanes_by_id, clients, rate, retry_deadline=180.0,
                 client_timeout=5.0, seed=0, failover=False):
        self.ledger = ledger
        self.plans = plans               # lane id -> [Msg]
        self.lanes = lanes_by_id
        self.clients = clients
        self.rate = rate
        self.retry_deadline = retry_deadline
        self.client_timeout = client_timeout
        self.seed = seed
        self.failover = failover
        self.threads = []
        self.done = threading.Event()
        self.abort = threading.Event()
        self.started_at = None
        self.finished_at = None
        self._next = {}
        self._lock = threading.Lock()

    def start(self):
        self.started_at = time.monotonic()
        for lane_id, plan in self.plans.items():
            self._next[lane_id] = 0
            for c in range(self.clients):
                t = threading.Thread(target=self._client, args=(lane_id, plan, c),
                                     name=f"load-{lane_id}-{c}", daemon=True)
                self.threads.append(t)
        for t in self.threads:
            t.start()
        threading.Thread(target=self._joiner, daemon=True).start()
        return self

    def _joiner(self):
        for t in self.threads:
            t.join()
        self.finished_at = time.monotonic()
        self.done.set()

    def wait(self, timeout):
        return self.done.wait(timeout)

    def progress(self, lane_id=None):
        """Fraction of planned messages taken by clients (0..1)."""
        with self._lock:
            if lane_id is not None:
                return self._next[lane_id] / max(1, len(self.plans[lane_id]))
            return sum(self._next.values()) / max(1, sum(len(p) for p in self.plans.values()))

    def _take(self, lane_id, plan):
        with self._lock:
            i = self._next[lane_id]
            if i >= len(plan):
                return None
            self._next[lane_id] = i + 1
            return i

    def _client(self, lane_id, plan, c):
        lane = self.lanes[lane_id]
        rng = random.Random(f"{self.seed}:{lane_id}:{c}")
        http = lane.client(self.client_timeout)
        last_seq = 0
        last_epoch = 0
        try:
            while not self.abort.is_set():
                i = self._take(lane_id, plan)
                if i is None:
                    return
                if self.rate > 0:
                    due = self.started_at + i / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)   # pacing the load, not synchronisation
                m = plan[i]
                self._publish(http, lane, m, rng)
                if m.accepted and m.lane == lane_id:
                    # One client publishes one after the other: its seqs must increase (a lane
                    # rebuilt after losing its disk may hand out again seqs it lost).
                    if m.epoch != last_epoch:
                        last_epoch, last_seq = m.epoch, 0
                    if m.seq <= last_seq:
                        self.ledger.violation(f"{lane_id}: client {c} got seq {m.seq} after "
                                              f"seq {last_seq} (order of acceptance broken)")
                    last_seq = m.seq
                if m.accepted and m.repost and m.lane == lane_id:
                    self._repost(http, lane, m, rng)
                if m.accepted and m.conflict and m.lane == lane_id:
                    self._conflict(http, lane, m, rng)
                if m.accepted and m.elsewhere and m.lane == lane_id:
                    self._elsewhere(lane, m, rng)
        finally:
            http.close()

    def _publish(self, http, lane, m, rng):
        """Publishes m until it is accepted (or a violation is recorded)."""
        end = time.monotonic() + self.retry_deadline
        failed_before = False
        attempt = 0
        conn, target = http, lane
        spare = {}
        try:
            while not self.abort.is_set():
                attempt += 1
                epoch = self.ledger.epoch(target.id)
                try:
                    st, ans = conn.request("POST", "/v1/messages", m.body())
                except Exception as e:  # noqa: BLE001 - refused, reset, timeout: down/paused
                    failed_before = True
                    if m.id is not None and not isinstance(e, ConnectionRefusedError):
                        m.tried.add(target.id)
                    if m.id is None and not isinstance(e, ConnectionRefusedError):
                        # Without an idempotency key the attempt may have been stored.
                        with self.ledger.lock:
                            self.ledger.ambiguous[target.id] = \
                                self.ledger.ambiguous.get(target.id, 0) + 1
                    if time.monotonic() > end:
                        self.ledger.violation(f"publish on {target.id}: no answer within "
                                              f"{self.retry_deadline:.0f}s ({e!r})")
                        return
                    with self.ledger.lock:
                        self.ledger.retries += 1
                    if self.failover:
                        # --failover: a POS app that retries on another lane's agent, keeping
                        # its idempotency key, when its own lane does not answer.
                        target = rng.choice([l for l in self.lanes.values() if l is not lane])
                        if target.id not in spare:
                            spare[target.id] = target.client(self.client_timeout)
                        conn = spare[target.id]
                    time.sleep(min(1.0, 0.05 * (2 ** min(attempt, 5))) * (0.5 + rng.random()))
                    continue
                if st == 201 or (st == 200 and failed_before and m.id is not None):
                    # A 200 after a failed attempt: stored by that attempt (its origin may be
                    # another lane after a failover).
                    want_origin = target.id if st == 201 else None
                    if not isinstance(ans, dict) or not isinstance(ans.get("seq"), int) or \
                            ans.get("origin") not in self.lanes or \
                            (want_origin and ans.get("origin") != want_origin):
                        self.ledger.violation(f"publish on {target.id}: bad {st} answer {ans!r}")
                        return
                    if m.id is not None and ans.get("id") != m.id:
                        self.ledger.violation(f"publish on {target.id}: answer id "
                                              f"{ans.get('id')} != requested {m.id}")
                        return
                    m.lane = ans["origin"]
                    m.id = ans["id"]
                    m.seq = ans["seq"]
                    m.created_at = ans.get("created_at")
                    m.epoch = epoch if m.lane == target.id else self.ledger.epoch(m.lane)
                    m.accepted = True
                    self.ledger.accept(m)
                    self.ledger.watch(self.lanes, m)
                    if self.failover:
                        # an unanswered attempt on another lane may have been stored there as
                        # that lane's own message: the checks look (verify.resolve_suspects)
                        with self.ledger.lock:
                            self.ledger.suspects.extend((m.id, t) for t in m.tried if t != m.lane)
                    return
                if st == 503:
                    # storage failure or the lane is stopping: nothing stored, retry later
                    failed_before = True
                    with self.ledger.lock:
                        self.ledger.retries += 1
                    if time.monotonic() > end:
                        self.ledger.violation(f"publish on {target.id}: still 503 after "
                                              f"{self.retry_deadline:.0f}s: {ans!r}")
                        return
                    time.sleep(0.2)
                    continue
                self.ledger.violation(f"publish on {target.id}: unexpected HTTP {st} {ans!r} "
                                      f"(attempt {attempt}, id {m.id})")
                return
        finally:
            for h in spare.values():
                h.close()

    def _repost(self, http, lane, m, rng):
        for _ in range(20):
            try:
                st, ans = http.request("POST", "/v1/messages", m.body())
            except Exception:  # noqa: BLE001
                if self.abort.is_set():
                    return
                time.sleep(0.3)
                continue
            if st == 200 and isinstance(ans, dict) and ans.get("id") == m.id and \
                    ans.get("seq") == m.seq and ans.get("origin") == m.lane:
                with self.ledger.lock:
                    self.ledger.dups_suppressed += 1
            elif self._lost_and_restored(m, st, ans):
                pass
            elif st == 503:
                time.sleep(0.2)
                continue
            else:
                self.ledger.violation(f"duplicate publish of {m.id} on {m.lane}: expected 200 "
                                      f"with seq {m.seq}, got {st} {ans!r}")
            return

    def _elsewhere(self, lane, m, rng):
        """The POS did not get the answer and retried on the next lane with the same id: that
        lane accepts it as its own (201), with the same data or, for "other", other data."""
        other = self.lanes[rng.choice(sorted(k for k in self.lanes if k != m.lane))]
        body = m.body()
        if m.elsewhere == "other":
            body["data"] = dict(m.data, retried_on=other.id)
        http = other.client(self.client_timeout)
        unanswered = False
        try:
            for _ in range(20):
                try:
                    st, ans = http.request("POST", "/v1/messages", body)
                except Exception as e:  # noqa: BLE001
                    if not isinstance(e, ConnectionRefusedError) and not unanswered:
                        unanswered = True
                        with self.ledger.lock:
                            self.ledger.suspects.append((m.id, other.id))
                    if self.abort.is_set():
                        return
                    time.sleep(0.3)
                    continue
                if st == 201 and isinstance(ans, dict) and ans.get("origin") == other.id and \
                        ans.get("id") == m.id and isinstance(ans.get("seq"), int):
                    self.ledger.add_copy(m.id, other.id, ans["seq"], m.topic, body["data"])
                elif st == 503:
                    time.sleep(0.2)
                    continue
                elif st in (200, 409) and unanswered:
                    pass  # the unanswered attempt stored it there: a suspect, resolved later
                else:
                    self.ledger.violation(f"retry of {m.id} (own on {m.lane}) on {other.id}: "
                                          f"expected 201 as {other.id}'s own, got {st} {ans!r}")
                return
        finally:
            http.close()

    def _conflict(self, http, lane, m, rng):
        body = m.body()
        body["data"] = dict(m.data, harness_conflict=True)
        for _ in range(20):
            try:
                st, ans = http.request("POST", "/v1/messages", body)
            except Exception:  # noqa: BLE001
                if self.abort.is_set():
                    return
                time.sleep(0.3)
                continue
            if st == 409:
                with self.ledger.lock:
                    self.ledger.conflicts_refused += 1
            elif self._lost_and_restored(m, st, ans, body["data"]):
                pass
            elif st == 503:
                time.sleep(0.2)
                continue
            else:
                self.ledger.violation(f"same id {m.id} with other data on {m.lane}: expected "
                                      f"409, got {st} {ans!r}")
            return

    def _lost_and_restored(self, m, st, ans, data=None):
        """A re-post of m answered 201 by its lane after that lane's disk was lost or replaced:
        the lane no longer held m and stored the re-post (with `data`) as a new message."""
        epoch = self.ledger.epoch(m.lane)
        if st != 201 or epoch == m.epoch or not isinstance(ans, dict) or \
                ans.get("id") != m.id or ans.get("origin") != m.lane or \
                not isinstance(ans.get("seq"), int):
            return False
        self.ledger.reaccept(m, ans, data)
        m.epoch = epoch
        self.ledger.watch(self.lanes, m)
        return True
