// Drives headless Chromium through Urna's pages against a running `urna serve` with
// `pages = "demo"` (tests/pages_browser.rs starts it and this script, and checks the log
// afterwards). One scenario after another; the first failure stops the run (exit 1).
//
//   status   `/` shows the election, the voters, the verifier key and a verified checkpoint
//   vote     `/vote` signs an Ed25519 ballot with WebCrypto, gets 201 and a receipt
//   verify   `/verify` checks that receipt against the published key; a tampered one fails
//   p256     a P-256 voter votes, revotes with the suggested seq, and a stale seq gets 409
//   cors     a page on an allowed origin can submit and read; on another origin it cannot
//   plain    http:// on the TLS port shows the 400 that says to use https
//   console  no CSP or Trusted Types violation, no uncaught error on Urna's pages
//
// Environment: URNA_URL (https://127.0.0.1:<port>/), URNA_VKEY, URNA_ELECTION, URNA_VOTERS
// (voters.jsonl), URNA_ALLOWED_ORIGIN and URNA_DENIED_ORIGIN (two origins of a page server
// the test runs, the first in the server's cors_origins), CHROMIUM (default
// /usr/bin/chromium), URNA_SCREENSHOTS (a directory: write status.png, vote.png, verify.png),
// NODE_EXTRA_CA_CERTS (the server's certificate, for this script's own fetch).

import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { decodeStd, encodeStd, utf8 } from "../../web/assets/b64.js";
import { ballotBody, importVoterKeys, parseVoterLine, signedMessage } from "../../web/assets/ballot.js";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const BASE = env("URNA_URL");
const VKEY = env("URNA_VKEY");
const ELECTION = env("URNA_ELECTION");
const VOTER_LINES = readFileSync(env("URNA_VOTERS"), "utf8").trim().split("\n");
const ALLOWED = env("URNA_ALLOWED_ORIGIN");
const DENIED = env("URNA_DENIED_ORIGIN");
const SHOTS = process.env.URNA_SCREENSHOTS;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
/** Bound on any one wait in the browser (a loaded 2-core machine is slow, not stuck). */
const WAIT_MS = 30_000;

const voters = VOTER_LINES.map((line) => ({ line, ...parseVoterLine(line) }));
const ed25519Voters = voters.filter((v) => v.alg === "ed25519");
const p256Voters = voters.filter((v) => v.alg === "p256");

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
}

/** Console errors and uncaught exceptions of Urna's own pages. */
const problems = [];
function watch(page) {
  page.on("pageerror", (e) => problems.push(`${page.url()}: uncaught ${e.message}`));
  page.on("console", (m) => {
    // Chrome logs every 4xx/5xx fetch as "Failed to load resource"; the scenarios cause
    // some on purpose and check them themselves.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      problems.push(`${page.url()}: console: ${m.text()}`);
    }
  });
  return page;
}

async function text(page, selector) {
  return (await page.locator(selector).textContent({ timeout: WAIT_MS })) ?? "";
}

/** Fills /vote for `voter` and casts; returns the answer's status and the status line. */
async function cast(page, voter, { choice = "Option A", seq } = {}) {
  await page.fill("#voter-line", voter.line);
  if (seq !== undefined) await page.fill("#seq", String(seq));
  await page.check(`input[name=choice][value="${choice}"]`);
  await page.evaluate(() => document.getElementById("cast-status")?.removeAttribute("data-status"));
  await page.click("#cast");
  await page.locator("#cast-status[data-status]").waitFor({ timeout: WAIT_MS });
  return {
    status: await page.getAttribute("#cast-status", "data-status"),
    line: await text(page, "#cast-status"),
  };
}

/** A signed ballot body made here, in Node, with the same module the page uses. */
async function signedBody(voter, seq, choice) {
  const payload = utf8(`urna demo ballot: ${choice}`);
  const message = await signedMessage(ELECTION, voter.alg, voter.voter, seq, payload);
  const keys = await importVoterKeys(voter);
  return ballotBody(ELECTION, voter.alg, voter.voter, seq, payload, await keys.sign(utf8(message)));
}

