// sync-pull built on a runtime (../_shared/runtime.ts). Used by index.ts and by the local
// cloud's router (cloud/local/serve.ts).

import { isUnavailable } from "../_shared/db.ts";
import type { Runtime } from "../_shared/runtime.ts";
import { readSnapshot } from "./db.ts";
import { createHandler } from "./handler.ts";

export function createApp(rt: Runtime): (req: Request) => Promise<Response> {
  return createHandler({
    serviceKeys: rt.keys,
    read: (fn) => readSnapshot(rt.sql, fn),
    isUnavailable,
  });
}
