// Verifying a receipt with nothing but the log's verifier key: the checks of
// `urna verify-receipt` (src/audit/receipt.rs), in the same order, with the same limits and
// the same error kinds, so the browser and the command line agree on every receipt
// (tests/pages_browser.rs runs both on the same receipts, valid and tampered).
//
//   receipt  {"index": N, "entry": "<base64>", "tlog_proof": "<c2sp.org/tlog-proof@v1>"}
//   1. entry is canonical standard base64                            → Entry
//   2. the tlog-proof parses (c2sp.org/tlog-proof@v1)                 → Proof
//   3. its index is the receipt's                                     → IndexMismatch
//   4. the verifier key parses (signed-note, Ed25519)                 → Key
//   5. the checkpoint is a signed note, signed by that key            → Signature
//   6. the checkpoint body has origin, size, root                     → Checkpoint
//   7. its origin is the key's name (C2SP tlog-checkpoint)            → Origin
//   8. the RFC 6962 inclusion proof leads from the entry to the root  → Inclusion
//
// No I/O here and no DOM: the pages and the Node tests import it as it is.

import { concat, decodeStd, equal, sha256, utf8, wellFormed } from "./b64.js";
import * as ed25519 from "./ed25519.js";

/** Longest tlog-proof accepted (bytes), as the command line. */
export const MAX_PROOF_BYTES = 64 * 1024;
/** An inclusion proof in a tree of at most 2^64 leaves has at most 64 hashes. */
export const MAX_PROOF_HASHES = 64;
/** signed_note's limits on a note. */
const MAX_NOTE_BYTES = 1_000_000;
const MAX_NOTE_SIGNATURES = 100;
const U64_MAX = 2n ** 64n - 1n;

/** Why a receipt does not verify: `kind` is the Rust `ReceiptError` variant (or `Json`). */
export class ReceiptError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "ReceiptError";
    this.kind = kind;
  }
}

const fail = (kind, message) => {
  throw new ReceiptError(kind, message);
};

/** A canonical decimal u64 (no sign, no leading zero), as a BigInt, or null. */
function decimal(text) {
  if (text === undefined || !/^(0|[1-9][0-9]*)$/.test(text)) return null;
  const n = BigInt(text);
  return n <= U64_MAX ? n : null;
}

/** Rust's `char::is_whitespace` (Unicode White_Space), which JavaScript's \s is not. */
const RUST_WHITESPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** signed_note's rule for a key name: not empty, no whitespace, no '+'. */
const validKeyName = (name) => name.length > 0 && !RUST_WHITESPACE.test(name) && !name.includes("+");

