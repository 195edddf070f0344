// Readiness probe for scripts/cloud-up.sh: POSTs an empty batch, with the service key from
// the PROBE_KEY environment variable, to the URL given as the only argument. Exits 0 when the
// function answers 200; otherwise prints what happened and exits 1. For HTTPS with the local
// CA, run it with NODE_EXTRA_CA_CERTS=<ca.pem>.
const url = process.argv[2];
const key = process.env.PROBE_KEY ?? "";
try {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", apikey: key, authorization: `Bearer ${key}` },
    body: '{"messages":[]}',
    signal: AbortSignal.timeout(2000),
  });
  const text = await res.text();
  if (res.status === 200) process.exit(0);
  console.log(`HTTP ${res.status} ${text.slice(0, 200)}`);
} catch (err) {
  console.log(String(err?.cause ?? err));
}
process.exit(1);
