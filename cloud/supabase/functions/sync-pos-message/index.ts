// Supabase Edge Function sync-pos-message: receives batches of POS messages from the lane
// agents and commits them to Postgres exactly once (POST), and tells a lane the highest seq
// the cloud holds of it (GET). Contract: SPEC.md section 8 and
// docs/cloud.md. Hosted Supabase and the local cloud (scripts/cloud-up.sh) run this file
// unchanged.
//
// Environment:
//   SUPABASE_DB_URL            Postgres URL of the database owner (hosted Supabase sets it)
//   LANESYNC_SERVICE_KEY       the only key callers may present, when set; otherwise the
//                              project's keys: SUPABASE_SERVICE_ROLE_KEY (legacy JWT) and every
//                              value of SUPABASE_SECRET_KEYS (hosted Supabase sets both)
//   LANESYNC_MAX_BODY_BYTES    request body limit, default 6 MiB
//   LANESYNC_DB_POOL_MAX       Postgres connections of this instance, default 5
// Local cloud only (the hosted Edge Runtime picks its own listener):
//   LANESYNC_LISTEN_PORT, LANESYNC_LISTEN_HOST (default 127.0.0.1),
//   LANESYNC_TLS_CERT_FILE + LANESYNC_TLS_KEY_FILE (PEM) to serve HTTPS

import { acceptedKeys } from "../_shared/service_keys.ts";
import { applyBatch, connect, highestSeq, isUnavailable, poolMaxFrom } from "./db.ts";
import { createHandler, DEFAULT_MAX_BODY_BYTES } from "./handler.ts";

function env(name: string): string | undefined {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? undefined : v;
}

function fail(message: string): never {
  console.error(`sync-pos-message: ${message}`);
  throw new Error(message);
}

const accepted = acceptedKeys(env);
for (const w of accepted.warnings) console.error(`sync-pos-message: ${w}`);
if (accepted.keys.length === 0) {
  fail("no service key: set LANESYNC_SERVICE_KEY, SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS");
}
console.log(`sync-pos-message: accepting the keys of ${accepted.sources.join(", ")}`);
const dbUrl = env("SUPABASE_DB_URL") ?? fail("SUPABASE_DB_URL is not set");
const maxBodyText = env("LANESYNC_MAX_BODY_BYTES");
const maxBodyBytes = maxBodyText === undefined ? DEFAULT_MAX_BODY_BYTES : Number(maxBodyText);
if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
  fail(`LANESYNC_MAX_BODY_BYTES must be a positive integer, got "${maxBodyText}"`);
}

let poolMax = 0;
try {
  poolMax = poolMaxFrom(env("LANESYNC_DB_POOL_MAX"));
} catch (err) {
  fail((err as Error).message);
}

const sql = connect(dbUrl, poolMax);
const handler = createHandler({
  serviceKeys: accepted.keys,
  maxBodyBytes,
  apply: (requestId, checked) => applyBatch(sql, requestId, checked),
  highestSeq: (storeId, terminalId) => highestSeq(sql, storeId, terminalId),
  isUnavailable,
});

const port = env("LANESYNC_LISTEN_PORT");
if (port === undefined) {
  Deno.serve(handler);
} else {
  const certFile = env("LANESYNC_TLS_CERT_FILE");
  const keyFile = env("LANESYNC_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    fail("set both LANESYNC_TLS_CERT_FILE and LANESYNC_TLS_KEY_FILE, or neither");
  }
  const tls = certFile !== undefined && keyFile !== undefined
    ? { cert: Deno.readTextFileSync(certFile), key: Deno.readTextFileSync(keyFile) }
    : {};
  const server = Deno.serve({
    hostname: env("LANESYNC_LISTEN_HOST") ?? "127.0.0.1",
    port: Number(port),
    ...tls,
    onListen: ({ hostname, port }) =>
      console.log(`sync-pos-message listening on ${certFile ? "https" : "http"}://${hostname}:${port}`),
  }, handler);
  // Clean stop for scripts/cloud-down.sh: finish in-flight requests, close the pool, exit.
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    await sql.end({ timeout: 5 });
    Deno.exit(0);
  });
}
