//! Tocsin's storage, embedded in one redb file: compressed time series with a durable
//! write-ahead, an in-memory label index, and queries (raw, step-aligned range, latest,
//! rate/increase, aggregation). Only this crate opens redb.

pub mod codec;
mod error;
pub mod query;
mod selector;
mod series;
mod store;
mod tables;

pub use error::{SampleError, StoreError};
pub use query::Aggregation;
pub use selector::{MatchOp, Matcher, Selector};
pub use series::{MAX_LABELS, Sample, SeriesKey};
pub use store::{CHUNK_SAMPLES, IngestReport, InstantValue, SeriesData, Store, WINDOW_MS};
