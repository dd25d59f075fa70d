//! `oxmalloc bench`: the allocator benchmark suite.
//!
//! Runs a set of allocation workloads (small C programs from `bench/workloads/`, a
//! Python script, redis, and a Rust program), each as its own process, under glibc,
//! oxmalloc (`LD_PRELOAD=liboxmalloc.so`), the peer allocators that are installed
//! (jemalloc, mimalloc, tcmalloc) and any library given with `--with` (another build
//! of oxmalloc, to compare two designs in one run), several repetitions interleaved
//! allocator by allocator; then prints a table and writes `results.csv`,
//! `results.json`, `chart.svg` and `README-table.md` into the output folder.
//!
//! Module map:
//! - [`cli`]: command-line options;
//! - [`allocators`]: which allocators exist and how to load them (with a probe
//!   that checks that the preload really takes effect);
//! - [`workloads`]: the table of workloads and their embedded sources;
//! - [`compile`]: writing those sources out and compiling them (`cc`, `rustc`);
//! - [`process`]: running a child with a timeout, wall time and `wait4` rusage;
//! - [`redis`]: the redis-server + redis-benchmark driver;
//! - [`suite`]: the measurement loop (interleaving, timeouts, checksums);
//! - [`stats`]: medians, spreads, geometric means, and the summary rows;
//! - [`report`]: the text table and the markdown snippet;
//! - [`export`]: `results.csv` and `results.json`;
//! - [`svg`]: the bar chart, `chart.svg`;
//! - [`machine`]: machine description and dates;
//! - [`progress`]: the progress line.

mod allocators;
mod cli;
mod compile;
mod export;
mod machine;
mod process;
mod progress;
mod redis;
mod report;
mod stats;
mod suite;
mod svg;
mod workloads;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Entry point: `args` are the arguments after the word `bench`; returns the exit code
/// (0: the suite ran, even if some runs failed, which the table shows; 1: could not
/// run; 2: bad usage).
pub fn main(args: &[String]) -> i32 {
    let opts = match cli::parse(args) {
        Ok(cli::Parsed::Run(o)) => o,
        Ok(cli::Parsed::Help) => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("oxmalloc bench: {e}");
            eprintln!("run `oxmalloc bench --help` for the options");
            return 2;
        }
    };
    match run(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("oxmalloc bench: error: {e}");
            1
        }
    }
}

fn run(opts: &cli::Options) -> Result<(), String> {
    let suite_start = Instant::now();
    let started = machine::now();
    let selected_workloads = workloads::select(opts)?;
    let selected_allocs = allocators::select_names(opts.only.as_deref())?;

    if opts.list {
        print!("{}", cli::listing());
        return Ok(());
    }
    // Fail fast, before anything is written: no C compiler, or oxmalloc asked for by
    // name but not built.
    let toolchain = compile::Toolchain::find()?;
    if opts
        .only
        .as_ref()
        .is_some_and(|l| l.iter().any(|a| a == "oxmalloc"))
    {
        let lib = allocators::oxmalloc_lib();
        if !lib.is_file() {
            return Err(format!(
                "--only names oxmalloc but {} does not exist: build it with `cargo build --release` \
                 (it lands next to the oxmalloc binary), or point OXMALLOC_LIB at it",
                lib.display()
            ));
        }
    }

    let out = match &opts.out {
        Some(dir) => dir.clone(),
        None => PathBuf::from("bench-results").join(started.stamp()),
    };
    fs::create_dir_all(&out)
        .map_err(|e| format!("cannot create the output folder {}: {e}", out.display()))?;
    let out = out.canonicalize().unwrap_or(out);
    eprintln!("oxmalloc bench: results go to {}", out.display());

    let mode = if opts.quick { "quick" } else { "default" };
    let reps = opts.reps.unwrap_or(if opts.quick { 3 } else { 5 });

    // Compile the workloads (and the probe that checks each preload).
    let needs_rust = selected_workloads
        .iter()
        .any(|w| matches!(w.kind, workloads::Kind::Rust));
    let built = compile::build_all(
        &toolchain,
        &out,
        &selected_workloads,
        &selected_allocs,
        needs_rust,
    )?;

    let (mut allocs, missing) =
        allocators::discover(&selected_allocs, opts.only.is_some(), &built.probe)?;
    allocs.extend(allocators::discover_extra(&opts.with, &built.probe)?);
    for m in &missing {
        eprintln!("oxmalloc bench: skipping {}: {}", m.name, m.reason);
        if let Some(hint) = &m.hint {
            eprintln!("    {hint}");
        }
    }
    if allocs.is_empty() {
        return Err("no allocator left to benchmark".into());
    }

    let cfg = suite::Config {
        reps,
        quick: opts.quick,
        timeout_cap: opts.timeout_cap.unwrap_or(120.0),
        out: out.clone(),
    };
    let outcome = suite::run(&cfg, &selected_workloads, &allocs, &built);

    let machine = machine::Machine::detect();
    let summary = stats::summarize(&outcome, &allocs);
    let meta = report::Meta {
        machine,
        started,
        mode,
        reps,
        allocators: allocs
            .iter()
            .map(|a| (a.name.to_string(), a.describe()))
            .collect(),
        missing: missing
            .iter()
            .map(|m| (m.name.to_string(), m.reason.clone(), m.hint.clone()))
            .collect(),
        notes: outcome.notes.clone(),
        rss_floor_kib: outcome.rss_floor_kib,
    };

    let table = report::text_table(&summary, &meta);
    println!("{table}");

    write_file(&out.join("results.csv"), &export::csv(&summary))?;
    write_file(
        &out.join("results.json"),
        &export::json(&summary, &meta, &outcome),
    )?;
    write_file(&out.join("chart.svg"), &svg::chart(&summary, &meta))?;
    write_file(
        &out.join("README-table.md"),
        &report::markdown(&summary, &meta),
    )?;
    write_file(&out.join("table.txt"), &table)?;

    let failed = summary
        .rows
        .iter()
        .filter(|r| r.status.is_failure())
        .count();
    if failed > 0 {
        eprintln!("oxmalloc bench: {failed} (workload, allocator) pair(s) FAILED, TIMEOUT or MISMATCH: see the table");
    }
    eprintln!(
        "oxmalloc bench: done in {:.0} s; wrote results.csv, results.json, chart.svg, README-table.md, table.txt to {}",
        suite_start.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
