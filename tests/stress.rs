//! The short version of `scripts/stress.sh` (tests/c/stress.c): threads doing random
//! allocation with every byte checked, blocks freed by other threads, threads exiting and
//! replaced, and a fork every ~20 ms whose child checks, allocates and exits 0. The
//! summary's counts are asserted: no failure, and operations, forks, exchanges and thread
//! exits all happened.
mod common;

use common::*;
use std::time::Duration;

fn field(summary: &str, name: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {summary:?}"))
}

/// Runs the stress and asserts its summary; `min_forks` is low because on a loaded
/// 2-core machine the forking thread competes with the workers for the CPU.
fn stress(seconds: u32, threads: u32, seed: u64, min_forks: u64, preload: Preload) {
    let exe = compile_c("stress", &[]);
    let args = [seconds.to_string(), threads.to_string(), seed.to_string()];
    // A hang is a failure: the program watches its own threads (20 s without progress)
    // and children (10 s); this limit catches the rest.
    let out = run(cmd(&exe, &args), &preload, Duration::from_secs(u64::from(seconds) + 60));
    let summary = summary_line(&out, "SUMMARY stress").unwrap_or_default();
    assert!(out.success() && !summary.is_empty(), "stress failed under {}:\n{}", preload.label(), out.describe());
    eprintln!("{}", out.stdout_str());
    assert_eq!(field(&summary, "failures"), 0, "{}", out.describe());
    assert!(field(&summary, "ops") > 10_000, "{summary}");
    assert!(field(&summary, "forks") >= min_forks, "{summary}");
    assert!(field(&summary, "exchanged") > 1000, "{summary}");
    assert!(field(&summary, "thread_exits") >= 1, "{summary}");
}

/// The program is right: it passes on glibc.
#[test]
fn stress_glibc_control() {
    stress(3, 4, 0x5EED, 2, Preload::None);
}

#[test]
fn stress_threads_forks_cross_thread_frees() {
    stress(12, 6, 0x0A11_0C8E, 5, Preload::Oxmalloc);
}
