//! The transfer caches: per size class, one process-wide ring of free block pointers
//! between the thread caches (thread_cache.rs) and the spans (tcmalloc's transfer
//! cache, as an array of pointers).
//!
//! Why: without it, a thread cache that overflows sends every block home, to its
//! span's free list, another thread's through that span's `thread_free`, and a cache
//! that runs dry takes blocks from its own spans' lists, reading each block's link
//! first. Where one thread frees what another allocates (a producer and its consumers,
//! the hand-offs of larson, a pool of short-lived threads) each of those blocks made
//! that round trip: its link written by the freeing thread, read cold by the owner,
//! which also had to be the thread that allocated next. Here an overflowing cache
//! copies the pointers of its oldest blocks of other threads' spans into the class's
//! transfer cache (those of its own spans go to their free lists, as before), and a
//! cache that runs dry copies pointers out of it: no block is read or written on the
//! way, any thread can take them, and the blocks put last are handed out first.
//!
//! # Invariants
//! - A block here is as a block in a thread cache: out of its span (the span's `used`
//!   counts it, so the span stays), marked free (`Block::mark_of`: a second free
//!   of it is seen as a double free), its link word meaning nothing. It was checked
//!   (mark, block start) when it left the cache it was freed into
//!   (`ThreadHeap::keep_foreign`), and is checked again on its way to its span
//!   (`ThreadHeap::send_home`), where its link will live in it.
//! - `len <= limit(class) <= SLOTS`; the blocks are the `len` slots from `oldest` on
//!   (mod SLOTS), the most recently put last. Everything is read and written under
//!   `lock`, held for a copy of at most SLOTS pointers and never across a call out of
//!   this module.
//! - Bounded: a class holds at most BYTES of blocks; beyond that its oldest leave for
//!   their spans. Blocks that no thread took in a whole decay period leave too
//!   (`take_unused`, from `ThreadHeap::maybe_purge`, once per period for the whole
//!   process, `claim_decay`: a low-water mark, as tcmalloc scavenges its thread
//!   caches), and so does everything before an arena grows and for malloc_trim and
//!   the statistics (`ThreadHeap::drain_transfer_caches`).
//! - After fork, the child empties a transfer cache whose lock a vanished thread held
//!   (its contents may be half copied); those blocks stay out of their spans for good,
//!   at most BYTES per class.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::size_class::{block_size, NUM_CLASSES};
use crate::span::Block;
use crate::sync::RawMutex;

/// Pointers a class's transfer cache holds at most (four half-cache spills of the
/// smallest classes). A power of two: the stack is a ring.
pub const SLOTS: usize = 128;
const _: () = assert!(SLOTS.is_power_of_two());

/// Bytes of blocks a class's transfer cache holds at most: twice a thread cache's.
pub const BYTES: usize = 2 * crate::thread_cache::CACHE_BYTES;

/// A class's blocks: a ring of `len` pointers from `oldest` on (indices mod SLOTS),
/// the most recently put last. Its newest end is a stack (put, take); its oldest end
/// is where blocks leave for their spans, without moving the others.
struct Ring {
    slots: [*mut Block; SLOTS],
    oldest: usize,
    /// The fewest blocks the ring held since the last `take_unused`: the oldest `low`
    /// were not needed in that time.
    low: usize,
}

impl Ring {
    fn at(&mut self, i: usize) -> &mut *mut Block {
        // Masked: in bounds without a check (no panic on the allocation path).
        &mut self.slots[(self.oldest + i) % SLOTS]
    }

    /// Moves the `n` oldest of `len` blocks into `out`; returns how many.
    fn take_oldest(&mut self, len: &mut usize, n: usize, out: &mut [*mut Block]) -> usize {
        let n = n.min(*len).min(out.len());
        for (i, o) in out.iter_mut().take(n).enumerate() {
            *o = *self.at(i);
        }
        self.oldest = (self.oldest + n) % SLOTS;
        *len -= n;
        self.low = self.low.saturating_sub(n);
        n
    }

    /// Appends `blocks` (the oldest first) after the newest of `len` blocks; the caller
    /// makes sure they fit (`len + blocks.len() <= SLOTS`).
    fn put_newest(&mut self, len: &mut usize, blocks: &[*mut Block]) {
        for &b in blocks {
            *self.at(*len) = b;
            *len += 1;
        }
    }

    /// Moves up to `out.len()` of the newest of `len` blocks into `out`, the newest
    /// first; returns how many.
    fn take_newest(&mut self, len: &mut usize, out: &mut [*mut Block]) -> usize {
        let n = out.len().min(*len);
        for (k, o) in out.iter_mut().take(n).enumerate() {
            *o = *self.at(*len - 1 - k);
        }
        *len -= n;
        self.low = self.low.min(*len);
        n
    }
}

pub struct TransferCache {
    lock: RawMutex,
    /// How many blocks `ring` holds: written under `lock`; read without it only as a
    /// hint (an empty cache costs its takers no lock).
    len: AtomicUsize,
    ring: UnsafeCell<Ring>,
}

// SAFETY: `ring` is only touched under `lock`.
unsafe impl Sync for TransferCache {}

static CACHES: [TransferCache; NUM_CLASSES] = [const {
    TransferCache {
        lock: RawMutex::new(),
        len: AtomicUsize::new(0),
        ring: UnsafeCell::new(Ring { slots: [core::ptr::null_mut(); SLOTS], oldest: 0, low: 0 }),
    }
}; NUM_CLASSES];

