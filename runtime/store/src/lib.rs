//! Tocsin's storage, embedded in one redb file: compressed time series with a durable
//! write-ahead, an in-memory label index, and queries (raw, step-aligned range, latest,
//! rate/increase, aggregation) with 1-minute and 1-hour rollups; log records with their
//! indexes and counts; client liveness, alert state, the notification outbox, guest kv
//! namespaces, the audit log and policy versions. Only this crate opens redb.

mod alerts;
mod audit;
pub mod codec;
mod error;
pub mod exposition;
mod heartbeats;
mod kv;
mod logs;
mod outbox;
mod policy_versions;
pub mod promql;
pub mod query;
mod records;
pub mod rollup;
mod rollup_query;
mod selector;
mod series;
mod silences;
mod spool;
mod store;
mod tables;
mod tokens;

pub use alerts::{AlertEvent, AlertPhase, AlertRecord};
pub use audit::AuditEntry;
pub use error::{SampleError, StoreError};
pub use heartbeats::{Liveness, LivenessState, Transition};
pub use kv::{MAX_KV_KEY, MAX_KV_KEYS, MAX_KV_VALUE};
pub use logs::{
    CLIENT_SOURCE_PREFIX, DEFAULT_LOG_LIMIT, Level, LogQuery, LogRecord, MAX_LOG_LIMIT,
    MAX_MESSAGE_BYTES,
};
pub use outbox::{Delivery, NewMessage, OutboxMessage};
pub use policy_versions::PolicyVersion;
pub use query::Aggregation;
pub use rollup::{Resolution, RollupAgg};
pub use selector::{MatchOp, Matcher, Selector};
pub use series::{MAX_LABELS, STALE_NAN, Sample, SeriesKey, is_stale};
pub use silences::Silence;
pub use spool::{SpoolEntry, SpoolStats};
pub use store::{CHUNK_SAMPLES, IngestReport, InstantValue, SeriesData, Store, Tap, WINDOW_MS};
pub use tokens::TokenRecord;
