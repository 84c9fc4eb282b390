//! How a command ends: the outcome of one that ran, the one top-level error of one that could not,
//! and the exit code of each.
//!
//! **Invariant:** exit codes are decided here and nowhere else. Errors are classified where they
//! arise (a held lock, a command line that cannot be served), never by searching an error chain.

use std::fmt;

use crate::domain::RunStatus;
use crate::store::StoreError;

/// A command that ran to its end, and whether it did all it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked was done.
    Done,
    /// It ran, but what it checked or fetched failed (`check` with a failure, a run stopped by the API).
    Failed,
    /// Some windows failed; the next run retries them.
    Partial,
    /// Stopped by a signal; every committed window is kept.
    Interrupted,
    /// Another run took the lock while this one ran (its database session was lost): it stopped
    /// and committed nothing more.
    LockLost,
}

impl Outcome {
    /// The exit code PRODUCT.md fixes for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Failed => 1,
            Outcome::Partial => 2,
            Outcome::LockLost => 3,
            Outcome::Interrupted => 130,
        }
    }
}

impl From<RunStatus> for Outcome {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Ok | RunStatus::Running => Outcome::Done,
            RunStatus::Partial => Outcome::Partial,
            // A run never ends abandoned: the next one marks it so.
            RunStatus::Failed | RunStatus::Abandoned => Outcome::Failed,
            RunStatus::Interrupted => Outcome::Interrupted,
        }
    }
}

/// Why a command could not do its work. Each kind keeps the whole error with its context, and
/// `Display` prints it as one line: `what was being done: why`.
///
/// It is not a `std::error::Error`, so that any error converts into it with `?` (as [`Error::Failed`]).
#[derive(Debug)]
pub enum Error {
    /// The command line cannot be served (exit 64, EX_USAGE).
    Usage(anyhow::Error),
    /// Another run holds the database's lock (exit 3).
    Locked(anyhow::Error),
    /// Stopped by a signal before the run had started (exit 130).
    Interrupted(anyhow::Error),
    /// Anything else (exit 1).
    Failed(anyhow::Error),
}

impl Error {
    /// A command line that cannot be served.
    pub fn usage(e: impl Into<anyhow::Error>) -> Error {
        Error::Usage(e.into())
    }

    /// A store error, [`Error::Locked`] when another run holds the lock.
    pub fn store(e: StoreError) -> Error {
        match e {
            StoreError::Locked { .. } | StoreError::LockLost { .. } => Error::Locked(e.into()),
            e => Error::Failed(e.into()),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 64,
            Error::Locked(_) => 3,
            Error::Interrupted(_) => 130,
            Error::Failed(_) => 1,
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(e: E) -> Self {
        Error::Failed(e.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Error::Usage(e) | Error::Locked(e) | Error::Interrupted(e) | Error::Failed(e)) = self;
        write!(f, "{e:#}")
    }
}

/// The process's exit code for a command's result.
pub fn exit_code(result: &Result<Outcome, Error>) -> u8 {
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => e.exit_code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_product() {
        assert_eq!(exit_code(&Ok(Outcome::Done)), 0);
        assert_eq!(exit_code(&Ok(RunStatus::Failed.into())), 1);
        assert_eq!(exit_code(&Ok(RunStatus::Partial.into())), 2);
        assert_eq!(exit_code(&Ok(RunStatus::Interrupted.into())), 130);
        let locked = StoreError::Locked {
            holder: "sync (pid 1)".into(),
            since: "now".into(),
        };
        assert_eq!(exit_code(&Err(Error::store(locked))), 3);
        let lost = StoreError::LockLost {
            holder: "a PostgreSQL session (backend pid 7)".into(),
            since: "now".into(),
        };
        assert_eq!(exit_code(&Err(Error::store(lost))), 3);
        assert_eq!(exit_code(&Ok(Outcome::LockLost)), 3);
        assert_eq!(
            exit_code(&Err(Error::Interrupted(anyhow::anyhow!("signal")))),
            130
        );
        let other = StoreError::Corrupt {
            what: "run status",
            value: "x".into(),
        };
        assert_eq!(exit_code(&Err(Error::store(other))), 1);
        assert_eq!(
            exit_code(&Err(Error::usage(anyhow::anyhow!("bad flag")))),
            64
        );
        assert_eq!(exit_code(&Err(anyhow::anyhow!("boom").into())), 1);
    }

    #[test]
    fn an_error_prints_its_context_and_cause_on_one_line() {
        let e: Error = anyhow::anyhow!("refused")
            .context("cannot open the database")
            .into();
        assert_eq!(e.to_string(), "cannot open the database: refused");
    }
}
