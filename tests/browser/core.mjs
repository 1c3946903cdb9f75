// Node tests of the pages' protocol code (web/assets/*.js), no browser needed:
//   - base64: only canonical text decodes (as the server's and the CLI's decoders);
//   - ed25519: RFC 8032 §7.1 vectors, and the rule (non-canonical S, wrong R, other key);
//   - ballot: the signed message and the body, byte for byte against tests/vectors, and
//     the vectors' signatures verify (Ed25519 here, P-256 with WebCrypto);
//   - receipts: with a cases file from tests/pages_browser.rs, the verdict of
//     web/assets/receipt.js on each receipt (valid and tampered) is the one Rust's
//     `urna::audit::receipt::verify_receipt` gave, error kind included.
// Usage: node core.mjs [cases.json]. Prints one line a check and "N passed, N failed".

import { readFileSync } from "node:fs";
import { decodeStd, decodeUrl, encodeStd, encodeUrl, hex, utf8 } from "../../web/assets/b64.js";
import { ballotBody, signedMessage } from "../../web/assets/ballot.js";
import * as ed25519 from "../../web/assets/ed25519.js";
import { decodeEntry, parseReceipt, ReceiptError, verifyReceipt } from "../../web/assets/receipt.js";

let passed = 0;
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`not ok - ${name}${detail ? `: ${detail}` : ""}`);
  }
}
const fromHex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));

// ---- base64 ----
check("std round trip", encodeStd(utf8("any carnal pleas")) === "YW55IGNhcm5hbCBwbGVhcw==");
check("std decodes canonical", hex(decodeStd("YW55IGNhcm5hbCBwbGVhcw==")) === hex(utf8("any carnal pleas")));
for (const bad of ["YW55IGNhcm5hbCBwbGVhcw", "YW55IGNhcm5hbCBwbGVhcx==", "YW55 IGNh", "YW55IGNhcm5hbCBwbGVhcw=", "====", "A==="]) {
  check(`std refuses ${JSON.stringify(bad)}`, decodeStd(bad) === null);
}
check("url has no padding", encodeUrl(Uint8Array.of(0xfb, 0xff)) === "-_8");
for (const bad of ["AB", "-_8=", "+/8", "A"]) check(`url refuses ${JSON.stringify(bad)}`, decodeUrl(bad) === null);
check("url decodes AA", hex(decodeUrl("AA")) === "00");

// ---- ed25519 ----
const vectors = JSON.parse(readFileSync(new URL("../vectors/ballots.json", import.meta.url), "utf8"));
for (const [i, v] of vectors.rfc8032.entries()) {
  const pub = fromHex(v.public);
  const msg = fromHex(v.message);
  const sig = fromHex(v.signature);
  check(`rfc8032 #${i + 1} verifies`, await ed25519.verify(pub, msg, sig));
  const flipped = sig.slice();
  flipped[0] ^= 1;
  check(`rfc8032 #${i + 1} with R changed fails`, !(await ed25519.verify(pub, msg, flipped)));
  // S + ℓ is the same scalar mod ℓ; the rule refuses it (non-canonical S).
  let s = 0n;
  for (let b = 63; b >= 32; b--) s = (s << 8n) | BigInt(sig[b]);
  s += ed25519.L;
  const high = sig.slice();
  for (let b = 32; b < 64; b++) {
    high[b] = Number(s & 0xffn);
    s >>= 8n;
  }
  check(`rfc8032 #${i + 1} with S + ℓ fails`, s === 0n && !(await ed25519.verify(pub, msg, high)));
  const other = fromHex(vectors.rfc8032[(i + 1) % vectors.rfc8032.length].public);
  check(`rfc8032 #${i + 1} under another key fails`, !(await ed25519.verify(other, msg, sig)));
}
check("a non-point is not a key", ed25519.decodePoint(fromHex("02".padEnd(64, "0"))) === null);

// ---- ballots ----
const valid = vectors.cases.filter((c) => c.expect === "ok");
check("the vectors hold valid ballots of both algorithms", valid.some((c) => JSON.parse(c.body).alg === "p256") && valid.some((c) => JSON.parse(c.body).alg === "ed25519"));
for (const c of valid) {
  const b = JSON.parse(c.body);
  const payload = decodeUrl(b.payload);
  const sig = decodeUrl(b.sig);
  const message = await signedMessage(b.election, b.alg, b.voter, b.seq, payload);
  // (The high-s twins of P-256 ballots carry only their body: the same message, other sig.)
  if (c.signed_message !== undefined) {
    check(`${c.name}: signed message`, message === c.signed_message, JSON.stringify(message));
  }
  check(`${c.name}: body`, ballotBody(b.election, b.alg, b.voter, b.seq, payload, sig) === c.body);
  const key = decodeUrl(b.voter);
  let ok;
  if (b.alg === "ed25519") {
    ok = await ed25519.verify(key, utf8(message), sig);
  } else {
    const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    const pub = await crypto.subtle.importKey("raw", key, alg, false, ["verify"]);
    ok = await crypto.subtle.verify(alg, pub, sig, utf8(message));
  }
  check(`${c.name}: signature verifies`, ok);
  if (c.entry_hex === undefined) continue;
  const entry = decodeEntry(fromHex(c.entry_hex));
  check(
    `${c.name}: entry decodes to the ballot`,
    entry?.kind === "ballot" &&
      entry.election === b.election &&
      entry.alg === b.alg &&
      encodeUrl(entry.voter) === b.voter &&
      entry.seq === BigInt(b.seq) &&
      encodeUrl(entry.payload) === b.payload &&
      entry.receivedMs === BigInt(c.received_ms),
  );
}
const manifest = decodeEntry(fromHex(vectors.manifest.hex));
check("manifest decodes", manifest?.kind === "manifest" && manifest.verifierKey === vectors.manifest.log_verifier_key);

// ---- receipt JSON, as the command line reads it ----
for (const [name, text] of [
  ["unknown member", '{"index":1,"entry":"","tlog_proof":"","x":1}'],
  ["negative index", '{"index":-1,"entry":"","tlog_proof":""}'],
  ["fractional index", '{"index":1.5,"entry":"","tlog_proof":""}'],
  ["missing proof", '{"index":1,"entry":""}'],
  ["not an object", "[1]"],
  ["not JSON", "{"],
]) {
  let kind = "ok";
  try {
    parseReceipt(text);
  } catch (e) {
    kind = e instanceof ReceiptError ? e.kind : `thrown ${e}`;
  }
  check(`receipt JSON: ${name} is refused`, kind === "Json", kind);
}

// ---- receipts against Rust's verdicts ----
if (process.argv[2]) {
  const { cases } = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const kinds = new Set();
  for (const c of cases) {
    let got;
    try {
      const v = await verifyReceipt(c.receipt, c.vkey);
      got = "ok";
      if (c.index !== undefined) check(`${c.name}: index`, v.index === BigInt(c.index));
    } catch (e) {
      got = e instanceof ReceiptError ? e.kind : `thrown ${e.stack}`;
      if (e instanceof ReceiptError && c.message !== undefined && got === c.rust) {
        check(`${c.name}: message as the CLI's`, e.message === c.message, `${e.message} != ${c.message}`);
      }
    }
    kinds.add(c.rust);
    check(`${c.name}: ${c.rust}`, got === c.rust, `the browser says ${got}, urna verify-receipt says ${c.rust}`);
  }
  console.log(`receipts: ${cases.length} cases, Rust verdicts ${[...kinds].sort().join(" ")}`);
}

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
