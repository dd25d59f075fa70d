//! Thread heaps: the per-thread caches in front of the arenas (design invariants 2-4).
//!
//! Each thread owns spans of small blocks, one queue of them per size class; the
//! queue's head is the span the thread allocates from (`biased`). In front of them
//! sit the thread's caches (thread_cache.rs): malloc pops its class's cache and free
//! pushes onto it, whichever span the block is from, with no lock and no atomic
//! (alloc.rs has the fast paths). Caches refill from the class's transfer cache
//! (transfer_cache.rs), else from the current span, and spill in batches, under the
//! heap lock: a block of the thread's own span goes back on the span's free list,
//! another thread's into the transfer cache. Blocks that leave a transfer cache for
//! their spans go onto each span's atomic `thread_free` stack, which its owner
//! collects in one swap when its free list runs dry.
//!
//! A span with no free block left is set aside ("full") so refills don't walk it;
//! the owner's first free into it (a block its cache sends back, `free_local`) brings
//! it back to the front of its queue (noticed through the `used` bias, see
//! `Span::full_hold`). Other threads' frees into it go to its `thread_free` like any
//! other; the owner looks at its full spans of a class for those before it takes a
//! new span for the class (`rescue_full`), and once per decay period.
//!
//! The owner holds its heap's lock in its slow paths, never in its fast paths, which
//! touch only the caches: every span list and span free list of a heap changes under
//! its lock. The lock is there so that another thread can purge the spans of a heap
//! whose owner has gone idle (see "Idle heaps").
//!
//! When a thread exits, a pthread key destructor (not a Rust TLS destructor) gives its
//! heap back: empty spans return to their arena's free pages, the rest become orphans
//! that their arena hands to the next thread that needs a span of that class, and the
//! heap record goes back to a pool for the next thread. Allocations made after that,
//! by other key destructors of the exiting thread, are served by a shared, locked heap.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::arena::{Arena, ArenaInner};
use crate::options;
use crate::os::{self, PAGE_SIZE};
use crate::pagemap;
use crate::size_class::{block_size, span_of, PerClass, NUM_CLASSES, SMALL_LOOKUP_MAX};
use crate::span::{list_end, Block, Kind, Pool, Span, SpanList, TF_COUNT_SHIFT, TF_HEAD, TF_NORMAL, TF_ONE, TF_ORPHAN, TF_STATE};
use crate::sync::{Mutex, RawMutex};
use crate::thread_cache::BlockCache;
use crate::tls;

/// How many bytes of a fresh span are threaded onto the free list at a time: enough
/// to amortise the refill, little enough not to touch pages long before they're used.
const CARVE_BYTES: usize = 4096;

/// Entries of `ThreadHeap::direct`: one per request size from 0 to 1 KiB, so that the
/// malloc fast path indexes it with the size itself.
pub const DIRECT_SLOTS: usize = SMALL_LOOKUP_MAX + 1;

/// Every heap's `direct` table (computed at build time): the offset of the size's
/// class's cache, in 8-byte words.
const DIRECT: [u8; DIRECT_SLOTS] = {
    let mut t = [0u8; DIRECT_SLOTS];
    let mut size = 0;
    while size < DIRECT_SLOTS {
        let class = crate::size_class::class_of_computed(if size == 0 { 1 } else { size });
        t[size] = (crate::thread_cache::cache_offset(class) / 8) as u8;
        size += 1;
    }
    t
};

// The caches come first in a heap, so that every cache's offset in words fits a byte
// (the direct table's entries, the page map's cache words), and offsets are whole
// words.
const _: () = assert!(crate::thread_cache::cache_offset(NUM_CLASSES - 1) / 8 <= u8::MAX as u32);
const _: () = assert!(core::mem::size_of::<BlockCache>() % 8 == 0);

#[repr(C)]
pub struct ThreadHeap {
    /// What the free fast path finds at `cache_off` 0, the offset of every span that is
    /// not small (and of orphans): the `top` and `end` of a cache that is off (both
    /// null: full).
    pub no_cache: [usize; 2],
    /// The thread's caches, one per class (thread_cache.rs).
    pub caches: PerClass<BlockCache>,
    /// `direct[size]` is the offset in the heap, in 8-byte words, of
    /// `caches[class_of(size)]`, for sizes up to 1 KiB (the same in every heap,
    /// `DIRECT`): the malloc fast path finds its cache here without computing anything
    /// from the size. Word offsets, not pointers: the table is 1 KiB (17 cache lines,
    /// where the sizes of a program's mallocs land at random, few enough to stay in L1)
    /// instead of 8, and `heap + 8 * offset` costs no instruction (an address mode). In
    /// larson, the pointer table was a third of malloc and free's L1 misses.
    pub direct: [u8; DIRECT_SLOTS],
    pub slow_mode: bool,
    options_epoch: u32,
    pub arena: *mut Arena,
    /// Non-full spans of each class, current first.
    pub queues: PerClass<SpanList>,
    /// The span of each class whose `used` carries the +1 of being current (see
    /// `refresh_current`), or null.
    biased: PerClass<*mut Span>,
    /// Spans of each class set aside with no free block.
    pub full: PerClass<SpanList>,
    /// Slow-path refills, and when the spans were last purged (ms).
    refills: u32,
    /// How many blocks each class's next cache refill takes: it starts small and
    /// doubles per refill up to `refill_count` (`alloc_cached`).
    refill_want: PerClass<u8>,
    /// What each class's cache was left with at its last spill, to tell at the next one
    /// whether the thread only freed into it since (`free_to_full_cache`): the newest
    /// block left (null if none), and whether the spill emptied it. Both cleared when
    /// malloc finds the cache empty (`alloc_cached`).
    spill_top: PerClass<*mut Block>,
    spill_emptied: PerClass<bool>,
    /// `refills` when `new_span` last sent the caches' own blocks home.
    own_flush_refills: u32,
    last_purge: u64,
    /// Held by the owner while it works on its span lists (every slow path), and by
    /// another thread while it purges this heap's spans (see "Idle heaps").
    /// The fast paths do not take it.
    pub lock: RawMutex,
    /// When the owner last looked at the clock in its slow path (ms): how long it has
    /// been idle.
    active_ms: AtomicU64,
    /// Set by the owner around fork: other threads leave this heap alone.
    pinned: AtomicBool,
    /// Links of the list of live heaps (`REGISTRY`).
    reg_next: *mut ThreadHeap,
    reg_prev: *mut ThreadHeap,
    /// The caches' slots: each class's `limit_of` of them, at `SLOT_START`
    /// (thread_cache.rs).
    slots: [*mut Block; crate::thread_cache::TOTAL_SLOTS],
}

/// A statically allocated heap, shareable because the code that writes it holds a lock
/// or never writes it (the empty and dying sentinels).
#[repr(transparent)]
pub struct StaticHeap(UnsafeCell<ThreadHeap>);

// SAFETY: see the type's doc: EMPTY_HEAP and DYING_HEAP are never written; SHARED_HEAP
// is written only under SHARED_LOCK.
unsafe impl Sync for StaticHeap {}

impl StaticHeap {
    pub fn get(&self) -> *mut ThreadHeap {
        self.0.get()
    }
}

const fn empty_heap() -> ThreadHeap {
    ThreadHeap {
        no_cache: [0, 0],
        direct: DIRECT,
        caches: PerClass([const { BlockCache::off() }; NUM_CLASSES]),
        slow_mode: false,
        options_epoch: 0,
        arena: ptr::null_mut(),
        queues: PerClass([const { SpanList::new() }; NUM_CLASSES]),
        biased: PerClass([ptr::null_mut(); NUM_CLASSES]),
        full: PerClass([const { SpanList::new() }; NUM_CLASSES]),
        refills: 0,
        own_flush_refills: 0,
        refill_want: PerClass([0; NUM_CLASSES]),
        spill_top: PerClass([ptr::null_mut(); NUM_CLASSES]),
        spill_emptied: PerClass([false; NUM_CLASSES]),
        last_purge: 0,
        lock: RawMutex::new(),
        active_ms: AtomicU64::new(0),
        pinned: AtomicBool::new(false),
        reg_next: ptr::null_mut(),
        reg_prev: ptr::null_mut(),
        slots: [ptr::null_mut(); crate::thread_cache::TOTAL_SLOTS],
    }
}

/// What the TLS slot of a thread that has not allocated yet points at.
pub static EMPTY_HEAP: StaticHeap = StaticHeap(UnsafeCell::new(empty_heap()));
/// What the TLS slot of a thread whose heap was given back (it is exiting) points at.
pub static DYING_HEAP: StaticHeap = StaticHeap(UnsafeCell::new(empty_heap()));
/// The heap of exiting threads, under SHARED_LOCK.
pub static SHARED_HEAP: StaticHeap = StaticHeap(UnsafeCell::new(empty_heap()));
pub static SHARED_LOCK: RawMutex = RawMutex::new();

