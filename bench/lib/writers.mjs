// The writers bench (`node bench/run.mjs --writers`): commits per second of concurrent writers
// with change capture on and off. Each revision named by --at gets a PostgreSQL cluster of its
// own, migrated with that revision's supabase/migrations (the seed is this checkout's), made
// durable as production is (fsync, synchronous_commit and full_page_writes on: the stack runs
// without them), and measured in rounds that take turns: every cluster with its capture
// triggers on, then off (every other round in reverse order), so all figures share one sitting.
// A writer is a pgbench client running one transaction after another, each renaming one random
// seeded contact (an UPDATE that moves no list totals: only the capture triggers differ between
// on and off). "Off" disables every trigger whose function's name holds contact_list_cache. No
// consumer runs: the write path alone is measured.
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, newStack, psql, run } from "../../scripts/stack.mjs";
import { localDate, positive, seconds } from "./args.mjs";
import { machine, versions } from "./machine.mjs";

export const WRITERS_USAGE = `usage: node bench/run.mjs --writers [options]
  --clients 16          concurrent writers (pgbench -c)
  --duration 10s        measured time of each writers run
  --warmup 3s           unmeasured run before each cluster's first measured run
  --rounds 4            rounds; each measures every cluster with capture on and off; figures are the rounds' medians
  --contacts 20000      contacts seeded in each cluster
  --at tree             revisions whose migrations to measure, comma-separated: tree (this checkout) or a git rev
  --name writers        results go to <out>/<date>-<name>.md and .json
  --out bench/results`;

const log = (msg) => process.stderr.write(`[writers] ${msg}\n`);

/** The capture triggers, switched on or off as the tables' owner. */
const switchCapture = (on) => `do $$
declare t record;
begin
  for t in select tgrelid::regclass as rel, tgname from pg_trigger
           where not tgisinternal and tgfoid::regproc::text ~ 'contact_list_cache' loop
    execute format('alter table %s ${on ? "enable" : "disable"} trigger %I', t.rel, t.tgname);
  end loop;
end $$`;

/** One writer's transaction (pgbench script). */
const SCRIPT = `\\set n random(1, :rows)
update public.contacts set name = 'writer ' || :n || ' ' || :client_id where id = (select id from public.bench_writer_ids where n = :n);
`;

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      writers: { type: "boolean" },
      clients: { type: "string", default: "16" },
      duration: { type: "string", default: "10s" },
      warmup: { type: "string", default: "3s" },
      rounds: { type: "string", default: "4" },
      contacts: { type: "string", default: "20000" },
      at: { type: "string", default: "tree" },
      name: { type: "string", default: "writers" },
      out: { type: "string", default: "bench/results" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(WRITERS_USAGE);
    process.exit(0);
  }
  if (!/^[a-z0-9-]+$/.test(values.name)) throw new Error(`--name: expected lower-case letters, digits and '-', got ${values.name}`);
  return {
    clients: Math.round(positive(values.clients, "clients")),
    durationSeconds: Math.round(seconds(values.duration, "duration")),
    warmupSeconds: Math.max(1, Math.round(seconds(values.warmup, "warmup"))),
    rounds: Math.round(positive(values.rounds, "rounds")),
    contacts: Math.round(positive(values.contacts, "contacts")),
    at: values.at.split(",").map((s) => s.trim()).filter(Boolean),
    name: values.name,
    out: values.out,
  };
}

/** The migrations directory of `rev` ("tree": this checkout's) and the commit it names. */
function migrationsAt(rev) {
  if (rev === "tree") {
    const head = execFileSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["-C", ROOT, "status", "--porcelain", "supabase/migrations"], { encoding: "utf8" }).trim();
    return { dir: join(ROOT, "supabase", "migrations"), commit: `${head}${dirty ? " + uncommitted migrations" : ""}` };
  }
  const commit = execFileSync("git", ["-C", ROOT, "rev-parse", "--short", `${rev}^{commit}`], { encoding: "utf8" }).trim();
  const dir = mkdtempSync(join(tmpdir(), "writers-migrations-"));
  execFileSync("sh", ["-c", `git -C "$0" archive "$1" supabase/migrations | tar -x -C "$2"`, ROOT, commit, dir]);
  return { dir: join(dir, "supabase", "migrations"), commit };
}

/** A durable cluster migrated at `rev`, seeded, with the writers' id table. */
async function cluster(rev, contacts) {
  const { dir, commit } = migrationsAt(rev);
  const stack = newStack();
  const pg = await stack.startPostgres();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    await psql(pg.port, { file: join(dir, file) });
  }
  await psql(pg.port, { file: join(ROOT, "supabase", "seed.sql"), vars: { contacts } });
  await psql(pg.port, {
    command: "create table public.bench_writer_ids as select (row_number() over (order by id))::int as n, id from public.contacts; " +
      "alter table public.bench_writer_ids add primary key (n); analyze",
  });
  // Durable commits, as in production: restart without the stack's speed-ups.
  await run(...stack.pgCtl("-m", "fast", "-w", "stop"));
  stack.pg.opts = stack.pg.opts.replace(/-c (fsync|synchronous_commit|full_page_writes)=off/g, "-c $1=on");
  await stack.resumePostgres();
  const triggers = (await psql(pg.port, { command: "select count(*) from pg_trigger where not tgisinternal and tgfoid::regproc::text ~ 'contact_list_cache'" })).trim();
  const durable = (await psql(pg.port, { command: "select string_agg(name || '=' || setting, ', ' order by name) from pg_settings where name in ('fsync', 'synchronous_commit', 'full_page_writes')" })).trim();
  log(`${rev} (${commit}): PostgreSQL on ${pg.port}, ${triggers} capture triggers, ${durable}`);
  return { rev, commit, stack, port: pg.port, triggers: Number(triggers), durable, rows: contacts };
}

