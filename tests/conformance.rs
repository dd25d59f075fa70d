//! Conformance of the whole exported malloc API (tests/c/conformance.c).
//!
//! The same table runs twice: against glibc (no preload), which proves the table states
//! glibc's real behaviour, and under `LD_PRELOAD=liboxmalloc.so`. Both must pass.
mod common;

use common::*;
use std::time::Duration;

fn run_conformance(preload: Preload, want_impl: Option<&str>) {
    let exe = compile_c("conformance", &["-ldl"]);
    let out = run(cmd(&exe, &[] as &[&str]), &preload, Duration::from_secs(60));
    let summary = summary_line(&out, "SUMMARY conformance").unwrap_or_default();
    assert!(
        out.success() && summary.contains("failed=0"),
        "conformance table failed under {}:\n{}",
        preload.label(),
        out.describe()
    );
    if let Some(imp) = want_impl {
        assert!(
            summary.contains(&format!("impl={imp}")),
            "expected malloc to resolve to {imp} under {}, summary: {summary}",
            preload.label()
        );
    }
}

/// The table describes glibc: it must pass without any preload.
#[test]
fn conformance_glibc_reference() {
    run_conformance(Preload::None, Some("glibc"));
}

/// ... and under LD_PRELOAD=liboxmalloc.so.
#[test]
fn conformance_oxmalloc() {
    let want = if testing_foreign_lib() { None } else { Some("oxmalloc") };
    run_conformance(Preload::Oxmalloc, want);
}
