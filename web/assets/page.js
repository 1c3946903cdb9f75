// What every page shares: building DOM nodes (text only, never HTML strings: the pages run
// under Trusted Types), calling the server's API, and showing its answers.

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const byId = (id) => document.getElementById(id);

/** Replaces a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
}

/** Shows a one-line status: kind is "ok", "bad", "wait" or "info". */
export function status(node, kind, ...children) {
  node.className = `status ${kind}`;
  node.setAttribute("role", kind === "bad" ? "alert" : "status");
  fill(node, ...children);
  node.hidden = false;
}

/** A definition list from [term, description, id of the description (optional)] rows. */
export function facts(rows) {
  return el("dl", { class: "facts" }, rows.flatMap(([term, desc, id]) => [el("dt", {}, term), el("dd", { id }, desc)]));
}

/** Text that may be long and is meant to be copied (keys, hashes). */
export const code = (text) => el("code", { class: "copy" }, text);

/**
 * Calls the API. Returns {status, ok, json, text, retryAfter}; a network failure throws.
 * Error answers are the contract's JSON {"error": code, "message": ...} (docs/PROTOCOL.md §6).
 */
export async function api(path, init = {}) {
  const response = await fetch(path, { cache: "no-store", ...init });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return {
    status: response.status,
    ok: response.ok,
    json,
    text,
    retryAfter: response.headers.get("retry-after"),
  };
}

/** "403 not_eligible: the voter is not on the roll" from an error answer. */
export function describeError(answer) {
  const code = answer.json?.error ?? "unknown";
  const message = answer.json?.message ?? answer.text.slice(0, 200);
  const retry = answer.retryAfter ? ` (retry after ${answer.retryAfter} s)` : "";
  return `${answer.status} ${code}: ${message}${retry}`;
}

/** The election manifest (GET /v1/election), fetched once per page. */
let electionPromise = null;
export function election() {
  electionPromise ??= api("/v1/election").then((a) => {
    if (!a.ok || a.json === null) throw new Error(`GET /v1/election: ${describeError(a)}`);
    return a.json;
  });
  return electionPromise;
}

/** Where the election's window stands now. */
export function windowState(e, now = Date.now()) {
  const opens = e.opens_at ? Date.parse(e.opens_at) : null;
  const closes = e.closes_at ? Date.parse(e.closes_at) : null;
  if (opens !== null && now < opens) return { open: false, text: "not open yet" };
  if (closes !== null && now >= closes) return { open: false, text: "closed" };
  return { open: true, text: "open" };
}

export const when = (rfc3339) => (rfc3339 ? `${new Date(rfc3339).toLocaleString()} (${rfc3339})` : "not set");

/** Shows the nav link to /vote only where this server serves it (server.pages = "demo"). */
export async function showVoteLink() {
  const link = byId("nav-vote");
  if (!link) return;
  try {
    const r = await fetch("/vote", { method: "HEAD", cache: "no-store" });
    link.hidden = !r.ok;
  } catch {
    link.hidden = true;
  }
}
