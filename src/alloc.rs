//! The allocation front: C semantics and dispatch, with the two fast paths.
//!
//! `malloc` of up to 1 KiB and `free` of a small block, whichever thread's span it
//! belongs to, are the fast paths: they pop and push the calling thread's cache of the
//! block's size class (thread_cache.rs). Everything else (first call of a thread, an
//! empty or full cache, other size ranges, alignment, big and large blocks, misuse)
//! goes through the `#[cold]` slow paths below, which the fast paths tail-call.
//!
//! Where requests go:
//! - up to 128 KiB (`MAX_CLASS_SIZE`) and below the mmap threshold: a size class,
//!   from the thread heap (thread_heap.rs);
//! - above that but below the threshold (a raised M_MMAP_THRESHOLD, or M_MMAP_MAX
//!   reached): a "big" block, whole pages from an arena (arena.rs);
//! - at or above the threshold: a mapping of its own (large.rs), or a big block if
//!   mmap fails, as glibc falls back to its heap.
//!
//! glibc's contracts, kept here: malloc(0) returns a unique pointer; free(NULL) does
//! nothing; realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL;
//! impossible sizes and calloc/reallocarray overflow give NULL with errno ENOMEM;
//! free and the fast paths leave errno alone.

use core::ptr;

use crate::large;
use crate::options;
use crate::os::{self, PAGE_SHIFT, PAGE_SIZE};
use crate::pagemap;
use crate::size_class::{aligned_class, class_of, MAX_CLASS_SIZE, SMALL_LOOKUP_MAX};
use crate::span::{Block, Kind, Span};
use crate::thread_cache::BlockCache;
use crate::thread_heap::{self, ThreadHeap};
use crate::tls;

/// The alignment every block has without asking.
pub const MIN_ALIGN: usize = 16;

/// Sizes beyond this cannot be satisfied (glibc: more than PTRDIFF_MAX).
const MAX_REQUEST: usize = isize::MAX as usize - 2 * 1024 * 1024;

// ---------------------------------------------------------------------------------
// The fast paths
// ---------------------------------------------------------------------------------

/// `malloc`. Fast path: one TLS load, the cache for this size from the heap's direct
/// table, pop its most recently freed block and clear the block's free mark (12
/// instructions, no lock, no atomic). An empty cache (always, for a thread without a
/// heap yet or a heap in slow mode) sends it to the slow path.
#[inline(always)]
pub unsafe fn malloc(size: usize) -> *mut u8 {
    if size <= SMALL_LOOKUP_MAX {
        // SAFETY: size <= SMALL_LOOKUP_MAX < DIRECT_SLOTS; the TLS heap is always valid
        // (EMPTY_HEAP at worst, whose caches are off: empty, so never written); its
        // direct table holds offsets of its own caches (`DIRECT`); a heap's caches are
        // its thread's alone, and `slots[..count]` are blocks that are out of their
        // spans and free (thread_cache.rs).
        unsafe {
            let heap = tls::heap();
            let words = *(*heap).direct.get_unchecked(size) as usize;
            let cache = heap.cast::<usize>().add(words).cast::<BlockCache>();
            let top = (*cache).top;
            if top != (*cache).base {
                let block = *top.sub(1);
                // `top -= 1` as one read-modify-write instruction on `heap + 8 * words`
                // (the compiler spends two; the pair's budget is 40 instructions).
                core::arch::asm!(
                    "sub qword ptr [{heap} + {words} * 8], 8",
                    heap = in(reg) heap,
                    words = in(reg) words,
                    options(nostack),
                );
                (*block).mark = 0;
                return block.cast();
            }
        }
    }
    // SAFETY: no preconditions.
    unsafe { malloc_slow(size) }
}