/** Runs in a page: POSTs a ballot and GETs the manifest; a CORS refusal is an error. */
async function fromPage(page, body) {
  return page.evaluate(
    async ({ base, body }) => {
      const out = {};
      try {
        const r = await fetch(`${base}v1/ballots`, { method: "POST", headers: { "content-type": "application/json" }, body });
        out.post = { status: r.status, json: await r.json() };
      } catch (e) {
        out.post = { error: String(e) };
      }
      try {
        const r = await fetch(`${base}v1/election`);
        out.get = { status: r.status, json: await r.json() };
      } catch (e) {
        out.get = { error: String(e) };
      }
      return out;
    },
    { base: BASE, body },
  );
}

const scenarios = [];
const scenario = (name, run) => scenarios.push({ name, run });
const state = {};

scenario("status: / shows the election, voters, verifier key and a verified checkpoint", async (ctx) => {
  const page = watch(await ctx.newPage());
  await page.goto(BASE);
  await page.locator("#checkpoint-status.ok").waitFor({ timeout: WAIT_MS });
  expect((await text(page, "#election-id")) === ELECTION, "election id");
  expect((await text(page, "#voters")) === String(voters.length), "voters on the roll");
  expect((await text(page, "#verifier-key")) === VKEY, "verifier key as published");
  expect((await text(page, "#checkpoint-size")) === "1", "a fresh log holds the manifest only");
  await page.locator("#nav-vote").waitFor({ state: "visible", timeout: WAIT_MS });
  await shot(page, "status.png");
  await page.close();
});

scenario("vote: /vote signs an Ed25519 ballot with WebCrypto, gets 201 and a receipt that verifies", async (ctx) => {
  const page = watch(await ctx.newPage());
  state.votePage = page;
  await page.goto(`${BASE}vote`);
  await page.locator("#window.ok").waitFor({ timeout: WAIT_MS });
  const answer = await cast(page, ed25519Voters[0], { choice: "Option B" });
  expect(answer.status === "201", `expected 201, got ${answer.status}: ${answer.line}`);
  await page.locator("#receipt-check.ok").waitFor({ timeout: WAIT_MS });
  state.index = await text(page, "#receipt-index");
  expect(state.index === "1", `the first ballot is entry 1, got ${state.index}`);
  await shot(page, "vote.png");
});

scenario("verify: /verify checks that receipt against the published key", async () => {
  const page = state.votePage;
  await page.click("#to-verify");
  await page.waitForURL(`${BASE}verify`, { timeout: WAIT_MS });
  await page.locator("#receipt-source").waitFor({ state: "visible", timeout: WAIT_MS });
  await page.fill("#vkey", VKEY);
  await page.click("#verify");
  await page.locator("#verify-status[data-kind]").waitFor({ timeout: WAIT_MS });
  const kind = await page.getAttribute("#verify-status", "data-kind");
  expect(kind === "ok", `expected ok, got ${kind}: ${await text(page, "#verify-status")}`);
  expect((await text(page, "#verified-index")) === state.index, "the receipt's entry");
  await page.locator("#log-now").waitFor({ state: "visible", timeout: WAIT_MS });
  await shot(page, "verify.png");
});

scenario("verify: a receipt whose entry was changed does NOT verify", async () => {
  const page = state.votePage;
  const receipt = JSON.parse(await page.inputValue("#receipt"));
  const entry = decodeStd(receipt.entry);
  entry[entry.length - 1] ^= 1;
  receipt.entry = encodeStd(entry);
  await page.fill("#receipt", JSON.stringify(receipt));
  await page.evaluate(() => document.getElementById("verify-status").removeAttribute("data-kind"));
  await page.click("#verify");
  await page.locator("#verify-status[data-kind]").waitFor({ timeout: WAIT_MS });
  expect((await page.getAttribute("#verify-status", "data-kind")) === "Inclusion", "tampered entry");
  expect((await text(page, "#verify-status")).includes("does NOT verify"), "says so");
  await page.close();
});

