// Ed25519 signature verification (RFC 8032 §5.1.7) in plain JavaScript with BigInt, for the
// log's checkpoint signatures. It follows the rule of the Rust verifier behind
// `urna verify-receipt` (ed25519-dalek 2's `verify`, through signed_note) exactly:
//   - the key decodes as a point (its y taken mod p, as dalek does);
//   - S < ℓ (a non-canonical S is refused);
//   - k = SHA-512(R ‖ A ‖ M) mod ℓ, over the key bytes as given;
//   - the encoding of [S]B − [k]A equals R byte for byte (cofactorless).
// Why not WebCrypto's Ed25519: older browsers lack it, and engines differ on edge cases;
// this gives one answer in every browser, the same as the command line's. Only public data
// is handled here (no secret, so no constant-time concern). Voters' ballots are signed
// with WebCrypto (web/assets/vote.js), never here.

const P = 2n ** 255n - 19n;
/** The order ℓ of the base point. */
export const L = 2n ** 252n + 27742317777372353535851937790883648493n;

const mod = (a, m = P) => {
  const r = a % m;
  return r >= 0n ? r : r + m;
};

function pow(base, exp) {
  let result = 1n;
  let b = mod(base);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = mod(result * b);
    b = mod(b * b);
    e >>= 1n;
  }
  return result;
}

const inv = (a) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const D2 = mod(2n * D);
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

// Points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z (RFC 8032 §5.1.4).
const IDENTITY = [0n, 1n, 1n, 0n];
const BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
const BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;
const BASE = [BX, BY, 1n, mod(BX * BY)];

function add([X1, Y1, Z1, T1], [X2, Y2, Z2, T2]) {
  const a = mod((Y1 - X1) * (Y2 - X2));
  const b = mod((Y1 + X1) * (Y2 + X2));
  const c = mod(T1 * D2 * T2);
  const d = mod(Z1 * 2n * Z2);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function multiply(point, scalar) {
  let result = IDENTITY;
  let q = point;
  let k = scalar;
  while (k > 0n) {
    if (k & 1n) result = add(result, q);
    q = add(q, q);
    k >>= 1n;
  }
  return result;
}

const negate = ([X, Y, Z, T]) => [mod(-X), Y, Z, mod(-T)];

function littleEndian(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/** The point a 32-byte encoding names, or null (RFC 8032 §5.1.3, with dalek's leniency). */
export function decodePoint(bytes) {
  if (bytes.length !== 32) return null;
  const n = littleEndian(bytes);
  const sign = n >> 255n;
  const y = mod(n & ((1n << 255n) - 1n));
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  const v3 = mod(v * v * v);
  let x = mod(u * v3 * pow(u * v3 * v3 * v, (P - 5n) / 8n));
  const vxx = mod(v * x * x);
  if (vxx === mod(-u)) {
    x = mod(x * SQRT_M1);
  } else if (vxx !== u) {
    return null;
  }
  if ((x & 1n) !== sign) x = mod(-x);
  return [x, y, 1n, mod(x * y)];
}

function encodePoint([X, Y, Z]) {
  const zInv = inv(Z);
  const x = mod(X * zInv);
  let n = mod(Y * zInv) | ((x & 1n) << 255n);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** Whether `signature` (64 bytes) is a valid Ed25519 signature of `message` by `publicKey`. */
export async function verify(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const a = decodePoint(publicKey);
  if (a === null) return false;
  const r = signature.subarray(0, 32);
  const s = littleEndian(signature.subarray(32));
  if (s >= L) return false;
  const input = new Uint8Array(64 + message.length);
  input.set(r, 0);
  input.set(publicKey, 32);
  input.set(message, 64);
  const k = mod(littleEndian(new Uint8Array(await crypto.subtle.digest("SHA-512", input))), L);
  const check = add(multiply(BASE, s), multiply(negate(a), k));
  const encoded = encodePoint(check);
  let diff = 0;
  for (let i = 0; i < 32; i++) diff |= encoded[i] ^ r[i];
  return diff === 0;
}