/// `free`. Fast path: the page map's cache word of the block's page, which holds the
/// span's `cache_off` in 8-byte words (pagemap.rs); the calling thread's cache of the
/// span's class at that offset; if it has room and the block is aligned and not
/// already free (its first word is not its free mark, `Block::mark_of`), mark it and
/// push it (24 instructions, no lock, no atomic, nothing read of the span
/// record). Spans that are not small (and NULL and foreign pointers) have cache word
/// 0, where every heap has `no_cache`, which is always full: one test covers both.
/// Anything else (a full cache, big or large blocks, NULL, misuse) goes to
/// `free_slow`.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    let b = p.cast::<Block>();
    // SAFETY: the TLS heap is valid (a static heap at worst, whose caches are off and
    // never written), and a page's cache word is the offset in words of a BlockCache
    // in it (no_cache for 0). A cache with room is open, so the calling thread's own,
    // and means the span is a small span (other kinds, and orphans, have cache word 0
    // on their pages), so `p` lies in one of its pages and its first 16 bytes (p is
    // 16-aligned) are readable and, unless it is already free, the program's to give
    // back; a cached block stays out of its span (its `used` counts it).
    unsafe {
        if p as usize % MIN_ALIGN == 0 {
            let heap = tls::heap();
            let words = pagemap::cache_words_fast(p as usize);
            let cache = heap.cast::<usize>().add(words).cast::<BlockCache>();
            let top = (*cache).top;
            let mark = Block::mark_of(b);
            if top < (*cache).end && (*b).mark != mark {
                (*b).mark = mark;
                *top = b;
                // `top += 1` as one read-modify-write instruction on `heap + 8 * words`
                // (`top` is the cache's first field), as in `malloc`.
                core::arch::asm!(
                    "add qword ptr [{heap} + {words} * 8], 8",
                    heap = in(reg) heap,
                    words = in(reg) words,
                    options(nostack),
                );
                return;
            }
        }
        free_slow(p)
    }
}

// ---------------------------------------------------------------------------------
// Slow paths
// ---------------------------------------------------------------------------------

/// Frees of other threads' blocks after which a thread without a heap gets one (see
/// `free_slow`).
const HEAPLESS_FREES: usize = 64;

#[cold]
#[inline(never)]
pub unsafe fn malloc_slow(size: usize) -> *mut u8 {
    // Sizes classed above the fast path's table (1 KiB to 128 KiB) pop from their
    // class's cache the same way when it has a block, after one look at the mmap
    // threshold.
    if size > SMALL_LOOKUP_MAX && size <= MAX_CLASS_SIZE && size < options::mmap_threshold() {
        // SAFETY: as in `malloc`: the TLS heap is valid, its caches are this thread's,
        // and class_of gives an index below NUM_CLASSES. A static heap's caches are
        // off (empty), shared by every thread without a heap: they are only read here
        // (`count`, through a shared reference), never popped.
        unsafe {
            let caches = ptr::addr_of_mut!((*tls::heap()).caches).cast::<BlockCache>();
            let cache = caches.add(class_of(size));
            if (*cache).count() != 0 {
                let block = (*cache).pop();
                (*block).mark = 0;
                return block.cast();
            }
        }
    }
    // SAFETY: allocation has no preconditions.
    unsafe { alloc_or_enomem(size, MIN_ALIGN) }
}

/// Allocates `size` bytes aligned to `align` (a power of two); sets ENOMEM on failure.
unsafe fn alloc_or_enomem(size: usize, align: usize) -> *mut u8 {
    let p = if size > MAX_REQUEST || align > MAX_REQUEST / 2 {
        ptr::null_mut()
    } else {
        let heap = thread_heap::acquire();
        if heap.is_null() {
            ptr::null_mut()
        } else {
            // SAFETY: `heap` is the calling thread's (or the locked shared) heap.
            let p = unsafe { alloc_in(&mut *heap, size, align) };
            thread_heap::release(heap);
            p
        }
    };
    if p.is_null() {
        os::set_errno(libc::ENOMEM);
    }
    p
}

