//! The page map: from any address to the span that owns its page, in O(1), without
//! reading the block itself (design invariant 1).
//!
//! A two-level radix table over the 47-bit user address space: the root has one slot
//! per GiB, each leaf one slot per 4 KiB page of that GiB (2 MiB of virtual memory,
//! mapped on first use; only the parts covering pages in use become resident).
//!
//! Every page of a span of small blocks maps to its span, so a pointer anywhere inside
//! it resolves. A big block or an mmapped large block maps its first page only: that is
//! the only address `free` may be given. Free page runs map their first and last pages,
//! so that a run being freed finds its free neighbours to merge with. An address that
//! maps to nothing was not handed out by oxmalloc: `free` reports it instead of
//! following it.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::os::{self, PAGE_SHIFT};
use crate::span::Span;

const ROOT_SHIFT: u32 = 30;
const ROOT_LEN: usize = 1 << (47 - ROOT_SHIFT);
const LEAF_LEN: usize = 1 << (ROOT_SHIFT - PAGE_SHIFT);

type Leaf = [AtomicUsize; LEAF_LEN];

/// The whole map's static part. Entries hold *offsets from the map's own address*
/// (`base()`), not pointers, so that the value 0 of a never-written entry means
/// something useful without a test:
/// - a root slot of 0 designates `zero_leaf`, a leaf of zeros that is never written;
/// - a leaf entry of 0 designates `base()` itself, whose first bytes (zeros, the start
///   of `zero_leaf`) read as a span record with owner 0 and no blocks: `NO_SPAN`.
///
/// So an address goes to its entry with two loads and two adds and no branch, and an
/// address oxmalloc never handed out reads entry 0: cache offset 0 (the heap's
/// `no_cache`, which sends the free fast path to the slow path) and the span record
/// NO_SPAN, a free run, which the slow path then reports (lookup() turns NO_SPAN into
/// null for everyone else).
#[repr(C)]
struct Map {
    zero_leaf: Leaf,
    root: [AtomicUsize; ROOT_LEN],
}

// All zero: lives in .bss (3 MiB of address space; the zero leaf is only ever read).
static MAP: Map = Map {
    zero_leaf: [const { AtomicUsize::new(0) }; LEAF_LEN],
    root: [const { AtomicUsize::new(0) }; ROOT_LEN],
};

// NO_SPAN reads its record from the zero leaf: it must be big enough, and the fields
// the slow path reads must be zero there (they are: the leaf is never written; kind 0
// is a free run).
const _: () = assert!(core::mem::size_of::<Span>() <= core::mem::size_of::<Leaf>());

