//! What the driver's errors mean to a caller, and the transaction helpers that act on them.

use std::time::Duration;

use mongodb::ClientSession;
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};

use super::DUPLICATE_KEY;
use crate::repo::RepoError;

/// Commits, retrying while the outcome is unknown (the spec's UnknownTransactionCommitResult).
pub(super) async fn commit(session: &mut ClientSession) -> Result<(), mongodb::error::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match session.commit_transaction().await {
            Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && attempt < 5 => {
                backoff(attempt).await;
            }
            other => return other,
        }
    }
}

/// Sleeps a short, growing, jittered time so that conflicting writers spread out.
pub(super) async fn backoff(attempt: u32) {
    let ceiling_ms = 1u64 << attempt.min(6);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_micros(jitter % (ceiling_ms * 1000) + 100)).await;
}

/// Why an append transaction stopped: the driver failed, or the data said no.
pub(super) enum TxnError {
    Driver(mongodb::error::Error),
    Repo(RepoError),
}

impl From<mongodb::error::Error> for TxnError {
    fn from(e: mongodb::error::Error) -> Self {
        TxnError::Driver(e)
    }
}

impl From<RepoError> for TxnError {
    fn from(e: RepoError) -> Self {
        TxnError::Repo(e)
    }
}

pub(super) fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(e) => e
            .write_errors
            .iter()
            .flatten()
            .any(|e| e.code == DUPLICATE_KEY),
        _ => false,
    }
}

/// The server could not be reached or the connection broke.
pub(super) fn is_unreachable(err: &mongodb::error::Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    )
}

/// MongoDB's `OutOfDiskSpace` (14031), as a command, write or write-concern error.
pub(super) const OUT_OF_DISK_SPACE: i32 = 14031;

/// The server reported it is out of disk space.
pub(super) fn is_out_of_space(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Command(e) => e.code == OUT_OF_DISK_SPACE,
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == OUT_OF_DISK_SPACE,
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => e.code == OUT_OF_DISK_SPACE,
        ErrorKind::InsertMany(e) => {
            e.write_errors
                .iter()
                .flatten()
                .any(|e| e.code == OUT_OF_DISK_SPACE)
                || e.write_concern_error
                    .as_ref()
                    .is_some_and(|e| e.code == OUT_OF_DISK_SPACE)
        }
        _ => false,
    }
}

/// The server could not apply or acknowledge a write for a reason a retry may fix: a write
/// concern that timed out or could not be satisfied, a primary that stepped down.
pub(super) fn is_write_unavailable(err: &mongodb::error::Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::Write(WriteFailure::WriteConcernError(_))
    ) || err.contains_label("RetryableWriteError")
}

pub(crate) fn map_err(err: mongodb::error::Error) -> RepoError {
    if is_out_of_space(&err) {
        return RepoError::full(err);
    }
    if is_unreachable(&err)
        || is_write_unavailable(&err)
        || err.contains_label(TRANSIENT_TRANSACTION_ERROR)
    {
        RepoError::Unavailable(Box::new(err))
    } else {
        RepoError::Backend(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    /// An error as the driver builds it from a server reply (deserialized, as the driver does).
    fn server_error(kind: &str, code: i32) -> mongodb::error::Error {
        let reply = doc! { "code": code, "codeName": "Test", "errmsg": "test", "index": 0 };
        let kind = match kind {
            "command" => ErrorKind::Command(bson::from_document(reply).unwrap()),
            "write" => ErrorKind::Write(WriteFailure::WriteError(
                bson::from_document(reply).unwrap(),
            )),
            _ => ErrorKind::Write(WriteFailure::WriteConcernError(
                bson::from_document(reply).unwrap(),
            )),
        };
        mongodb::error::Error::from(kind)
    }

    #[test]
    fn out_of_disk_space_is_full_and_write_concern_failures_are_unavailable() {
        for kind in ["command", "write", "write_concern"] {
            assert!(
                map_err(server_error(kind, OUT_OF_DISK_SPACE)).is_full(),
                "{kind}"
            );
        }
        assert!(matches!(
            map_err(server_error("write_concern", 64)),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(server_error("command", 2)),
            RepoError::Backend(_)
        ));
    }
}