/// Where a request goes (see the module doc).
unsafe fn alloc_in(heap: &mut ThreadHeap, size: usize, align: usize) -> *mut u8 {
    heap.sync_options();
    let wants_mmap = size >= options::mmap_threshold() && large::mmap_allowed();
    if !wants_mmap {
        let class = if align <= MIN_ALIGN {
            (size <= MAX_CLASS_SIZE).then(|| class_of(size))
        } else {
            aligned_class(size, align)
        };
        if let Some(class) = class {
            if align <= MIN_ALIGN && heap.caches[class].is_open() {
                return heap.alloc_cached(class);
            }
            return heap.alloc_small(class);
        }
        return big_alloc(heap, size, align).0;
    }
    let p = large::alloc(size, align.max(PAGE_SIZE));
    if !p.is_null() {
        return p;
    }
    big_alloc(heap, size, align).0
}

/// A big block: whole pages from the heap's arena. Returns it and whether its memory
/// is known to be zero.
fn big_alloc(heap: &mut ThreadHeap, size: usize, align: usize) -> (*mut u8, bool) {
    let pages = (os::page_round_up(size) >> PAGE_SHIFT).max(1);
    let arena = heap.arena;
    // SAFETY: arenas are static.
    let mut a = unsafe { (*arena).lock() };
    let s = a.alloc_run(arena, pages, align.max(PAGE_SIZE));
    if s.is_null() {
        return (ptr::null_mut(), false);
    }
    a.big_count += 1;
    a.big_bytes += pages * PAGE_SIZE;
    // SAFETY: a fresh run of this arena, referenced by nothing else yet.
    unsafe {
        (*s).kind = Kind::Big;
        (*s).cache_off = 0;
        (*s).arena_gen = a.generation;
        let zeroed = (*s).zeroed;
        let start = (*s).start;
        drop(a);
        if !pagemap::set(start, s) {
            let mut a = (*arena).lock();
            a.big_count -= 1;
            a.big_bytes -= pages * PAGE_SIZE;
            a.release_run(s, arena);
            return (ptr::null_mut(), false);
        }
        (start as *mut u8, zeroed)
    }
}

unsafe fn big_free(s: *mut Span) {
    // SAFETY: `s` is a live big span whose block is being freed.
    unsafe {
        let arena = (*s).arena;
        let mut a = (*arena).lock();
        pagemap::set((*s).start, ptr::null_mut());
        if (*s).arena_gen != a.generation {
            return; // arena reset in a fork child: leave the pages alone
        }
        a.big_count -= 1;
        a.big_bytes -= (*s).bytes();
        (*s).zeroed = false;
        (*s).decommitted = false;
        a.release_run(s, arena);
    }
}

/// The span of block `p`, checked: `p` must be exactly a block oxmalloc handed out and
/// that is not free. Anything else ends the process with a message that names `op`,
/// the problem and the address (glibc aborts on most of these too).
unsafe fn owning_span(p: *mut u8, op: &str) -> *mut Span {
    let addr = p as usize;
    // A free block given to free is freed twice; given to anything else, it is used
    // after its free.
    let already_free = if op == "free" || op == "free_sized" { "double free of" } else { "pointer to a freed block" };
    let span = pagemap::lookup(addr);
    if span.is_null() {
        os::fatal_misuse(op, "invalid pointer (not from oxmalloc)", addr);
    }
    // SAFETY: page-map entries are live records; a small span's pages are mapped, so
    // reading the first word of a block of it is fine.
    unsafe {
        let problem = match (*span).kind {
            Kind::Small => {
                let sp = &*span;
                if !sp.is_block_start(addr) {
                    let size = (sp.block_size as usize).max(1);
                    if addr >= sp.bump && addr < sp.end && (addr - sp.start) % size == 0 {
                        Some("invalid pointer (never allocated)")
                    } else {
                        Some("invalid pointer (inside a block, not its start)")
                    }
                } else if Block::is_marked(p.cast()) {
                    Some(already_free)
                } else {
                    None
                }
            }
            Kind::Big | Kind::Large if (*span).start == addr => None,
            Kind::Big | Kind::Large => Some("invalid pointer (inside a block, not its start)"),
            Kind::FreeRun if (*span).start == addr => Some(already_free),
            Kind::FreeRun => Some("invalid pointer (free memory)"),
            Kind::Freed => Some(already_free),
        };
        if let Some(problem) = problem {
            os::fatal_misuse(op, problem, addr);
        }
    }
    span
}