/** A receipt's JSON text, parsed as the command line does (exactly the three members). */
export function parseReceipt(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail("Json", `not a receipt: ${e.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    fail("Json", "not a receipt: not a JSON object");
  }
  for (const key of Object.keys(value)) {
    if (!["index", "entry", "tlog_proof"].includes(key)) fail("Json", `not a receipt: unknown member "${key}"`);
  }
  const { index, entry, tlog_proof: tlogProof } = value;
  if (!Number.isSafeInteger(index) || index < 0) {
    fail("Json", "not a receipt: index must be a non-negative integer");
  }
  for (const [name, member] of [["entry", entry], ["tlog_proof", tlogProof]]) {
    if (typeof member !== "string" || !wellFormed(member)) fail("Json", `not a receipt: ${name} must be a string`);
  }
  return { index, entry, tlog_proof: tlogProof };
}

/** Parses tlog-proof text (c2sp.org/tlog-proof@v1). */
export function parseTlogProof(text) {
  const bad = (m) => fail("Proof", `malformed tlog-proof: ${m}`);
  if (utf8(text).length > MAX_PROOF_BYTES) bad("too long");
  const blank = text.indexOf("\n\n");
  if (blank < 0) bad("no empty line before the checkpoint");
  const lines = text.slice(0, blank).split("\n");
  const checkpoint = text.slice(blank + 2);
  if (lines[0] !== "c2sp.org/tlog-proof@v1") bad("first line is not c2sp.org/tlog-proof@v1");
  let at = 1;
  let line = lines[at++];
  if (line === undefined) bad("no index line");
  let extra = null;
  if (line.startsWith("extra ")) {
    extra = decodeStd(line.slice("extra ".length));
    if (extra === null) bad("extra is not base64");
    line = lines[at++];
    if (line === undefined) bad("no index line");
  }
  const index = line.startsWith("index ") ? decimal(line.slice("index ".length)) : null;
  if (index === null) bad("bad index line");
  const path = [];
  for (; at < lines.length; at++) {
    if (path.length === MAX_PROOF_HASHES) bad("too many proof hashes");
    const hash = decodeStd(lines[at]);
    if (hash === null || hash.length !== 32) bad("proof line is not a base64 hash");
    path.push(hash);
  }
  return { extra, index, path, checkpoint };
}

/** A signed-note verifier key, `<name>+<8 hex key id>+<base64(0x01 ‖ Ed25519 key)>`. */
export async function parseVerifierKey(vkey) {
  const format = () => fail("Key", "malformed verifier key");
  if (typeof vkey !== "string") format();
  const plus = vkey.indexOf("+");
  if (plus < 0) format();
  const name = vkey.slice(0, plus);
  const rest = vkey.slice(plus + 1);
  const plus2 = rest.indexOf("+");
  if (plus2 < 0) format();
  const id16 = rest.slice(0, plus2);
  const key = decodeStd(rest.slice(plus2 + 1));
  if (!/^[0-9a-fA-F]{8}$/.test(id16) || key === null || !validKeyName(name) || key.length === 0) format();
  const id = parseInt(id16, 16);
  if (id !== (await keyId(name, key))) fail("Key", "malformed verifier key: invalid verifier ID");
  if (key[0] !== 1) fail("Key", "malformed verifier key: unknown verifier algorithm");
  const publicKey = key.subarray(1);
  if (publicKey.length !== 32 || ed25519.decodePoint(publicKey) === null) format();
  return { name, id, publicKey };
}

/** signed-note key id: the first 4 bytes of SHA-256(name ‖ "\n" ‖ key), big-endian. */
async function keyId(name, key) {
  const h = await sha256(concat(utf8(`${name}\n`), key));
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

const hex8 = (id) => id.toString(16).padStart(8, "0");

/** Parses a signed note as signed_note's `Note::from_bytes` does. */
function parseNote(note) {
  const malformed = () => fail("Signature", "checkpoint signature does not verify: malformed note");
  if (utf8(note).length > MAX_NOTE_BYTES || /[\u0000-\u0009\u000b-\u001f]/.test(note)) malformed();
  const blank = note.lastIndexOf("\n\n");
  if (blank < 0 || !note.endsWith("\n")) malformed();
  const text = `${note.slice(0, blank)}\n`;
  const signatures = [];
  for (const line of note.slice(blank + 2, -1).split("\n")) {
    if (!line.startsWith("\u2014 ")) malformed();
    const body = line.slice(2);
    const space = body.indexOf(" ");
    if (space < 0) malformed();
    const name = body.slice(0, space);
    const b64 = body.slice(space + 1);
    const bytes = decodeStd(b64);
    if (bytes === null || b64.length === 0 || bytes.length < 5 || !validKeyName(name)) malformed();
    signatures.push({
      name,
      id: ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0,
      sig: bytes.subarray(4),
    });
    if (signatures.length > MAX_NOTE_SIGNATURES) malformed();
  }
  return { text, signatures };
}

/**
 * Verifies a signed checkpoint (C2SP tlog-checkpoint on signed-note) with the verifier key
 * and returns its body `{origin, size, root}`. Signatures by other keys are ignored
 * (cosignatures); one by this key must be there, and every one by it must verify.
 */
export async function verifyCheckpoint(note, vkey) {
  const key = await parseVerifierKey(vkey);
  const { text, signatures } = parseNote(note);
  const message = utf8(text);
  let verified = false;
  for (const s of signatures) {
    if (s.name !== key.name || s.id !== key.id || verified) continue;
    if (!(await ed25519.verify(key.publicKey, message, s.sig))) {
      fail("Signature", `checkpoint signature does not verify: invalid signature for key ${s.name}+${hex8(s.id)}`);
    }
    verified = true;
  }
  if (!verified) fail("Signature", "checkpoint signature does not verify: note has no verifiable signatures");
  const lines = text.split("\n");
  const bad = (m) => fail("Checkpoint", `malformed checkpoint: ${m}`);
  const origin = lines[0];
  if (!origin) bad("no origin");
  const size = decimal(lines[1]);
  if (size === null) bad("bad size line");
  const root = decodeStd(lines[2] ?? "");
  if (root === null || root.length !== 32) bad("bad root line");
  if (origin !== key.name) {
    fail("Origin", `checkpoint origin ${JSON.stringify(origin)} is not the key's name ${JSON.stringify(key.name)}`);
  }
  return { origin, size, root, keyName: key.name };
}

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ entry). */
export const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

