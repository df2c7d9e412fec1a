//! Typed errors for loading a guest and for calling one.

use std::time::Duration;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid wasm component.
    #[error("not a valid wasm component: {0}")]
    InvalidComponent(String),
    /// The component imports a Tocsin capability its grants do not include.
    #[error(
        "component imports `{interface}`, which its grants do not include (granted: {granted})"
    )]
    UngrantedImport {
        /// The imported interface, e.g. `tocsin:monitor/mqtt@0.1.0`.
        interface: String,
        /// What was granted, for the message.
        granted: String,
    },
    /// The capability is granted but this runtime has no provider for it.
    #[error("component imports `{interface}`, which this runtime does not provide")]
    UnavailableCapability {
        /// The imported interface.
        interface: String,
    },
    /// The component imports something that is neither a Tocsin capability nor allowed WASI.
    #[error("component imports `{0}`, which Tocsin does not offer to guests")]
    UnknownImport(String),
    /// The component does not implement the world its kind requires.
    #[error("component is not a `{world}` guest: {reason}")]
    WrongWorld {
        /// The expected world.
        world: &'static str,
        /// What is missing or mistyped.
        reason: String,
    },
    /// Reading or writing the compile cache failed.
    #[error("compile cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Wasmtime refused to set up the component.
    #[error("cannot prepare component: {0}")]
    Link(String),
}

/// Why a guest call failed. Every variant but [`CallError::Failed`] counts against the
/// guest (a bug or abuse); `Failed` is the guest's own `result` error.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline and was interrupted.
    #[error("deadline of {} ms exceeded", .deadline.as_millis())]
    DeadlineExceeded {
        /// The budget it had.
        deadline: Duration,
    },
    /// The guest tried to grow memory (or tables, instances) past its cap.
    #[error("memory limit of {limit_bytes} bytes exceeded")]
    MemoryLimit {
        /// The cap.
        limit_bytes: usize,
    },
    /// The guest returned more than its output cap.
    #[error("output of {size} bytes exceeds the cap of {limit} bytes")]
    OutputTooLarge {
        /// What it returned.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The guest trapped (panic, unreachable, stack overflow, bad memory access).
    #[error("guest trapped: {message}")]
    Trap {
        /// The trap and whatever the guest printed to stderr before it.
        message: String,
    },
    /// The guest returned an error value: an expected failure, not a fault.
    #[error("guest returned an error: {0}")]
    Failed(String),
    /// The call was made on a guest of another kind.
    #[error("`{call}` is not exported by a {kind} guest")]
    WrongKind {
        /// The call attempted.
        call: &'static str,
        /// The guest's kind.
        kind: &'static str,
    },
    /// Instantiation failed for a reason other than the guest's limits.
    #[error("cannot instantiate guest: {0}")]
    Instantiate(String),
}

impl CallError {
    /// A short stable name for counters: `deadline`, `memory`, `output`, `trap`, `failed`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::DeadlineExceeded { .. } => "deadline",
            CallError::MemoryLimit { .. } => "memory",
            CallError::OutputTooLarge { .. } => "output",
            CallError::Trap { .. } => "trap",
            CallError::Failed(_) => "failed",
            CallError::WrongKind { .. } => "wrong_kind",
            CallError::Instantiate(_) => "instantiate",
        }
    }

    /// Whether this is a fault of the guest (counts toward quarantine).
    pub fn is_fault(&self) -> bool {
        !matches!(self, CallError::Failed(_) | CallError::WrongKind { .. })
    }
}