#[cold]
#[inline(never)]
pub unsafe fn free_slow(p: *mut u8) {
    // The common cases here first, for a small block checked as `owning_span` checks
    // it but without its messages: the calling thread's cache of its class is full
    // (it spills); the block is an orphan's (no owner heap; orphans skip the caches:
    // onto its span's list under the arena lock, free_orphan) or another thread's
    // while this thread has no cache open for it (no heap yet, slow mode, a class over
    // 16 KiB): onto its span's `thread_free`; the block is this thread's own and has
    // no cache open: onto its span's free list. Anything else, NULL included (NO_SPAN
    // has no blocks), and every free in the strict mode, goes the long way below.
    // SAFETY: lookup_fast gives a live record (NO_SPAN at worst); a block start of a
    // small span lies in its mapped pages, so its first word is readable. The TLS heap
    // is valid; an open cache is the calling thread's own.
    unsafe {
        let span = pagemap::lookup_fast(p as usize);
        if (*span).kind == Kind::Small
            && (*span).is_block_start(p as usize)
            && !Block::is_marked(p.cast())
            && !crate::check::enabled()
        {
            let mut heap = tls::heap();
            if (*span).cache_off != 0
                && heap == thread_heap::EMPTY_HEAP.get()
                && tls::count_heapless_free() > HEAPLESS_FREES
            {
                // A thread that keeps freeing other threads' blocks before it ever
                // allocates (a consumer) gets its heap here, so that its frees are
                // cached and leave in batches (to the transfer cache) like any
                // thread's, instead of one atomic push onto the owner's span each.
                // Not at once: a block handed to a new thread and freed there (Hoard's
                // cache-scratch) would be the first one its cache hands out, and the
                // thread would write into a cache line it shares with the blocks
                // handed to other threads. Until then, its frees go home.
                let saved = os::errno();
                let h = thread_heap::acquire();
                if !h.is_null() {
                    // SAFETY: the calling thread's new heap, locked by acquire.
                    (*h).sync_options();
                    thread_heap::release(h);
                    heap = h;
                }
                os::set_errno(saved);
            }
            if (*span).cache_off != 0 && (&(*heap).caches)[(*span).class as usize].is_open() {
                return locked_keeping_errno(heap, |h| h.free_to_full_cache(span, p.cast()));
            }
            // A class with no cache (over 16 KiB), or no cache open: without checking
            // the block again below.
            return free_uncached(heap, span, p.cast());
        }
    }
    if p.is_null() {
        return;
    }
    // SAFETY: owning_span validated `p` against its span.
    unsafe {
        let span = owning_span(p, "free");
        let saved = os::errno();
        free_checked(p, span);
        os::set_errno(saved);
    }
}

/// Runs `f` on the calling thread's heap `heap` under its lock, keeping errno: what
/// `free` does there may give spans back, which makes syscalls.
///
/// # Safety
/// `heap` is the calling thread's heap, not locked by it; `f` is one of its slow
/// paths, whose own contract the caller meets.
unsafe fn locked_keeping_errno(heap: *mut ThreadHeap, f: impl FnOnce(&mut ThreadHeap)) {
    let saved = os::errno();
    // SAFETY: per the contract; the lock makes the heap ours (another thread may
    // purge it only under the same lock).
    unsafe {
        (*heap).lock.lock();
        f(&mut *heap);
        (*heap).lock.unlock();
    }
    os::set_errno(saved);
}

/// Frees block `b` of the small span `s` past the caches: onto its span's free list
/// if the span is the calling thread's heap's (`heap`), else as another thread's
/// block (`free_remote`). Keeps errno.
///
/// # Safety
/// `heap` is the calling thread's heap (`tls::heap()`, or the one it just got), not
/// locked by it; `b` is an out block of `s`, checked (a block start, not marked free).
unsafe fn free_uncached(heap: *mut ThreadHeap, s: *mut Span, b: *mut Block) {
    // SAFETY: per the contract; a span whose heap is the caller's is the caller's.
    unsafe {
        if (*s).heap == heap {
            locked_keeping_errno(heap, |h| h.free_local(s, b));
        } else {
            // No syscall here (an orphan's free, which may, keeps errno itself).
            thread_heap::free_remote(s, b);
        }
    }
}

