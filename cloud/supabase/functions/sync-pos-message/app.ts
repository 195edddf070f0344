// sync-pos-message built on a runtime (../_shared/runtime.ts): its own setting and its
// database work wired into the handler. Used by index.ts and by the local cloud's router.
//
// Environment (besides the shared one):
//   LANESYNC_MAX_BODY_BYTES    request body limit, default 6 MiB

import { isUnavailable } from "../_shared/db.ts";
import { env, type Runtime } from "../_shared/runtime.ts";
import { applyBatch, highestSeq } from "./db.ts";
import { createHandler, DEFAULT_MAX_BODY_BYTES } from "./handler.ts";

export function createApp(rt: Runtime): (req: Request) => Promise<Response> {
  const maxBodyText = env("LANESYNC_MAX_BODY_BYTES");
  const maxBodyBytes = maxBodyText === undefined ? DEFAULT_MAX_BODY_BYTES : Number(maxBodyText);
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    rt.fail(`LANESYNC_MAX_BODY_BYTES must be a positive integer, got "${maxBodyText}"`);
  }
  return createHandler({
    serviceKeys: rt.keys,
    maxBodyBytes,
    apply: (requestId, checked, lane) => applyBatch(rt.sql, requestId, checked, lane),
    highestSeq: (storeId, terminalId) => highestSeq(rt.sql, storeId, terminalId),
    isUnavailable,
  });
}
