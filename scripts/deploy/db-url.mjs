// Checks the database URL a deploy step is given, by the name of its environment variable (the
// value is read here, never passed on a command line or printed): `node db-url.mjs SUPABASE_DB_URL`.
// Refuses, naming the variable and what to use instead:
//   - Supabase's transaction pooler (port 6543): migrations need a session (SET, advisory locks,
//     prepared statements), which a transaction-mode pooler does not keep;
//   - on GitHub's hosted runners (GITHUB_ACTIONS=true), the direct host db.<ref>.supabase.co: it
//     resolves to IPv6 only (unless the project bought the IPv4 add-on: SUPABASE_DB_IPV4=true),
//     and those runners have no IPv6. Use the session pooler
//     (postgres://postgres.<ref>:<password>@aws-0-<region>.pooler.supabase.com:5432/postgres).
const name = process.argv[2];
const value = process.env[name] ?? "";
const fail = (message) => {
  console.error(`[deploy] FAILED: ${name} ${message}`);
  process.exit(1);
};
if (!value) fail("is not set");
let url;
try {
  url = new URL(value);
} catch {
  fail("is not a URL (postgres://user:password@host:port/database)");
}
if (!["postgres:", "postgresql:"].includes(url.protocol)) fail(`has scheme ${url.protocol} (postgres: or postgresql:)`);
const port = url.port || "5432";
if (port === "6543") {
  fail("points at port 6543, Supabase's transaction pooler: use the session pooler (port 5432 of <region>.pooler.supabase.com) or the direct connection");
}
if (process.env.GITHUB_ACTIONS === "true" && /^db\.[a-z0-9]+\.supabase\.co$/i.test(url.hostname) && process.env.SUPABASE_DB_IPV4 !== "true") {
  fail("is the direct connection (db.<ref>.supabase.co), which is IPv6 only, and GitHub's hosted runners have no IPv6: use the session pooler URL (Supabase › Connect › Session pooler), or set SUPABASE_DB_IPV4=true if the project has the IPv4 add-on");
}
console.error(`[deploy] ${name}: ${url.hostname}:${port} (${url.username || "no user"})`);