static HEAP_POOL: Mutex<Pool> = Mutex::new(Pool::new(core::mem::size_of::<ThreadHeap>()));

/// Live thread heaps (for statistics).
pub static LIVE_HEAPS: AtomicUsize = AtomicUsize::new(0);

/// The pthread key whose destructor gives an exiting thread's heap back.
pub static HEAP_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

// ---------------------------------------------------------------------------------
// Finding the calling thread's heap
// ---------------------------------------------------------------------------------

/// The heap the slow path should use, creating the thread's heap on its first call.
/// Null when no memory is left for one. The heap comes back locked (the thread's own
/// heap with its `lock`, the shared heap with SHARED_LOCK); the caller releases it
/// with `release`.
pub fn acquire() -> *mut ThreadHeap {
    let h = tls::heap();
    if h == EMPTY_HEAP.get() {
        let h = create();
        if !h.is_null() {
            // SAFETY: our new heap.
            unsafe { (*h).lock.lock() };
        }
        return h;
    }
    if h == DYING_HEAP.get() {
        SHARED_LOCK.lock();
        let s = SHARED_HEAP.get();
        // SAFETY: under SHARED_LOCK.
        unsafe {
            if (*s).arena.is_null() {
                (*s).arena = crate::arena::ARENAS[0].as_ptr();
            }
        }
        return s;
    }
    // SAFETY: the calling thread's live heap.
    unsafe { (*h).lock.lock() };
    h
}

/// Undoes `acquire`.
#[inline]
pub fn release(h: *mut ThreadHeap) {
    if h == SHARED_HEAP.get() {
        SHARED_LOCK.unlock();
    } else {
        // SAFETY: a heap `acquire` locked.
        unsafe { (*h).lock.unlock() };
    }
}

#[cold]
fn create() -> *mut ThreadHeap {
    crate::init::ensure();
    let h = HEAP_POOL.lock().alloc().cast::<ThreadHeap>();
    if h.is_null() {
        return h;
    }
    // SAFETY: a fresh pool record of the right size; from here on it is this thread's.
    // EMPTY_HEAP is never written, and a ThreadHeap is plain data (no Drop).
    unsafe {
        // Copied from the static EMPTY_HEAP rather than written from `empty_heap(..)`,
        // which the compiler builds on the stack first: a frame the size of a heap
        // (over 8 KiB), whose pages a new thread's stack (glibc gives back the unused
        // part of cached stacks) faulted in on every thread start.
        ptr::copy_nonoverlapping(EMPTY_HEAP.get(), h, 1);
        (*h).arena = crate::arena::pick();
        (*h).options_epoch = u32::MAX; // sync mode on first use
        // Active from birth: a heap whose owner has not looked at the clock yet is not
        // idle (with 0 here, other threads' decay treated every new heap as idle since
        // boot and went through its spans).
        (*h).active_ms.store(os::now_ms(), Ordering::Relaxed);
    }
    LIVE_HEAPS.fetch_add(1, Ordering::Relaxed);
    register(h);
    tls::set_heap(h);
    // Both may allocate (pthread_atfork's list, a second-level key array): the TLS slot
    // already holds the new heap, so such a nested malloc finds it.
    crate::init::ensure_hooks();
    let key = HEAP_KEY.load(Ordering::Acquire);
    if key != u32::MAX {
        // SAFETY: registers the heap for this thread's key destructor.
        unsafe { libc::pthread_setspecific(key, h as *const libc::c_void) };
    }
    h
}

/// The key destructor: runs when a thread that allocated exits.
pub unsafe extern "C" fn on_thread_exit(arg: *mut libc::c_void) {
    let h = arg.cast::<ThreadHeap>();
    if h.is_null() || h == SHARED_HEAP.get() {
        return;
    }
    let saved = os::errno();
    // Later allocations of this thread (other destructors) go to the shared heap.
    tls::set_heap(DYING_HEAP.get());
    // SAFETY: `h` is this thread's heap; after this call no span refers to it.
    unsafe {
        (*h).lock.lock();
        abandon(h);
        (*h).lock.unlock();
        unregister(h);
        HEAP_POOL.lock().free(h.cast());
    }
    LIVE_HEAPS.fetch_sub(1, Ordering::Relaxed);
    os::set_errno(saved);
}

// ---------------------------------------------------------------------------------
// Allocation slow path
// ---------------------------------------------------------------------------------

impl ThreadHeap {
    /// Moves the "current" +1 of `used` to the queue head, the span the class
    /// allocates from (`biased[class]`).
    ///
    /// The span a class allocates from counts one extra in `used`, so that freeing its
    /// last block does not bring `used` to 0 and send every malloc/free pair of a
    /// lightly used class through the slow path; it keeps its (empty) span instead.
    /// A span that loses the +1 and is left empty goes back to its arena.
    fn refresh_current(&mut self, class: usize) {
        let head = self.queues[class].head;
        let old = self.biased[class];
        if old != head {
            // SAFETY: `head` and `old` are spans of this heap; `old` is still on the
            // queue (a span leaving the queue drops its +1 first, see `drop_bias`).
            unsafe {
                if !head.is_null() {
                    (*head).used += 1;
                    (*head).is_current = true;
                }
                self.biased[class] = head;
                if !old.is_null() {
                    (*old).used -= 1;
                    (*old).is_current = false;
                    if (*old).used == 0 {
                        self.queues[class].remove(old);
                        release_small_span(old);
                    }
                }
            }
        }
    }

    /// Takes the "current" +1 back from `s`, which is leaving its queue.
    fn drop_bias(&mut self, class: usize, s: *mut Span) {
        if !s.is_null() && self.biased[class] == s {
            // SAFETY: `s` is a span of this heap.
            unsafe {
                (*s).used -= 1;
                (*s).is_current = false;
            }
            self.biased[class] = ptr::null_mut();
        }
    }

    /// Re-reads the options that decide whether this heap may use the fast paths
    /// (M_PERTURB, or an mmap threshold below the fast path's sizes, need every call
    /// in the slow path), opening or closing the caches if that changed.
    #[inline]
    pub fn sync_options(&mut self) {
        let epoch = options::epoch();
        if epoch == self.options_epoch {
            return;
        }
        self.options_epoch = epoch;
        let slow = options::get().needs_slow_path();
        if ptr::eq(self, SHARED_HEAP.get()) {
            return;
        }
        // The caches are open exactly when the heap is not in slow mode (closed, so
        // flushed, when it enters it). Class 0 caches whenever they are.
        let open = self.caches[0].is_open();
        if slow && open {
            self.close_caches();
        }
        self.slow_mode = slow;
        if !slow && !open {
            self.open_caches();
        }
    }

    /// A block of size class `class`, or null when out of memory.
    pub fn alloc_small(&mut self, class: usize) -> *mut u8 {
        self.maybe_purge();
        let mut one = [ptr::null_mut(); 1];
        if self.take_blocks(class, &mut one, false) == 0 {
            return ptr::null_mut();
        }
        one[0].cast()
    }

    /// Takes up to `out.len()` blocks of class `class` out of this heap's spans (the
    /// current span first, in its free list's order) into `out`; returns how many. At
    /// least one unless out of memory: a fresh span is taken only when the class has
    /// no block at all, not to top a batch up. The blocks come out marked free (for a
    /// cache, `for_cache`) or not.
    pub fn take_blocks(&mut self, class: usize, out: &mut [*mut Block], for_cache: bool) -> usize {
        let mut n = 0;
        while n < out.len() {
            let s = self.queues[class].head;
            if s.is_null() {
                if n > 0 {
                    break;
                }
                if self.rescue_full(class, RESCUE_SCAN) {
                    continue;
                }
                let fresh = self.new_span(class);
                if fresh.is_null() {
                    break;
                }
                // SAFETY: `fresh` is a span this heap now owns, on no list.
                unsafe { self.queues[class].push_front(fresh) };
                continue;
            }
            // SAFETY: `s` is a span of this heap.
            unsafe {
                n += self.pop_blocks(s, &mut out[n..], for_cache);
                if n == out.len() {
                    break;
                }
                // Nothing left in `s`: set it aside and go on with the next span. (Its
                // blocks are all out or pending, so `used` stays above 0 without the +1.)
                self.queues[class].remove(s);
                self.drop_bias(class, s);
                if (*s).thread_free.load(Ordering::Acquire) & TF_HEAD != 0 {
                    // Remote frees arrived since we looked: collect them.
                    self.queues[class].push_front(s);
                    continue;
                }
                self.set_full(s);
            }
        }
        self.refresh_current(class);
        n
    }

