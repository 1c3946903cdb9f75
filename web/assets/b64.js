// Bytes and text as Urna's protocol spells them (docs/PROTOCOL.md): standard base64 with
// padding in receipts, checkpoints and keys (RFC 4648 §4); base64url without padding in
// ballots (§5). The decoders accept only the one canonical text of each byte string, as the
// server and `urna verify-receipt` do: no missing or extra padding, no whitespace, zero
// unused bits. A decoder returns null for anything else.

const STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function encode(bytes, alphabet, pad) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  if (bytes.length - i === 1) {
    const n = bytes[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? "==" : "");
  } else if (bytes.length - i === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? "=" : "");
  }
  return out;
}

function decode(text, alphabet, pad) {
  if (typeof text !== "string") return null;
  let body = text;
  if (pad) {
    if (text.length % 4 !== 0) return null;
    body = text.replace(/={1,2}$/, "");
  }
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < body.length; i++) {
    const v = alphabet.indexOf(body[i]);
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  const bytes = out.subarray(0, j);
  // Canonical: the bytes re-encode to exactly this text (this refuses an impossible length,
  // wrong padding and non-zero unused bits in one comparison).
  return encode(bytes, alphabet, pad) === text ? bytes : null;
}

export const encodeStd = (bytes) => encode(bytes, STD, true);
export const decodeStd = (text) => decode(text, STD, true);
export const encodeUrl = (bytes) => encode(bytes, URL_SAFE, false);
export const decodeUrl = (text) => decode(text, URL_SAFE, false);

export const utf8 = (text) => new TextEncoder().encode(text);

/** Whether a string has no lone surrogate (so it has a UTF-8 form, as Rust's strings do). */
export function wellFormed(text) {
  return typeof text.isWellFormed === "function"
    ? text.isWellFormed()
    : !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}
