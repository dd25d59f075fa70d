//! Coexistence with a program that moves the break itself (tests/c/brk.c), and
//! allocation when the break cannot grow at all.
//!
//! (RLIMIT_DATA is not tested: since Linux 4.7 it limits private anonymous mmaps as well
//! as brk, so "brk fails but mmap works" cannot be produced with it.)
mod common;

use common::*;
use std::time::Duration;

fn run_brk(mode: &str, seed: &str, preload: Preload) {
    let exe = compile_c("brk", &[]);
    let out = run(cmd(&exe, &[mode, seed]), &preload, Duration::from_secs(60));
    let summary = summary_line(&out, &format!("SUMMARY brk-{mode}")).unwrap_or_default();
    assert!(
        out.success() && summary.contains("failed=0"),
        "brk {mode} (seed {seed}) failed under {}:\n{}",
        preload.label(),
        out.describe()
    );
}

/// The program sbrk()s its own memory between allocations and gives it back.
#[test]
fn program_moves_the_break() {
    for seed in ["1", "0x1234567", "987654321"] {
        run_brk("move", seed, Preload::None); // control: the test itself is right
        run_brk("move", seed, Preload::Oxmalloc);
    }
}

/// A page mapped right above the break: 64 MiB must still be served (from mmap).
#[test]
fn break_cannot_grow() {
    run_brk("blocked", "7", Preload::None);
    run_brk("blocked", "7", Preload::Oxmalloc);
}
