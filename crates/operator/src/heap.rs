//! The allocator's own account of the heap: the bytes held by live objects against the bytes
//! resident, so that a memory figure tells live data from freed memory kept for reuse (and,
//! of that, what is stuck in pages that still hold live objects). Known
//! only when jemalloc is the process's global allocator, which the binary says with
//! [`use_jemalloc_stats`] (test binaries and `--no-default-features` builds use another).

use std::sync::atomic::{AtomicBool, Ordering};

static JEMALLOC: AtomicBool = AtomicBool::new(false);

/// The heap as the allocator counts it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Held by live allocations (`stats.allocated`).
    pub allocated: u64,
    /// In pages that hold at least one live allocation (`stats.active`); what exceeds
    /// `allocated` is freed space inside pages that cannot be given back (fragmentation).
    pub active: u64,
    /// In pages the allocator has resident, its own metadata included (`stats.resident`).
    pub resident: u64,
}

/// Tells [`read`] that jemalloc is the global allocator, so that its statistics describe this
/// process's heap.
#[cfg(feature = "jemalloc")]
pub fn use_jemalloc_stats() {
    JEMALLOC.store(true, Ordering::Relaxed);
}

/// Whether [`read`] can tell the heap (jemalloc is the global allocator).
#[must_use]
pub fn known() -> bool {
    JEMALLOC.load(Ordering::Relaxed)
}

/// The heap now, when the allocator can tell.
#[must_use]
pub fn read() -> Option<HeapStats> {
    if !known() {
        return None;
    }
    read_jemalloc()
}

#[cfg(feature = "jemalloc")]
fn read_jemalloc() -> Option<HeapStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; a new epoch refreshes them.
    epoch::advance().ok()?;
    Some(HeapStats {
        allocated: u64::try_from(stats::allocated::read().ok()?).ok()?,
        active: u64::try_from(stats::active::read().ok()?).ok()?,
        resident: u64::try_from(stats::resident::read().ok()?).ok()?,
    })
}

#[cfg(not(feature = "jemalloc"))]
fn read_jemalloc() -> Option<HeapStats> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_jemalloc_as_the_allocator_nothing_is_claimed() {
        // Test binaries run on the system allocator; jemalloc's counts would describe an
        // allocator nobody uses.
        assert_eq!(read(), None);
    }
}
