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
//! - `count <= limit <= SLOTS` (see `BlockCache` for how the pointers encode them).
//!   A cache that is off is both empty and full, so neither fast path touches it. The
//!   caches of a heap are off while the heap is in slow mode (M_PERTURB, the strict
//!   mode, a low mmap threshold) and in the static heaps.
//! - Only the owning thread touches its caches, without a lock. Blocks leave them in
//!   batches, under the heap lock. When a free finds the cache full, its older half:
//!   the blocks of the heap's own spans to their free lists, the others to the class's
//!   transfer cache (transfer_cache.rs, `ThreadHeap::spill_cache`), which a cache that
//!   runs dry takes from before it goes to the spans; the same at thread exit. All of
//!   them to their spans when the heap leaves the fast paths, before malloc_trim and
//!   the statistics, and before an arena grows (`ThreadHeap::flush_cache`,
//!   `send_home`).
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

/// Slots per class: a cache is 512 bytes, three words of pointers and 61 slots.
pub const SLOTS: usize = 61;

/// Bytes of free blocks a class may keep cached.
pub const CACHE_BYTES: usize = 32 * 1024;

/// One class's cache. The fast paths work on the three pointers alone:
/// - `base` is `&slots[0]` while the cache is open (null while it is off);
/// - `top` is one past the most recently cached block: `slots[..count]` with
///   `count = top - base` are the cached blocks, the most recent last; malloc finds
///   the cache empty when `top == base`;
/// - `end` is `base + limit`: free finds the cache full when `top >= end`.
///
/// All three null (a static heap's caches, a heap's `no_cache`, a cache that is off) is a
/// cache that is both empty and full, so neither fast path touches it.
#[repr(C)]
pub struct BlockCache {
    pub top: *mut *mut Block,
    pub end: *mut *mut Block,
    pub base: *mut *mut Block,
    pub slots: [*mut Block; SLOTS],
}

const _: () = assert!(core::mem::size_of::<BlockCache>() == 512);

impl BlockCache {
    /// A cache that is off.
    pub const fn off() -> BlockCache {
        let null = core::ptr::null_mut();
        BlockCache { top: null, end: null, base: null, slots: [core::ptr::null_mut(); SLOTS] }
    }

    /// Turns the (empty) cache on with room for `limit` blocks (at most SLOTS), or off
    /// for 0. The cache must not move while it is on: its pointers point into it.
    pub fn set_limit(&mut self, limit: usize) {
        debug_assert!(self.count() == 0 && limit <= SLOTS);
        if limit == 0 {
            *self = BlockCache::off();
        } else {
            let base = self.slots.as_mut_ptr();
            self.base = base;
            self.top = base;
            // SAFETY: limit <= SLOTS: within (or one past) `slots`.
            self.end = unsafe { base.add(limit) };
        }
    }

    pub fn is_open(&self) -> bool {
        !self.base.is_null()
    }

    pub fn count(&self) -> usize {
        (self.top as usize - self.base as usize) / core::mem::size_of::<*mut Block>()
    }

    pub fn limit(&self) -> usize {
        (self.end as usize - self.base as usize) / core::mem::size_of::<*mut Block>()
    }

    /// The `i`-th oldest cached block.
    pub fn slot(&self, i: usize) -> *mut Block {
        debug_assert!(i < self.count());
        self.slots[i]
    }

    /// Caches `b` (marked free with its span's mark by the caller).
    ///
    /// # Safety
    /// The cache is open and not full.
    pub unsafe fn push(&mut self, b: *mut Block) {
        debug_assert!(self.is_open() && self.count() < self.limit());
        // SAFETY: top < end <= one past `slots` (per the contract).
        unsafe {
            *self.top = b;
            self.top = self.top.add(1);
        }
    }

    /// The most recently cached block, taken out of the cache; null if it is empty.
    pub fn pop(&mut self) -> *mut Block {
        if self.top == self.base {
            return core::ptr::null_mut();
        }
        // SAFETY: base < top: `top - 1` is a cached block's slot.
        unsafe {
            self.top = self.top.sub(1);
            *self.top
        }
    }

    /// Drops the `n` oldest blocks (the caller has sent them to their spans).
    pub fn remove_oldest(&mut self, n: usize) {
        let count = self.count();
        debug_assert!(n <= count);
        self.slots.copy_within(n..count, 0);
        // SAFETY: count - n <= count: within `slots`.
        self.top = unsafe { self.base.add(count - n) };
    }
}

/// The limit of class `class`'s cache while its heap uses the fast paths.
pub fn limit_of(class: usize) -> usize {
    let n = CACHE_BYTES / block_size(class).max(1);
    if n < 2 {
        0
    } else {
        n.min(SLOTS)
    }
}

/// How many blocks a malloc that found its cache empty takes from the spans: half the
/// limit, so that the frees that follow have room before the cache must flush.
pub fn refill_count(limit: usize) -> usize {
    (limit / 2).max(1)
}

/// The byte offset of class `class`'s cache in a ThreadHeap (the `cache_off` of the
/// class's spans); never 0, where a heap has `no_cache`.
pub const fn cache_offset(class: usize) -> u32 {
    (core::mem::offset_of!(crate::thread_heap::ThreadHeap, caches) + class * core::mem::size_of::<BlockCache>()) as u32
}
