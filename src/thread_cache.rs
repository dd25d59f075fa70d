//! The thread cache: per thread and size class, a LIFO array of free blocks in front
//! of the spans. The malloc and free fast paths (alloc.rs) pop and push it; nothing
//! else touches a span on those paths.
//!
//! Why an array of any span's blocks: a block a thread frees is the next one it hands
//! out, while its cache lines are still in this core's cache, whichever thread's span
//! it belongs to. Before, a block went back to its own span's free list: another
//! thread's block crossed over (an atomic push onto the span's `thread_free`, a cache
//! miss for the owner when it reused it), and the thread's own were reused only when
//! their span was the one its class allocated from. In larson (threads handing blocks
//! to each other) that was the gap to tcmalloc.
//!
//! # Invariants
//! - A cached block is out of its span (the span's `used` counts it) and carries its
//!   span's free mark (`Block::mark_of`), as a block on a span's free list does: a
//!   second free of it is seen as a double free. Its link word means nothing.
//! - `count <= limit <= SLOTS`; `slots[..count]` are the cached blocks, the most
//!   recently freed last. A cache with `limit == 0` is off: the free fast path never
//!   pushes onto it (count >= limit) and the malloc fast path finds it empty. The
//!   caches of a heap are off while the heap is in slow mode (M_PERTURB, the strict
//!   mode, a low mmap threshold) and in the static heaps.
//! - Only the owning thread touches its caches, without a lock. Blocks leave them for
//!   their spans in batches, under the heap lock (`ThreadHeap::flush_cache`): the
//!   older half when a free finds the cache full, all of them when the heap leaves the
//!   fast paths, at thread exit, and before malloc_trim and the statistics.
//! - No link through user memory while a block is cached: a write after free into a
//!   cached block cannot make malloc hand out an address of the program's choosing.
//!   The flush checks each block's mark (and that it is a block start) before it goes
//!   back on its span's free list, where its link does live in it.
//!
//! Bounds: a class caches at most CACHE_BYTES of blocks (at most SLOTS blocks; classes
//! whose blocks are bigger than half of that are not cached), so a thread that goes
//! idle sits on at most NUM_CLASSES x CACHE_BYTES (in practice the classes it used).
//! Its spans are another matter: the fast paths never touch spans, so another thread
//! may purge an idle thread's spans under its heap lock (thread_heap.rs, "Idle heaps").

use crate::size_class::block_size;
use crate::span::Block;

/// Slots per class: a cache is 512 bytes, one word of count and limit and 63 slots.
pub const SLOTS: usize = 63;

/// Bytes of free blocks a class may keep cached.
pub const CACHE_BYTES: usize = 16 * 1024;

#[repr(C)]
pub struct BlockCache {
    pub count: u32,
    pub limit: u32,
    pub slots: [*mut Block; SLOTS],
}

const _: () = assert!(core::mem::size_of::<BlockCache>() == 512);

/// What the direct table of a static heap (a thread without a heap, an exiting one)
/// points at: empty and off.
pub struct StaticCache(pub core::cell::UnsafeCell<BlockCache>);
// SAFETY: EMPTY_CACHE is never written: its count is 0, so malloc never pops it, and
// no free pushes onto it (frees find caches through a heap's `caches`, not here).
unsafe impl Sync for StaticCache {}
pub static EMPTY_CACHE: StaticCache = StaticCache(core::cell::UnsafeCell::new(BlockCache::off()));

impl BlockCache {
    /// A cache that is off (limit 0).
    pub const fn off() -> BlockCache {
        BlockCache { count: 0, limit: 0, slots: [core::ptr::null_mut(); SLOTS] }
    }

    /// Caches `b` (marked free with its span's mark by the caller).
    ///
    /// # Safety
    /// The cache is not full (`count < limit`).
    pub unsafe fn push(&mut self, b: *mut Block) {
        // SAFETY: count < limit <= SLOTS (per the contract and the invariant).
        unsafe { *self.slots.get_unchecked_mut(self.count as usize) = b };
        self.count += 1;
    }
}

/// The limit of class `class`'s cache while its heap uses the fast paths.
pub fn limit_of(class: usize) -> u32 {
    let n = CACHE_BYTES / block_size(class).max(1);
    if n < 2 {
        0
    } else {
        n.min(SLOTS) as u32
    }
}

/// How many blocks a malloc that found its cache empty takes from the spans: half the
/// limit, so that the frees that follow have room before the cache must flush.
pub fn refill_count(limit: u32) -> usize {
    (limit as usize / 2).max(1)
}

/// The byte offset of class `class`'s cache in a ThreadHeap (the `cache_off` of the
/// class's spans); never 0, where a heap has `no_cache`.
pub fn cache_offset(class: usize) -> u32 {
    (core::mem::offset_of!(crate::thread_heap::ThreadHeap, caches) + class * core::mem::size_of::<BlockCache>()) as u32
}
