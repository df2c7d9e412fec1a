//! Per-guest budgets and the resource limiter that enforces the memory cap.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one guest may consume. Defaults suit a Rust rule; raise them for Python/JS guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budgets {
    /// Wall-clock budget of one call, in milliseconds (default 100).
    pub deadline_ms: u64,
    /// Linear memory cap across the guest's memories, in MiB (default 64).
    pub memory_mib: u64,
    /// Cap on the size of what one call returns, in KiB (default 1024).
    pub output_kib: u64,
    /// Cap on table elements per table (default 20000).
    pub table_elements: usize,
    /// Cap on core instances (a Rust component has a handful; default 32).
    pub instances: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            deadline_ms: 100,
            memory_mib: 64,
            output_kib: 1024,
            table_elements: 20_000,
            instances: 32,
        }
    }
}

impl Budgets {
    /// The deadline as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
    /// The output cap in bytes.
    pub fn output_bytes(&self) -> usize {
        usize::try_from(self.output_kib.saturating_mul(1 << 10)).unwrap_or(usize::MAX)
    }
}

/// Enforces [`Budgets`] on a store and remembers whether a cap was hit, so a trap that
/// follows a refused `memory.grow` is reported as a memory-limit error.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_limit: usize,
    memory_used: usize,
    table_elements: usize,
    instances: usize,
    pub(crate) hit: bool,
    pub(crate) high_water: usize,
}

impl Limiter {
    pub(crate) fn new(budgets: &Budgets) -> Limiter {
        Limiter {
            memory_limit: budgets.memory_bytes(),
            memory_used: 0,
            table_elements: budgets.table_elements,
            instances: budgets.instances,
            hit: false,
            high_water: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The cap covers all memories of the guest together.
        let after = self
            .memory_used
            .saturating_sub(current)
            .saturating_add(desired);
        if after > self.memory_limit {
            self.hit = true;
            return Ok(false);
        }
        self.memory_used = after;
        self.high_water = self.high_water.max(after);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.instances.saturating_mul(4)
    }
    fn memories(&self) -> usize {
        self.instances
    }
}
