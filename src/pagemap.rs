//! The page map: from any address to the span that owns its page, in O(1), without
//! reading the block itself (design invariant 1).
//!
//! A two-level radix table over the 47-bit user address space: the root has one slot
//! per GiB, each leaf two entries per 4 KiB page of that GiB, its span and its span's
//! cache offset (`Leaf`; 2.25 MiB of virtual memory, mapped on first use; only the
//! parts covering pages in use become resident).
//!
//! Every page of a span of small blocks maps to its span, so a pointer anywhere inside
//! it resolves. A big block or an mmapped large block maps its first page only: that is
//! the only address `free` may be given. Free page runs map their first and last pages,
//! so that a run being freed finds its free neighbours to merge with. An address that
//! maps to nothing was not handed out by oxmalloc: `free` reports it instead of
//! following it.

use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::os::{self, PAGE_SHIFT};
use crate::span::Span;

const ROOT_SHIFT: u32 = 30;
const ROOT_LEN: usize = 1 << (47 - ROOT_SHIFT);
const LEAF_LEN: usize = 1 << (ROOT_SHIFT - PAGE_SHIFT);

/// The map of one GiB: per page, the span (`spans`, for everything but the free fast
/// path) and the span's cache offset in 8-byte words (`cache_words`, for the free fast
/// path alone).
///
/// Why a byte array of its own: the free fast path reads one entry per call, of a page
/// the program chose at random. Eight-byte entries (the span's offset with the cache
/// offset in its top bits) took 47 KiB for larson's 23 MiB heap, which its blocks
/// stream out of any cache level below the last: simulated with a 512 KiB last level
/// (cachegrind, `larson 2 2`), free missed it 687 K times in 3 M calls, 46% of all
/// the misses in oxmalloc's code. A byte per page is 6 KiB: 32 K misses, and
/// oxmalloc's code went from 1.48 M misses to 0.89 M (tcmalloc's: 0.87 M).
#[repr(C)]
struct Leaf {
    spans: [AtomicUsize; LEAF_LEN],
    cache_words: [AtomicU8; LEAF_LEN],
}

/// The whole map's static part. Entries hold *offsets from the map's own address*
/// (`base()`), not pointers, so that the value 0 of a never-written entry means
/// something useful without a test:
/// - a root slot of 0 designates `zero_leaf`, a leaf of zeros that is never written;
/// - a leaf entry of 0 designates `base()` itself, whose first bytes (zeros, the start
///   of `zero_leaf`) read as a span record with no owner and no blocks: `NO_SPAN`.
///
/// So an address goes to its entries with two loads and one add and no branch, and an
/// address oxmalloc never handed out reads zeros: cache word 0 (the heap's
/// `no_cache`, which sends the free fast path to the slow path) and the span record
/// NO_SPAN, a free run, which the slow path then reports (lookup() turns NO_SPAN into
/// null for everyone else).
#[repr(C)]
struct Map {
    zero_leaf: Leaf,
    root: [AtomicUsize; ROOT_LEN],
}

// All zero: lives in .bss (3.25 MiB of address space; the zero leaf is only ever read).
static MAP: Map = Map {
    zero_leaf: Leaf {
        spans: [const { AtomicUsize::new(0) }; LEAF_LEN],
        cache_words: [const { AtomicU8::new(0) }; LEAF_LEN],
    },
    root: [const { AtomicUsize::new(0) }; ROOT_LEN],
};

// NO_SPAN reads its record from the zero leaf: it must be big enough, and the fields
// the slow path reads must be zero there (they are: the leaf is never written; kind 0
// is a free run).
const _: () = assert!(core::mem::size_of::<Span>() <= core::mem::size_of::<Leaf>());

