//! The thread-locals oxmalloc keeps: a pointer to the calling thread's heap, and a
//! count of the frees a thread without a heap made (`count_heapless_free`).
//!
//! They are initial-exec TLS variables declared in assembly, each read with one `fs:`
//! relative load. Rust's `thread_local!` would use the general-dynamic model in a
//! cdylib, whose `__tls_get_addr` may itself call malloc on glibc 2.39+ (and takes a
//! lock); initial-exec TLS lives in the static TLS block that glibc sets up before any
//! code of ours runs, so reading it never calls anything. tests/interpose.rs checks
//! that liboxmalloc.so has no `__tls_get_addr` reference.
//!
//! The variable starts out pointing at `EMPTY_HEAP` (a `.tdata` initialiser, relocated
//! by the dynamic linker before the initial thread's TLS is copied), so the malloc fast
//! path needs no "is this thread initialised?" test: the empty heap has no blocks, and
//! the first allocation falls into the slow path, which sets up a real heap.

use crate::thread_heap::{ThreadHeap, EMPTY_HEAP};

core::arch::global_asm!(
    ".pushsection .tdata,\"awT\",@progbits",
    ".p2align 3",
    ".globl __oxmalloc_tls_heap",
    ".hidden __oxmalloc_tls_heap",
    ".type __oxmalloc_tls_heap,@object",
    ".size __oxmalloc_tls_heap, 8",
    "__oxmalloc_tls_heap:",
    ".quad {empty}",
    ".popsection",
    empty = sym EMPTY_HEAP,
);

// Frees of other threads' blocks by this thread while it has no heap (alloc.rs
// `free_slow`), an initial-exec TLS word like the heap pointer, starting at 0.
core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl __oxmalloc_tls_heapless_frees",
    ".hidden __oxmalloc_tls_heapless_frees",
    ".type __oxmalloc_tls_heapless_frees,@object",
    ".size __oxmalloc_tls_heapless_frees, 8",
    "__oxmalloc_tls_heapless_frees:",
    ".zero 8",
    ".popsection",
);

/// Counts one more free by the calling thread while it has no heap; returns the new
/// count.
#[inline]
pub fn count_heapless_free() -> usize {
    let n: usize;
    // SAFETY: increments this thread's initial-exec TLS word and reads it back; nothing
    // else is touched.
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [rip + __oxmalloc_tls_heapless_frees@GOTTPOFF]",
            "add qword ptr fs:[{t}], 1",
            "mov {n}, qword ptr fs:[{t}]",
            t = out(reg) _,
            n = out(reg) n,
            options(nostack),
        );
    }
    n
}

/// The calling thread's heap (`EMPTY_HEAP` until its first allocation).
#[inline(always)]
pub fn heap() -> *mut ThreadHeap {
    let h: *mut ThreadHeap;
    // SAFETY: reads this thread's initial-exec TLS slot; no memory is written.
    unsafe {
        core::arch::asm!(
            "mov {h}, qword ptr [rip + __oxmalloc_tls_heap@GOTTPOFF]",
            "mov {h}, qword ptr fs:[{h}]",
            h = out(reg) h,
            options(nostack, readonly, preserves_flags, pure),
        );
    }
    h
}

/// Sets the calling thread's heap.
#[inline]
pub fn set_heap(h: *mut ThreadHeap) {
    // SAFETY: writes this thread's initial-exec TLS slot and nothing else.
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [rip + __oxmalloc_tls_heap@GOTTPOFF]",
            "mov qword ptr fs:[{t}], {h}",
            t = out(reg) _,
            h = in(reg) h,
            options(nostack, preserves_flags),
        );
    }
}

/// liboxmalloc.so binds `__tls_get_addr` to this (a link-time alias, see build.rs), so
/// that the library carries no reference to the dynamic loader's `__tls_get_addr`.
///
/// Rust's std is linked into the cdylib for its panic runtime only, and its
/// thread-locals (general-dynamic, through `__tls_get_addr`) are touched only on panic
/// and std-thread paths, which oxmalloc never takes: the crate is `no_std`, has no
/// panicking code (checked by tests/interpose.rs through the symbol), and starts no
/// threads. If such a path were ever reached, this says so and aborts rather than
/// calling into the loader from inside malloc.
#[no_mangle]
pub extern "C" fn oxmalloc_no_dynamic_tls(_index: *mut core::ffi::c_void) -> *mut core::ffi::c_void {
    crate::os::fatal("dynamic TLS reached from inside liboxmalloc.so (a std panic path?)", usize::MAX)
}