/// The map's address, computed rip-relative (a plain reference to a static in a
/// cdylib goes through the GOT: one more load on every free).
#[inline(always)]
fn base() -> usize {
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

/// Where a leaf entry keeps its span's `cache_off`: bits 48..63. Bits 0..47 are the
/// span record's offset from `base()`, two's complement (user addresses are below
/// 2^47, so the offset fits).
///
/// Why the cache offset is in the entry: the free fast path then reads nothing of the
/// span record, only the entry, which it reads anyway. The record is a line of its
/// own, which the owner writes on its slow paths and other threads on their remote
/// frees; in larson it was a third of free's L1 misses.
///
/// So the entries of a small span must follow its `cache_off`: it is set before the
/// span is mapped, and `set_cache_off` rewrites them when it changes on a mapped span
/// (orphaned, adopted, cached empty in its arena), `remap` when a cached span is laid
/// out for another class.
pub const CACHE_OFF_SHIFT: u32 = 48;
const OFFSET_MASK: usize = (1 << CACHE_OFF_SHIFT) - 1;

/// The raw entry for `addr`'s page: 0 when nothing maps there. For the free fast path.
#[inline(always)]
pub fn entry_fast(addr: usize) -> usize {
    let base = base();
    // SAFETY: both indices are masked into range; a root slot holds 0 or the offset of
    // an installed leaf (never unmapped), so `leaf` is a valid Leaf either way.
    unsafe {
        let root = (base + core::mem::offset_of!(Map, root)) as *const [AtomicUsize; ROOT_LEN];
        let leaf = base.wrapping_add((*root).get_unchecked(root_index(addr)).load(Ordering::Acquire)) as *const Leaf;
        (*leaf).get_unchecked(leaf_index(addr)).load(Ordering::Acquire)
    }
}

/// The span record an entry designates (NO_SPAN for 0).
#[inline(always)]
pub fn span_of_entry(entry: usize) -> *mut Span {
    // Sign-extend the 48-bit offset.
    let offset = (((entry << (64 - CACHE_OFF_SHIFT)) as isize) >> (64 - CACHE_OFF_SHIFT)) as usize;
    base().wrapping_add(offset) as *mut Span
}

/// The span record for `addr`'s page, or NO_SPAN (owner 0, no blocks) when there is
/// none.
#[inline(always)]
pub fn lookup_fast(addr: usize) -> *mut Span {
    span_of_entry(entry_fast(addr))
}

/// The entry of span `span` with cache offset `cache_off`: what its pages map to
/// (and, with its class's cache offset, the free mark of its blocks, span.rs).
#[inline]
pub fn entry_with(span: *const Span, cache_off: u32) -> usize {
    ((span as usize).wrapping_sub(base()) & OFFSET_MASK) | (cache_off as usize) << CACHE_OFF_SHIFT
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

/// The entry that designates `span` (null: none), with its current `cache_off`.
#[inline]
fn entry_of(span: *mut Span) -> usize {
    if span.is_null() {
        0
    } else {
        // SAFETY: a live span record.
        entry_with(span, unsafe { (*span).cache_off })
    }
}

/// Sets the cache offset of the small span `s` to `off` and, if that changed it,
/// rewrites its pages' entries (`remap`), where the free fast path reads it.
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
    // SAFETY: per the contract.
    let (start, pages) = unsafe { ((*s).start, (*s).pages) };
    // Cannot fail: the leaves of a mapped range exist.
    set_range(start, pages, s);
}

/// Makes every page of `[start, start + pages * PAGE_SIZE)` map to `span`.
/// Returns false if a leaf could not be mapped (out of memory).
pub fn set_range(start: usize, pages: usize, span: *mut Span) -> bool {
    let entry = entry_of(span);
    let mut addr = start;
    let end = start + (pages << PAGE_SHIFT);
    while addr < end {
        let Some(leaf) = leaf_for(addr) else { return false };
        leaf[leaf_index(addr)].store(entry, Ordering::Release);
        addr += 1 << PAGE_SHIFT;
    }
    true
}

/// Maps the single page at `addr` to `span` (null to clear it).
pub fn set(addr: usize, span: *mut Span) -> bool {
    match leaf_for(addr) {
        Some(leaf) => {
            leaf[leaf_index(addr)].store(entry_of(span), Ordering::Release);
            true
        }
        None => false,
    }
}

/// Clears the mapping of `pages` pages from `start`.
pub fn clear_range(start: usize, pages: usize) {
    set_range(start, pages, ptr::null_mut());
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
    fn an_entry_gives_back_its_span_and_cache_offset() {
        // Records below and above the map (pools are mmapped on either side of it), as
        // far as user addresses go.
        let b = base();
        for span in [0x1000, b - 4096, b + 0x40, (1 << 47) - 4096] {
            for off in [0u32, 16, 0x2a00, u16::MAX as u32] {
                let e = entry_with(span as *const Span, off);
                assert_eq!(span_of_entry(e) as usize, span);
                assert_eq!(e >> CACHE_OFF_SHIFT, off as usize);
            }
        }
        // Nothing mapped: NO_SPAN at the map's own address, cache offset 0.
        assert_eq!(span_of_entry(0) as usize, b);
    }
}
