//! `OxMalloc`: oxmalloc as a Rust `#[global_allocator]`.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;
//! ```
//!
//! This serves the Rust program's allocations only; the process's C `malloc` stays
//! glibc's unless the crate's `override` feature is enabled.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use crate::alloc::{self, MIN_ALIGN};

/// The oxmalloc global allocator (a unit value: `OxMalloc` is also a `const`).
#[derive(Clone, Copy, Default, Debug)]
pub struct OxMalloc;

// SAFETY: the allocator returns blocks of at least `layout.size()` bytes aligned to
// `layout.align()`, which stay valid until deallocated, and never hands out a block
// twice; dealloc/realloc accept exactly the blocks it returned.
unsafe impl GlobalAlloc for OxMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: allocation has no preconditions.
        unsafe {
            if layout.align() <= MIN_ALIGN {
                alloc::malloc(layout.size())
            } else {
                alloc::aligned(layout.align(), layout.size())
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: `p` came from this allocator (GlobalAlloc contract).
        unsafe { alloc::free(p) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as alloc; the block holds layout.size() bytes.
        unsafe {
            if layout.align() <= MIN_ALIGN {
                alloc::calloc(1, layout.size())
            } else {
                let p = alloc::aligned(layout.align(), layout.size());
                if !p.is_null() {
                    ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `p` came from this allocator with `layout` (GlobalAlloc contract);
        // copies stay within both blocks.
        unsafe {
            if layout.align() <= MIN_ALIGN {
                return alloc::realloc(p, new_size);
            }
            let q = alloc::aligned(layout.align(), new_size);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                alloc::free(p);
            }
            q
        }
    }
}
