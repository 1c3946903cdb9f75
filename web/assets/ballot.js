// The ballot wire format from the client's side (docs/PROTOCOL.md §1–2): the voter key line
// of a demo electorate, the signed message, the submission body. No I/O and no DOM: the
// demo client and the Node tests import it as it is, and the tests check it byte for byte
// against tests/vectors/ballots.json.

import { decodeUrl, encodeUrl, sha256 } from "./b64.js";

/** The protocol's largest seq, 2^53 − 1 (JavaScript's largest exact integer). */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/**
 * One line of a demo electorate's voters.jsonl, `{"alg", "voter", "secret"}` (base64url:
 * the public key; the Ed25519 seed or the P-256 PKCS#8 document). Throws an Error that says
 * what is wrong.
 */
export function parseVoterLine(text) {
  let record;
  try {
    record = JSON.parse(text);
  } catch {
    throw new Error("not a JSON line: paste one whole line of voters.jsonl");
  }
  if (record === null || typeof record !== "object") throw new Error("not a voter key line");
  const { alg, voter, secret } = record;
  if (alg !== "ed25519" && alg !== "p256") throw new Error(`alg must be "ed25519" or "p256", not ${JSON.stringify(alg)}`);
  const publicKey = decodeUrl(voter);
  if (publicKey === null || publicKey.length !== (alg === "ed25519" ? 32 : 65)) {
    throw new Error(`voter is not a canonical base64url ${alg} public key`);
  }
  const secretKey = decodeUrl(secret);
  if (secretKey === null || (alg === "ed25519" && secretKey.length !== 32)) {
    throw new Error(`secret is not a canonical base64url ${alg} secret key`);
  }
  return { alg, voter, publicKey, secret, secretKey };
}

/** The five signed lines (§2), each ending in "\n". `payload` is the decoded bytes. */
export async function signedMessage(election, alg, voter, seq, payload) {
  const digest = encodeUrl(await sha256(payload));
  return `urna/ballot/v1\nelection ${election}\nvoter ${alg} ${voter}\nseq ${seq}\npayload ${digest}\n`;
}

/** The submission body (§1), members in the protocol's order. */
export function ballotBody(election, alg, voter, seq, payload, sig) {
  return JSON.stringify({ election, alg, voter, seq, payload: encodeUrl(payload), sig: encodeUrl(sig) });
}

/**
 * The voter's keys in WebCrypto: `sign(message)` gives the protocol's 64-byte signature
 * (Ed25519 R ‖ S, or ECDSA P-256 r ‖ s, the IEEE P1363 form WebCrypto produces), and
 * `verify(message, sig)` checks it with the public key (a secret that does not match the
 * voter's key fails here, before anything is sent).
 */
export async function importVoterKeys(v, subtle = globalThis.crypto?.subtle) {
  if (!subtle) throw new Error("this page needs WebCrypto, which browsers give only to https pages");
  let algorithm;
  let signer;
  if (v.alg === "p256") {
    algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
    signer = await subtle.importKey("pkcs8", v.secretKey, algorithm, false, ["sign"]);
  } else {
    algorithm = { name: "Ed25519" };
    try {
      signer = await subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", d: v.secret, x: v.voter }, algorithm, false, ["sign"]);
    } catch (err) {
      if (err.name === "NotSupportedError") {
        throw new Error("this browser's WebCrypto has no Ed25519: use a p256 voter, or a current browser");
      }
      throw err;
    }
  }
  const checker = await subtle.importKey("raw", v.publicKey, algorithm, false, ["verify"]);
  return {
    sign: async (message) => new Uint8Array(await subtle.sign(algorithm, signer, message)),
    verify: (message, signature) => subtle.verify(algorithm, checker, signature, message),
  };
}
