//! One adapter per layer: KV at the edge, the backend's Redis, Supabase's PostgREST. Every call
//! has a time budget; a layer that fails or runs out of time is skipped by the caller.

pub mod backend;
pub mod kv;
pub mod supabase;

use futures_util::future::{select, Either};
use std::future::Future;
use std::time::Duration;

/// Why a layer did not answer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("no answer within {0} ms")]
    Timeout(u32),
    #[error("{0}")]
    Failed(String),
}

impl From<worker::Error> for LayerError {
    fn from(err: worker::Error) -> Self {
        Self::Failed(err.to_string())
    }
}

/// Runs `call`, giving up after `budget_ms`.
pub async fn within<T>(budget_ms: u32, call: impl Future<Output = Result<T, LayerError>>) -> Result<T, LayerError> {
    let call = std::pin::pin!(call);
    let timer = worker::Delay::from(Duration::from_millis(u64::from(budget_ms)));
    match select(call, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(LayerError::Timeout(budget_ms)),
    }
}
