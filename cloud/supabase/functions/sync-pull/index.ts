// Supabase Edge Function sync-pull: head office's changes (prices, products, customers, ...)
// to the lanes, after per-scope cursors, in version order, paged; a snapshot of the current
// state for a lane with no cursor or one older than the compaction horizon. It never skips a
// change committed out of order: head office's writes to the log are serialized
// (lanesync.publish_change). Contract: docs/cloud.md, "sync-pull"; docs/downstream.md.
// Hosted Supabase runs this file; the local cloud serves the same app beside
// sync-pos-message on one port (cloud/local/serve.ts).
//
// Environment: ../_shared/runtime.ts (keys, database, listener).

import { loadRuntime, serve } from "../_shared/runtime.ts";
import { createApp } from "./app.ts";

const rt = loadRuntime("sync-pull");
serve(rt, createApp(rt));
