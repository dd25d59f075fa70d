//! Single-thread fast path: one malloc + free pair, and a batch of 1000 allocations
//! then 1000 frees, for sizes 16, 64, 256 and 1024 bytes.
//!
//! Compared, in the same process (the bench binary does not interpose malloc):
//! - `oxmalloc_c`:      `oxmalloc::exports::oxmalloc_malloc` / `oxmalloc_free` (C ABI);
//! - `oxmalloc_global`: `OxMalloc.alloc` / `OxMalloc.dealloc` (`GlobalAlloc`);
//! - `glibc_c`:         `libc::malloc` / `libc::free` (the system glibc);
//! - `system_global`:   `std::alloc::System` (`GlobalAlloc` over glibc).
//!
//! Every block is touched (one byte written) and its pointer passed through
//! `black_box`, so that LLVM can neither drop nor merge the pair.
//!
//! Run: `cargo bench --bench fast_path` (filter: `cargo bench --bench fast_path -- pair/oxmalloc_c`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use oxmalloc::exports::{oxmalloc_free, oxmalloc_malloc};
use oxmalloc::OxMalloc;

const SIZES: [usize; 4] = [16, 64, 256, 1024];
const BATCH: usize = 1000;
/// Alignment used for the `GlobalAlloc` layouts: what a Rust `Box<[u64]>` asks for.
const ALIGN: usize = std::mem::align_of::<usize>();

/// One of the four allocation APIs compared; `alloc` returns a non-null block of `size`
/// bytes (or aborts), `free` releases it.
trait Api {
    const NAME: &'static str;
    unsafe fn alloc(size: usize) -> *mut u8;
    unsafe fn free(p: *mut u8, size: usize);
}

struct OxC;
impl Api for OxC {
    const NAME: &'static str = "oxmalloc_c";
    #[inline(always)]
    unsafe fn alloc(size: usize) -> *mut u8 {
        oxmalloc_malloc(size).cast()
    }
    #[inline(always)]
    unsafe fn free(p: *mut u8, _size: usize) {
        oxmalloc_free(p.cast())
    }
}

struct OxGlobal;
impl Api for OxGlobal {
    const NAME: &'static str = "oxmalloc_global";
    #[inline(always)]
    unsafe fn alloc(size: usize) -> *mut u8 {
        OxMalloc.alloc(Layout::from_size_align_unchecked(size, ALIGN))
    }
    #[inline(always)]
    unsafe fn free(p: *mut u8, size: usize) {
        OxMalloc.dealloc(p, Layout::from_size_align_unchecked(size, ALIGN))
    }
}

struct GlibcC;
impl Api for GlibcC {
    const NAME: &'static str = "glibc_c";
    #[inline(always)]
    unsafe fn alloc(size: usize) -> *mut u8 {
        libc::malloc(size).cast()
    }
    #[inline(always)]
    unsafe fn free(p: *mut u8, _size: usize) {
        libc::free(p.cast())
    }
}

struct SystemGlobal;
impl Api for SystemGlobal {
    const NAME: &'static str = "system_global";
    #[inline(always)]
    unsafe fn alloc(size: usize) -> *mut u8 {
        System.alloc(Layout::from_size_align_unchecked(size, ALIGN))
    }
    #[inline(always)]
    unsafe fn free(p: *mut u8, size: usize) {
        System.dealloc(p, Layout::from_size_align_unchecked(size, ALIGN))
    }
}

#[inline(always)]
fn checked(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        eprintln!("allocation of {size} bytes failed");
        std::process::abort();
    }
    p
}

/// malloc, touch, free: the pair the fast path is made for.
fn pair<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    g.bench_with_input(BenchmarkId::new(A::NAME, size), &size, |b, &size| {
        b.iter(|| unsafe {
            let p = checked(A::alloc(black_box(size)), size);
            p.write_volatile(1);
            A::free(black_box(p), size);
        })
    });
}

/// 1000 allocations, then the 1000 frees in allocation order.
fn batch<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    g.bench_with_input(BenchmarkId::new(A::NAME, size), &size, |b, &size| {
        // Allocated once, outside the timed loop, by the bench's own allocator.
        let mut ptrs: Vec<*mut u8> = Vec::with_capacity(BATCH);
        b.iter(|| unsafe {
            for _ in 0..BATCH {
                let p = checked(A::alloc(black_box(size)), size);
                p.write_volatile(1);
                ptrs.push(p);
            }
            for p in ptrs.drain(..) {
                A::free(black_box(p), size);
            }
        })
    });
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pair");
    g.throughput(Throughput::Elements(1));
    for &size in &SIZES {
        pair::<OxC>(&mut g, size);
        pair::<OxGlobal>(&mut g, size);
        pair::<GlibcC>(&mut g, size);
        pair::<SystemGlobal>(&mut g, size);
    }
    g.finish();

    let mut g = c.benchmark_group("batch1000");
    g.throughput(Throughput::Elements(BATCH as u64));
    for &size in &SIZES {
        batch::<OxC>(&mut g, size);
        batch::<OxGlobal>(&mut g, size);
        batch::<GlibcC>(&mut g, size);
        batch::<SystemGlobal>(&mut g, size);
    }
    g.finish();
}

criterion_group! {
    name = fast_path;
    config = common::config();
    targets = benches
}
criterion_main!(fast_path);
