// `/verify`: checks a receipt in the browser (web/assets/receipt.js, the checks of
// `urna verify-receipt`), then says how the log has grown since, from its current
// checkpoint verified with the same key.

import { encodeStd, encodeUrl, hex, sha256 } from "./b64.js";
import { byId, code, election, facts, fill, showVoteLink, status } from "./page.js";
import { decodeEntry, ReceiptError, verifyCheckpoint, verifyReceipt } from "./receipt.js";

/** The receipt /vote left for this tab, if any. */
const FROM_VOTE = "urna.receipt";

async function describeBallot(entry) {
  const e = decodeEntry(entry);
  if (e === null) return [["Entry", `${entry.length} bytes (not a ballot this page can read)`]];
  if (e.kind === "manifest") return [["Entry", `the election manifest of ${e.election}`]];
  return [
    ["Ballot of", `${e.alg} voter ${encodeUrl(e.voter)}`],
    ["Election", e.election],
    ["Submission number", String(e.seq)],
    ["Received", new Date(Number(e.receivedMs)).toISOString()],
    ["Payload", `${e.payload.length} bytes, SHA-256 ${hex(await sha256(e.payload))}`],
  ];
}

async function check(event) {
  event?.preventDefault();
  const button = byId("verify");
  const outcome = byId("outcome");
  const vkey = byId("vkey").value.trim();
  const text = byId("receipt").value.trim();
  outcome.hidden = false;
  byId("log-now").hidden = true;
  fill(byId("verify-details"));
  if (!vkey || !text) {
    status(byId("verify-status"), "bad", "Paste the verifier key and the receipt first.");
    return;
  }
  button.disabled = true;
  status(byId("verify-status"), "wait", "Checking…");
  let v;
  try {
    v = await verifyReceipt(text, vkey);
  } catch (err) {
    const why = err instanceof ReceiptError ? err.message : `unexpected error: ${err}`;
    status(byId("verify-status"), "bad", `The receipt does NOT verify: ${why}`);
    byId("verify-status").dataset.kind = err.kind ?? "Error";
    button.disabled = false;
    return;
  }
  status(
    byId("verify-status"),
    "ok",
    `The receipt verifies: entry ${v.index} (${v.entry.length} bytes) is in ${v.checkpoint.origin} at tree size ${v.checkpoint.size}.`,
  );
  byId("verify-status").dataset.kind = "ok";
  fill(
    byId("verify-details"),
    facts([
      ["Entry index", String(v.index), "verified-index"],
      ["Checkpoint", `${v.checkpoint.origin}, ${v.checkpoint.size} entries`, "verified-size"],
      ["Root", code(encodeStd(v.checkpoint.root))],
      ...(await describeBallot(v.entry)),
    ]),
  );
  button.disabled = false;
  await logNow(v, vkey);
}

/** Where the log stands now: a later checkpoint must not be smaller than the receipt's. */
async function logNow(v, vkey) {
  const node = byId("log-now");
  try {
    const answer = await fetch("/log/checkpoint", { cache: "no-store" });
    if (!answer.ok) return;
    const now = await verifyCheckpoint(await answer.text(), vkey);
    if (now.size < v.checkpoint.size) {
      status(node, "bad", `This server's checkpoint now has ${now.size} entries, fewer than your receipt's ${v.checkpoint.size}: the log lost entries. Keep the receipt and report it.`);
    } else {
      status(node, "info", `This server's log has ${now.size} entries now (its current checkpoint verifies with the same key). To prove your entry is still in it, audit the log: urna audit --previous.`);
    }
  } catch {
    // A checkpoint from a server whose key is not the one pasted: nothing to compare.
  }
}

async function main() {
  showVoteLink();
  byId("verify-form").addEventListener("submit", check);
  byId("receipt-file").addEventListener("change", async (event) => {
    const file = event.target.files?.[0];
    if (!file) return;
    if (file.size > 1 << 20) {
      status(byId("verify-status"), "bad", "That file is larger than any receipt (1 MiB).");
      byId("outcome").hidden = false;
      return;
    }
    byId("receipt").value = await file.text();
    const source = byId("receipt-source");
    fill(source, `Loaded ${file.name}.`);
    source.hidden = false;
  });
  const fromVote = sessionStorage.getItem(FROM_VOTE);
  if (fromVote && !byId("receipt").value) {
    byId("receipt").value = fromVote;
    const source = byId("receipt-source");
    fill(source, "The receipt of the ballot you just cast on this site is filled in.");
    source.hidden = false;
  }
  try {
    const e = await election();
    if (!byId("vkey").value) byId("vkey").value = e.log.verifier_key;
    fill(byId("vkey-hint"), `Filled in from this server's /v1/election (${e.election}). Compare it with the key the election authority published: a receipt only proves inclusion in the log of the key you trust.`);
  } catch {
    // No election from this server: the voter pastes the key.
  }
}

main();