scenario("p256: a P-256 voter votes, revotes with the suggested seq, and a stale seq gets 409", async (ctx) => {
  const page = watch(await ctx.newPage());
  await page.goto(`${BASE}vote`);
  const voter = p256Voters[0];
  let answer = await cast(page, voter, { choice: "Option C" });
  expect(answer.status === "201", `first ballot: ${answer.status} ${answer.line}`);
  await page.reload();
  await page.fill("#voter-line", voter.line);
  expect((await page.inputValue("#seq")) === "2", "the page proposes seq 2 after seq 1");
  answer = await cast(page, voter, { choice: "Option A" });
  expect(answer.status === "201", `revote: ${answer.status} ${answer.line}`);
  answer = await cast(page, voter, { seq: 1 });
  expect(answer.status === "409" && answer.line.includes("stale_seq"), `stale: ${answer.status} ${answer.line}`);
  await page.fill("#voter-line", "{not json");
  await page.click("#cast");
  await page.locator("#voter-status.bad").waitFor({ timeout: WAIT_MS });
  expect((await text(page, "#voter-status")).includes("not a JSON line"), "a bad key line is named");
  await page.close();
});

scenario("cors: a page on an allowed origin can submit and read; on another origin it cannot", async (ctx) => {
  // Both origins are one small page server of the test's on loopback (localhost and
  // 127.0.0.1 are two origins): a page on a public origin could not reach a loopback
  // server at all (Chrome's local network access rules), whatever CORS says.
  const allowed = await ctx.newPage();
  await allowed.goto(`${ALLOWED}/`);
  const ok = await fromPage(allowed, await signedBody(ed25519Voters[1], 1, "Option A"));
  expect(ok.post.status === 201, `allowed origin's ballot: ${JSON.stringify(ok.post)}`);
  expect(ok.get.status === 200 && ok.get.json.election === ELECTION, `allowed origin's read: ${JSON.stringify(ok.get)}`);
  await allowed.close();

  const denied = await ctx.newPage();
  await denied.goto(`${DENIED}/`);
  const body = await signedBody(p256Voters[1], 1, "Option B");
  const no = await fromPage(denied, body);
  expect(no.post.error?.includes("TypeError"), `another origin's ballot must fail in the browser: ${JSON.stringify(no.post)}`);
  expect(no.get.error?.includes("TypeError"), `another origin's read must be hidden: ${JSON.stringify(no.get)}`);
  await denied.close();
  // The browser never sent that ballot (its preflight was refused): sent now, outside a
  // browser, it is new (201), not a repeat of a logged one (200).
  const direct = await fetch(`${BASE}v1/ballots`, { method: "POST", headers: { "content-type": "application/json" }, body });
  expect(direct.status === 201, `the same ballot sent directly: ${direct.status} ${await direct.text()}`);
});

scenario("plain: http:// on the TLS port shows the 400 that says to use https", async (ctx) => {
  const page = await ctx.newPage();
  const plain = BASE.replace(/^https:/, "http:");
  const response = await page.goto(plain);
  expect(response.status() === 400, `status ${response.status()}`);
  const body = await page.textContent("body");
  expect(body.includes("https_required") && body.includes(`use ${BASE}`), body);
  await page.close();
});

scenario("console: no CSP or Trusted Types violation, no uncaught error on Urna's pages", async () => {
  expect(problems.length === 0, problems.join("\n"));
});

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Keep http:// as typed (the plain scenario); Chrome would otherwise try https first.
      "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
    ],
  });
  let failed = 0;
  try {
    // The server's certificate is self-signed for the demo; the browser is told to accept
    // it (WebCrypto needs a secure context, which https gives).
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 960, height: 900 } });
    ctx.setDefaultTimeout(WAIT_MS);
    for (const s of scenarios) {
      const started = Date.now();
      try {
        await s.run(ctx);
        console.log(`ok - ${s.name} (${Date.now() - started} ms)`);
      } catch (e) {
        failed = 1;
        console.log(`not ok - ${s.name}\n${e.stack ?? e}`);
        break;
      }
    }
  } finally {
    await browser.close();
  }
  process.exitCode = failed;
}

await main();
