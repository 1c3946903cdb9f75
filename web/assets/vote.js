// `/vote` (server.pages = "demo"): a demo voting client. It signs a ballot (docs/PROTOCOL.md
// §1–3) with WebCrypto for a demo voter whose key line is pasted in, submits it, and checks
// the receipt it gets with web/assets/receipt.js. The payload is the choice in clear text:
// a real client encrypts it with the election's scheme.

import { utf8 } from "./b64.js";
import { ballotBody, importVoterKeys, MAX_SEQ, parseVoterLine, signedMessage } from "./ballot.js";
import { api, byId, describeError, election, facts, fill, status, windowState } from "./page.js";
import { verifyReceipt } from "./receipt.js";

/** The receipt this tab's /verify page fills in. */
const FROM_VOTE = "urna.receipt";
const seqKey = (voter) => `urna.seq.${voter}`;

let lastBody = null;

async function submit(body) {
  lastBody = body;
  byId("resend").hidden = true;
  const castStatus = byId("cast-status");
  status(castStatus, "wait", "Sending…");
  byId("result").hidden = false;
  let answer;
  try {
    answer = await api("/v1/ballots", { method: "POST", headers: { "content-type": "application/json" }, body });
  } catch (err) {
    status(castStatus, "bad", `The ballot may not have arrived (${err.message}). Send the same ballot again: if it was logged, you get its receipt.`);
    byId("resend").hidden = false;
    return;
  }
  castStatus.dataset.status = String(answer.status);
  if (answer.status !== 201 && answer.status !== 200) {
    const hint = {
      stale_seq: " A later ballot of this voter is logged: use a higher submission number.",
      conflict: " Another ballot with this submission number is logged: use a higher one.",
      already_voted: " This election takes one ballot per voter.",
      not_eligible: " This key is not on the roll.",
    }[answer.json?.error] ?? "";
    status(castStatus, "bad", `Refused: ${describeError(answer)}.${hint}`);
    // After a server fault or a timeout, the same bytes are safe to resend (PROTOCOL.md §6).
    byId("resend").hidden = !(answer.status >= 500 || answer.status === 408 || answer.status === 429);
    return;
  }
  const receipt = answer.json;
  status(
    castStatus,
    "ok",
    answer.status === 201
      ? `Logged (201 Created): your ballot is entry ${receipt.index} of the log.`
      : `Already logged (200 OK): this exact ballot is entry ${receipt.index}; here is its receipt.`,
  );
  sessionStorage.setItem(FROM_VOTE, answer.text);
  const sent = JSON.parse(body);
  localStorage.setItem(seqKey(sent.voter), String(sent.seq));
  const download = byId("download");
  if (download.href.startsWith("blob:")) URL.revokeObjectURL(download.href);
  download.href = URL.createObjectURL(new Blob([answer.text], { type: "application/json" }));
  download.hidden = false;
  byId("to-verify").hidden = false;
  const e = await election();
  const check = byId("receipt-check");
  try {
    const v = await verifyReceipt(answer.text, e.log.verifier_key);
    fill(
      byId("receipt-facts"),
      facts([
        ["Entry", String(v.index), "receipt-index"],
        ["In checkpoint", `${v.checkpoint.origin}, ${v.checkpoint.size} entries`, "receipt-size"],
      ]),
    );
    status(check, "ok", "The receipt verifies with the log's verifier key (checked in this browser). Keep it: it proves your ballot is in the log.");
  } catch (err) {
    status(check, "bad", `The receipt does NOT verify: ${err.message}`);
  }
}

async function cast(event) {
  event.preventDefault();
  const voterStatus = byId("voter-status");
  voterStatus.hidden = true;
  const button = byId("cast");
  button.disabled = true;
  try {
    const e = await election();
    let v;
    try {
      v = parseVoterLine(byId("voter-line").value.trim());
    } catch (err) {
      status(voterStatus, "bad", err.message);
      return;
    }
    const seq = Number(byId("seq").value);
    if (!Number.isInteger(seq) || seq < 1 || seq > MAX_SEQ) {
      status(voterStatus, "bad", "The submission number must be a whole number from 1 to 2^53 − 1.");
      return;
    }
    const choice = document.querySelector("input[name=choice]:checked")?.value ?? "Option A";
    const payload = utf8(`urna demo ballot: ${choice}`);
    if (payload.length > e.max_payload_bytes) {
      status(voterStatus, "bad", `The ballot is larger than the election's ${e.max_payload_bytes} bytes.`);
      return;
    }
    let keys;
    try {
      keys = await importVoterKeys(v);
    } catch (err) {
      status(voterStatus, "bad", `Cannot use this key: ${err.message}`);
      return;
    }
    const message = await signedMessage(e.election, v.alg, v.voter, seq, payload);
    const sig = await keys.sign(utf8(message));
    if (!(await keys.verify(utf8(message), sig))) {
      status(voterStatus, "bad", "The secret key does not match the voter's public key.");
      return;
    }
    status(voterStatus, "ok", `Signed as ${v.alg} voter ${v.voter.slice(0, 12)}…`);
    fill(byId("signed-message"), message);
    const body = ballotBody(e.election, v.alg, v.voter, seq, payload, sig);
    fill(byId("sent-body"), body);
    await submit(body);
  } catch (err) {
    status(voterStatus, "bad", `Something failed: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

/** Proposes the next submission number for a pasted voter (the last one used here + 1). */
function suggestSeq() {
  try {
    const v = parseVoterLine(byId("voter-line").value.trim());
    const last = Number(localStorage.getItem(seqKey(v.voter)));
    byId("seq").value = String(Number.isInteger(last) && last > 0 ? last + 1 : 1);
  } catch {
    // Not a whole line yet.
  }
}

async function main() {
  byId("vote-form").addEventListener("submit", cast);
  byId("voter-line").addEventListener("input", suggestSeq);
  byId("resend").addEventListener("click", () => lastBody && submit(lastBody));
  try {
    const e = await election();
    fill(byId("election-id"), `in ${e.election}`);
    const w = windowState(e);
    status(byId("window"), w.open ? "ok" : "bad", `Voting is ${w.text}. ${e.voters} voters are on the roll.`);
  } catch (err) {
    status(byId("window"), "bad", `Cannot load the election: ${err.message}`);
  }
}

main();
