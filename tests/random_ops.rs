//! Seeded random malloc/calloc/realloc/free/posix_memalign/aligned_alloc/memalign with a
//! shadow of every live block (tests/c/shadow.c): contents, alignment, usable size and
//! non-overlap checked throughout. A failure prints the seed/thread/op to reproduce with
//! `LD_PRELOAD=target/release/liboxmalloc.so <bin> SEED OPS MAX_LIVE [THREADS]`.
mod common;

use common::*;
use std::time::Duration;

fn shadow(seed: u64, ops: u64, max_live: u32, threads: u32, preload: Preload) {
    let exe = compile_c("shadow", &[]);
    let args = [seed.to_string(), ops.to_string(), max_live.to_string(), threads.to_string()];
    let out = run(cmd(&exe, &args), &preload, Duration::from_secs(120));
    let summary = summary_line(&out, "SUMMARY shadow").unwrap_or_default();
    assert!(
        out.success() && summary.contains("failed=0"),
        "shadow driver failed (seed {seed}, {ops} ops, max live {max_live}, threads {threads}) under {}:\n{}",
        preload.label(),
        out.describe()
    );
}

/// The driver itself is right: it passes against glibc.
#[test]
fn shadow_glibc_control() {
    shadow(0xC0FFEE, 100_000, 2000, 0, Preload::None);
    shadow(0xC0FFEE, 30_000, 1000, 4, Preload::None);
}

#[test]
fn shadow_seed_1() {
    shadow(1, 200_000, 2000, 0, Preload::Oxmalloc);
}

#[test]
fn shadow_seed_2() {
    shadow(2, 200_000, 2000, 0, Preload::Oxmalloc);
}

#[test]
fn shadow_seed_3() {
    shadow(0xDEADBEEF, 200_000, 500, 0, Preload::Oxmalloc);
}

#[test]
fn shadow_seed_4() {
    shadow(4_000_000_007, 200_000, 5000, 0, Preload::Oxmalloc);
}

#[test]
fn shadow_seed_5() {
    shadow(5, 200_000, 50, 0, Preload::Oxmalloc);
}

/// 4 threads, each with its own shadow, exchanging blocks: blocks allocated by one
/// thread are verified and freed (or adopted and reallocated) by another.
#[test]
fn shadow_four_threads_exchanging() {
    shadow(11, 100_000, 1000, 4, Preload::Oxmalloc);
    shadow(12, 100_000, 100, 4, Preload::Oxmalloc);
}
