// Exact totals without counting the board: every list's `total` comes from a counter the
// database keeps in the same transaction as each write. After every kind of write, concurrent
// writes and a rolled-back transaction, every filter's total equals SQL's count(*): through
// PostgREST with row-level security (the worker), on plain PostgreSQL (the backend's fallback)
// and in the counts endpoint. And the migration counts the rows a database already holds.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ROOT, newStack, psql } from "../../scripts/stack.mjs";
import { FILTERS, filterSql, seed, sql, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(4);
const BOARD = seed.board(4, 3);
const OTHER_BOARD = seed.board(4, 2);
const ME = seed.user(4); // member of workspace 4

/** What SQL counts for each filter on `board`, as `me` sees it. */
function sqlTotals(board) {
  const totals = {};
  for (const filter of FILTERS) {
    const [[n]] = sql(`select count(*) from contacts c where c.workspace_id = '${WS}' and c.board_id = '${board}' and ${filterSql(filter, ME)}`);
    totals[filter] = Number(n);
  }
  return totals;
}

/** Each filter's total through the worker (PostgREST, as the caller), read afresh. */
async function workerTotals(board) {
  const totals = {};
  for (const filter of FILTERS) {
    const res = await fetch(`${stack.urls.worker}/api/boards/${board}/contacts?filter=${filter}&pageSize=1`, {
      headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS, "Cache-Control": "no-cache" },
    });
    assert.equal(res.status, 200, filter);
    totals[filter] = (await res.json()).data.pagination.total;
  }
  return totals;
}

/** Each filter's total through the backend's fallback (PostgreSQL directly), read afresh. */
async function backendTotals(board) {
  const totals = {};
  for (const filter of FILTERS) {
    const res = await fetch(`${stack.urls.backend}/api/boards/${board}/contacts?filter=${filter}&pageSize=1`, {
      headers: { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, "X-Workspace-ID": WS, Authorization: `Bearer ${tokenFor(ME)}`, "Cache-Control": "no-cache" },
    });
    assert.equal(res.status, 200, filter);
    totals[filter] = (await res.json()).data.pagination.total;
  }
  return totals;
}

/** The counts endpoint's totals, read afresh. */
async function countsTotals() {
  const res = await fetch(`${stack.urls.backend}/api/workspaces/${WS}/counts`, {
    headers: { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, Authorization: `Bearer ${tokenFor(ME)}`, "Cache-Control": "no-cache" },
  });
  assert.equal(res.status, 200);
  return (await res.json()).data.counts;
}

async function assertExact(what) {
  for (const board of [BOARD, OTHER_BOARD]) {
    const expected = sqlTotals(board);
    assert.deepEqual(await workerTotals(board), expected, `${what}: the worker on ${board}`);
    assert.deepEqual(await backendTotals(board), expected, `${what}: the backend on ${board}`);
  }
  const workspace = {};
  for (const filter of FILTERS) {
    const [[n]] = sql(`select count(*) from contacts c where c.workspace_id = '${WS}' and ${filterSql(filter, ME)}`);
    workspace[filter] = Number(n);
  }
  assert.deepEqual(await countsTotals(), workspace, `${what}: the counts`);
}

const someContact = (board, extra = "true") => sql(`select id from contacts where board_id = '${board}' and ${extra} order by created_at desc, id desc limit 1`)[0][0];

