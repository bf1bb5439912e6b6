// The backend binary, started by the harness against the real Redis.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stack } from "./harness.mjs";

test("the backend is healthy with Redis up", async () => {
  const res = await fetch(`${stack.urls.backend}/health`);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.status, "healthy");
  assert.equal(body.service, "contact-list-cache-backend");
  assert.equal(body.redis.status, "up");
  assert.equal(body.redis.mode, "single");
  assert.equal(typeof body.redis.latency_ms, "number");
});

test("the backend answers unknown routes with the shared JSON error", async () => {
  const res = await fetch(`${stack.urls.backend}/api/nothing-here`);
  assert.equal(res.status, 404);
  const body = await res.json();
  assert.deepEqual(body.success, false);
  assert.equal(body.error.code, "not_found");
});
