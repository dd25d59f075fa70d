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
//!   free mark (`Block::mark_of`), as a block on a span's free list does: a
//!   second free of it is seen as a double free. Its link word means nothing.
//! - `count <= limit == limit_of(class) <= SLOTS` (see `BlockCache` for how the
//!   pointers encode them).
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
//! idle sits on at most NUM_CLASSES x CACHE_BYTES (in practice the classes it used),
//! which no other thread can take from it; a cache that only received frees since
//! its last spill spills all of it (`ThreadHeap::free_to_full_cache`), so a thread
//! that frees and then sleeps keeps less. (Caches that grew, up to 64 KiB, for a class
//! that ran both full and dry took larson's L1 misses from 25.3 M to 24.8 M, but held
//! the memory: larson's peak RSS +0.8 MiB, and the bursty test's steady phase went
//! over its bound in 2 runs of 5.)
//!
//! An idle thread's spans are another matter: the fast paths never touch spans, so
//! another thread may purge them under its heap lock (thread_heap.rs, "Idle heaps").

use crate::size_class::NUM_CLASSES;
use crate::span::Block;

/// Bytes of free blocks a class may keep cached (`limit_of`).
pub const CACHE_BYTES: usize = 32 * 1024;
/// Blocks a class may keep cached, at most.
pub const SLOTS: usize = 61;

/// One class's cache: three pointers into its slots, which lie in the heap's shared
/// slot array (`ThreadHeap::slots`, each class's range of `limit_of` slots at
/// `SLOT_START`). The fast paths work on the three pointers alone:
/// - `base` is the first of the class's slots while the cache is open (null while it
///   is off);
/// - `top` is one past the most recently cached block: `base[..count]` with
///   `count = top - base` are the cached blocks, the most recent last; malloc finds
///   the cache empty when `top == base`;
/// - `end` is `base + limit`: free finds the cache full when `top >= end`.
///
/// All three null (a static heap's caches, a heap's `no_cache`, a cache that is off)
/// is a cache that is both empty and full, so neither fast path touches it.
///
/// Why the slots are not in the cache: the headers of all classes then fit in 25
/// cache lines (a program's mallocs and frees touch one per call, at random), and
/// each class gets the slots its block size calls for (SLOTS for small blocks, a few
/// for 16 KiB ones) instead of every class the most any needs.
#[repr(C)]
pub struct BlockCache {
    pub top: *mut *mut Block,
    pub end: *mut *mut Block,
    pub base: *mut *mut Block,
    /// Pads a header to 32 bytes. (A heap is not aligned to a cache line and the headers
    /// start at its offset 16, so some headers cross two lines; aligning the heap and
    /// padding `no_cache` to a header changed larson's L1 misses by +0.07%, so it is
    /// not done.)
    _pad: usize,
}

const _: () = assert!(core::mem::size_of::<BlockCache>() == 32);

impl BlockCache {
    /// A cache that is off.
    pub const fn off() -> BlockCache {
        let null = core::ptr::null_mut();
        BlockCache { top: null, end: null, base: null, _pad: 0 }
    }

    /// Turns the (empty) cache on over the slots at `slots` with room for `limit`
    /// blocks, or off for a limit of 0.
    ///
    /// # Safety
    /// `slots` is the class's own range of at least `limit` slots in the heap that
    /// holds this cache; neither may move while the cache is on.
    pub unsafe fn open(&mut self, slots: *mut *mut Block, limit: usize) {
        debug_assert!(self.count() == 0);
        if limit == 0 || slots.is_null() {
            *self = BlockCache::off();
        } else {
            self.base = slots;
            self.top = slots;
            // SAFETY: per the contract, within (or one past) the class's slots.
            self.end = unsafe { slots.add(limit) };
        }
    }

    /// Turns the (empty) cache off.
    pub fn close(&mut self) {
        debug_assert!(self.count() == 0);
        *self = BlockCache::off();
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
        if i >= self.count() {
            debug_assert!(false, "slot {i} of {}", self.count());
            return core::ptr::null_mut();
        }
        // SAFETY: i < count: a cached block's slot.
        unsafe { *self.base.add(i) }
    }

    /// Caches `b` (marked free by the caller).
    ///
    /// # Safety
    /// The cache is open and not full.
    pub unsafe fn push(&mut self, b: *mut Block) {
        debug_assert!(self.is_open() && self.count() < self.limit());
        // SAFETY: top < end, within the class's slots (per the contract).
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
        let n = n.min(count);
        // SAFETY: both ranges are within `base[..count]`, the cached blocks' slots.
        unsafe {
            core::ptr::copy(self.base.add(n), self.base, count - n);
            self.top = self.base.add(count - n);
        }
    }
}

/// The limit of class `class`'s cache: CACHE_BYTES of blocks, at most SLOTS; 0 (not
/// cached) when that is under 2 blocks. Also how many slots the class has.
pub const fn limit_of(class: usize) -> usize {
    let n = CACHE_BYTES / class_size(class);
    if n < 2 {
        0
    } else if n < SLOTS {
        n
    } else {
        SLOTS
    }
}

/// `block_size` for the const tables here (that one is not a const fn); never 0, and
/// no panicking index: a class out of range reads as a huge size (not cached).
const fn class_size(class: usize) -> usize {
    if class >= NUM_CLASSES {
        return usize::MAX;
    }
    let size = crate::size_class::CLASS_SIZE[class] as usize;
    if size == 0 {
        1
    } else {
        size
    }
}

/// Where each class's slots start in `ThreadHeap::slots`.
pub const SLOT_START: [u16; NUM_CLASSES] = {
    let mut t = [0u16; NUM_CLASSES];
    let mut c = 0;
    let mut next = 0;
    while c < NUM_CLASSES {
        t[c] = next as u16;
        next += limit_of(c);
        c += 1;
    }
    t
};

/// Slots of all classes together: the length of `ThreadHeap::slots`.
pub const TOTAL_SLOTS: usize = SLOT_START[NUM_CLASSES - 1] as usize + limit_of(NUM_CLASSES - 1);

/// The most blocks a malloc that found its cache empty takes (from the transfer cache,
/// else from the spans, where a class's first refills take fewer: `alloc_cached`):
/// half the limit, so that the frees that follow have room before the cache must
/// flush.
pub fn refill_count(limit: usize) -> usize {
    (limit / 2).max(1)
}

/// The byte offset of class `class`'s cache in a ThreadHeap (the `cache_off` of the
/// class's spans); never 0, where a heap has `no_cache`.
pub const fn cache_offset(class: usize) -> u32 {
    (core::mem::offset_of!(crate::thread_heap::ThreadHeap, caches) + class * core::mem::size_of::<BlockCache>()) as u32
}

// A flush takes a whole cache into a batch the size of a transfer cache.
const _: () = assert!(SLOTS <= crate::transfer_cache::SLOTS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cached_class_has_its_slots() {
        let mut next = 0;
        for (c, &start) in SLOT_START.iter().enumerate() {
            assert_eq!(start as usize, next, "class {c}");
            assert!(limit_of(c) <= SLOTS, "class {c}");
            next += limit_of(c);
        }
        assert_eq!(next, TOTAL_SLOTS);
    }
}
