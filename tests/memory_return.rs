//! Memory goes back to the OS (tests/c/memory_return.c): RSS after a burst comes down,
//! and what stays allocated survives the purging intact.
mod common;

use common::*;
use std::time::Duration;

fn run_mode(mode: &str, preload: Preload) -> String {
    let exe = compile_c("memory_return", &[]);
    let out = run(cmd(&exe, &[mode]), &preload, Duration::from_secs(120));
    let summary = summary_line(&out, &format!("SUMMARY memory-return-{mode}")).unwrap_or_default();
    assert!(
        out.success() && summary.contains("failed=0"),
        "memory_return {mode} failed under {}:\n{}",
        preload.label(),
        out.describe()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field(out: &str, name: &str) -> i64 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in output:\n{out}"))
}

/// 1 Mi blocks of 256 B freed in reverse order, no trim call: RSS back within 16 MiB
/// of the start (glibc keeps ~280 MiB here).
#[test]
fn reverse_free_gives_memory_back_without_a_trim_call() {
    let out = run_mode("reverse", Preload::Oxmalloc);
    let grown = field(&out, "rss_after_kib") - field(&out, "rss_start_kib");
    assert!(grown <= 16 * 1024, "RSS still {grown} KiB above the start:\n{out}");
}

/// 63 of every 64 blocks freed, then malloc_trim(0): RSS no higher than glibc's after
/// its own malloc_trim(0) (+5% for layout differences), survivors intact, space reusable.
#[test]
fn malloc_trim_returns_free_pages_inside_spans() {
    let ours = run_mode("sparse", Preload::Oxmalloc);
    let glibc = run_mode("sparse", Preload::None);
    let ours_kib = field(&ours, "rss_after_trim_kib");
    let glibc_kib = field(&glibc, "rss_after_trim_kib");
    assert!(
        ours_kib <= glibc_kib + glibc_kib / 20,
        "after malloc_trim: oxmalloc {ours_kib} KiB, glibc {glibc_kib} KiB"
    );
}

/// Many classes, 90% freed at random, trims between rounds: nothing live is damaged.
#[test]
fn purging_keeps_live_blocks_intact() {
    run_mode("mixed", Preload::None);
    run_mode("mixed", Preload::Oxmalloc);
}

/// mallinfo2 follows a known live set within 5% (also true of glibc, the control).
#[test]
fn mallinfo2_matches_the_live_set() {
    run_mode("mallinfo", Preload::None);
    run_mode("mallinfo", Preload::Oxmalloc);
}