/** RFC 9162 §2.1.3.2: whether `path` proves `leaf` at `index` in the tree of `size` leaves with `root`. */
export async function verifyInclusion(index, size, leaf, path, root) {
  if (index >= size) return false;
  let fnode = index;
  let snode = size - 1n;
  let r = leaf;
  for (const p of path) {
    if (snode === 0n) return false;
    if ((fnode & 1n) === 1n || fnode === snode) {
      r = await nodeHash(p, r);
      if ((fnode & 1n) === 0n) {
        while ((fnode & 1n) === 0n && fnode !== 0n) {
          fnode >>= 1n;
          snode >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fnode >>= 1n;
    snode >>= 1n;
  }
  return snode === 0n && equal(r, root);
}

/**
 * Verifies a receipt (a parsed object or its JSON text) with the verifier key. Returns
 * `{index, entry, checkpoint: {origin, size, root}, checkpointNote}`; throws ReceiptError.
 */
export async function verifyReceipt(receipt, vkey) {
  const r = typeof receipt === "string" ? parseReceipt(receipt) : receipt;
  const entry = decodeStd(r.entry);
  if (entry === null) fail("Entry", "entry is not canonical standard base64");
  const proof = parseTlogProof(r.tlog_proof);
  if (proof.index !== BigInt(r.index)) {
    fail("IndexMismatch", `receipt index ${r.index} differs from tlog-proof index ${proof.index}`);
  }
  const checkpoint = await verifyCheckpoint(proof.checkpoint, vkey);
  if (!(await verifyInclusion(proof.index, checkpoint.size, await leafHash(entry), proof.path, checkpoint.root))) {
    fail("Inclusion", "the inclusion proof does not lead to the checkpoint's root");
  }
  return { index: proof.index, entry, checkpoint, checkpointNote: proof.checkpoint };
}

/**
 * What a logged entry says (docs/PROTOCOL.md §8), for showing a voter their ballot. Not a
 * check: the receipt's proof covers the bytes, whatever they decode to. Null if the bytes
 * are neither a ballot nor a manifest.
 */
export function decodeEntry(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const take = (n) => {
    if (at + n > bytes.length) throw new RangeError("short entry");
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  const u8 = () => take(1)[0];
  const u16 = () => view.getUint16(take(2).byteOffset - bytes.byteOffset);
  const u64 = () => view.getBigUint64(take(8).byteOffset - bytes.byteOffset);
  const ascii = (b) => String.fromCharCode(...b);
  try {
    const tag = u8();
    if (tag === 0x42) {
      const receivedMs = u64();
      const election = ascii(take(u8()));
      const alg = { 1: "ed25519", 2: "p256" }[u8()];
      if (alg === undefined) return null;
      const voter = take(alg === "ed25519" ? 32 : 65);
      const seq = u64();
      const payload = take(u16());
      const sig = take(64);
      return at === bytes.length ? { kind: "ballot", receivedMs, election, alg, voter, seq, payload, sig } : null;
    }
    if (tag === 0x4d) {
      const election = ascii(take(u8()));
      const rollSha256 = take(32);
      const revote = { 0: "none", 1: "last" }[u8()];
      const flags = u8();
      const opensMs = u64();
      const closesMs = u64();
      const verifierKey = ascii(take(u16()));
      return at === bytes.length
        ? {
            kind: "manifest",
            election,
            rollSha256,
            revote,
            opensMs: flags & 1 ? opensMs : null,
            closesMs: flags & 2 ? closesMs : null,
            verifierKey,
          }
        : null;
    }
    return null;
  } catch {
    return null;
  }
}
