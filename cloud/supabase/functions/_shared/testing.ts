// Test helpers shared by the functions' *.test.ts files (never imported by an index.ts, so never
// deployed). The integration tests talk to a running local cloud: tests/cloud/run-deno-tests.sh
// starts one and exports SUPABASE_URL, SUPABASE_SERVICE_KEY and SUPABASE_DB_URL.

function required(name: string): string {
  const v = Deno.env.get(name);
  if (!v) {
    throw new Error(
      `${name} is not set: these tests need a running local cloud; run tests/cloud/run-deno-tests.sh ` +
        "(or export the lines printed by scripts/cloud-up.sh)",
    );
  }
  return v;
}

/** The local cloud's address of function `name`, its key and its database URL. */
export function localCloud(name: string) {
  return {
    get url() {
      return `${required("SUPABASE_URL")}/functions/v1/${name}`;
    },
    get key() {
      return required("SUPABASE_SERVICE_KEY");
    },
    get dbUrl() {
      return required("SUPABASE_DB_URL");
    },
  };
}
