// `/`: the election's status, from the public API only. The current checkpoint's signature
// is checked here, with the verifier key the manifest names.

import { encodeStd } from "./b64.js";
import { byId, code, el, election, facts, fill, showVoteLink, status, when, windowState } from "./page.js";
import { verifyCheckpoint } from "./receipt.js";

async function main() {
  showVoteLink().then(() => {
    byId("link-vote").hidden = byId("nav-vote").hidden;
  });
  let e;
  try {
    e = await election();
  } catch (err) {
    status(byId("load"), "bad", `Cannot load the election: ${err.message}`);
    return;
  }
  byId("load").hidden = true;
  fill(byId("election-id"), e.election);
  fill(byId("protocol"), e.protocol);
  document.title = `Urna — ${e.election}`;
  const state = windowState(e);
  fill(
    byId("election-facts"),
    facts([
      ["Election", e.election, "election-name"],
      ["Voting", `${state.text} now`, "window-state"],
      ["Opens", when(e.opens_at)],
      ["Closes", when(e.closes_at)],
      ["Voters on the roll", String(e.voters), "voters"],
      ["Revotes", e.revote === "last" ? `allowed, the last counts (at most ${e.max_ballots_per_voter} ballots)` : "not allowed: one ballot per voter"],
      ["Roll SHA-256", code(e.roll_sha256)],
      ["Protocol", e.protocol],
    ]),
  );
  byId("election").hidden = false;

  fill(
    byId("log-facts"),
    facts([
      ["Log origin", e.log.origin],
      ["Verifier key", code(e.log.verifier_key), "verifier-key"],
    ]),
  );
  byId("log").hidden = false;
  fill(
    byId("audit-command"),
    `urna audit --vkey '${e.log.verifier_key}' --roll roll.txt --url ${location.origin}/`,
  );

  const answer = await fetch(e.log.checkpoint, { cache: "no-store" }).catch(() => null);
  const note = answer && answer.ok ? await answer.text() : null;
  if (note === null) {
    status(byId("checkpoint-status"), "bad", "Cannot fetch the current checkpoint.");
    return;
  }
  try {
    const cp = await verifyCheckpoint(note, e.log.verifier_key);
    const ballots = cp.size > 0n ? cp.size - 1n : 0n;
    status(
      byId("checkpoint-status"),
      "ok",
      "Current checkpoint: ",
      el("strong", { id: "checkpoint-size" }, String(cp.size)),
      ` entries (the manifest and ${ballots} ballot${ballots === 1n ? "" : "s"}), root `,
      code(encodeStd(cp.root)),
      ". Its signature verifies with the key above (checked in this browser).",
    );
  } catch (err) {
    status(byId("checkpoint-status"), "bad", `The current checkpoint does NOT verify: ${err.message}`);
  }
}

main();
