//! The C API: one-line shims with C linkage over alloc.rs, options.rs and stats.rs.
//!
//! They are exported as `oxmalloc_*`. The glibc names (`malloc`, `free`, ...) are
//! aliases made at link time for liboxmalloc.so, or by the `override` feature for a
//! Rust program that wants its C allocations served too: see build.rs and
//! src/exports.list.
#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_char, c_int, c_void};

use crate::alloc;
use crate::options;
use crate::stats::{self, MallInfo, MallInfo2};

#[cfg(feature = "override")]
include!(concat!(env!("OUT_DIR"), "/override_aliases.rs"));

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_malloc(size: usize) -> *mut c_void {
    // SAFETY: C malloc has no preconditions.
    unsafe { alloc::malloc(size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_free(p: *mut c_void) {
    // SAFETY: the caller passes a block from this allocator or NULL (else we abort).
    unsafe { alloc::free(p.cast()) }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: no preconditions.
    unsafe { alloc::calloc(n, size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as free.
    unsafe { alloc::realloc(p.cast(), size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    // SAFETY: as free.
    unsafe { alloc::reallocarray(p.cast(), n, size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: `out` is the caller's valid pointer slot.
    unsafe { alloc::posix_memalign(out.cast(), align, size) }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: no preconditions.
    unsafe { alloc::aligned_alloc(align, size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: no preconditions.
    unsafe { alloc::memalign(align, size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_valloc(size: usize) -> *mut c_void {
    // SAFETY: no preconditions.
    unsafe { alloc::valloc(size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_pvalloc(size: usize) -> *mut c_void {
    // SAFETY: no preconditions.
    unsafe { alloc::pvalloc(size).cast() }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: as free.
    unsafe { alloc::malloc_usable_size(p.cast()) }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_free_sized(p: *mut c_void, size: usize) {
    // SAFETY: as free.
    unsafe { alloc::free_sized(p.cast(), size, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    // SAFETY: as free.
    unsafe { alloc::free_sized(p.cast(), size, align) }
}

#[no_mangle]
pub extern "C" fn oxmalloc_mallopt(param: c_int, value: c_int) -> c_int {
    options::mallopt(param, value)
}

#[no_mangle]
pub extern "C" fn oxmalloc_mallinfo() -> MallInfo {
    stats::mallinfo()
}

#[no_mangle]
pub extern "C" fn oxmalloc_mallinfo2() -> MallInfo2 {
    stats::mallinfo2()
}

#[no_mangle]
pub extern "C" fn oxmalloc_malloc_trim(pad: usize) -> c_int {
    stats::malloc_trim(pad)
}

#[no_mangle]
pub extern "C" fn oxmalloc_malloc_stats() {
    stats::malloc_stats()
}

#[no_mangle]
pub unsafe extern "C" fn oxmalloc_malloc_info(options: c_int, stream: *mut libc::FILE) -> c_int {
    // SAFETY: the caller passes an open stream, as glibc's malloc_info requires.
    unsafe { stats::malloc_info(options, stream) }
}

/// Fills `*out` with a census of the heap (`struct oxmalloc_stats` in oxmalloc.h,
/// `oxmalloc::Stats` in Rust), copying at most `size` bytes, and returns the size of
/// the whole structure. `out` may be NULL (then only the size is returned).
#[no_mangle]
pub unsafe extern "C" fn oxmalloc_stats_get(out: *mut c_void, size: usize) -> usize {
    let full = core::mem::size_of::<crate::census::Stats>();
    if out.is_null() || size == 0 {
        return full;
    }
    let st = crate::census::take();
    // SAFETY: the caller provides `size` writable bytes at `out`; we copy no more than
    // that, from a plain-data structure of `full` bytes.
    unsafe { core::ptr::copy_nonoverlapping((&st as *const crate::census::Stats).cast::<u8>(), out.cast::<u8>(), size.min(full)) };
    full
}

/// Prints the malloc_stats report (glibc's lines, by class, arenas, RSS breakdown)
/// to the file descriptor `fd`.
#[no_mangle]
pub extern "C" fn oxmalloc_stats_print(fd: c_int) {
    crate::report::write(fd, &crate::census::take());
}

#[no_mangle]
pub extern "C" fn oxmalloc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
