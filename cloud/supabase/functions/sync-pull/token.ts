// The resume token of a snapshot: opaque to the lane, base64url of a small JSON object
// {"v": 1, "scope", "store", "as_of", "key"}: the snapshot's as_of version and the last key
// sent. Not signed: a caller holding the service key may read any store anyway; a token it
// altered only names another place to continue from, and one of another store or scope is
// refused. Pure.

export interface Resume {
  scope: string;
  store: string;
  /** Every version <= as_of was committed or rolled back when the snapshot started. */
  asOf: number;
  /** The last key sent; the next page starts after it. */
  key: string;
}

function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") + "===".slice((text.length + 3) % 4);
  const s = atob(padded);
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

export function encodeResume(r: Resume): string {
  const json = JSON.stringify({ v: 1, scope: r.scope, store: r.store, as_of: r.asOf, key: r.key });
  return toBase64Url(new TextEncoder().encode(json));
}

/** The token's content, or null when it is not a token this function made. */
export function decodeResume(token: string): Resume | null {
  let o: unknown;
  try {
    o = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fromBase64Url(token)));
  } catch {
    return null;
  }
  if (o === null || typeof o !== "object" || Array.isArray(o)) return null;
  const t = o as Record<string, unknown>;
  if (
    t.v !== 1 || typeof t.scope !== "string" || typeof t.store !== "string" || typeof t.key !== "string" ||
    typeof t.as_of !== "number" || !Number.isSafeInteger(t.as_of) || t.as_of < 0 || t.key === ""
  ) {
    return null;
  }
  return { scope: t.scope, store: t.store, asOf: t.as_of, key: t.key };
}
