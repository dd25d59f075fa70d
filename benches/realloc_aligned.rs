//! realloc growth and aligned allocation, oxmalloc (C ABI: `oxmalloc::exports`)
//! against glibc (`libc::*`, the system allocator: the bench binary does not
//! interpose malloc).
//!
//! - `realloc_double`: malloc(16), then realloc doubling the size up to 1 MiB
//!   (16 reallocs), then free. Throughput: reallocs.
//! - `realloc_plus16`: malloc(16), then realloc growing by 16 bytes up to 1 MiB
//!   (65,535 reallocs), then free. Throughput: reallocs.
//!   In both, the last byte of the block is written after every realloc, and the
//!   first byte is checked to have survived the moves.
//! - `memalign/<api>/<alignment>x<size>`: posix_memalign + touch + free, alignments
//!   64, 4096 and 1 MiB, sizes 48, 4096 and 200,000 bytes.
//!
//! Run: `cargo bench --bench realloc_aligned` (filter: `... -- memalign`).

mod common;

use std::ffi::c_void;
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use oxmalloc::exports::{oxmalloc_free, oxmalloc_malloc, oxmalloc_posix_memalign, oxmalloc_realloc};

const MIB: usize = 1 << 20;
const ALIGNS: [usize; 3] = [64, 4096, MIB];
const ALIGNED_SIZES: [usize; 3] = [48, 4096, 200_000];

/// The C allocation API under test.
trait Api {
    const NAME: &'static str;
    unsafe fn malloc(size: usize) -> *mut c_void;
    unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void;
    unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    unsafe fn free(p: *mut c_void);
}

struct Ox;
impl Api for Ox {
    const NAME: &'static str = "oxmalloc";
    #[inline(always)]
    unsafe fn malloc(size: usize) -> *mut c_void {
        oxmalloc_malloc(size)
    }
    #[inline(always)]
    unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        oxmalloc_realloc(p, size)
    }
    #[inline(always)]
    unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
        oxmalloc_posix_memalign(out, align, size)
    }
    #[inline(always)]
    unsafe fn free(p: *mut c_void) {
        oxmalloc_free(p)
    }
}

struct Glibc;
impl Api for Glibc {
    const NAME: &'static str = "glibc";
    #[inline(always)]
    unsafe fn malloc(size: usize) -> *mut c_void {
        libc::malloc(size)
    }
    #[inline(always)]
    unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        libc::realloc(p, size)
    }
    #[inline(always)]
    unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
        libc::posix_memalign(out, align, size)
    }
    #[inline(always)]
    unsafe fn free(p: *mut c_void) {
        libc::free(p)
    }
}

fn fail(what: &str, size: usize) -> ! {
    eprintln!("{what} of {size} bytes failed");
    std::process::abort();
}

/// Grows a block from 16 bytes to 1 MiB, `next(size)` at a time; returns the
/// number of reallocs done.
#[inline(always)]
unsafe fn grow<A: Api>(next: impl Fn(usize) -> usize) -> u64 {
    let mut size = 16;
    let mut p = A::malloc(size) as *mut u8;
    if p.is_null() {
        fail("malloc", size);
    }
    p.write(0xA5);
    let mut n = 0;
    while size < MIB {
        size = next(size).min(MIB);
        p = A::realloc(black_box(p.cast()), size) as *mut u8;
        if p.is_null() {
            fail("realloc", size);
        }
        p.add(size - 1).write_volatile(1);
        n += 1;
    }
    if p.read_volatile() != 0xA5 {
        eprintln!("{}: realloc lost the block's contents", A::NAME);
        std::process::abort();
    }
    A::free(p.cast());
    n
}

const DOUBLINGS: u64 = 16; // 16 B * 2^16 = 1 MiB
const PLUS16: u64 = (MIB as u64 - 16) / 16;

fn realloc_double<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.bench_function(A::NAME, |b| {
        b.iter(|| unsafe {
            let n = grow::<A>(|s| s * 2);
            debug_assert_eq!(n, DOUBLINGS);
        })
    });
}

fn realloc_plus16<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.bench_function(A::NAME, |b| {
        b.iter(|| unsafe {
            let n = grow::<A>(|s| s + 16);
            debug_assert_eq!(n, PLUS16);
        })
    });
}

fn memalign<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, align: usize, size: usize) {
    let id = BenchmarkId::new(A::NAME, format!("{align}x{size}"));
    g.bench_with_input(id, &(align, size), |b, &(align, size)| {
        b.iter(|| unsafe {
            let mut p: *mut c_void = std::ptr::null_mut();
            let rc = A::posix_memalign(&mut p, black_box(align), black_box(size));
            if rc != 0 || p.is_null() {
                fail("posix_memalign", size);
            }
            if (p as usize) & (align - 1) != 0 {
                eprintln!("{}: posix_memalign({align}, {size}) returned {p:p}", A::NAME);
                std::process::abort();
            }
            (p as *mut u8).write_volatile(1);
            A::free(black_box(p));
        })
    });
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("realloc_double");
    g.throughput(Throughput::Elements(DOUBLINGS));
    realloc_double::<Ox>(&mut g);
    realloc_double::<Glibc>(&mut g);
    g.finish();

    // ~65k reallocs per iteration (milliseconds): flat sampling keeps the run short.
    let mut g = c.benchmark_group("realloc_plus16");
    g.throughput(Throughput::Elements(PLUS16));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    realloc_plus16::<Ox>(&mut g);
    realloc_plus16::<Glibc>(&mut g);
    g.finish();

    let mut g = c.benchmark_group("memalign");
    g.throughput(Throughput::Elements(1));
    for &align in &ALIGNS {
        for &size in &ALIGNED_SIZES {
            memalign::<Ox>(&mut g, align, size);
            memalign::<Glibc>(&mut g, align, size);
        }
    }
    g.finish();
}

criterion_group! {
    name = realloc_aligned;
    config = common::config();
    targets = benches
}
criterion_main!(realloc_aligned);
