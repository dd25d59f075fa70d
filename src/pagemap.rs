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
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::os::{self, PAGE_SHIFT};
use crate::span::Span;

const ROOT_SHIFT: u32 = 30;
const ROOT_LEN: usize = 1 << (47 - ROOT_SHIFT);
const LEAF_LEN: usize = 1 << (ROOT_SHIFT - PAGE_SHIFT);

type Leaf = [AtomicPtr<Span>; LEAF_LEN];

static ROOT: [AtomicPtr<Leaf>; ROOT_LEN] = [const { AtomicPtr::new(ptr::null_mut()) }; ROOT_LEN];

/// The root table, addressed rip-relative (a plain reference to a static in a cdylib
/// goes through the GOT: one more load on every free).
#[inline(always)]
fn root() -> &'static [AtomicPtr<Leaf>; ROOT_LEN] {
    let p: *const [AtomicPtr<Leaf>; ROOT_LEN];
    // SAFETY: computes the address of ROOT; no memory is accessed.
    unsafe {
        core::arch::asm!(
            "lea {p}, [rip + {root}]",
            p = out(reg) p,
            root = sym ROOT,
            options(pure, nomem, nostack, preserves_flags),
        );
        &*p
    }
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

/// The span whose page holds `addr`, or null.
#[inline(always)]
pub fn lookup(addr: usize) -> *mut Span {
    let leaf = root()[root_index(addr)].load(Ordering::Acquire);
    if leaf.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: leaves are never unmapped once installed, and the index is in bounds.
    unsafe { (*leaf).get_unchecked(leaf_index(addr)).load(Ordering::Acquire) }
}

/// The leaf for `addr`, creating it if needed. `None` when the leaf cannot be mapped.
fn leaf_for(addr: usize) -> Option<&'static Leaf> {
    let slot = &ROOT[root_index(addr)];
    let mut leaf = slot.load(Ordering::Acquire);
    if leaf.is_null() {
        let fresh = os::map_sparse(core::mem::size_of::<Leaf>())? as *mut Leaf;
        match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => leaf = fresh,
            Err(existing) => {
                // SAFETY: `fresh` was mapped above and never published.
                unsafe { os::unmap(fresh.cast(), core::mem::size_of::<Leaf>()) };
                leaf = existing;
            }
        }
    }
    // SAFETY: installed leaves live for the rest of the process.
    Some(unsafe { &*leaf })
}

/// Makes every page of `[start, start + pages * PAGE_SIZE)` map to `span`.
/// Returns false if a leaf could not be mapped (out of memory).
pub fn set_range(start: usize, pages: usize, span: *mut Span) -> bool {
    let mut addr = start;
    let end = start + (pages << PAGE_SHIFT);
    while addr < end {
        let Some(leaf) = leaf_for(addr) else { return false };
        leaf[leaf_index(addr)].store(span, Ordering::Release);
        addr += 1 << PAGE_SHIFT;
    }
    true
}

/// Maps the single page at `addr` to `span` (null to clear it).
pub fn set(addr: usize, span: *mut Span) -> bool {
    match leaf_for(addr) {
        Some(leaf) => {
            leaf[leaf_index(addr)].store(span, Ordering::Release);
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
    f(ROOT.as_ptr() as usize, core::mem::size_of_val(&ROOT));
    for slot in ROOT.iter() {
        let leaf = slot.load(Ordering::Acquire);
        if !leaf.is_null() {
            f(leaf as usize, core::mem::size_of::<Leaf>());
        }
    }
}
