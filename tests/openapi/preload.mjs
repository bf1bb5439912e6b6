// Preloaded into every e2e test process (`node --import`, tests/run.mjs): every answer a test
// receives from a worker is checked against docs/openapi.yaml (tests/openapi/validate.mjs), errors
// included, so the document and the worker cannot drift apart.
//
// Which answers are the worker's: those from the stack's worker (CONTACT_LIST_CACHE_STACK) and
// from every worker a test starts through scripts/stack (startMiniflare announces its URL here),
// whatever the path; and, through any proxy, an answer carrying `X-Request-ID` to a path the
// document describes (the backend, the gateway and PostgREST send no `X-Request-ID`).
//
// A violation fails the test twice over: the `fetch` that received it throws, naming it, and the
// process exits non-zero at the end with the list of every violation it saw (so a test that
// catches fetch's errors cannot hide one).
import { OpenApi } from "./validate.mjs";

const api = new OpenApi();
const workers = new Set();
globalThis[Symbol.for("contact-list-cache.workers")] = workers;
try {
  const shared = JSON.parse(process.env.CONTACT_LIST_CACHE_STACK ?? "null");
  if (shared?.urls?.worker) workers.add(new URL(shared.urls.worker).origin);
} catch {
  // No stack: only the X-Request-ID rule applies.
}

const violations = [];
let checked = 0;

/** Whether the answer to `url` came from a worker. */
function fromWorker(url, headers) {
  return workers.has(url.origin) || (headers.has("x-request-id") && api.documents(url.pathname));
}

/**
 * Checks one answer; answers its problems (recorded for the exit report). `headers` is a
 * `Headers`, `body` the body as text, or null when there is none to read.
 */
export function checkAnswer(method, target, status, headers, body) {
  const url = new URL(target);
  if (!fromWorker(url, headers)) return [];
  checked += 1;
  const problems = api.check({ method: method.toUpperCase(), path: url.pathname, status, headers, body });
  violations.push(...problems);
  return problems;
}

/** An error naming the violations, thrown where the answer was received. */
export class OpenApiViolation extends Error {
  constructor(problems) {
    super(`the answer does not match docs/openapi.yaml:\n  ${problems.join("\n  ")}`);
    this.name = "OpenApiViolation";
  }
}

globalThis[Symbol.for("contact-list-cache.openapi")] = { checkAnswer, OpenApiViolation };

const original = globalThis.fetch;
globalThis.fetch = async function fetchCheckedAgainstOpenApi(input, init) {
  const response = await original(input, init);
  const target = input instanceof Request ? input.url : String(input instanceof URL ? input.href : input);
  const method = init?.method ?? (input instanceof Request ? input.method : "GET");
  let url;
  try {
    url = new URL(target);
  } catch {
    return response;
  }
  if (!fromWorker(url, response.headers)) return response;
  let body = null;
  if (method.toUpperCase() !== "HEAD") {
    try {
      body = await response.clone().text();
    } catch {
      return response; // aborted or cut by the test (or by a fault it injects): nothing to check
    }
  }
  const problems = checkAnswer(method, url.href, response.status, response.headers, body);
  if (problems.length) throw new OpenApiViolation(problems);
  return response;
};

process.on("exit", () => {
  if (process.env.OPENAPI_REPORT) process.stderr.write(`openapi: ${checked} worker answers checked in ${process.argv[1] ?? "this process"}\n`);
  if (violations.length === 0) return;
  const unique = [...new Set(violations)];
  process.stderr.write(`\n${unique.length} worker answer(s) do not match docs/openapi.yaml:\n  ${unique.join("\n  ")}\n`);
  process.exitCode = 1;
});
