// Shared by every end-to-end test: the running stack (started by tests/run.mjs) and helpers.
import { userToken, signJwt } from "../../scripts/jwt.mjs";
import { psql } from "../../scripts/stack.mjs";
export { seed } from "../../scripts/seed-ids.mjs";

if (!process.env.CONTACT_LIST_CACHE_STACK) {
  throw new Error("run the end-to-end tests through `node tests/run.mjs`, which starts the stack");
}

/** URLs, secrets and tokens of the stack under test. */
export const stack = JSON.parse(process.env.CONTACT_LIST_CACHE_STACK);

/** Runs a query as the database superuser and returns its rows as arrays of strings. */
export function sql(query) {
  const out = psql({ port: stack.ports.postgres }, { command: query });
  return out.split("\n").filter(Boolean).map((line) => line.split("|"));
}

/** An access token for the user with id `sub`, signed with the project's JWT secret. */
export function tokenFor(sub, extra = {}) {
  return userToken(stack.secrets.SUPABASE_JWT_SECRET, { sub, email: `${sub}@example.test`, ...extra });
}

export { signJwt };
