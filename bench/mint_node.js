// Mints the same Twilio access token N times with twilio-node (npm `twilio`) and prints the rate
// as one machine-readable line, for bench/token-throughput.
//
//   node bench/mint_node.js [N] [--token] [--key-object]
// prints `impl=twilio-node n=N seconds=S tokens_per_s=R`; `--token` prints one token instead.
// `--key-object` passes the secret as a crypto KeyObject (impl=twilio-node-keyobject): with a
// string, jsonwebtoken 9 first tries it as a PEM private key (crypto.createPrivateKey), which
// fails and costs most of each token's time; a KeyObject skips that probe.
"use strict";

const crypto = require("crypto");
const { AccessToken } = require("twilio").jwt;

// The same inputs as shared/examples/mint_throughput.rs and bench/mint_python.py.
const ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef";
const API_KEY_SID = "SK0123456789abcdef0123456789abcdef";
const API_KEY_SECRET = "bench-api-key-secret-0123456789abcdef";
const SERVICE_SID = "IS0123456789abcdef0123456789abcdef";
const IDENTITY = "alice@example.com";
const TTL_SECONDS = 3600;

const args = process.argv.slice(2);
const keyObject = args.includes("--key-object");
const secret = keyObject ? crypto.createSecretKey(Buffer.from(API_KEY_SECRET, "utf8")) : API_KEY_SECRET;
const implName = keyObject ? "twilio-node-keyobject" : "twilio-node";

// Per token, what a handler does per request with the helper library: build, grant, sign.
function mint() {
  const token = new AccessToken(ACCOUNT_SID, API_KEY_SID, secret, { identity: IDENTITY, ttl: TTL_SECONDS });
  token.addGrant(new AccessToken.ChatGrant({ serviceSid: SERVICE_SID }));
  return token.toJwt();
}

if (args.includes("--token")) {
  process.stdout.write(mint() + "\n");
  process.exit(0);
}
const counts = args.filter((a) => !a.startsWith("--"));
const n = counts.length ? Number(counts[0]) : 20000;
if (!Number.isInteger(n) || n <= 0) {
  process.stderr.write("usage: mint_node.js [N > 0] [--token] [--key-object]\n");
  process.exit(2);
}

// Warm up: let V8 optimise the hot path before timing.
for (let i = 0; i < Math.min(n, 10000); i++) mint();
let bytes = 0;
const started = process.hrtime.bigint();
for (let i = 0; i < n; i++) bytes += mint().length;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (bytes === 0) process.exit(1); // keeps the loop's result alive
process.stdout.write(`impl=${implName} n=${n} seconds=${seconds.toFixed(6)} tokens_per_s=${Math.round(n / seconds)}\n`);
