// Start-up every lanesync edge function shares: configuration from the environment (the
// accepted keys, the database URL and pool) and the listener. Each function's index.ts is
// `serve(loadRuntime(name), createApp(...))`; the local cloud's router (cloud/local/serve.ts)
// builds every function's app on one runtime and serves them on one port.
//
// Environment (read here):
//   SUPABASE_DB_URL            Postgres URL of the database owner (hosted Supabase sets it)
//   LANESYNC_SERVICE_KEY       the only key callers may present, when set; otherwise the
//                              project's keys: SUPABASE_SERVICE_ROLE_KEY (legacy JWT) and every
//                              value of SUPABASE_SECRET_KEYS (hosted Supabase sets both)
//   LANESYNC_DB_POOL_MAX       Postgres connections of this instance, default 5
// Local cloud only (the hosted Edge Runtime picks its own listener):
//   LANESYNC_LISTEN_PORT, LANESYNC_LISTEN_HOST (default 127.0.0.1),
//   LANESYNC_TLS_CERT_FILE + LANESYNC_TLS_KEY_FILE (PEM) to serve HTTPS

import { connect, poolMaxFrom, type Sql } from "./db.ts";
import { acceptedKeys } from "./service_keys.ts";

/** An environment variable, undefined when unset or empty. */
export function env(name: string): string | undefined {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? undefined : v;
}

export interface Runtime {
  /** The function's name (or "local-cloud"), the prefix of its log lines. */
  name: string;
  /** The accepted service keys (at least one). */
  keys: string[];
  /** The connection pool (the database owner). */
  sql: Sql;
  /** Logs the message and throws: a configuration error stops the start. */
  fail: (message: string) => never;
}

/** Reads the shared configuration; throws (after a log line) when it is unusable. */
export function loadRuntime(name: string): Runtime {
  const fail = (message: string): never => {
    console.error(`${name}: ${message}`);
    throw new Error(message);
  };
  const accepted = acceptedKeys(env);
  for (const w of accepted.warnings) console.error(`${name}: ${w}`);
  if (accepted.keys.length === 0) {
    fail("no service key: set LANESYNC_SERVICE_KEY, SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS");
  }
  console.log(`${name}: accepting the keys of ${accepted.sources.join(", ")}`);
  const dbUrl = env("SUPABASE_DB_URL") ?? fail("SUPABASE_DB_URL is not set");
  let poolMax = 0;
  try {
    poolMax = poolMaxFrom(env("LANESYNC_DB_POOL_MAX"));
  } catch (err) {
    fail((err as Error).message);
  }
  return { name, keys: accepted.keys, sql: connect(dbUrl, poolMax), fail };
}

/**
 * Serves `handler`: with Deno.serve's defaults on hosted Supabase (no LANESYNC_LISTEN_PORT),
 * else on the local listener, HTTPS when the TLS files are set, with a clean stop on SIGTERM
 * (in-flight requests finish, the pool closes).
 */
export function serve(rt: Runtime, handler: (req: Request) => Promise<Response>): void {
  const port = env("LANESYNC_LISTEN_PORT");
  if (port === undefined) {
    Deno.serve(handler);
    return;
  }
  const certFile = env("LANESYNC_TLS_CERT_FILE");
  const keyFile = env("LANESYNC_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    rt.fail("set both LANESYNC_TLS_CERT_FILE and LANESYNC_TLS_KEY_FILE, or neither");
  }
  const tls = certFile !== undefined && keyFile !== undefined
    ? { cert: Deno.readTextFileSync(certFile), key: Deno.readTextFileSync(keyFile) }
    : {};
  const server = Deno.serve({
    hostname: env("LANESYNC_LISTEN_HOST") ?? "127.0.0.1",
    port: Number(port),
    ...tls,
    onListen: ({ hostname, port }) =>
      console.log(`${rt.name} listening on ${certFile ? "https" : "http"}://${hostname}:${port}`),
  }, handler);
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    await rt.sql.end({ timeout: 5 });
    Deno.exit(0);
  });
}