/// How many blocks class `class`'s transfer cache may hold (0: the class has none).
pub fn limit(class: usize) -> usize {
    (BYTES / block_size(class).max(1)).min(SLOTS)
}

fn cache(class: usize) -> &'static TransferCache {
    // Masked, not bounds-checked, as in `Ring::at`.
    &CACHES[class % NUM_CLASSES]
}

/// Runs `f` on class `class`'s ring and length under its lock; skips it (returning
/// 0) when the unlocked length says the ring is empty and `skip_empty`.
fn with_ring(class: usize, skip_empty: bool, f: impl FnOnce(&mut Ring, &mut usize) -> usize) -> usize {
    let tc = cache(class);
    // An unlocked peek: an empty ring (the common case for a class no thread spills)
    // costs its takers no lock. A stale answer only sends the caller to the spans.
    if skip_empty && tc.len.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    tc.lock.lock();
    let mut len = tc.len.load(Ordering::Relaxed);
    // SAFETY: we hold the lock, which guards `ring`.
    let r = f(unsafe { &mut *tc.ring.get() }, &mut len);
    tc.len.store(len, Ordering::Relaxed);
    tc.lock.unlock();
    r
}

/// Puts `blocks` (cached blocks of class `class`, see the module invariants; the
/// oldest first, at most SLOTS) into the class's transfer cache. What goes beyond its
/// limit are the oldest blocks, of the cache and then of `blocks`: they come out into
/// `out` (the caller sends them home); returns how many.
///
/// (The oldest leave, not the newest stay out: a cache that kept its first blocks for
/// good would pin their spans, which in a program freeing from the top of its heap
/// down are the ones at the top, and the heap could never be trimmed.)
pub fn put(class: usize, blocks: &[*mut Block], out: &mut [*mut Block; SLOTS]) -> usize {
    debug_assert!(blocks.len() <= SLOTS);
    let limit = limit(class);
    if limit == 0 || blocks.is_empty() {
        return copy(out, blocks);
    }
    with_ring(class, false, |ring, len| {
        let over = (*len + blocks.len()).saturating_sub(limit);
        // The ring's oldest out first, then the oldest of `blocks` if that was not
        // enough; the rest of `blocks` in.
        let from_ring = ring.take_oldest(len, over, out);
        let from_blocks = copy(out.get_mut(from_ring..).unwrap_or(&mut []), blocks.get(..over - from_ring).unwrap_or(&[]));
        ring.put_newest(len, blocks.get(from_blocks..).unwrap_or(&[]));
        from_ring + from_blocks
    })
}

/// Puts `blocks` (as for `put`) into the class's transfer cache if they all fit under
/// its limit; false (nothing put) if they do not, or the class has no transfer cache.
/// No blocks: true, without taking the lock.
/// (What `put` pushes out needs a buffer its caller must clear first, 1 KiB of stack
/// written on every spill for what is rarely used.)
pub fn put_if_room(class: usize, blocks: &[*mut Block]) -> bool {
    if blocks.is_empty() {
        // A spill of the thread's own blocks alone: nothing to put, no lock to take.
        return true;
    }
    let limit = limit(class);
    if limit == 0 {
        return false;
    }
    with_ring(class, false, |ring, len| {
        if *len + blocks.len() > limit {
            return 0;
        }
        ring.put_newest(len, blocks);
        1
    }) == 1
}

/// Copies as much of `src` as fits to the start of `dst`; returns how much.
fn copy(dst: &mut [*mut Block], src: &[*mut Block]) -> usize {
    let mut n = 0;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
        n += 1;
    }
    n
}

/// Takes up to `out.len()` blocks of class `class`, the most recently put first, into
/// `out`; returns how many.
pub fn take(class: usize, out: &mut [*mut Block]) -> usize {
    with_ring(class, true, |ring, len| ring.take_newest(len, out))
}

/// When the transfer caches' decay last ran (ms), for `claim_decay`.
static LAST_DECAY_MS: AtomicU64 = AtomicU64::new(0);

/// True for one caller per decay period, process-wide: it runs the decay
/// (`take_unused` of every class). (Run by every thread's decay tick, each run reset
/// the low-water marks, and with N threads "no thread took them in a whole period"
/// meant a period over N.)
pub fn claim_decay(now_ms: u64) -> bool {
    let last = LAST_DECAY_MS.load(Ordering::Relaxed);
    now_ms >= last.saturating_add(crate::arena::DECAY_MS)
        && LAST_DECAY_MS.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// Takes the blocks of class `class` that no thread took since the last call (the
/// oldest ones, up to the low-water mark) into `out`; returns how many.
pub fn take_unused(class: usize, out: &mut [*mut Block; SLOTS]) -> usize {
    with_ring(class, true, |ring, len| {
        let n = ring.take_oldest(len, ring.low, out);
        ring.low = *len;
        n
    })
}

/// After fork, in the child: a transfer cache whose lock was held by a thread that is
/// gone may be half updated; start it empty (its blocks stay out, see the module doc).
pub fn reset_after_fork() {
    for tc in CACHES.iter() {
        if tc.lock.is_locked() {
            tc.lock.reset();
            tc.len.store(0, Ordering::Relaxed);
        }
    }
}
