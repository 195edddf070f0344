// The proof of the cursor scheme (docs/downstream.md, "Cloud"): many head-office writers
// commit publish_change in overlapping transactions (some long, some rolled back) while a
// lane pulls in a loop with its cursor. The lane must end with exactly every committed change
// visible to its store, each once, and its stream of versions must only grow (a version that
// shows up below one already seen would be a change the cursor skipped).
// Run by tests/cloud/run-deno-tests.sh against the local cloud.

import assert from "node:assert/strict";
import postgres from "postgres";
import { cloud, cloudLive, fresh, LaneModel, publish, pull, scopeOf, withDb } from "./testing.ts";

const WRITERS = Number(Deno.env.get("PULL_PROOF_WRITERS") ?? 8);
const TRANSACTIONS = Number(Deno.env.get("PULL_PROOF_TRANSACTIONS") ?? 40); // per writer
const KEYS = 30;

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed with the seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
class RollBack extends Error {}

Deno.test("concurrent head-office writers never make a pulling lane miss, repeat or reorder a change", async () => {
  const seed = Number(Deno.env.get("PULL_PROOF_SEED") ?? Date.now() % 1_000_000);
  console.log(`seed ${seed} (PULL_PROOF_SEED to replay), ${WRITERS} writers x ${TRANSACTIONS} transactions`);
  const scope = fresh("proof");
  const store = fresh("S");
  const other = fresh("S");
  const committed = new Map<number, string | null>(); // version -> store of every committed change
  let open = 0, maxOpen = 0, commits = 0, rollbacks = 0, longOnes = 0;

  await withDb(async (sql) => {
    // Start the lane on a snapshot of the scope's first change.
    const seedVersion = await publish(sql, null, scope, "seed", { seed });
    committed.set(seedVersion, null);
    const lane = new LaneModel();
    for (;;) {
      const p = scopeOf(await pull(store, { [scope]: lane.cursor() }), scope);
      lane.apply(p);
      if (!p.more) break;
    }
    assert.ok(lane.through > 0);

    let writersDone = false;
    const writer = async (w: number) => {
      const random = rng(seed * 131 + w);
      const db = postgres(cloud.dbUrl, { max: 1, onnotice: () => {} });
      try {
        for (let t = 0; t < TRANSACTIONS; t++) {
          const mine: Array<[number, string | null]> = [];
          const rollBack = random() < 0.2;
          try {
            await db.begin(async (tx) => {
              open++;
              maxOpen = Math.max(maxOpen, open);
              try {
                // Work before publishing: transactions overlap, then queue on the log lock.
                if (random() < 0.5) await pause(random() * 15);
                const n = 1 + Math.floor(random() * 3);
                for (let i = 0; i < n; i++) {
                  const r = random();
                  const target = r < 0.45 ? store : r < 0.8 ? null : other;
                  const key = `k${Math.floor(random() * KEYS)}`;
                  const data = random() < 0.15 ? null : { w, t, i };
                  mine.push([await publish(tx, target, scope, key, data), target]);
                  if (random() < 0.3) await pause(random() * 5);
                }
                // Some transactions stay open a long time while holding the lock.
                if (random() < 0.08) {
                  longOnes++;
                  await pause(50 + random() * 150);
                }
                if (rollBack) throw new RollBack();
              } finally {
                open--;
              }
            });
            for (const [v, s] of mine) committed.set(v, s);
            commits++;
          } catch (err) {
            if (!(err instanceof RollBack)) throw err;
            rollbacks++;
          }
        }
      } finally {
        await db.end({ timeout: 5 });
      }
    };

    // The lane: pulls in a loop with a small limit (so pages split), checking every page.
    let pulls = 0, pages = 0, seenChanges = 0;
    const seen = new Set<number>();
    let last = lane.through;
    let lastThrough = lane.through;
    const puller = async () => {
      let finalHead = Infinity;
      for (;;) {
        const p = scopeOf(await pull(store, { [scope]: lane.cursor() }, 7), scope);
        pulls++;
        assert.equal(p.reset, false, "a lane above the horizon never gets a snapshot");
        for (const c of p.changes) {
          assert.ok(c.version > last, `version ${c.version} after ${last}: out of order or skipped earlier`);
          assert.ok(!seen.has(c.version), `version ${c.version} twice`);
          last = c.version;
          seen.add(c.version);
          seenChanges++;
        }
        assert.ok(p.through >= lastThrough, `through went back from ${lastThrough} to ${p.through}`);
        assert.ok(p.changes.every((c) => c.version <= p.through), "every change at or below through");
        lastThrough = p.through;
        lane.apply(p);
        if (p.changes.length > 0) pages++;
        if (writersDone && finalHead === Infinity) {
          finalHead = Number((await sql`select lanesync.change_log_head()::text as h`)[0].h);
        }
        if (lane.through >= finalHead && !p.more) return;
      }
    };

    const started = performance.now();
    const pulling = puller();
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    writersDone = true;
    await pulling;
    const ms = performance.now() - started;

    // Every committed change after the seed, but the other store's.
    const expected = [...committed].filter(([v, s]) => v !== seedVersion && s !== other).map(([v]) => v)
      .sort((a, b) => a - b);
    const got = [...seen].sort((a, b) => a - b);
    console.log(
      `commits ${commits}, rollbacks ${rollbacks}, long ${longOnes}, max open transactions ${maxOpen}; ` +
        `${committed.size - 1} changes committed (${expected.length} visible to the store), ` +
        `${seenChanges} pulled in ${pulls} pulls (${pages} non-empty pages) in ${Math.round(ms)} ms`,
    );
    assert.deepEqual(got, expected, "exactly every committed change visible to the store, each once");
    assert.ok(maxOpen >= 2, "writers overlapped");
    assert.ok(rollbacks > 0 && longOnes > 0, "the run had rollbacks and long transactions");
    assert.deepEqual(lane.live(), await cloudLive(sql, store, scope), "the lane's state is the cloud's");
  }, 2);
});
