// Judging answers during continuous writes: the prober keeps, for every contact it renamed, the
// names it had and when each was committed (its own writes, timed by PostgreSQL's clock), and
// an answer is judged by the time its request was sent: a contact it shows under a name that a
// later write had replaced more than the allowance (the staleness bound, plus the location's round
// trip) before the request was sent is an answer older than the bound. Contacts the prober never
// wrote tell nothing and are left out; an answer showing none of them is not judged (given up:
// "no written contact in it").

/** Per contact: its names in commit order, `[{ name, at }]` (`at` of the first: -Infinity). */
export class History {
  constructor() {
    this.rows = new Map();
  }

  /** The name `id` had before the prober's first write to it (read before that write). */
  know(id, name) {
    if (!this.rows.has(id)) this.rows.set(id, [{ name, at: -Infinity }]);
  }

  /** `id` renamed to `name`, committed at `at` (ms). */
  wrote(id, name, at) {
    this.rows.get(id).push({ name, at });
  }

  /**
   * Judges an answer's contacts (`[{ id, name }]`) for a request sent at `sentAt`, allowed to be
   * `allowanceMs` behind: `{ judged, late: [{ id, shown, replacedAgoMs }], unknown }` where
   * `judged` is how many written contacts it shows, `late` those shown under a name replaced
   * more than the allowance before `sentAt`, `unknown` those under a name the prober never gave.
   */
  judge(contacts, sentAt, allowanceMs) {
    let judged = 0;
    let unknown = 0;
    const late = [];
    for (const { id, name } of contacts) {
      const names = this.rows.get(id);
      if (!names) continue;
      judged++;
      // The last entry with this name (a name is never given twice by the prober).
      const at = names.findLastIndex((entry) => entry.name === name);
      if (at < 0) {
        unknown++;
        continue;
      }
      const replaced = names[at + 1];
      if (replaced && replaced.at < sentAt - allowanceMs) late.push({ id, shown: name, replacedAgoMs: sentAt - replaced.at });
    }
    return { judged, late, unknown };
  }

  /** Whether an answer shows `id` as written at `at` or later. */
  showsSince(contacts, id, at) {
    const names = this.rows.get(id);
    const shown = contacts.find((c) => c.id === id);
    if (!shown || !names) return false;
    const index = names.findLastIndex((entry) => entry.name === shown.name);
    return index >= 0 && names[index].at >= at;
  }
}

export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** p50, p95, p99 and max of `values` (null when there are none). */
export function spread(values) {
  return values.length ? { count: values.length, p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99), max: Math.max(...values) } : null;
}
