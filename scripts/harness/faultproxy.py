"""TCP fault proxy for the peer links between lanes (asyncio in one background thread).

One `Link` per directed lane pair (A dials B): it listens on 127.0.0.1:<port> and forwards
to B's TERMINAL_PORT. A's PEER_TERMINALS names the link's port instead of B's, so every byte
between the two lanes passes through the proxy, where it can be

- delayed: `latency_ms` + uniform jitter, per chunk, order preserved per direction;
- stalled: with probability `stall_prob` a chunk (and everything behind it) waits another
  `stall_ms` range, the way a lost segment waits for its TCP retransmission;
- dropped: with probability `drop_prob` a chunk is discarded while the connection stays
  open. TCP itself never does this; it is garbage on the wire, which the lanes must detect
  (WebSocket framing, JSON, batch checks) and survive by closing and reconnecting, never by
  storing corrupted data;
- reset: with probability `reset_prob` per chunk the connection is closed abruptly;
- cut: `cut()` blackholes the link. Open connections stop forwarding in both directions
  (held open, as after a cable pull: only the lanes' heartbeats can notice) and new
  connections are accepted and held without ever reaching the other lane. `heal()` closes
  every held connection and forwards new ones again.

Counters per link (`stats`) feed the harness summary.
"""
import asyncio
import random
import threading
import time


class Link:
    def __init__(self, proxy, name, listen_port, target_port, seed):
        self.proxy = proxy
        self.name = name
        self.listen_port = listen_port
        self.target_port = target_port
        self.rng = random.Random(seed)
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.stall_prob = 0.0
        self.stall_ms = (200.0, 1500.0)
        self.drop_prob = 0.0
        self.reset_prob = 0.0
        self.is_cut = False
        self.server = None
        self.conns = set()
        self.stats = {"connections": 0, "chunks": 0, "bytes": 0, "stalls": 0, "drops": 0,
                      "resets": 0, "cuts": 0, "held": 0}

    # ---- control (called through Proxy on the loop thread) ------------------------------
    def _set(self, **kw):
        for k, v in kw.items():
            if not hasattr(self, k):
                raise AttributeError(k)
            setattr(self, k, v)

    def _cut(self):
        if not self.is_cut:
            self.is_cut = True
            self.stats["cuts"] += 1
            for c in list(self.conns):
                c.blackholed = True

    def _heal(self):
        self.is_cut = False
        for c in list(self.conns):
            if c.blackholed:
                c.close()

    # ---- data path ------------------------------------------------------------------------
    async def start(self):
        self.server = await asyncio.start_server(self._on_client, "127.0.0.1", self.listen_port)

    async def _on_client(self, reader, writer):
        self.stats["connections"] += 1
        conn = _Conn(self, reader, writer)
        self.conns.add(conn)
        try:
            await conn.run()
        finally:
            self.conns.discard(conn)


class _Conn:
    def __init__(self, link, reader, writer):
        self.link = link
        self.creader = reader
        self.cwriter = writer
        self.uwriter = None
        self.blackholed = link.is_cut
        self.closed = asyncio.Event()
        self.writers = [writer]

    def close(self):
        if not self.closed.is_set():
            self.closed.set()
            for w in self.writers:
                try:
                    w.transport.abort()
                except Exception:  # noqa: BLE001
                    pass

    async def run(self):
        link = self.link
        if self.blackholed:
            # Accepted during a cut: hold it (the dialing lane sees a connection that never
            # answers) until heal() or until the lane gives up and closes it.
            link.stats["held"] += 1
            await asyncio.wait([asyncio.ensure_future(self.closed.wait()),
                                asyncio.ensure_future(self._drain_until_eof(self.creader))],
                               return_when=asyncio.FIRST_COMPLETED)
            self.close()
            return
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", link.target_port)
        except OSError:
            self.close()
            return
        self.writers.append(uwriter)
        tasks = [asyncio.ensure_future(self._pump(self.creader, uwriter)),
                 asyncio.ensure_future(self._pump(ureader, self.cwriter)),
                 asyncio.ensure_future(self.closed.wait())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        self.close()
        for t in tasks:
            t.cancel()

    async def _drain_until_eof(self, reader):
        while await reader.read(65536):
            pass

    async def _pump(self, reader, writer):
        """Reads chunks and schedules each for delivery; a writer task delivers in order."""
        link = self.link
        queue = asyncio.Queue(maxsize=64)
        loop = asyncio.get_running_loop()

        async def deliver():
            while True:
                at, chunk = await queue.get()
                if chunk is None:
                    return
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.blackholed:
                    continue
                writer.write(chunk)
                await writer.drain()

        dtask = asyncio.ensure_future(deliver())
        last_at = 0.0
        try:
            while True:
                chunk = await reader.read(16384)
                if not chunk:
                    break
                if self.blackholed:
                    continue
                link.stats["chunks"] += 1
                link.stats["bytes"] += len(chunk)
                rng = link.rng
                if link.reset_prob and rng.random() < link.reset_prob:
                    link.stats["resets"] += 1
                    break
                if link.drop_prob and rng.random() < link.drop_prob:
                    link.stats["drops"] += 1
                    continue
                delay = link.latency_ms + (rng.uniform(0, link.jitter_ms) if link.jitter_ms else 0)
                if link.stall_prob and rng.random() < link.stall_prob:
                    link.stats["stalls"] += 1
                    delay += rng.uniform(*link.stall_ms)
                at = max(last_at, loop.time() + delay / 1000.0)
                last_at = at
                await queue.put((at, chunk))
                if dtask.done():
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not dtask.done():
                try:
                    queue.put_nowait((0, None))
                except asyncio.QueueFull:
                    dtask.cancel()
            try:
                await dtask
            except (OSError, asyncio.CancelledError, ConnectionError):
                pass


class Proxy:
    """Owns the event loop thread and every Link."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.links = {}
        self.thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, fn, *args, **kw):
        async def wrap():
            r = fn(*args, **kw)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout=30)

    def add_link(self, name, listen_port, target_port, seed):
        link = Link(self, name, listen_port, target_port, seed)
        self._call(link.start)
        self.links[name] = link
        return link

    def configure(self, names=None, **kw):
        for n in names or list(self.links):
            self._call(self.links[n]._set, **kw)

    def cut(self, *names):
        for n in names:
            self._call(self.links[n]._cut)

    def heal(self, *names):
        for n in names or list(self.links):
            self._call(self.links[n]._heal)

    def totals(self):
        out = {}
        for link in self.links.values():
            for k, v in link.stats.items():
                out[k] = out.get(k, 0) + v
        return out

    def close(self):
        async def shutdown():
            for link in self.links.values():
                link.is_cut = True
                if link.server is not None:
                    link.server.close()
                for c in list(link.conns):
                    c.close()
        try:
            self._call(shutdown)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