describe("list totals equal count(*) after every kind of write", () => {
  const inserted = [];
  after(() => inserted.length && sql(`delete from contacts where id in (${inserted.map((id) => `'${id}'`).join(",")})`));

  test("as seeded", async () => {
    await assertExact("as seeded");
  });

  test("inserts and deletes", async () => {
    const [[a]] = sql(`insert into contacts (workspace_id, board_id, name, conversation_status, priority, assigned_user_id) values ('${WS}', '${BOARD}', 'Totals A', 'Open', 'high', '${ME}') returning id`);
    const [[b]] = sql(`insert into contacts (workspace_id, board_id, name, conversation_status, archived) values ('${WS}', '${BOARD}', 'Totals B', 'Closed', true) returning id`);
    inserted.push(a, b);
    sql(`insert into contact_favorites (user_id, contact_id, workspace_id) values ('${ME}', '${a}', '${WS}')`);
    await assertExact("after inserts");
    sql(`delete from contacts where id = '${someContact(BOARD, "not archived")}'`);
    sql(`delete from contacts where id = '${a}'`); // with its favorite
    await assertExact("after deletes");
  });

  test("status, priority, assignee and archive changes, and a move to another board", async () => {
    const id = someContact(BOARD, "not archived");
    sql(`insert into contact_favorites (user_id, contact_id, workspace_id) values ('${ME}', '${id}', '${WS}') on conflict do nothing`);
    sql(`update contacts set conversation_status = case conversation_status when 'Open' then 'Closed' else 'Open' end where id = '${id}'`);
    sql(`update contacts set priority = case when priority = 'low' then 'medium' else 'low' end where id = '${id}'`);
    sql(`update contacts set priority = null where id = '${someContact(BOARD, "priority is not null")}'`);
    sql(`update contacts set assigned_user_id = '${ME}' where id = '${someContact(BOARD, "assigned_user_id is null")}'`);
    sql(`update contacts set assigned_user_id = null where id = '${id}'`);
    await assertExact("after field changes");
    sql(`update contacts set archived = true where id = '${id}'`);
    await assertExact("after archiving a favorite");
    sql(`update contacts set archived = false where id = '${id}'`);
    sql(`update contacts set board_id = '${OTHER_BOARD}', board_column_id = null where id = '${id}'`);
    await assertExact("after a move");
  });

  test("concurrent writes and a rolled-back transaction", async () => {
    const ids = sql(`select id from contacts where board_id = '${BOARD}' and not archived order by created_at desc, id desc limit 24`).map(([id]) => id);
    await Promise.all(ids.map((id, i) => psql(stack.ports.postgres, {
      command: i % 3 === 0
        ? `update contacts set conversation_status = case conversation_status when 'Open' then 'Closed' else 'Open' end, priority = 'high' where id = '${id}'`
        : i % 3 === 1
          ? `update contacts set assigned_user_id = case when assigned_user_id is null then '${ME}'::uuid else null end where id = '${id}'`
          : `update contacts set archived = true where id = '${id}'`,
    })));
    await psql(stack.ports.postgres, { command: `begin; update contacts set priority = 'low', archived = true where board_id = '${BOARD}'; insert into contacts (workspace_id, board_id, name) values ('${WS}', '${BOARD}', 'Never'); rollback;` });
    await assertExact("after concurrent writes and a rollback");
  });
});

describe("the migration", () => {
  const pieces = newStack();
  after(() => pieces.stop());

  test("counts the rows a database already holds", async () => {
    const pg = await pieces.startPostgres();
    const migrations = readdirSync(join(ROOT, "supabase", "migrations")).filter((f) => f.endsWith(".sql")).sort();
    const counts = migrations.findIndex((f) => f.endsWith("_list_counts.sql"));
    assert.ok(counts > 0, "a migration keeps the list counts");
    for (const file of migrations.slice(0, counts)) await psql(pg.port, { file: join(ROOT, "supabase", "migrations", file) });
    await psql(pg.port, { file: join(ROOT, "supabase", "seed.sql"), vars: { contacts: 3000 } });
    for (const file of migrations.slice(counts)) await psql(pg.port, { file: join(ROOT, "supabase", "migrations", file) });
    const mismatches = await psql(pg.port, {
      command: `with truth as (
          select c.board_id, l.list, count(*) as n from contacts c,
            unnest(case when c.archived then array['archived'] else array['all', lower(c.conversation_status)]
              || case when c.priority is null then '{}'::text[] else array[c.priority || '_priority'] end
              || case when c.assigned_user_id is null then array['unassigned'] else array['assigned:' || c.assigned_user_id] end end) as l(list)
          group by 1, 2
          union all
          select c.board_id, 'favorites:' || f.user_id, count(*) from contact_favorites f join contacts c on c.id = f.contact_id where not c.archived group by 1, 2)
        select count(*) from truth t full join contact_list_counts k on k.board_id = t.board_id and k.list = t.list
        where coalesce(t.n, 0) <> coalesce(k.total, 0)`,
    });
    assert.equal(mismatches.trim(), "0");
    const [rows] = (await psql(pg.port, { command: "select count(*) from contact_list_counts" })).trim().split("\n");
    assert.ok(Number(rows) > 15 * 8, `counters for every board's lists (${rows})`);
  });
});
