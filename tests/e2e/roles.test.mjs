// A token signed with the project's secret is not enough: it must be a signed-in user's
// (`role: authenticated`). PostgREST gives any other role none of a workspace's contacts, so no
// route that reads or invalidates a workspace may answer such a token, not even from a cache.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { seed, signJwt, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const ME = seed.user(1); // member of workspace 1
const QUERY = "filter=open&page=3";

const now = Math.floor(Date.now() / 1000);
// Everything a member's token carries, the workspace claim included, but the role.
const claims = { sub: ME, aud: "authenticated", iat: now, exp: now + 3600, app_metadata: { workspace_ids: [WS] } };
const secret = stack.secrets.SUPABASE_JWT_SECRET;
const TOKENS = {
  anon: signJwt({ ...claims, role: "anon" }, secret),
  service_role: signJwt({ ...claims, role: "service_role" }, secret),
  "no role": signJwt(claims, secret),
};

const worker = (path, token, init = {}) =>
  fetch(`${stack.urls.worker}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "X-Workspace-ID": WS, "Content-Type": "application/json", ...init.headers },
  });
const list = (token) => worker(`/api/boards/${BOARD}/contacts?${QUERY}`, token);

describe("tokens that are not a signed-in user's", () => {
  test("PostgREST gives an anon token none of the workspace's contacts", async () => {
    const res = await fetch(`${stack.urls.supabase}/rest/v1/contacts?select=id&workspace_id=eq.${WS}&limit=5`, {
      headers: { apikey: stack.secrets.SUPABASE_ANON_KEY, Authorization: `Bearer ${TOKENS.anon}` },
    });
    const body = await res.json();
    assert.ok(res.status === 401 || (res.status === 200 && body.length === 0), `${res.status} ${JSON.stringify(body)}`);
  });

  test("a page cached for the member is refused to the same user's other tokens on every route", async () => {
    const member = tokenFor(ME);
    let cached;
    for (let i = 0; i < 50 && cached !== "HIT/KV"; i++) {
      const res = await list(member);
      assert.equal(res.status, 200);
      cached = `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;
      if (cached !== "HIT/KV") await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(cached, "HIT/KV", "the member's page is in KV");

    for (const [what, token] of Object.entries(TOKENS)) {
      const answers = {
        list: await list(token),
        counts: await worker(`/api/workspaces/${WS}/counts`, token),
        invalidate: await worker("/api/cache/invalidate", token, { method: "POST", body: JSON.stringify({ workspace_id: WS, filter: "open" }) }),
        warm: await worker("/api/cache/warm", token, { method: "POST", body: JSON.stringify({ board_id: BOARD }) }),
      };
      for (const [route, res] of Object.entries(answers)) {
        assert.equal(res.status, 401, `${what} on ${route}`);
        const body = await res.json();
        assert.equal(body.error.code, "unauthorized", `${what} on ${route}`);
        assert.equal(res.headers.get("x-cache-status"), null, `${what} on ${route}`);
      }
    }
    // The member's page is still cached: the refused invalidations changed nothing.
    const again = await list(member);
    assert.equal(`${again.headers.get("x-cache-status")}/${again.headers.get("x-cache-layer")}`, "HIT/KV");
  });
});
