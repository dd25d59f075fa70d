//! Multi-threaded allocation (tests/c/threads.c): cross-thread frees in waves of
//! exiting threads, 10,000 short-lived threads with bounded RSS, a producer/consumer
//! pair whose peak RSS must stay bounded, the thread cache's order of reuse, blocks
//! handed to a thread that must not make threads share cache lines, and blocks one
//! thread frees reused by another. Most also run against glibc as a control.
mod common;

use common::*;
use std::time::Duration;

fn threads(args: &[&str], preload: Preload) -> Output {
    let exe = compile_c("threads", &[]);
    let out = run(cmd(&exe, args), &preload, Duration::from_secs(120));
    let summary = summary_line(&out, &format!("SUMMARY threads-{}", args[0])).unwrap_or_default();
    assert!(
        out.success() && summary.contains("failed=0"),
        "threads {} failed under {}:\n{}",
        args.join(" "),
        preload.label(),
        out.describe()
    );
    eprintln!("{}", out.stdout_str());
    out
}

/// 5 waves x 8 threads x 100k ops; blocks handed between threads through atomic slots
/// and freed on the other side; every byte checked.
#[test]
fn waves_of_threads_exchanging_blocks() {
    threads(&["waves", "2", "8", "20000"], Preload::None);
    threads(&["waves", "5", "8", "100000"], Preload::Oxmalloc);
}

/// 10,000 short-lived threads, 8 at a time: RSS at the end within 8 MiB of the RSS after
/// the first 100 threads.
#[test]
fn thread_churn_keeps_rss_bounded() {
    threads(&["churn", "2000", "8"], Preload::None);
    threads(&["churn", "10000", "8"], Preload::Oxmalloc);
}

/// One producer allocates 2M blocks of 16..512 bytes, two consumers free them, at most
/// 10k in flight: VmHWM < 64 MiB.
#[test]
fn producer_consumer_peak_rss_bounded() {
    threads(&["prodcons", "500000", "10000"], Preload::None);
    threads(&["prodcons", "2000000", "10000"], Preload::Oxmalloc);
}

/// The thread cache hands back the most recently freed block first, whichever thread
/// allocated it: a thread frees 6 blocks another thread allocated (contents checked),
/// and its next 6 mallocs of that size return them, last freed first; a block it
/// frees itself comes straight back. (glibc's tcache, 7 blocks per size, does the
/// same, which makes it the control.)
#[test]
fn thread_cache_reuses_the_last_freed_block_first() {
    threads(&["lifo"], Preload::None);
    threads(&["lifo"], Preload::Oxmalloc);
}

/// Hoard's cache-scratch: a block the main thread handed to a new thread and that
/// thread freed is not what the thread's next mallocs of that size return, nor
/// anything in its cache line (the threads would write into lines other threads write
/// into). glibc fails this (its tcache hands the block straight back), so it is not
/// run as a control here.
#[test]
fn freed_handed_over_blocks_do_not_make_threads_share_cache_lines() {
    threads(&["scratch"], Preload::Oxmalloc);
}

/// Blocks one thread frees feed other threads: A allocates 2000 blocks and stays
/// alive, B frees them all, C then allocates 2000 of that size and gets most of A's
/// old blocks (contents checked throughout). Under glibc C gets an arena of its own
/// and reuses none of them.
#[test]
fn blocks_freed_by_one_thread_are_reused_by_another() {
    threads(&["pass"], Preload::None);
    let out = threads(&["pass"], Preload::Oxmalloc);
    let reused = line_field(&out.stdout_str(), "reused");
    assert!(reused >= 1500, "only {reused} of 2000 blocks reused:\n{}", out.describe());
}
