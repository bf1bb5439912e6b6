// Signs Supabase-style HS256 JWTs for local development and tests (never for production).
import { createHmac, sign } from "node:crypto";

const base64url = (value) => Buffer.from(value).toString("base64url");

/** Signs `claims` with `secret` (HS256). */
export function signJwt(claims, secret) {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(JSON.stringify(claims));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

/** A signed-in user's access token, as Supabase Auth issues it. */
export function userToken(secret, { sub, email, ttlSeconds = 3600, ...extra }) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(
    { aud: "authenticated", role: "authenticated", sub, email, iat: now, exp: now + ttlSeconds, ...extra },
    secret,
  );
}

/** The project's anon key: a long-lived token with role `anon`. */
export function anonKey(secret) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iss: "supabase", role: "anon", iat: now, exp: now + 10 * 365 * 86400 }, secret);
}

/** Signs `claims` with an ES256 or RS256 private key (`{alg, kid, pem}`). */
export function signJwtWith(claims, { alg, kid, pem }) {
  const header = base64url(JSON.stringify({ alg, typ: "JWT", kid }));
  const payload = base64url(JSON.stringify(claims));
  const options = alg === "ES256" ? { key: pem, dsaEncoding: "ieee-p1363" } : pem;
  const signature = sign("sha256", Buffer.from(`${header}.${payload}`), options).toString("base64url");
  return `${header}.${payload}.${signature}`;
}
