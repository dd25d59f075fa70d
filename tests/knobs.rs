//! glibc's tuning knobs keep glibc's meaning (tests/c/knobs.c), each checked against
//! glibc itself as the control.
mod common;

use common::*;
use std::time::Duration;

fn run_mode(mode: &str, env: &[(&str, &str)], preload: Preload) {
    let exe = compile_c("knobs", &[]);
    let mut c = cmd(&exe, &[mode]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(c, &preload, Duration::from_secs(60));
    let summary = summary_line(&out, &format!("SUMMARY knobs-{mode}")).unwrap_or_default();
    assert!(
        out.success() && summary.contains("failed=0"),
        "knobs {mode} {env:?} failed under {}:\n{}",
        preload.label(),
        out.describe()
    );
}

fn both(mode: &str, env: &[(&str, &str)]) {
    run_mode(mode, env, Preload::None);
    run_mode(mode, env, Preload::Oxmalloc);
}

#[test]
fn raised_mmap_threshold_serves_512k_from_the_heap() {
    both("mmap_threshold", &[]);
}

#[test]
fn mmap_max_zero_serves_4m_from_the_heap() {
    both("mmap_max", &[]);
}

#[test]
fn a_big_block_at_the_top_of_the_heap_grows_in_place() {
    both("grow_top", &[]);
}

#[test]
fn a_big_block_at_the_top_of_the_heap_shrinks_in_place() {
    both("shrink_top", &[]);
}

#[test]
fn perturb_fills_like_glibc() {
    both("perturb", &[]);
}

#[test]
fn trim_threshold_from_the_environment() {
    both("keep", &[("MALLOC_TRIM_THRESHOLD_", "1000000000000")]);
    both("keep", &[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000000000")]);
    // glibc keeps the top here (its tcache pins it); oxmalloc must give it back.
    run_mode("trim", &[], Preload::Oxmalloc);
}