    /// Pops up to `out.len()` blocks from `s` into `out`, refilling its free list from
    /// remote frees, purged pages or its never-used tail when it runs dry; returns how
    /// many (0 if `s` has nothing left). They keep their free mark if `for_cache`.
    unsafe fn pop_blocks(&mut self, s: *mut Span, out: &mut [*mut Block], for_cache: bool) -> usize {
        // SAFETY: the caller owns `s`.
        unsafe {
            let sp = &mut *s;
            let mut k = 0;
            while k < out.len() {
                if sp.free == list_end() && !restock(sp) {
                    break;
                }
                let b = sp.free;
                // A free block of this span, or something wrote over the one before it
                // or over this one (an overflow out of the block below, a write after
                // free): its link cannot be trusted. The mark alone does not say "of
                // this span": every free block carries one, the blocks of other spans
                // and those in caches too, and a link overwritten with such a block's
                // address would hand it out a second time. (The span test first: it
                // reads nothing at `b`, which may be any address. A range, not
                // `is_block_start`: its division cost a refill-heavy program 8% more
                // instructions; a link into the middle of a block of this span would
                // need the mark's value there too.)
                if !sp.in_carved(b as usize) || !Block::is_marked(b) {
                    os::fatal_misuse("malloc", "corrupted free block (overflow or write after free) at", b as usize);
                }
                if sp.checked && options::get().perturb_byte == 0 {
                    crate::check::verify_zero(b, s, "malloc");
                }
                sp.free = (*b).next;
                if !for_cache {
                    (*b).mark = 0;
                }
                sp.used += 1;
                if self.slow_mode {
                    perturb_alloc(b.cast(), sp.block_size as usize);
                }
                out[k] = b;
                k += 1;
            }
            k
        }
    }

    /// Decay inside spans: once per DECAY_MS (looking at the clock every 64 refills),
    /// purge the spans this heap is not allocating from (purge.rs), so that pages
    /// freed inside them go back to the OS without any call from the program; give
    /// back the spans that turn out empty; take the free spans of idle heaps ("Idle
    /// heaps" below); and let every arena decay its free pages (an arena's own clock
    /// only runs on span traffic, which a steady program, or an arena whose threads
    /// are idle, may not have).
    fn maybe_purge(&mut self) {
        self.refills = self.refills.wrapping_add(1);
        if self.refills % 64 != 0 {
            return;
        }
        let now = os::now_ms();
        self.active_ms.store(now, Ordering::Relaxed);
        if now < self.last_purge + crate::arena::DECAY_MS {
            return;
        }
        self.last_purge = now;
        if crate::transfer_cache::claim_decay(now) {
            self.drain_transfer_caches(true);
        }
        self.purge(false);
        reclaim_idle_heaps(self, now);
        for a in crate::arena::ARENAS.iter().take(crate::init::arena_count()) {
            a.lock().maybe_decay();
        }
    }

    /// Purges this heap's spans (all of them, or all but each class's current one).
    ///
    /// The blocks other threads freed are collected first: left on `thread_free` until
    /// the owner allocates from that span again (which, after a burst, may be never),
    /// they would pin the span and every page they sit in. A span that this leaves
    /// empty goes back to its arena, and so does an empty current span (decay runs
    /// at most once per DECAY_MS: a class still in use takes a span from the arena's
    /// cache again).
    pub fn purge(&mut self, include_current: bool) -> usize {
        let mut bytes = 0;
        for c in 0..NUM_CLASSES {
            self.rescue_full(c, usize::MAX);
            let head = self.queues[c].head;
            let mut released = false;
            let mut s = head;
            while !s.is_null() {
                // SAFETY: our own span, on our queue; its successor is read before it
                // may leave the queue.
                unsafe {
                    let next = (*s).next;
                    collect_thread_free(&mut *s);
                    let current = self.biased[c] == s;
                    if (*s).used == current as i32 {
                        // Empty (the current span's count is its +1 alone).
                        self.queues[c].remove(s);
                        self.drop_bias(c, s);
                        release_small_span(s);
                        released = true;
                    } else if include_current || s != head {
                        bytes += crate::purge::purge(&mut *s);
                    }
                    s = next;
                }
            }
            if released {
                self.refresh_current(c);
            }
        }
        bytes
    }

    /// Sets `s` (exhausted, unlinked from its queue) aside as full.
    unsafe fn set_full(&mut self, s: *mut Span) {
        // SAFETY: the caller owns `s`.
        unsafe {
            (*s).in_full = true;
            // `used` is `capacity` now; hold it at full_hold() (see there).
            (*s).used = (*s).full_hold();
            self.full[(*s).class as usize].push_front(s);
        }
    }

    /// Brings a full span back into its class queue, at the front: it becomes the span
    /// the class allocates from, and the block just freed into it is the next one out.
    ///
    /// (At the back, the current span was used up first and a span took no turns
    /// between full and queue for single frees, but the queue went round like a FIFO:
    /// a block freed into a span at the back waited for every span ahead of it, and
    /// came out with its cache lines long gone. In larson, whose live set is about the
    /// size of a last-level cache, the whole heap was in rotation: about 5% more
    /// last-level misses than at the front (cachegrind, 8 MiB LL, `larson 2 2`:
    /// 10.3-10.5 M in 4 runs against 9.7-10.1 M in 10; tcmalloc, which puts such spans
    /// first too, 9.6 M), for the same instructions.)
    unsafe fn unfull(&mut self, s: *mut Span) {
        // SAFETY: the caller owns `s`, which is on its class's full list.
        unsafe {
            let sp = &mut *s;
            sp.leave_full();
            let class = sp.class as usize;
            self.full[class].remove(s);
            self.queues[class].push_front(s);
            self.refresh_current(class);
        }
    }

    /// Brings back the full spans of `class` that other threads freed blocks into,
    /// looking at `max_scan` of them at most (those looked at without luck go to the
    /// back, so that repeated calls go round the list). True if there was one.
    ///
    /// (Bounded for the allocation path: a program that only grows its heap keeps
    /// thousands of full spans, and a whole scan for every new span it took was 12% of
    /// its refills' time in frag.)
    fn rescue_full(&mut self, class: usize, max_scan: usize) -> bool {
        let mut found = false;
        let mut s = self.full[class].head;
        let mut scanned = 0;
        // A scan of the whole list (the decay's) leaves the spans it passes where they
        // are: there is no next call to go round to.
        let rotate = max_scan < self.full[class].len;
        let max_scan = max_scan.min(self.full[class].len);
        while !s.is_null() && scanned < max_scan {
            scanned += 1;
            // SAFETY: our own spans on our full list; the successor is read before `s`
            // may move.
            unsafe {
                let next = (*s).next;
                if (*s).thread_free.load(Ordering::Acquire) & TF_HEAD != 0 {
                    self.unfull(s);
                    found = true;
                } else if rotate {
                    self.full[class].remove(s);
                    self.full[class].push_back(s);
                }
                s = next;
            }
        }
        found
    }

    /// The owner's free of `b` into its span `s`, outside the fast path.
    ///
    /// # Safety
    /// `s` is a small span of this heap and `b` a block of it that is out.
    pub unsafe fn free_local(&mut self, s: *mut Span, b: *mut Block) {
        // SAFETY: per the contract.
        unsafe {
            if self.slow_mode {
                perturb_free(b.cast(), (*s).block_size as usize);
            }
            Block::put(b, (*s).free);
            (*s).free = b;
            (*s).used -= 1;
            if (*s).used <= 0 {
                self.settle(s);
            }
        }
    }

    /// After a local free left `used == 0`: relink a full span, or retire an empty one.
    ///
    /// # Safety
    /// `s` is a small span of this heap.
    pub unsafe fn settle(&mut self, s: *mut Span) {
        // SAFETY: per the contract.
        unsafe {
            if (*s).used < 0 {
                // More frees than blocks out: the marks missed a double free (a block
                // freed again after its page was purged, or a forged mark).
                os::fatal_misuse("free", "double free (more frees than allocations) in the span at", (*s).start);
            }
            if (*s).in_full {
                self.unfull(s);
                return;
            }
            // Empty, and not current (the current span's count includes its +1).
            let class = (*s).class as usize;
            self.queues[class].remove(s);
            release_small_span(s);
            // If the current span is empty too, the class is winding down: let it go as
            // well rather than have it pin pages (often the top of the heap).
            let head = self.queues[class].head;
            if !head.is_null() && (*head).used == 1 && self.biased[class] == head {
                self.queues[class].remove(head);
                self.drop_bias(class, head);
                release_small_span(head);
                self.refresh_current(class);
            }
        }
    }

