// Parsers of the bench commands' options (bench/run.mjs, bench/fairness.mjs): each names the
// option in its error.

/** A duration (`15s`, `500ms`, `1m`; a bare number is seconds) in seconds. */
export function seconds(text, name) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(text).trim());
  if (!m) throw new Error(`--${name}: expected a duration like 15s, 500ms or 1m, got ${text}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] ?? "s"];
}

/** A number above 0. */
export function positive(text, name) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${text}`);
  return n;
}

/** The local date of `d` (YYYY-MM-DD): the name of a run's result files. */
export function localDate(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
