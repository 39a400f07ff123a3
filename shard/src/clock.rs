//! The monotonic millisecond clock every shard passes to the core. One
//! origin for the whole process, so times from different threads compare.

use std::time::Instant;

/// Milliseconds since a fixed origin (CLOCK_MONOTONIC underneath).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting at 0 now.
    pub fn new() -> Self {
        Clock { origin: Instant::now() }
    }

    /// Milliseconds since the origin.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
