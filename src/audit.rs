//! The audit log at the edge: handlers note what a cache operation is about to do (who, on which
//! workspace, which scopes); when the answer is known the edge turns each note into a record with
//! the result and the request id, and sends the records to the backend after the response
//! (`ctx.wait_until`), so auditing never slows or changes an answer. A record that cannot be
//! written is logged and counted in `/metrics` (`audit.failed`).

use crate::config::Upstreams;
use crate::layers::backend;
use contact_list_cache_core::audit::{Actor, AuditRecord, Operation, Outcome};
use contact_list_cache_core::query::{BoardId, WorkspaceId};
use serde::Serialize;
use std::cell::Cell;
use std::rc::Rc;
use worker::Context;

thread_local! {
    static WRITTEN: Cell<u64> = const { Cell::new(0) };
    static FAILED: Cell<u64> = const { Cell::new(0) };
}

/// A cache operation noted by its handler, before its result is known.
#[derive(Debug, Clone)]
pub struct Note {
    pub actor: Actor,
    pub workspace: WorkspaceId,
    pub operation: Operation,
    pub scopes: Vec<String>,
    /// The boards touched; none for every board of the workspace.
    pub boards: Vec<BoardId>,
}

impl Note {
    fn record(self, status: u16, detail: Option<&str>, request_id: &str, at: u64) -> AuditRecord {
        AuditRecord {
            actor: self.actor.to_string(),
            workspace_id: self.workspace,
            operation: self.operation,
            scopes: self.scopes,
            boards: self.boards.iter().map(ToString::to_string).collect(),
            result: Outcome::of_status(status),
            status,
            request_id: request_id.to_owned(),
            at,
            detail: detail.map(str::to_owned),
        }
    }
}

/// Records of this isolate written and failed since it started.
#[derive(Debug, Serialize)]
pub struct Counts {
    pub written: u64,
    pub failed: u64,
}

pub fn counts() -> Counts {
    Counts { written: WRITTEN.with(Cell::get), failed: FAILED.with(Cell::get) }
}

/// Sends the records of `notes`, answered `status` (with the error `detail`), after the response.
pub fn send(ctx: &Context, upstreams: Option<Rc<Upstreams>>, notes: Vec<Note>, status: u16, detail: Option<&str>, request_id: &str, at: u64) {
    let records: Vec<AuditRecord> = notes.into_iter().map(|note| note.record(status, detail, request_id, at)).collect();
    let request_id = request_id.to_owned();
    ctx.wait_until(async move {
        let written = match upstreams {
            Some(upstreams) => backend::audit(&upstreams, &records).await.map_err(|err| err.to_string()),
            None => Err("the worker's upstreams are not configured".to_owned()),
        };
        match written {
            Ok(()) => WRITTEN.with(|n| n.set(n.get() + records.len() as u64)),
            Err(err) => {
                FAILED.with(|n| n.set(n.get() + records.len() as u64));
                let line = serde_json::json!({"type": "audit_failed", "requestId": request_id, "records": records.len(), "error": err});
                worker::console_error!("{line}");
            }
        }
    });
}