/// The map's address, computed rip-relative (a plain reference to a static in a
/// cdylib goes through the GOT: one more load on every free). Also part of the free
/// mark of blocks (`Block::mark_of`).
#[inline(always)]
pub fn base() -> usize {
    let p: usize;
    // SAFETY: computes the address of MAP; no memory is accessed.
    unsafe {
        core::arch::asm!(
            "lea {p}, [rip + {map}]",
            p = out(reg) p,
            map = sym MAP,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    p
}

#[inline(always)]
fn root_index(addr: usize) -> usize {
    // Masking (not bounds-checking) keeps the lookup branch-free; a non-canonical
    // address aliases some slot, and is caught by the owner and range checks after it.
    (addr >> ROOT_SHIFT) & (ROOT_LEN - 1)
}

#[inline(always)]
fn leaf_index(addr: usize) -> usize {
    (addr >> PAGE_SHIFT) & (LEAF_LEN - 1)
}

/// The leaf for `addr`: an installed leaf, or the zero leaf. Two loads, no branch.
#[inline(always)]
fn leaf_fast(addr: usize) -> *const Leaf {
    let base = base();
    // SAFETY: the index is masked into range; a root slot holds 0 or the offset of an
    // installed leaf (never unmapped), so the result is a valid Leaf either way.
    unsafe {
        let root = (base + core::mem::offset_of!(Map, root)) as *const [AtomicUsize; ROOT_LEN];
        base.wrapping_add((*root).get_unchecked(root_index(addr)).load(Ordering::Acquire)) as *const Leaf
    }
}

/// For the free fast path: the cache offset, in 8-byte words of a ThreadHeap, of the
/// span that owns `addr`'s page (`Span::cache_off / 8`); 0 (the heap's `no_cache`) for
/// a span that is not small, an orphan, and an address oxmalloc never handed out.
///
/// So the cache words of a small span's pages must follow its `cache_off`: it is set
/// before the span is mapped, and `set_cache_off` rewrites them when it changes on a
/// mapped span (orphaned, adopted, cached empty in its arena), `remap` when a cached
/// span is laid out for another class.
#[inline(always)]
pub fn cache_words_fast(addr: usize) -> usize {
    let words: usize;
    // SAFETY: `leaf_fast` gives a valid leaf and the index is masked into range, so
    // this reads one byte of the leaf's `cache_words` (an x86 byte load is atomic, as
    // the AtomicU8 stores that write them need). In asm because the compiler follows
    // an AtomicU8 load's zero-extending load with a second, redundant zero-extension:
    // one more instruction on every free.
    unsafe {
        core::arch::asm!(
            "movzx {words:e}, byte ptr [{leaf} + {index} + {offset}]",
            words = lateout(reg) words,
            leaf = in(reg) leaf_fast(addr),
            index = in(reg) leaf_index(addr),
            offset = const core::mem::offset_of!(Leaf, cache_words),
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    words
}

/// The span record for `addr`'s page, or NO_SPAN (no owner, no blocks) when there is
/// none.
#[inline(always)]
pub fn lookup_fast(addr: usize) -> *mut Span {
    // SAFETY: `leaf_fast` gives a valid leaf; the index is masked into range.
    let offset = unsafe { (*leaf_fast(addr)).spans.get_unchecked(leaf_index(addr)).load(Ordering::Acquire) };
    base().wrapping_add(offset) as *mut Span
}

/// The span whose page holds `addr`, or null.
#[inline]
pub fn lookup(addr: usize) -> *mut Span {
    let s = lookup_fast(addr);
    if s as usize == base() {
        ptr::null_mut()
    } else {
        s
    }
}

/// The leaf for `addr`, creating it if needed. `None` when the leaf cannot be mapped.
fn leaf_for(addr: usize) -> Option<&'static Leaf> {
    let base = base();
    // SAFETY: the index is masked into range.
    let slot = unsafe { MAP.root.get_unchecked(root_index(addr)) };
    let mut offset = slot.load(Ordering::Acquire);
    if offset == 0 {
        let fresh = os::map_sparse(core::mem::size_of::<Leaf>())? as usize;
        let fresh_offset = fresh.wrapping_sub(base);
        match slot.compare_exchange(0, fresh_offset, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => offset = fresh_offset,
            Err(existing) => {
                // SAFETY: `fresh` was mapped above and never published.
                unsafe { os::unmap(fresh as *mut u8, core::mem::size_of::<Leaf>()) };
                offset = existing;
            }
        }
    }
    // SAFETY: installed leaves live for the rest of the process.
    Some(unsafe { &*(base.wrapping_add(offset) as *const Leaf) })
}

/// What the pages of `span` (null: none) map to: its record's offset from `base()`,
/// and its `cache_off` in words.
///
/// # Safety
/// `span` is null or a live span record.
#[inline]
unsafe fn entries_of(span: *mut Span) -> (usize, u8) {
    if span.is_null() {
        (0, 0)
    } else {
        // SAFETY: per the contract, a live record.
        let off = unsafe { (*span).cache_off };
        debug_assert!(off % 8 == 0 && off / 8 <= u8::MAX as u32);
        ((span as usize).wrapping_sub(base()), (off / 8) as u8)
    }
}

/// Sets the cache offset of the small span `s` to `off` and, if that changed it,
/// rewrites its pages' cache words (`remap`), where the free fast path reads it.
///
/// # Safety
/// `s` is a live small span whose pages are mapped to it, which the caller may
/// change (its owner, or the arena lock for a span no thread owns).
pub unsafe fn set_cache_off(s: *mut Span, off: u32) {
    // SAFETY: per the contract.
    unsafe {
        if (*s).cache_off != off {
            (*s).cache_off = off;
            remap(s);
        }
    }
}

/// Rewrites the entries of every page of the small span `s` (all of them map to it)
/// after its `cache_off` changed.
///
/// # Safety
/// `s` is a live small span whose pages are mapped to it.
pub unsafe fn remap(s: *mut Span) {
    // SAFETY: per the contract; cannot fail: the leaves of a mapped range exist.
    unsafe {
        set_range((*s).start, (*s).pages, s);
    }
}

/// Makes every page of `[start, start + pages * PAGE_SIZE)` map to `span`.
/// Returns false if a leaf could not be mapped (out of memory).
///
/// # Safety
/// `span` is null or a live span record (its `cache_off` is read).
pub unsafe fn set_range(start: usize, pages: usize, span: *mut Span) -> bool {
    // SAFETY: per the contract.
    let (offset, words) = unsafe { entries_of(span) };
    let mut addr = start;
    let end = start + (pages << PAGE_SHIFT);
    while addr < end {
        let Some(leaf) = leaf_for(addr) else { return false };
        leaf.spans[leaf_index(addr)].store(offset, Ordering::Release);
        leaf.cache_words[leaf_index(addr)].store(words, Ordering::Relaxed);
        addr += 1 << PAGE_SHIFT;
    }
    true
}

/// Maps the single page at `addr` to `span` (null to clear it).
///
/// # Safety
/// As `set_range`.
pub unsafe fn set(addr: usize, span: *mut Span) -> bool {
    // SAFETY: per the contract.
    unsafe { set_range(addr, 1, span) }
}

/// Clears the mapping of `pages` pages from `start`.
pub fn clear_range(start: usize, pages: usize) {
    // SAFETY: null designates no record: nothing is read.
    unsafe { set_range(start, pages, ptr::null_mut()) };
}

/// Makes sure leaves exist for the range, so later `set_range` over it cannot fail.
pub fn reserve(start: usize, len: usize) -> bool {
    let mut addr = start & !((1 << ROOT_SHIFT) - 1);
    while addr < start + len {
        if leaf_for(addr).is_none() {
            return false;
        }
        addr += 1 << ROOT_SHIFT;
    }
    true
}

/// Calls `f(start, bytes)` for the root table and each leaf mapped (allocator
/// metadata; only the parts ever written are resident).
pub fn for_each_table(mut f: impl FnMut(usize, usize)) {
    // (The zero leaf is never written, so never resident: not metadata worth a line.)
    let base = base();
    f(base + core::mem::offset_of!(Map, root), core::mem::size_of_val(&MAP.root));
    for slot in MAP.root.iter() {
        let offset = slot.load(Ordering::Acquire);
        if offset != 0 {
            f(base.wrapping_add(offset), core::mem::size_of::<Leaf>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_maps_to_its_span_and_its_cache_words() {
        // A range of the user address space nothing else maps.
        let addr = (1usize << 46) + 0x1234_5000;
        let mut record = Span::empty();
        record.cache_off = crate::thread_cache::cache_offset(3);
        let span: *mut Span = &mut record;
        // SAFETY: `record` is alive until the end of the test, after the clear.
        assert!(unsafe { set_range(addr, 2, span) });
        for a in [addr, addr + 4096 + 17, addr + 2 * 4096 - 1] {
            assert_eq!(lookup(a), span);
            assert_eq!(cache_words_fast(a) * 8, record.cache_off as usize);
        }
        // The pages on either side of the range: nothing (NO_SPAN, no cache).
        for a in [addr + 2 * 4096, addr - 1] {
            assert!(lookup(a).is_null());
            assert_eq!(lookup_fast(a) as usize, base());
            assert_eq!(cache_words_fast(a), 0);
        }
        // And the range itself once cleared.
        clear_range(addr, 2);
        assert!(lookup(addr).is_null());
        assert_eq!(cache_words_fast(addr), 0);
    }
}
