// Local cloud only, never deployed: serves every edge function of cloud/supabase/functions on
// one port, as hosted Supabase does under /functions/v1/<name>, from one Deno process with one
// connection pool. Each function's app is the same module its own index.ts serves on hosted
// Supabase. scripts/cloud-up.sh runs this file; environment: ../supabase/functions/_shared/runtime.ts
// and each app.ts.

import { loadRuntime, serve } from "../supabase/functions/_shared/runtime.ts";
import { createApp as syncPosMessage } from "../supabase/functions/sync-pos-message/app.ts";
import { createApp as syncPull } from "../supabase/functions/sync-pull/app.ts";

const rt = loadRuntime("local-cloud");
const apps = new Map<string, (req: Request) => Promise<Response>>([
  ["sync-pos-message", syncPosMessage(rt)],
  ["sync-pull", syncPull(rt)],
]);
const fallback = apps.get("sync-pos-message")!; // answers 404 for any other path, as before

serve(rt, (req) => {
  const name = /^\/functions\/v1\/([^/]+)\/?$/.exec(new URL(req.url).pathname)?.[1];
  return ((name === undefined ? undefined : apps.get(name)) ?? fallback)(req);
});