/** Commits per second of `clients` writers for `seconds` on `c`, capture on or off. */
async function measure(c, { on, clients, seconds: duration }) {
  await psql(c.port, { command: switchCapture(on) });
  const script = join(c.stack.dir, "writer.sql");
  writeFileSync(script, SCRIPT);
  const out = await run("pgbench", [
    "-n", "-c", String(clients), "-j", String(Math.min(clients, 4)), "-T", String(duration), "-f", script,
    "-D", `rows=${c.rows}`, "-h", "127.0.0.1", "-p", String(c.port), "-U", "postgres", "postgres",
  ]);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(tps)) throw new Error(`pgbench printed no tps:\n${out}`);
  if (failed > 0) throw new Error(`pgbench: ${failed} transactions failed:\n${out}`);
  return tps;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function runWriters(argv) {
  const settings = options(argv);
  const startedAt = new Date();
  const clusters = [];
  try {
    for (const rev of settings.at) clusters.push(await cluster(rev, settings.contacts));
    for (const c of clusters) {
      for (const on of [true, false]) await measure(c, { on, clients: settings.clients, seconds: settings.warmupSeconds });
    }
    const runs = clusters.flatMap((c) => [true, false].map((on) => ({ c, on, tps: [] })));
    for (let round = 0; round < settings.rounds; round++) {
      const order = round % 2 ? [...runs].reverse() : runs;
      for (const r of order) {
        r.tps.push(await measure(r.c, { on: r.on, clients: settings.clients, seconds: settings.durationSeconds }));
        log(`round ${round + 1}: ${r.c.rev} capture ${r.on ? "on" : "off"}: ${r.tps.at(-1).toFixed(0)} commits/s`);
      }
    }
    const results = clusters.map((c) => {
      const [on, off] = [true, false].map((flag) => runs.find((r) => r.c === c && r.on === flag).tps);
      return { rev: c.rev, commit: c.commit, triggers: c.triggers, durable: c.durable, on, off, medianOn: median(on), medianOff: median(off), ratio: median(on) / median(off) };
    });
    const report = { startedAt: startedAt.toISOString(), settings, machine: machine(), versions: { postgres: versions().postgres, pgbench: execFileSync("pgbench", ["--version"], { encoding: "utf8" }).trim() }, results };
    const out = resolve(ROOT, settings.out);
    mkdirSync(out, { recursive: true });
    const base = join(out, `${localDate(startedAt)}-${settings.name}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(`${base}.md`, markdown(report));
    console.log(markdown(report));
    log(`wrote ${base}.md and .json`);
  } finally {
    for (const c of clusters) await c.stack.stop();
  }
}

function markdown({ startedAt, settings, machine: m, versions: v, results }) {
  const f = (n) => Math.round(n).toLocaleString("en-US");
  const rows = results.map((r) => `| ${r.rev} (${r.commit}) | ${r.triggers} | ${f(r.medianOn)} | ${f(r.medianOff)} | **${r.ratio.toFixed(2)}×** | ${r.on.map(f).join(", ")} | ${r.off.map(f).join(", ")} |`);
  return `# Writers: commits per second with change capture on and off

${settings.clients} concurrent writers (pgbench clients), each committing one transaction after another that renames
one random contact of ${f(settings.contacts)}; ${settings.rounds} rounds of ${settings.durationSeconds} s per figure, every cluster on and
off in turn in each round (every other round in reverse), after a ${settings.warmupSeconds} s warm-up of each; figures are the rounds'
medians. Each revision's migrations in a cluster of its own, durable as production (${results[0]?.durable}).
"Off" disables the triggers whose function names hold \`contact_list_cache\` (the capture triggers column).
Started ${startedAt} with \`node bench/run.mjs --writers ${settingsArgs(settings)}\`.

| migrations at | capture triggers | on (commits/s) | off (commits/s) | on ÷ off | on, per round | off, per round |
|---|---|---|---|---|---|---|
${rows.join("\n")}

Machine: ${m.cores} cores, ${m.memoryGiB} GiB, ${m.cpu}; ${m.os}. ${v.postgres}; ${v.pgbench}.
The machine is shared with other work: compare figures of one sitting only.
`;
}

const settingsArgs = (s) => `--clients ${s.clients} --duration ${s.durationSeconds}s --warmup ${s.warmupSeconds}s --rounds ${s.rounds} --contacts ${s.contacts} --at ${s.at.join(",")} --name ${s.name}`;