    /// A span of class `class` for this heap, from memory that is resident first. In
    /// this order, each from the heap's arena and then from the others (when their
    /// locks are free: a span carries its arena, and goes back to it):
    /// 1. an orphan with free blocks or an empty span of the class kept ready; then an
    ///    empty span kept ready for another class, laid out anew (`Source::Convert`);
    /// 2. the same again, after the blocks of this heap's own spans that the caches
    ///    hold (its thread cache, the transfer caches) have gone home (at most once
    ///    per OWN_FLUSH_REFILLS refills);
    /// 3. free pages;
    /// 4. after every cached block has gone home, free pages of the heap's arena;
    /// 5. new pages the heap's own arena grows by.
    ///
    /// Null when out of memory.
    ///
    /// (Free pages of the own arena before another arena's ready spans faulted in fresh
    /// pages while those stayed resident: in larson, the spans the main thread's
    /// blocks came from, emptied by the workers' frees, sat in arena 0 while the
    /// workers carved arena 1. Resident first: larson's peak RSS 25.3 -> 24.3 MiB,
    /// thread-churn's 7.9 -> 7.4 MiB. Converting spans kept for other classes, in a
    /// program whose phases use different sizes: rust-collections 18.4 -> 17.2 MiB.)
    ///
    /// Why the caches (2, 4): a few cached blocks of a class the program has stopped
    /// using keep their spans, and all the pages the spans hold, from going back; a
    /// program that moves from one set of sizes to another (phases) would grow by a
    /// span of each class it left behind. Its own blocks first, and only those before
    /// free pages: a block of another thread's span sent home sits on that span's
    /// `thread_free` until its owner allocates from it again, which an idle owner
    /// never does (in larson, sending them home before free pages took the peak from
    /// 24.2 to 26.4 MiB; own blocks only, rust-collections from 24.6 to 19.9 MiB).
    fn new_span(&mut self, class: usize) -> *mut Span {
        let resident = [Source::Resident, Source::Convert];
        let s = self.span_from_arenas(class, &resident);
        if !s.is_null() {
            return s;
        }
        if self.refills.wrapping_sub(self.own_flush_refills) >= OWN_FLUSH_REFILLS {
            self.own_flush_refills = self.refills;
            if self.flush_own_blocks() {
                let s = self.span_from_arenas(class, &resident);
                if !s.is_null() {
                    return s;
                }
            }
        }
        let s = self.span_from_arenas(class, &[Source::Pages]);
        if !s.is_null() {
            return s;
        }
        if self.flush_all_caches() | self.drain_transfer_caches(false) {
            let s = self.span_from(self.arena, class, Source::Pages, true);
            if !s.is_null() {
                return s;
            }
        }
        self.span_from(self.arena, class, Source::Grow, true)
    }

    /// For each of `sources` in turn, a span from this heap's arena (waiting for its
    /// lock) and then from the others (if their locks are free); null if none has one.
    fn span_from_arenas(&mut self, class: usize, sources: &[Source]) -> *mut Span {
        let own = self.arena;
        for &source in sources {
            let s = self.span_from(own, class, source, true);
            if !s.is_null() {
                return s;
            }
            for other in crate::arena::ARENAS.iter().take(crate::init::arena_count()) {
                if other.as_ptr() != own {
                    let s = self.span_from(other.as_ptr(), class, source, false);
                    if !s.is_null() {
                        return s;
                    }
                }
            }
        }
        ptr::null_mut()
    }

    /// `new_span`'s look at one arena: waiting for its lock or not (`wait`), taking
    /// what `source` allows.
    fn span_from(&mut self, arena: *mut Arena, class: usize, source: Source, wait: bool) -> *mut Span {
        let me: *mut ThreadHeap = self;
        // SAFETY: arenas are static.
        let arena_ref = unsafe { &*arena };
        let mut a = if wait {
            arena_ref.lock()
        } else {
            match arena_ref.try_lock() {
                Some(a) => a,
                None => return ptr::null_mut(),
            }
        };
        let orphan = a.orphans[class].pop_front();
        if !orphan.is_null() {
            // SAFETY: orphans are valid spans of this arena, in state ORPHAN with an
            // empty thread_free list; under the arena lock no orphan free runs on them.
            unsafe {
                (*orphan).thread_free.store(TF_NORMAL, Ordering::Release);
                (*orphan).heap = me;
                (*orphan).in_full = false;
                pagemap::set_cache_off(orphan, crate::thread_cache::cache_offset(class));
            }
            return orphan;
        }
        let cached = a.take_cached_span(class);
        if !cached.is_null() {
            // SAFETY: a cached span is an empty span of this class, laid out and mapped
            // in the page map already (arena.rs), that nobody references.
            unsafe {
                (*cached).thread_free.store(TF_NORMAL, Ordering::Release);
                (*cached).heap = me;
                (*cached).checked = crate::check::enabled();
                // A cached span has cache_off 0 (arena.rs): without its class's
                // offset, every free of its blocks would take the slow path.
                pagemap::set_cache_off(cached, crate::thread_cache::cache_offset(class));
            }
            return cached;
        }
        if source == Source::Resident {
            return ptr::null_mut();
        }
        let shape = span_of(class);
        let converted = source == Source::Convert;
        let s = if converted {
            a.take_cached_span_of_pages(shape.pages as usize)
        } else {
            a.alloc_run_or_grow(arena, shape.pages as usize, PAGE_SIZE, source == Source::Grow)
        };
        if s.is_null() {
            return s;
        }
        if !converted {
            a.small_span_bytes += shape.pages as usize * PAGE_SIZE;
        }
        let generation = a.generation;
        drop(a);
        // SAFETY: `s` is a fresh run of this arena, or an empty span just taken from its
        // cache, that nothing else references.
        unsafe {
            let sp = &mut *s;
            let size = block_size(class) as u32;
            sp.kind = Kind::Small;
            sp.cache_off = crate::thread_cache::cache_offset(class);
            sp.class = class as u8;
            sp.block_size = size;
            sp.capacity = shape.capacity;
            sp.bump = sp.start;
            sp.end = sp.start + shape.capacity as usize * size as usize;
            sp.free = list_end();
            sp.used = 0;
            sp.purged = 0;
            sp.checked = crate::check::enabled();
            sp.in_full = false;
            sp.thread_free.store(TF_NORMAL, Ordering::Relaxed);
            sp.heap = me;
            sp.arena_gen = generation;
            // Publish the span in the page map before any block of it is handed out (a
            // converted span is there already, same record and pages, but its cache
            // words are 0, as every cached span's are).
            // (Through `sp`, still in use: not through `s` beside it.)
            let record: *mut Span = sp;
            if converted {
                pagemap::remap(record);
            } else {
                pagemap::set_range(sp.start, sp.pages, record);
            }
        }
        s
    }
}

/// Where `span_from` may take a span from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Only spans whose pages are in use already: an orphan with free blocks, an empty
    /// span kept ready.
    Resident,
    /// An empty span kept ready for another class with as many pages, laid out anew;
    /// never the last one a class has ready (arena.rs, `take_cached_span_of_pages`).
    Convert,
    /// Those, or the arena's free pages.
    Pages,
    /// Any of those, or new pages the arena grows by.
    Grow,
}

/// Refills the empty free list of `s` (owned by the caller): from its remote frees,
/// else its purged pages, else its never-used tail. False if it has none of these.
fn restock(s: &mut Span) -> bool {
    collect_thread_free(s);
    if s.free != list_end() {
        return true;
    }
    // SAFETY: the caller owns `s`.
    if unsafe { crate::purge::unpurge(s) } {
        return true;
    }
    if s.bump < s.end {
        carve(s);
        return true;
    }
    false
}

