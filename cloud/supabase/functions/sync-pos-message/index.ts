// Supabase Edge Function sync-pos-message: receives batches of POS messages from the lane
// agents and commits them to Postgres exactly once (POST), and tells a lane the highest seq
// the cloud holds of it (GET). Contract: SPEC.md section 8 and docs/cloud.md. Hosted
// Supabase runs this file; the local cloud (scripts/cloud-up.sh) serves the same app with
// sync-pull on one port (cloud/local/serve.ts).
//
// Environment: ../_shared/runtime.ts (keys, database, listener) and app.ts
// (LANESYNC_MAX_BODY_BYTES).

import { loadRuntime, serve } from "../_shared/runtime.ts";
import { createApp } from "./app.ts";

const rt = loadRuntime("sync-pos-message");
serve(rt, createApp(rt));
