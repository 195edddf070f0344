// Tests of the local cloud scripts (scripts/cloud-up.sh, scripts/cloud-down.sh) around a
// running cloud: re-runs, database and function outages, TLS. They stop and start parts of
// the cloud named by CLOUD_DIR, so they only run when LANESYNC_LOCAL_CLOUD_TESTS=1, as
// tests/cloud/run-deno-tests.sh sets after starting a throwaway cloud. Needs --allow-run.

import assert from "node:assert/strict";
import { cloud, get, highestSeq, message, newStore, post, withDb } from "./testing.ts";

const enabled = Deno.env.get("LANESYNC_LOCAL_CLOUD_TESTS") === "1";
const repo = new URL("../../../../", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function script(name: "cloud-up.sh" | "cloud-down.sh", ...args: string[]): Promise<Run> {
  const out = await new Deno.Command(`${repo}scripts/${name}`, { args, stdin: "null" }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

async function ok(name: "cloud-up.sh" | "cloud-down.sh", ...args: string[]): Promise<string> {
  const run = await script(name, ...args);
  assert.equal(run.code, 0, `${name} ${args.join(" ")} failed:\n${run.stderr}`);
  return run.stdout;
}

/** The lines cloud-up.sh prints, as a map. */
function lines(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout.trim().split("\n").map((l) => {
      const i = l.indexOf("=");
      return [l.slice(0, i), l.slice(i + 1)];
    }),
  );
}

const expectedHttp = () => ({
  SUPABASE_URL: Deno.env.get("SUPABASE_URL")!,
  SUPABASE_SERVICE_KEY: cloud.key,
  SUPABASE_DB_URL: cloud.dbUrl,
});

const cloudDir = () => Deno.env.get("CLOUD_DIR")!;
const functionPid = () => Deno.readTextFileSync(`${cloudDir()}/run/functions.pid`).trim();

Deno.test({
  name: "local cloud scripts: re-runs, outages and TLS",
  ignore: !enabled,
  async fn(t) {
    await t.step("--help, and usage errors exit 2", async () => {
      for (const name of ["cloud-up.sh", "cloud-down.sh"] as const) {
        const help = await script(name, "--help");
        assert.equal(help.code, 0);
        assert.match(help.stdout, /^Usage: scripts\/cloud-(up|down)\.sh/);
        assert.equal((await script(name, "--bogus")).code, 2);
      }
      assert.equal((await script("cloud-down.sh", "--purge", "--db-only")).code, 2);
    });

    await t.step("running cloud-up.sh again prints the same lines and keeps the processes", async () => {
      const pid = functionPid();
      const stdout = await ok("cloud-up.sh");
      assert.deepEqual(Object.keys(lines(stdout)), [
        "SUPABASE_URL",
        "SUPABASE_SERVICE_KEY",
        "SUPABASE_DB_URL",
      ]);
      assert.deepEqual(lines(stdout), expectedHttp());
      assert.equal(functionPid(), pid);
    });

    await t.step("a migration added since the last run is applied by the next cloud-up.sh", async () => {
      // Undo the newest migration as if this cloud had been set up before it existed.
      const version = "20261204000100";
      await withDb(async (sql) => {
        await sql.begin(async (tx) => {
          await tx`drop view public.lane_health, public.sync_daily, public.sync_daily_uploads`;
          await tx`drop function public.lane_health_with(interval, interval)`;
          await tx`drop function lanesync.apply_batch(jsonb, jsonb)`;
          await tx`drop function lanesync.record_lane(jsonb)`;
          await tx`drop table public.lane_status`;
          await tx`delete from lanesync_local.applied_migrations where version = ${version}`;
        });
      });
      const run = await script("cloud-up.sh");
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, new RegExp(`applying migration ${version}_lane_health`));
      assert.equal(run.stderr.match(/applying migration/g)?.length, 1, "older ones are not applied twice");
      const store = newStore();
      const reply = await post({
        messages: [message(store, 1, { uploadedBy: "L2" })],
        lane: {
          storeId: store,
          terminalId: "L2",
          agentVersion: "0.1.0",
          at: 1,
          pending: 0,
          peerAck: 0,
          cloudAck: 1,
          failed: 0,
          oldestPendingAgeMs: null,
          oldestPeerAckAgeMs: null,
          lastSeq: 1,
          peersUp: 0,
          peersConfigured: 1,
          retryDepth: 0,
        },
      });
      assert.equal(reply.status, 200);
      const [row] = await withDb((sql) => sql`select uploaded_by from sync_log where store_id = ${store}`);
      assert.equal(row?.uploaded_by, "L2");
      const [health] = await withDb((sql) => sql`select state from lane_health where store_id = ${store}`);
      assert.equal(health?.state, "ok");
    });

    await t.step(
      "database down: the function answers 503 and commits nothing; back after cloud-up",
      async () => {
        const store = newStore();
        const m = message(store, 1);
        await ok("cloud-down.sh", "--db-only");
        const during = await post({ messages: [m] });
        assert.equal(during.status, 503);
        assert.equal(typeof during.body.error, "string");
        const lookup = await get({ storeId: store, terminalId: m.terminalId });
        assert.equal(lookup.status, 503);
        assert.deepEqual(lookup.body, { error: "database unavailable, retry later" });
        assert.deepEqual(lines(await ok("cloud-up.sh")), expectedHttp());
        const after = await post({ messages: [m] });
        assert.equal(after.status, 200);
        assert.deepEqual(after.body.results, [{ messageId: m.messageId, status: "stored" }]);
        assert.equal(await highestSeq(store, m.terminalId), 1);
      },
    );

    await t.step(
      "function down: connection refused while the database stays up; back after cloud-up",
      async () => {
        await ok("cloud-down.sh", "--functions-only");
        await assert.rejects(post({ messages: [] }));
        const [{ one }] = await withDb((sql) => sql`select 1 as one`);
        assert.equal(one, 1);
        assert.deepEqual(lines(await ok("cloud-up.sh")), expectedHttp());
        assert.equal((await post({ messages: [message(newStore(), 1)] })).status, 200);
      },
    );

    await t.step("--tls serves HTTPS with a local CA; the mode sticks until --no-tls", async () => {
      const tls = lines(await ok("cloud-up.sh", "--tls"));
      const port = new URL(Deno.env.get("SUPABASE_URL")!).port;
      assert.deepEqual(Object.keys(tls), [
        "SUPABASE_URL",
        "SUPABASE_SERVICE_KEY",
        "SUPABASE_CA_FILE",
        "SUPABASE_DB_URL",
      ]);
      assert.equal(tls.SUPABASE_URL, `https://127.0.0.1:${port}`);
      assert.equal(tls.SUPABASE_SERVICE_KEY, cloud.key);
      assert.equal(tls.SUPABASE_DB_URL, cloud.dbUrl);

      const client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(tls.SUPABASE_CA_FILE)] });
      try {
        for (const host of ["127.0.0.1", "localhost"]) {
          const url = `https://${host}:${port}/functions/v1/sync-pos-message`;
          const reply = await post({ messages: [message(newStore(), 1)] }, { url, client });
          assert.equal(reply.status, 200, host);
          assert.equal((reply.body.results as Array<{ status: string }>)[0].status, "stored");
        }
      } finally {
        client.close();
      }
      // Without the CA the certificate is not trusted; plain HTTP is not served any more.
      await assert.rejects(
        post({ messages: [] }, { url: `https://127.0.0.1:${port}/functions/v1/sync-pos-message` }),
      );
      await assert.rejects(post({ messages: [] }));

      assert.deepEqual(lines(await ok("cloud-up.sh")), tls, "no flag keeps the TLS mode");
      assert.deepEqual(lines(await ok("cloud-up.sh", "--no-tls")), expectedHttp());
      assert.equal((await post({ messages: [] })).status, 200);
    });

    await t.step("cloud-down.sh stops everything and is safe to run twice", async () => {
      await ok("cloud-down.sh");
      await ok("cloud-down.sh");
      await assert.rejects(post({ messages: [] }));
      await assert.rejects(withDb((sql) => sql`select 1`));
      // And the same cloud comes back, data included.
      assert.deepEqual(lines(await ok("cloud-up.sh")), expectedHttp());
      const [{ n }] = await withDb((sql) => sql`select count(*)::int as n from pos_messages`);
      assert.ok(n > 0);
    });
  },
});
