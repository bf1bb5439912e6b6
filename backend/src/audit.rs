//! The audit log in PostgreSQL (`public.cache_audit_log`): records written in one statement,
//! old ones pruned with each write (the retention is `AUDIT_RETENTION_DAYS`), and one
//! workspace's records read for its owners and admins only, the role checked in the same
//! statement.

use crate::db::{Database, DbError};
use contact_list_cache_core::audit::AuditRecord;
use contact_list_cache_core::query::{UserId, WorkspaceId};
use contact_list_cache_core::sql::SqlQuery;

/// Inserts every record of a JSON array, then deletes those older than `$2` days.
const WRITE: &str = "
with written as (
  insert into public.cache_audit_log (at, workspace_id, actor, operation, scopes, boards, result, status, request_id, detail)
  select to_timestamp(r.at / 1000.0), r.workspace_id, r.actor, r.operation, r.scopes, r.boards, r.result, r.status, r.request_id, r.detail
  from jsonb_to_recordset($1::text::jsonb) as r(
    at bigint, workspace_id uuid, actor text, operation text, scopes text[], boards uuid[],
    result text, status smallint, request_id text, detail text)
  returning 1
), pruned as (
  delete from public.cache_audit_log where at < now() - make_interval(days => $2::text::int) returning 1
)
select (select count(*) from written), (select count(*) from pruned)";

/// Whether `$2` is an owner or admin of workspace `$1` (null for a non-member), and the page of
/// its records newest first (`$3` of them, older than record `$4` unless it is empty), as a JSON
/// array.
const READ: &str = "
with caller as (
  select role in ('owner', 'admin') as admin
  from public.workspace_members
  where workspace_id = $1::text::uuid and user_id = $2::text::uuid
), page as (
  select l.id, l.at, l.actor, l.operation, l.workspace_id, l.scopes, l.boards, l.result, l.status, l.request_id, l.detail
  from public.cache_audit_log l
  where l.workspace_id = $1::text::uuid
    and (select admin from caller)
    and (nullif($4::text, '') is null or (l.at, l.id) < (select c.at, c.id from public.cache_audit_log c where c.id = nullif($4::text, '')::int8 and c.workspace_id = $1::text::uuid))
  order by l.at desc, l.id desc
  limit $3::text::int8
)
select (select admin from caller),
  coalesce((select json_agg(json_build_object(
    'id', p.id,
    'at', to_char(p.at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
    'actor', p.actor, 'operation', p.operation, 'workspace_id', p.workspace_id, 'scopes', p.scopes,
    'boards', p.boards, 'result', p.result, 'status', p.status, 'request_id', p.request_id, 'detail', p.detail
  ) order by p.at desc, p.id desc) from page p), '[]')::text";

/// What one write did.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    pub written: i64,
    pub pruned: i64,
}

/// What a read found: whether the caller is an admin of the workspace (`None`: not a member),
/// and the page of records as a JSON array.
#[derive(Debug)]
pub struct Page {
    pub admin: Option<bool>,
    pub records: String,
}

/// Writes `records` (validated) and prunes what is older than `retention_days`.
pub async fn write(db: &Database, records: &[AuditRecord], retention_days: u32) -> Result<Written, DbError> {
    let params = vec![serde_json::to_string(records)?, retention_days.to_string()];
    let row = db.query_one(&SqlQuery { text: WRITE.to_owned(), params, custom_plan: false }).await?;
    Ok(Written { written: row.try_get(0)?, pruned: row.try_get(1)? })
}

/// One page of `workspace`'s records for `caller`.
pub async fn read(db: &Database, workspace: &WorkspaceId, caller: &UserId, limit: u32, before: Option<i64>) -> Result<Page, DbError> {
    let before = before.map(|id| id.to_string()).unwrap_or_default();
    let params = vec![workspace.to_string(), caller.to_string(), limit.to_string(), before];
    let row = db.query_one(&SqlQuery { text: READ.to_owned(), params, custom_plan: false }).await?;
    Ok(Page { admin: row.try_get(0)?, records: row.try_get(1)? })
}