/// Moves the remote frees of `s` onto its free list. The caller owns `s`.
fn collect_thread_free(s: &mut Span) {
    let mut cur = s.thread_free.load(Ordering::Relaxed);
    loop {
        if cur & TF_HEAD == 0 {
            return;
        }
        match s.thread_free.compare_exchange_weak(cur, cur & TF_STATE, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    take_remote_list(s, cur);
}

/// Puts the list of remotely freed blocks in `word` (a `thread_free` value, detached
/// from the span) onto the free list of `s`, and stops counting them as out.
fn take_remote_list(s: &mut Span, word: usize) {
    let head = (word & TF_HEAD) as *mut Block;
    if head.is_null() {
        return;
    }
    let n = (word >> TF_COUNT_SHIFT) as i32;
    // (Never called on a span held as full: callers take it off the full list first.)
    if n > s.used {
        // More blocks came back than were out: one came back twice.
        os::fatal_misuse("free", "double free (a block freed twice by other threads) in the span at", s.start);
    }
    if s.free != list_end() {
        // Both lists end at LIST_END: chain ours behind theirs (rare: the refill takes
        // the list only when the free list is empty; the decay takes it any time).
        // SAFETY: the list was pushed by other threads with release CASes (and detached
        // with an acquire); its `n` blocks belong to `s`.
        unsafe {
            let mut tail = head;
            for _ in 1..n {
                tail = (*tail).next;
                if !s.is_block_start(tail as usize) {
                    // A link overwritten after the free (pop_blocks checks the others).
                    os::fatal_misuse("malloc", "corrupted free block (overflow or write after free) at", tail as usize);
                }
            }
            if (*tail).next != list_end() {
                // The count and the links disagree: a block was pushed twice.
                os::fatal_misuse("free", "double free (a block freed twice by other threads) in the span at", s.start);
            }
            (*tail).next = s.free;
        }
    }
    s.free = head;
    s.used -= n;
}

/// Threads up to CARVE_BYTES of never-used blocks onto the (empty) free list, marked.
fn carve(s: &mut Span) {
    // (Never 0 for a small span; the max keeps the compiler from planting a panic.)
    let size = (s.block_size as usize).max(16);
    let n = ((s.end - s.bump) / size).min((CARVE_BYTES / size).max(1));
    let first = s.bump;
    // SAFETY: [bump, bump + n*size) lies in the span's never-used tail.
    unsafe {
        if s.checked {
            // Strict mode: free blocks read zero beyond their mark and link (check.rs).
            ptr::write_bytes(first as *mut u8, 0, n * size);
        }
        let mut p = first;
        for _ in 1..n {
            Block::put(p as *mut Block, (p + size) as *mut Block);
            p += size;
        }
        Block::put(p as *mut Block, list_end());
    }
    s.bump = first + n * size;
    s.free = first as *mut Block;
}

/// Gives an empty small span (unlinked from any list) back to its arena's pages.
///
/// # Safety
/// `s` holds no live block and no list links to it.
pub unsafe fn release_small_span(s: *mut Span) {
    // SAFETY: per the contract; arenas are static.
    unsafe {
        let arena = (*s).arena;
        let mut a = (*arena).lock();
        release_small_span_locked(&mut a, s);
    }
}

/// As `release_small_span`, with the span's arena already locked.
///
/// # Safety
/// As `release_small_span`; `a` is `(*s).arena`'s inner, locked.
pub unsafe fn release_small_span_locked(a: &mut ArenaInner, s: *mut Span) {
    // SAFETY: per the contract.
    unsafe {
        if (*s).arena_gen != a.generation {
            return; // the arena was reset after fork: leave these pages alone
        }
        a.cache_small_span(s);
    }
}

// ---------------------------------------------------------------------------------
// Idle heaps: other threads purge the spans an idle thread's heap holds
// ---------------------------------------------------------------------------------
//
// A thread that stops allocating (blocked in a syscall, waiting on a lock, sleeping)
// never runs its slow path again, so the spans whose blocks other threads freed stay
// in its heap, pending in their `thread_free`, however many megabytes that is. So once
// per decay period each active thread looks at the heaps whose owners have not been
// in their slow path for a decay period and purges them as their owner's decay would
// (`purge(true)`): remote frees collected, empty spans given back to the arenas, free
// pages inside the others decommitted. What stays is the blocks the program has and
// the idle thread's caches (at most CACHE_BYTES per class, thread_cache.rs).
//
// Why this is safe without the owner: it takes the heap's `lock`, which the owner
// holds in every slow path (with `try_lock`: a heap in use is skipped, and nobody
// waits), and the owner's fast paths touch only its caches, never a span.
// (`give_back_whole_span` below, run by the thread whose free completes a span's
// `thread_free`, relies on the same lock.)

/// The list of live thread heaps, for `reclaim_idle_heaps`.
struct Registry {
    head: *mut ThreadHeap,
}
// SAFETY: only used under its Mutex.
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { head: ptr::null_mut() });

fn register(h: *mut ThreadHeap) {
    let mut r = REGISTRY.lock();
    // SAFETY: `h` is a new heap on no list; the list's heaps are live (under the lock).
    unsafe {
        (*h).reg_prev = ptr::null_mut();
        (*h).reg_next = r.head;
        if !r.head.is_null() {
            (*r.head).reg_prev = h;
        }
    }
    r.head = h;
}

fn unregister(h: *mut ThreadHeap) {
    let mut r = REGISTRY.lock();
    // SAFETY: `h` and its neighbours are on the list (under the lock).
    unsafe {
        if (*h).reg_prev.is_null() {
            r.head = (*h).reg_next;
        } else {
            (*(*h).reg_prev).reg_next = (*h).reg_next;
        }
        if !(*h).reg_next.is_null() {
            (*(*h).reg_next).reg_prev = (*h).reg_prev;
        }
    }
}

/// Takes the free spans of every heap idle for a decay period (see above). `me` is
/// the calling thread's heap, which it holds locked.
fn reclaim_idle_heaps(me: *mut ThreadHeap, now: u64) {
    let r = REGISTRY.lock();
    let mut h = r.head;
    while !h.is_null() {
        // SAFETY: heaps on the list are live while we hold its lock (a heap leaves it
        // before its record is freed); their locks order us with their owners.
        unsafe {
            let idle = now.saturating_sub((*h).active_ms.load(Ordering::Relaxed)) >= crate::arena::DECAY_MS;
            if h != me && idle && (*h).lock.try_lock() {
                if !(*h).pinned.load(Ordering::SeqCst) {
                    (*h).purge(true);
                }
                (*h).lock.unlock();
            }
            h = (*h).reg_next;
        }
    }
}

impl ThreadHeap {
    /// Gives `s`, a span of this heap (not the caller's), back to its arena if it
    /// holds no block the program has and is not a current span. The caller holds
    /// `self.lock`.
    ///
    /// # Safety
    /// `s` is on one of this heap's lists.
    unsafe fn give_back_if_free(&mut self, s: *mut Span) {
        // SAFETY: per the contract; the heap's lists hold still under its lock.
        unsafe {
            let c = (*s).class as usize;
            if s == self.biased[c] || !all_blocks_pending(&*s) {
                return;
            }
            if (*s).in_full {
                self.full[c].remove(s);
            } else {
                self.queues[c].remove(s);
            }
            release_small_span(s);
        }
    }
}

/// A free by another thread just made every block of `s` pending on its
/// `thread_free` (a span handed out whole, and freed whole elsewhere: a producer's
/// blocks, or what a thread allocated before it went idle). Give the span back now
/// rather than at the owner's next refill or the next decay, if its heap is not
/// busy; `s` may have changed hands since the free (see `give_back_if_free`).
#[cold]
#[inline(never)]
fn give_back_whole_span(s: *mut Span) {
    // SAFETY: heap records are never unmapped (a pool), so locking the one `s` named
    // is sound even if it was given back since; under its lock, `s` belongs to it
    // only if `s.heap` still names it and `s` is not an orphan (abandon runs under the
    // heap lock too).
    unsafe {
        let h = (*s).heap;
        // The shared heap's lists are SHARED_LOCK's, not its `lock`'s.
        if h.is_null() || h == tls::heap() || h == SHARED_HEAP.get() || !(*h).lock.try_lock() {
            return;
        }
        if (*s).heap == h && (*s).tf_state() == TF_NORMAL && !(*h).pinned.load(Ordering::SeqCst) {
            // (free_remote leaves errno alone; releasing a span may make syscalls.)
            let saved = os::errno();
            (*h).give_back_if_free(s);
            os::set_errno(saved);
        }
        (*h).lock.unlock();
    }
}

/// Are all the blocks of `s` that are not on its free list on its `thread_free` list
/// (so none is out)? When true, `thread_free` is closed, so no free pushes onto it
/// any more. `s` is a span of a heap the caller holds locked, not its current span.
fn all_blocks_pending(s: &Span) -> bool {
    let word = s.thread_free.load(Ordering::Acquire);
    if word & TF_HEAD == 0 || word & TF_STATE != TF_NORMAL {
        return false;
    }
    let pending = (word >> TF_COUNT_SHIFT) as i32;
    // SAFETY: `used` changes under the heap lock, which the caller holds (the read
    // stays volatile: a stale value would only make the comparison fail).
    let used = unsafe { ptr::read_volatile(&s.used) };
    let not_free = if s.in_full { s.capacity as i32 - (s.full_hold() - used) } else { used };
    not_free == pending && s.thread_free.compare_exchange(word, TF_ORPHAN, Ordering::AcqRel, Ordering::Relaxed).is_ok()
}

// ---------------------------------------------------------------------------------
// Frees that are not the owner's fast path
// ---------------------------------------------------------------------------------

/// Free of block `b` of small span `s` by a thread that does not own it.
///
/// # Safety
/// `b` is an out block of the small span `s`, not marked free: the caller validated it
/// (alloc.rs `owning_span` reports a double free before this runs; free_orphan comes
/// back here, with `b` marked by the first pass, when it loses a race). Makes no
/// syscall but through `free_orphan`, which keeps errno: callers need not.
pub unsafe fn free_remote(s: *mut Span, b: *mut Block) {
    // SAFETY: per the contract.
    unsafe {
        (*b).mark = Block::mark_of(b);
        free_remote_chain(s, b, b, 1);
    }
}

/// Free of `k` blocks of small span `s` by a thread that does not own it, linked from
/// `first` to `last` through `Block::next` and marked free: one push onto the span's
/// `thread_free` for all of them.
///
/// # Safety
/// `s` is a small span this thread does not own, and each block of the chain a block
/// of `s` that was out of it, validated as a block start not already free (by
/// `owning_span` for `free_remote`, `check_cached` in `send_home`), and is now marked
/// free.
pub unsafe fn free_remote_chain(s: *mut Span, first: *mut Block, last: *mut Block, k: usize) {
    // SAFETY: per the contract; `s` stays valid while the blocks are out.
    unsafe {
        let tf = &(*s).thread_free;
        let mut cur = tf.load(Ordering::Acquire);
        loop {
            let state = cur & TF_STATE;
            if state == TF_ORPHAN {
                // One at a time, under the arena lock.
                let mut b = first;
                for _ in 0..k {
                    let next = (*b).next;
                    free_orphan(s, b);
                    b = next;
                }
                return;
            }
            let head = cur & TF_HEAD;
            (*last).next = if head == 0 { list_end() } else { head as *mut Block };
            let pushed = first as usize | state | ((cur & !(TF_HEAD | TF_STATE)) + k * TF_ONE);
            match tf.compare_exchange_weak(cur, pushed, Ordering::Release, Ordering::Acquire) {
                Ok(_) => {
                    if pushed >> TF_COUNT_SHIFT == (*s).capacity as usize {
                        give_back_whole_span(s);
                    }
                    return;
                }
                Err(now) => cur = now,
            }
        }
    }
}

impl ThreadHeap {
    /// Sends the oldest `n` blocks of class `c`'s cache to their spans.
    pub fn flush_cache(&mut self, c: usize, n: usize) {
        let mut batch = [ptr::null_mut::<Block>(); crate::thread_cache::SLOTS];
        let n = self.oldest_cached(c, n, &mut batch);
        self.send_home(batch.get(..n).unwrap_or(&[]));
        self.caches[c].remove_oldest(n);
    }

    /// Moves the oldest `n` blocks of class `c`'s cache out of it: those of this heap's
    /// spans to their free lists, the others into the class's transfer cache (what
    /// that pushes out of it, its oldest blocks, goes home).
    ///
    /// (Own blocks into the transfer cache too kept more memory: a block there keeps
    /// its span from emptying, and a thread that spilled and refilled its own blocks
    /// through it kept up to 64 KiB per class out of its spans. In the bursty test's
    /// steady phase, 2.5 MiB more RSS than without transfer caches; own blocks home,
    /// about 1 MiB more, and larson's peak 24.4 -> 23.6 MiB.)
    pub fn spill_cache(&mut self, c: usize, n: usize) {
        let mut batch = [ptr::null_mut::<Block>(); crate::thread_cache::SLOTS];
        let n = self.oldest_cached(c, n, &mut batch);
        self.caches[c].remove_oldest(n);
        // Blocks of this heap's spans go home; the others are in transit between
        // threads.
        let batch = batch.get_mut(..n).unwrap_or(&mut []);
        let foreign = self.keep_foreign(batch);
        self.put_in_transfer_cache(c, batch.get(..foreign).unwrap_or(&[]));
    }

    /// Checks each cached block of `blocks`, sends those of this heap's spans to their
    /// free lists, and moves the others (other threads' and orphans'), in their order,
    /// to the front of `blocks`; returns how many of those there are.
    ///
    /// Why every block is checked, though the others go on to another cache, where no
    /// link lives in them: the free fast path checks a block's alignment and mark, not
    /// that it starts a block, and the next thread's malloc would hand out an interior
    /// pointer freed into this cache (overlapping a live block). Checking only this
    /// heap's blocks saved 0.3% of larson's instructions and let that through (misuse
    /// test `interior-remote-heap`).
    fn keep_foreign(&mut self, blocks: &mut [*mut Block]) -> usize {
        let mut foreign = 0;
        for i in 0..blocks.len() {
            let b = blocks.get(i).copied().unwrap_or(ptr::null_mut());
            if !self.free_if_own(b).is_null() {
                if let Some(slot) = blocks.get_mut(foreign) {
                    *slot = b;
                }
                foreign += 1;
            }
        }
        foreign
    }

    /// The first step of every block leaving a cache (`keep_foreign`, `send_home`):
    /// checks the cached block `b` (`check_cached`), and puts it on its span's free
    /// list if the span is this heap's (null back); else returns its span, untouched.
    #[inline(always)]
    fn free_if_own(&mut self, b: *mut Block) -> *mut Span {
        let s = span_of_cached(b);
        // SAFETY: `s` is the live span of the cached block `b` (`span_of_cached`);
        // checked, `b` may hold a link, and a span whose heap is this one is ours.
        unsafe {
            check_cached(b, s);
            if ptr::eq((*s).heap, self) {
                self.free_local(s, b);
                return ptr::null_mut();
            }
        }
        s
    }

    /// Puts cached blocks of class `c` (the oldest first) into its transfer cache, and
    /// sends home what that pushes out.
    fn put_in_transfer_cache(&mut self, c: usize, blocks: &[*mut Block]) {
        if crate::transfer_cache::put_if_room(c, blocks) {
            return;
        }
        let mut out = [ptr::null_mut::<Block>(); crate::transfer_cache::SLOTS];
        let n = crate::transfer_cache::put(c, blocks, &mut out);
        self.send_home(out.get(..n).unwrap_or(&[]));
    }

    /// Copies the oldest `n` (at most all) blocks of class `c`'s cache into `out`;
    /// returns how many.
    fn oldest_cached(&self, c: usize, n: usize, out: &mut [*mut Block]) -> usize {
        let n = n.min(self.caches[c].count()).min(out.len());
        for (i, o) in out.iter_mut().take(n).enumerate() {
            *o = self.caches[c].slot(i);
        }
        n
    }

    /// Sends cached blocks (out of their spans and marked free: from a thread cache or
    /// a transfer cache) to their spans: this heap's onto their free lists, other
    /// threads' (and orphans') onto their `thread_free`. Each block is checked first
    /// (`check_cached`): it is about to hold a link again.
    fn send_home(&mut self, blocks: &[*mut Block]) {
        // Consecutive blocks of the same other thread's span go home in one push.
        let mut run = RemoteRun { span: ptr::null_mut(), first: ptr::null_mut(), last: ptr::null_mut(), len: 0 };
        for &b in blocks {
            let s = self.free_if_own(b);
            if s.is_null() {
                continue;
            }
            // SAFETY: `b` is a cached block of the other thread's (or orphan's) span `s`,
            // checked by free_if_own: it may hold a link.
            unsafe {
                if s == run.span {
                    (*b).next = run.first;
                    run.first = b;
                    run.len += 1;
                } else {
                    run.send();
                    (*b).next = ptr::null_mut();
                    run = RemoteRun { span: s, first: b, last: b, len: 1 };
                }
            }
        }
        run.send();
    }

    /// Sends the cached blocks of this heap's own spans home, from its caches and from
    /// the transfer caches; blocks of other threads' spans stay where they are (see
    /// `new_span`). True if one went home.
    fn flush_own_blocks(&mut self) -> bool {
        let mut any = false;
        let mut batch = [ptr::null_mut::<Block>(); crate::transfer_cache::SLOTS];
        for c in 0..NUM_CLASSES {
            // The cache: all out, the others back in the same order.
            let n = self.oldest_cached(c, SLOTS_ALL, &mut batch);
            self.caches[c].remove_oldest(n);
            let out = batch.get_mut(..n).unwrap_or(&mut []);
            let kept = self.keep_foreign(out);
            any |= kept < n;
            for &b in out.get(..kept).unwrap_or(&[]) {
                // SAFETY: a cached block, which the cache had room for a moment ago.
                unsafe { self.caches[c].push(b) };
            }
            // The transfer cache: the same, the others put back (`take` gives the most
            // recent first, `put` wants the oldest first).
            let n = crate::transfer_cache::take(c, &mut batch);
            let out = batch.get_mut(..n).unwrap_or(&mut []);
            let kept = self.keep_foreign(out);
            any |= kept < n;
            let foreign = out.get_mut(..kept).unwrap_or(&mut []);
            foreign.reverse();
            self.put_in_transfer_cache(c, foreign);
        }
        any
    }

    /// Sends the blocks of the transfer caches to their spans: all of them
    /// (`unused_only` false), or those no thread took since the last such call.
    /// True if there was one.
    pub fn drain_transfer_caches(&mut self, unused_only: bool) -> bool {
        let mut any = false;
        let mut batch = [ptr::null_mut::<Block>(); crate::transfer_cache::SLOTS];
        for c in 0..NUM_CLASSES {
            let n = if unused_only {
                crate::transfer_cache::take_unused(c, &mut batch)
            } else {
                crate::transfer_cache::take(c, &mut batch)
            };
            any |= n != 0;
            self.send_home(batch.get(..n).unwrap_or(&[]));
        }
        any
    }

    /// Sends every cached block to its span. True if there was one.
    pub fn flush_all_caches(&mut self) -> bool {
        let mut any = false;
        for c in 0..NUM_CLASSES {
            any |= self.caches[c].count() != 0;
            self.flush_cache(c, SLOTS_ALL);
        }
        any
    }

    /// Sends every cached block to its span and turns the caches off (limit 0): every
    /// malloc and free of this heap then takes the slow path.
    pub fn close_caches(&mut self) {
        self.flush_all_caches();
        for c in 0..NUM_CLASSES {
            self.caches[c].close();
        }
    }

    fn open_caches(&mut self) {
        let slots = self.slots.as_mut_ptr();
        for c in 0..NUM_CLASSES {
            let start = crate::thread_cache::SLOT_START.get(c).map_or(0, |&s| s as usize);
            // SAFETY: each class's range of `limit_of(c)` slots in this heap's `slots`
            // (SLOT_START), which stays put: heaps never move.
            unsafe { self.caches[c].open(slots.add(start), crate::thread_cache::limit_of(c)) };
        }
    }

    /// Free of `b` when its class's cache (open) is full: the older half of the cache
    /// goes to the spans, or all of it if the thread only freed into it since its last
    /// spill; `b` into the cache.
    ///
    /// Why all: a thread that frees and then goes idle (a worker after its share of a
    /// batch; the second thread of the bursty test) keeps what is in its caches, which
    /// no other thread can take from it, and each cached block keeps its page
    /// resident: up to 61 pages for a class of small blocks. Keeping half at each spill
    /// left a freeing thread's caches between half and all full when it stopped;
    /// spilling all leaves them between empty and full. (The bursty test with an idle
    /// second thread, 10 runs each, least room under its RSS bound: 113 KiB before,
    /// 805 KiB after; larson's last-level misses within 1%.) A thread that also
    /// allocates keeps its newer half, the blocks malloc hands out next.
    ///
    /// "Only freed": no malloc took the cache below the level its last spill left,
    /// seen in the slot of the newest block that spill left, which still holds it
    /// (a malloc of it and a free of another block would have replaced it). If that
    /// spill emptied the cache, a malloc since would have found it empty and cleared
    /// `spill_emptied`.
    ///
    /// # Safety
    /// `b` is an out block of the small span `s`, checked (a block start, not marked
    /// free); the caller holds this heap's lock.
    pub unsafe fn free_to_full_cache(&mut self, s: *mut Span, b: *mut Block) {
        // SAFETY: per the contract.
        let c = unsafe { (*s).class as usize };
        let count = self.caches[c].count();
        let half = count.div_ceil(2);
        let top = self.spill_top[c];
        let only_freed = if top.is_null() {
            self.spill_emptied[c]
        } else {
            // The level the last spill left (an open cache's spills start from full,
            // its limit, so they all leave the same count).
            count.checked_sub(half + 1).is_some_and(|i| self.caches[c].slot(i) == top)
        };
        self.spill_cache(c, if only_freed { count } else { half });
        let left = self.caches[c].count();
        self.spill_top[c] = if left == 0 { ptr::null_mut() } else { self.caches[c].slot(left - 1) };
        self.spill_emptied[c] = left == 0;
        let cache = &mut self.caches[c];
        // An open cache has a limit of at least 2, so half of it is room.
        debug_assert!(cache.count() < cache.limit());
        // SAFETY: per the contract, and count < limit.
        unsafe {
            (*b).mark = Block::mark_of(b);
            cache.push(b);
        }
    }

    /// A block of `class` (whose cache is open) for malloc: the cache's most recent
    /// block, or, when it is empty, the first of a batch taken from the spans, the rest
    /// going into the cache so that it hands them out in the order the span did (the
    /// next malloc gets the block after this one).
    pub fn alloc_cached(&mut self, class: usize) -> *mut u8 {
        let cache = &mut self.caches[class];
        let b = cache.pop();
        if !b.is_null() {
            // SAFETY: a cached block is free and out of its span: now the caller's.
            unsafe { (*b).mark = 0 };
            return b.cast();
        }
        let full = crate::thread_cache::refill_count(cache.limit());
        // Every refill counts towards the decay clock, and shows the heap is active,
        // whether its blocks come from the transfer cache or the spans (a thread fed
        // by the transfer caches alone, a producer whose consumers spill to it, had
        // looked idle to the other threads, whose decay then purged its spans).
        self.maybe_purge();
        // A malloc found the cache empty: the thread does not only free this class.
        self.spill_top[class] = ptr::null_mut();
        self.spill_emptied[class] = false;
        let mut batch = [ptr::null_mut::<Block>(); crate::thread_cache::SLOTS];
        // Blocks other threads' caches spilled, the most recently freed first: no block
        // is read on the way.
        let mut n = crate::transfer_cache::take(class, batch.get_mut(..full).unwrap_or(&mut []));
        if n == 0 {
            // Slow start: a thread that uses a class for a few blocks (a short-lived
            // one) does not carve, and then flush back at its exit, a whole batch of it.
            let want = match self.refill_want[class] {
                0 => FIRST_REFILL.min(full),
                w => (w as usize).min(full),
            };
            self.refill_want[class] = (want * 2).min(full).min(u8::MAX as usize) as u8;
            n = self.take_blocks(class, batch.get_mut(..want).unwrap_or(&mut []), true);
            if n == 0 {
                return ptr::null_mut();
            }
        }
        for &b in batch.get(1..n).unwrap_or(&[]).iter().rev() {
            // SAFETY: cached blocks (out of their spans, marked free), from the transfer
            // cache or just taken out of our spans; the cache was empty and n <= full
            // <= limit.
            unsafe { self.caches[class].push(b) };
        }
        // SAFETY: as above; this one is the caller's.
        unsafe { (*batch[0]).mark = 0 };
        batch[0].cast()
    }
}

const SLOTS_ALL: usize = usize::MAX;

/// Full spans a refill looks at for remote frees before it takes a new span.
const RESCUE_SCAN: usize = 8;

/// Refills between two looks of `new_span` for the caches' own blocks: a program that
/// keeps taking new spans (a growing heap) does not scan every cache for each.
const OWN_FLUSH_REFILLS: u32 = 64;

/// The blocks a class's first cache refill takes (see `refill_want`).
const FIRST_REFILL: usize = 4;

/// The span of `b`, a block out of its span and marked free (in a thread cache or a
/// transfer cache).
fn span_of_cached(b: *mut Block) -> *mut Span {
    // A cached block lies in a small span's pages (the free fast path found it there),
    // which stay mapped while it is out; so the span its page maps to now is the one
    // it was freed into, and valid.
    pagemap::lookup_fast(b as usize)
}

/// Checks that `b`, a cached block of span `s`, still is one before it goes on
/// (to its span's free list or `thread_free`, where a link will live in it, or to
/// another thread's cache): marked free, and a block start. A block that fails is
/// reported (misuse), not followed.
///
/// # Safety
/// `s` is the live span of the cached block `b` (`span_of_cached`).
unsafe fn check_cached(b: *mut Block, s: *mut Span) {
    // SAFETY: per the contract; `b`'s first 16 bytes lie in one of the span's pages.
    unsafe {
        if !Block::is_marked(b) {
            // Written after its free while it waited in a cache (or never a block).
            os::fatal_misuse("free", "corrupted free block (overflow or write after free) at", b as usize);
        }
        if !(*s).is_block_start(b as usize) {
            os::fatal_misuse("free", "invalid pointer (inside a block, not its start)", b as usize);
        }
    }
}

/// Blocks of one span that a flush sends to another thread together (marked free,
/// linked from `first` to `last`).
struct RemoteRun {
    span: *mut Span,
    first: *mut Block,
    last: *mut Block,
    len: usize,
}

impl RemoteRun {
    fn send(&self) {
        if self.len != 0 {
            // SAFETY: out blocks of `span`, checked and marked (cached blocks), linked by
            // send_home.
            unsafe { free_remote_chain(self.span, self.first, self.last, self.len) };
        }
    }
}

/// Free into a span whose thread exited: under its arena's lock (errno kept).
unsafe fn free_orphan(s: *mut Span, b: *mut Block) {
    let saved = os::errno();
    // SAFETY: forwarded contract.
    unsafe { free_orphan_locked(s, b) };
    os::set_errno(saved);
}

unsafe fn free_orphan_locked(s: *mut Span, b: *mut Block) {
    // SAFETY: `s` is valid while `b` is out; the arena lock serialises orphan frees and
    // adoption.
    unsafe {
        let arena = (*s).arena;
        let mut a = (*arena).lock();
        if (*s).tf_state() != TF_ORPHAN {
            // Adopted by a thread between our look and the lock: free it the normal way.
            drop(a);
            return free_remote(s, b);
        }
        if (*s).arena_gen != a.generation {
            return; // the arena was reset after fork: leave its spans alone
        }
        if (*s).used <= 0 {
            drop(a);
            os::fatal_misuse("free", "double free of", b as usize);
        }
        let class = (*s).class as usize;
        Block::put(b, (*s).free);
        (*s).free = b;
        (*s).used -= 1;
        if (*s).in_full {
            a.orphans_full[class].remove(s);
            (*s).in_full = false;
            if (*s).used > 0 {
                a.orphans[class].push_front(s);
            }
        } else if (*s).used == 0 {
            a.orphans[class].remove(s);
        }
        if (*s).used == 0 {
            release_small_span_locked(&mut a, s);
        }
    }
}

/// Gives a heap's spans away before its thread exits: empty ones to their arena's
/// free pages, the others as orphans. See the module doc.
///
/// Each span is closed (state ORPHAN) under its arena's lock and linked into the
/// orphan lists in the same critical section: from the moment another thread can see
/// ORPHAN and free into the span under that lock, the span is where such a free
/// expects it.
///
/// # Safety
/// `h` is the calling thread's heap (or the shared heap under its lock).
pub unsafe fn abandon(h: *mut ThreadHeap) {
    // SAFETY: we own every span on the heap's lists.
    unsafe {
        let heap = &mut *h;
        // The blocks of its own spans this thread cached (or spilled) go home: its
        // spans are about to be orphans, which other threads adopt whole. Those of
        // other threads' spans go to the transfer caches first, for the threads that
        // follow it (a pool's next thread, say), then to their spans.
        heap.flush_own_blocks();
        for c in 0..NUM_CLASSES {
            heap.spill_cache(c, SLOTS_ALL);
        }
        heap.close_caches();
        for c in 0..NUM_CLASSES {
            let b = heap.biased[c];
            heap.drop_bias(c, b);
        }
        for c in 0..NUM_CLASSES {
            for list in [&mut heap.queues[c] as *mut SpanList, &mut heap.full[c]] {
                loop {
                    let s = (*list).pop_front();
                    if s.is_null() {
                        break;
                    }
                    orphan(s);
                }
            }
        }
    }
}

/// Closes span `s` (unlinked from its heap) to its owner and hands it to its arena.
unsafe fn orphan(s: *mut Span) {
    // SAFETY: the caller owned `s`; the arena lock orders us with orphan frees.
    unsafe {
        let sp = &mut *s;
        if sp.in_full {
            sp.leave_full();
        }
        let arena = sp.arena;
        let mut a = (*arena).lock();
        // State -> ORPHAN, and collect what was pushed.
        let cur = sp.thread_free.swap(TF_ORPHAN, Ordering::AcqRel);
        take_remote_list(sp, cur);
        sp.heap = ptr::null_mut();
        // Frees into an orphan skip the caches (free_slow sends them to the arena
        // straight away): a block of it that a live thread cached would keep the whole
        // span from going back for as long as the block stayed there.
        pagemap::set_cache_off(sp, 0);
        if sp.used == 0 {
            release_small_span_locked(&mut a, s);
        } else if sp.arena_gen == a.generation {
            let class = sp.class as usize;
            if sp.free == list_end() && sp.purged == 0 && sp.bump >= sp.end {
                sp.in_full = true;
                a.orphans_full[class].push_front(s);
            } else {
                a.orphans[class].push_front(s);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// M_PERTURB (glibc's semantics: fill with ~byte on malloc, byte on free)
// ---------------------------------------------------------------------------------

pub fn perturb_alloc(p: *mut u8, n: usize) {
    let byte = options::get().perturb_byte;
    if byte != 0 {
        // SAFETY: p points to a block of at least n bytes that was just handed out.
        unsafe { ptr::write_bytes(p, byte ^ 0xff, n) };
    }
}

pub fn perturb_free(p: *mut u8, n: usize) {
    let byte = options::get().perturb_byte;
    if byte != 0 {
        // SAFETY: p points to a block of at least n bytes being freed.
        unsafe { ptr::write_bytes(p, byte, n) };
    }
}

/// Sends the calling thread's cached blocks and the transfer caches' back to their
/// spans (statistics and malloc_trim count and purge spans, which see cached blocks as
/// in use). Blocks in other threads' caches stay there: those threads' fast paths own
/// them.
pub fn flush_own_caches() {
    let h = tls::heap();
    if h != EMPTY_HEAP.get() && h != DYING_HEAP.get() && h != SHARED_HEAP.get() {
        // SAFETY: the calling thread's own heap, locked for its span lists.
        unsafe {
            (*h).lock.lock();
            (*h).flush_all_caches();
            (*h).drain_transfer_caches(false);
            (*h).lock.unlock();
        }
    }
}

/// malloc_trim's part in the thread heaps: purge every span of the calling thread,
/// and the orphans of every arena. (Other threads' spans are theirs to purge; they do
/// so on their own, once per DECAY_MS of activity.) Returns the bytes given back.
pub fn purge_for_trim() -> usize {
    flush_own_caches();
    let mut bytes = 0;
    let h = tls::heap();
    if h != EMPTY_HEAP.get() && h != DYING_HEAP.get() {
        // SAFETY: the calling thread's own heap, locked for its span lists.
        unsafe {
            (*h).lock.lock();
            bytes += (*h).purge(true);
            (*h).lock.unlock();
        }
    }
    for a in crate::arena::ARENAS.iter().take(crate::init::arena_count()) {
        let a = a.lock();
        for c in 0..NUM_CLASSES {
            // SAFETY: orphans are touched only under their arena's lock, which we hold.
            a.orphans[c].for_each(|s| bytes += unsafe { crate::purge::purge(&mut *s) });
        }
    }
    bytes
}

/// Calls `f(start, bytes)` for each mapping of heap records (allocator metadata).
pub fn for_each_meta_chunk(f: impl FnMut(usize, usize)) {
    HEAP_POOL.lock().for_each_chunk(f);
}

/// Around fork (fork.rs): keeps other threads from taking spans of the calling
/// thread's heap (`pin`), waiting for one that is at it; or lets them again. The
/// lock is not held across the fork: the forking thread may still allocate (another
/// library's fork handler may).
pub fn pin_own_heap(pin: bool) {
    let h = tls::heap();
    if h == EMPTY_HEAP.get() || h == DYING_HEAP.get() {
        return;
    }
    // SAFETY: the calling thread's live heap.
    unsafe {
        (*h).pinned.store(pin, Ordering::SeqCst);
        if pin {
            // Whoever takes the lock after this sees the pin (it is read under the lock).
            (*h).lock.lock();
            (*h).lock.unlock();
        }
    }
}

pub fn reset_pools_after_fork() {
    crate::fork::reset_pool_after_fork(&HEAP_POOL, core::mem::size_of::<ThreadHeap>());
    // The other threads' heaps are gone with their threads (their spans stay where
    // they are): the child's registry holds its own heap alone.
    if REGISTRY.raw().is_locked() {
        REGISTRY.raw().reset();
    }
    let me = tls::heap();
    let mut r = REGISTRY.lock();
    r.head = ptr::null_mut();
    if me != EMPTY_HEAP.get() && me != DYING_HEAP.get() {
        // SAFETY: the child's own heap; its old links pointed at heaps of the parent's
        // other threads. (Its lists are whole: no other thread was at them during the
        // fork, see pin_own_heap.)
        unsafe {
            (*me).reg_next = ptr::null_mut();
            (*me).reg_prev = ptr::null_mut();
            (*me).pinned.store(false, Ordering::Relaxed);
        }
        r.head = me;
    }
    drop(r);
    if SHARED_LOCK.is_locked() {
        SHARED_LOCK.reset();
        // SAFETY: the child is single-threaded; the shared heap's old spans are leaked.
        unsafe { *SHARED_HEAP.get() = empty_heap() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_table_gives_each_size_its_class_cache() {
        for (size, &words) in DIRECT.iter().enumerate() {
            let class = crate::size_class::class_of(size.max(1));
            let off = words as usize * 8;
            assert_eq!(off as u32, crate::thread_cache::cache_offset(class), "size {size}");
            assert_eq!(off, core::mem::offset_of!(ThreadHeap, caches) + class * core::mem::size_of::<BlockCache>());
        }
    }
}