/// Frees `p`, validated by `owning_span` as a live block of `span`.
unsafe fn free_checked(p: *mut u8, span: *mut Span) {
    // SAFETY: per the contract.
    unsafe {
        match (*span).kind {
            Kind::Small => {
                let (mut b, mut s) = (p.cast::<Block>(), span);
                if crate::check::enabled() {
                    // The block waits; the one it replaces in the quarantine goes back.
                    (b, s) = crate::check::quarantine(b, s);
                    if b.is_null() {
                        return;
                    }
                }
                // (The strict mode, which has no caches, and free_sized come this way.)
                free_uncached(tls::heap(), s, b);
            }
            Kind::Big => big_free(span),
            Kind::Large => large::free(span),
            Kind::FreeRun | Kind::Freed => {}
        }
    }
}

/// C23 `free_sized`: `free`, after checking that `size` can be the size the block was
/// requested with (no larger than the block, and no smaller than half of it: realloc
/// keeps a block in place down to half its size). glibc ignores `size`.
pub unsafe fn free_sized(p: *mut u8, size: usize, align: usize) {
    if p.is_null() {
        return;
    }
    let saved = os::errno();
    // SAFETY: validated by owning_span.
    unsafe {
        let span = owning_span(p, "free_sized");
        let usable = usable(span);
        // An aligned block may come from a class rounded up for its alignment.
        let too_small = align <= MIN_ALIGN && usable > 2 * MIN_ALIGN && size < usable / 2;
        if size > usable || too_small {
            os::fatal_misuse("free_sized", "size does not match the block at", p as usize);
        }
        free_checked(p, span);
    }
    os::set_errno(saved);
}

/// The usable size of a block (its class size, or its pages).
unsafe fn usable(span: *mut Span) -> usize {
    // SAFETY: `span` is a live record of a block in use.
    unsafe {
        match (*span).kind {
            Kind::Small => (*span).block_size as usize,
            Kind::Big => (*span).bytes(),
            Kind::Large => (*span).map_size,
            Kind::FreeRun | Kind::Freed => 0,
        }
    }
}

pub unsafe fn malloc_usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: validated by owning_span.
    unsafe { usable(owning_span(p, "malloc_usable_size")) }
}

pub unsafe fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        os::set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: allocation has no preconditions; the block has at least `total` bytes.
    unsafe {
        let p = malloc(total);
        if !p.is_null() && !known_zero(p) {
            ptr::write_bytes(p, 0, total);
        }
        p
    }
}

/// Is the (just allocated) block at `p` known to read as zero already? True for fresh
/// mappings and for big blocks carved from never-used or decommitted pages.
unsafe fn known_zero(p: *mut u8) -> bool {
    let s = pagemap::lookup(p as usize);
    // SAFETY: `p` was just handed out, so its span is live.
    unsafe { !s.is_null() && matches!((*s).kind, Kind::Large | Kind::Big) && (*s).zeroed && (*s).start == p as usize }
}

pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        // SAFETY: plain allocation.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // SAFETY: `p` is the caller's block; glibc frees it and returns NULL.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    // SAFETY: `p` is validated by owning_span; copies stay within both blocks.
    unsafe {
        let span = owning_span(p, "realloc");
        let old = usable(span);
        match (*span).kind {
            Kind::Small | Kind::Big => {
                // A big block that stays big keeps its place and gives back the whole
                // pages it no longer needs (as glibc splits the chunk).
                if (*span).kind == Kind::Big && size <= old && size > MAX_CLASS_SIZE {
                    let pages = os::page_round_up(size) >> PAGE_SHIFT;
                    if pages < (*span).pages {
                        let arena = (*span).arena;
                        let mut a = (*arena).lock();
                        if (*span).arena_gen == a.generation {
                            a.shrink_in_place(span, pages, arena);
                        }
                    }
                    return p;
                }
                // Keep the block when the new size fits and doesn't waste over half of it.
                if size <= old && (size >= old / 2 || old <= MIN_ALIGN * 2) {
                    return p;
                }
                // A big block that stays below the mmap threshold grows into the free
                // pages after it when it can (growing buffers then copy nothing).
                if (*span).kind == Kind::Big && size > old && size < options::mmap_threshold() {
                    let arena = (*span).arena;
                    let mut a = (*arena).lock();
                    if (*span).arena_gen == a.generation
                        && a.grow_in_place(span, os::page_round_up(size) >> PAGE_SHIFT, arena)
                    {
                        return p;
                    }
                }
            }
            // (Not in the strict mode: mremap would move the guard pages along.)
            Kind::Large if !(*span).checked => {
                if size >= options::mmap_threshold() || size > MAX_CLASS_SIZE {
                    if size > MAX_REQUEST {
                        os::set_errno(libc::ENOMEM);
                        return ptr::null_mut();
                    }
                    let q = large::realloc(span, size);
                    if !q.is_null() {
                        return q;
                    }
                }
            }
            Kind::Large | Kind::FreeRun | Kind::Freed => {}
        }
        let q = malloc(size);
        if q.is_null() {
            return q;
        }
        ptr::copy_nonoverlapping(p, q, old.min(size));
        free(p);
        q
    }
}

pub unsafe fn reallocarray(p: *mut u8, n: usize, size: usize) -> *mut u8 {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            os::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `size` bytes aligned to `align`, which must be a power of two.
pub unsafe fn aligned(align: usize, size: usize) -> *mut u8 {
    if align <= MIN_ALIGN {
        // SAFETY: plain allocation.
        return unsafe { malloc(size) };
    }
    // SAFETY: allocation has no preconditions.
    unsafe { alloc_or_enomem(size, align) }
}

/// C17's aligned_alloc, as glibc 2.38 implements it: the alignment must be a power of
/// two (else NULL with EINVAL; glibc 2.36 still treated it as memalign).
pub unsafe fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: forwarded.
    unsafe { aligned(align, size) }
}

/// glibc's memalign: an alignment that is
/// not a power of two is rounded up to one; one beyond half the address space is EINVAL.
pub unsafe fn memalign(align: usize, size: usize) -> *mut u8 {
    if align > usize::MAX / 2 + 1 {
        os::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: forwarded.
    unsafe { aligned(align.max(1).next_power_of_two(), size) }
}

pub unsafe fn posix_memalign(out: *mut *mut u8, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
        return libc::EINVAL;
    }
    let saved = os::errno();
    // SAFETY: forwarded; `out` is the caller's pointer slot.
    unsafe {
        let p = aligned(align, size);
        os::set_errno(saved);
        if p.is_null() {
            return libc::ENOMEM;
        }
        *out = p;
    }
    0
}

pub unsafe fn valloc(size: usize) -> *mut u8 {
    // SAFETY: forwarded.
    unsafe { aligned(PAGE_SIZE, size) }
}

pub unsafe fn pvalloc(size: usize) -> *mut u8 {
    let Some(rounded) = size.checked_add(PAGE_SIZE - 1) else {
        os::set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: forwarded.
    unsafe { aligned(PAGE_SIZE, (rounded & !(PAGE_SIZE - 1)).max(PAGE_SIZE)) }
}

/// Is `p` a block oxmalloc handed out (and not yet freed to the page level)?
pub fn owns(p: *const u8) -> bool {
    let span = pagemap::lookup(p as usize);
    if span.is_null() {
        return false;
    }
    // SAFETY: page-map entries are live records.
    unsafe {
        match (*span).kind {
            Kind::Small => (*span).is_block_start(p as usize),
            Kind::Big | Kind::Large => (*span).start == p as usize,
            Kind::FreeRun | Kind::Freed => false,
        }
    }
}
