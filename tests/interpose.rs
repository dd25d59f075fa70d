//! liboxmalloc.so really replaces the process's malloc API under LD_PRELOAD, and its
//! dynamic symbol table is what src/exports.list promises.
mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// Every glibc name of src/exports.list (and the oxmalloc_* function behind it) resolves
/// into liboxmalloc.so; libc's own allocating functions use the interposed malloc.
#[test]
fn every_export_resolves_into_liboxmalloc() {
    if testing_foreign_lib() {
        eprintln!("SKIP: OXMALLOC_LIB is not liboxmalloc.so; interposition checks are oxmalloc-specific");
        return;
    }
    let exe = compile_c("interpose", &["-ldl"]);
    let mut args: Vec<String> = export_pairs().into_iter().map(|(a, b)| format!("{a}={b}")).collect();
    assert!(args.len() >= 28, "src/exports.list has only {} entries", args.len());
    args.push(format!("--version={}", env!("CARGO_PKG_VERSION")));
    let out = run(cmd(&exe, &args), &Preload::Oxmalloc, Duration::from_secs(30));
    let summary = summary_line(&out, "SUMMARY interpose").unwrap_or_default();
    assert!(out.success() && summary.contains("failed=0"), "interposition check failed:\n{}", out.describe());
}

/// `nm -D [--defined-only]` of the library: name -> symbol type letter.
fn dynamic_symbols(defined_only: bool) -> BTreeMap<String, String> {
    let lib = lib_path();
    let mut c = Command::new("nm");
    c.arg("-D");
    if defined_only {
        c.arg("--defined-only");
    }
    c.arg(&lib);
    let out = run(c, &Preload::None, Duration::from_secs(30));
    assert!(out.success(), "nm -D {} failed (is binutils installed?):\n{}", lib.display(), out.describe());
    let mut syms = BTreeMap::new();
    for line in out.stdout_str().lines() {
        // "0000000000012345 T malloc" or "                 U __tls_get_addr@GLIBC_2.3"
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (kind, name) = match parts.as_slice() {
            [_, k, n] => (*k, *n),
            [k, n] => (*k, *n),
            _ => continue,
        };
        let name = name.split('@').next().unwrap().to_string();
        syms.insert(name, kind.to_string());
    }
    syms
}

/// The library uses initial-exec/local-exec TLS only: no `__tls_get_addr` (which may
/// call malloc and so recurse when malloc itself is being interposed).
#[test]
fn no_tls_get_addr_reference() {
    if testing_foreign_lib() {
        eprintln!("SKIP: OXMALLOC_LIB is not liboxmalloc.so");
        return;
    }
    let syms = dynamic_symbols(false);
    assert!(!syms.is_empty(), "nm -D printed no symbols for {}", lib_path().display());
    let tls: Vec<_> = syms.keys().filter(|k| k.contains("__tls_get_addr")).collect();
    assert!(tls.is_empty(), "{} references {:?}", lib_path().display(), tls);
}

/// Every name of src/exports.list, every oxmalloc_* target and oxmalloc_version are
/// defined, exported functions.
#[test]
fn exports_every_listed_symbol() {
    if testing_foreign_lib() {
        eprintln!("SKIP: OXMALLOC_LIB is not liboxmalloc.so");
        return;
    }
    let syms = dynamic_symbols(true);
    let mut missing = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    for (a, b) in export_pairs() {
        wanted.push(a);
        wanted.push(b);
    }
    wanted.push("oxmalloc_version".into());
    for name in &wanted {
        match syms.get(name) {
            Some(k) if matches!(k.as_str(), "T" | "W" | "i" | "t") => {}
            Some(k) => missing.push(format!("{name} (type {k})")),
            None => missing.push(format!("{name} (absent)")),
        }
    }
    assert!(missing.is_empty(), "{} does not export as defined functions: {missing:?}", lib_path().display());
}
