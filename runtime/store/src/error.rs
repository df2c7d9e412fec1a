//! Errors of the store.

/// Why one sample was rejected (the rest of its batch still lands).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// Metric name not `[a-zA-Z_:][a-zA-Z0-9_:]*` (or too long).
    #[error("invalid metric name `{0}`")]
    InvalidName(String),
    /// Label name not `[a-zA-Z_][a-zA-Z0-9_]*`, or reserved (`__` prefix).
    #[error("invalid label name `{0}`")]
    InvalidLabel(String),
    /// Same label twice.
    #[error("duplicate label `{0}`")]
    DuplicateLabel(String),
    /// Too many labels.
    #[error("{count} labels, at most {max} allowed")]
    TooManyLabels {
        /// Labels given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Label value too long.
    #[error("value of label `{label}` longer than {max} bytes")]
    LabelValueTooLong {
        /// The label.
        label: String,
        /// The limit.
        max: usize,
    },
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is not a Tocsin database (or is damaged beyond repair).
    #[error("cannot open database {path}: {message}")]
    Open {
        /// The file.
        path: String,
        /// redb's reason.
        message: String,
    },
    /// redb failed during an operation.
    #[error("database error: {0}")]
    Db(String),
    /// Stored bytes do not decode.
    #[error("corrupt {what} in the database: {message}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// A selector does not parse.
    #[error("invalid selector `{selector}`: {message}")]
    Selector {
        /// The selector text.
        selector: String,
        /// What is wrong.
        message: String,
    },
    /// Query arguments out of range.
    #[error("invalid query: {0}")]
    Query(String),
    /// A write refused by a limit (key or value size, quota) or an unknown target.
    #[error("refused: {0}")]
    Refused(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
