//! # oxmalloc
//!
//! A general-purpose memory allocator for Linux (x86-64, glibc): `liboxmalloc.so`
//! replaces the process's malloc under `LD_PRELOAD`, and [`OxMalloc`] is a Rust
//! `#[global_allocator]`.
//!
//! ## Map (bottom up; each layer uses only those below it)
//!
//! ```text
//!  exports.rs (C ABI)        global.rs (GlobalAlloc)
//!            \                  /
//!             alloc.rs: the fast paths, C semantics, small / big / large dispatch
//!            /                          \
//!  thread_cache.rs: per thread and       large.rs: one mmap per block,
//!  class, a LIFO array of free blocks    mremap on realloc
//!            |
//!  transfer_cache.rs: per class, blocks passed between thread caches
//!            |
//!  thread_heap.rs: per-thread spans, refills and flushes, remote frees
//!            |
//!  arena.rs: page runs on brk / mmap regions, trimming, orphaned spans
//!            |
//!  span.rs (span records, pools)  pagemap.rs (address -> span)  size_class.rs
//!            |
//!  os.rs: brk, mmap, munmap, mremap, madvise, futex, write -- the only syscalls
//! ```
//! Beside them: `options.rs` (mallopt, MALLOC_*_ and GLIBC_TUNABLES), `stats.rs`
//! (mallinfo2, malloc_stats, malloc_info, malloc_trim), `census.rs` (every span
//! counted on demand, by class and arena, and the RSS breakdown; `resident.rs` asks
//! the kernel which pages are resident), `report.rs` (the census as text),
//! `heap_map.rs` (the heap map data), `exit_report.rs` (OXMALLOC_STATS and
//! OXMALLOC_MAP at exit), `purge.rs` (free pages inside
//! spans of small blocks given back), `sync.rs` (a futex mutex that
//! never allocates), `tls.rs` (the initial-exec thread-locals), `init.rs`
//! (lazy start-up), `fork.rs` (the child after fork), `fmt.rs` (text without `format!`).
//!
//! ## Glossary
//! - **page**: 4 KiB, the unit the arenas manage.
//! - **span**: a run of pages with one purpose and one record (span.rs): a span of
//!   small blocks of one class, a big block, a large (mmapped) block, or a free run.
//! - **class**: a block size small requests round up to (size_class.rs).
//! - **thread heap**: a thread's spans, one queue per class; the thread cache.
//! - **arena**: a shared page heap; arena 0 grows with brk, the others with mmap.
//! - **region**: address space an arena got from the OS in one piece.
//! - **orphan**: a span whose thread exited, kept by its arena for another thread.
//! - **remote free**: a free by a thread other than the span's owner.
//!
//! Nothing in this crate allocates through a global allocator: it is `no_std` (std is
//! linked only for the cdylib's panic runtime; with `panic = "abort"` no panic can
//! unwind across the C ABI).

#![no_std]
#![warn(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![allow(clippy::missing_safety_doc)]

// The cdylib needs a panic handler; the library itself uses nothing from std.
extern crate std;

mod alloc;
mod check;
mod arena;
pub mod census;
pub mod exports;
mod exit_report;
mod fmt;
mod fork;
mod global;
mod heap_map;
mod init;
mod large;
pub mod options;
mod os;
mod pagemap;
mod purge;
mod report;
mod resident;
mod size_class;
mod span;
pub mod stats;
mod sync;
mod thread_cache;
mod transfer_cache;
mod thread_heap;
mod tls;

pub use global::OxMalloc;
pub use census::{ArenaStats, Breakdown, ClassStats, Stats};
pub use stats::{MallInfo, MallInfo2};

/// The library version, e.g. "0.1.0".
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Is `p` a block oxmalloc handed out and that has not been freed?
/// (Blocks still free in a thread's spans may also answer true.)
pub fn owns(p: *const u8) -> bool {
    alloc::owns(p)
}

/// The usable size of a block from oxmalloc (its size class, or its pages).
///
/// # Safety
/// `p` must be null or a live block from oxmalloc.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: forwarded contract.
    unsafe { alloc::malloc_usable_size(p) }
}

/// A census of the heap: bytes in use by size class and by arena, mmapped blocks,
/// and the RSS breakdown (what each resident byte of the allocator holds, and the
/// remainder of the process's RSS that is not the allocator's). See census.rs for
/// what each figure means. It walks every span under the arena locks and asks the
/// kernel which pages are resident: milliseconds for a heap of gigabytes; nothing is
/// counted on the allocation paths.
pub fn stats() -> Stats {
    census::take()
}
