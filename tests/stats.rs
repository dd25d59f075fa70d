//! Seeing the heap (issue 7): the census and its RSS breakdown against a known heap
//! (tests/c/heap_stats.c), the heap map of a fragmented heap drawn by
//! `oxmalloc run --map`, OXMALLOC_STATS on a real program, and `oxmalloc::stats()`.
mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[global_allocator]
static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;

fn launcher() -> &'static str {
    env!("CARGO_BIN_EXE_oxmalloc")
}

fn heap_stats_exe() -> std::path::PathBuf {
    let include = repo_dir().join("include");
    compile_c("heap_stats", &[&format!("-I{}", include.display())])
}

fn fields(out: &str) -> HashMap<String, i64> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

fn near(got: i64, want: i64, tolerance: f64) -> bool {
    (got - want).abs() as f64 <= want.abs() as f64 * tolerance
}

/// The census of a known heap: 30 000 small blocks held (of 60 000 allocated, 8 to
/// 3944 bytes, every other one freed), two large blocks of 3 and 4 MiB, all written.
/// - bytes in use = the sum of malloc_usable_size of the blocks held, within 0.1%
///   (plus stdio's buffer, the one allocation the program does not count);
/// - the breakdown's lines sum to the allocator's total exactly, and that total plus
///   the remainder is the process's RSS (smaps_rollup) exactly;
/// - the live lines match what the program holds: resident small blocks within 1%,
///   large blocks exactly; the free blocks line covers what was freed (+ the tails
///   of spans, within 5%);
/// - the remainder (binary, libc, stack) is small: under 8 MiB beside a 130 MiB heap.
#[test]
fn census_matches_a_known_heap_and_reconciles_with_rss() {
    if testing_foreign_lib() {
        eprintln!("SKIP: OXMALLOC_LIB is not liboxmalloc.so");
        return;
    }
    let out = run(cmd(heap_stats_exe(), &["census"]), &Preload::Oxmalloc, Duration::from_secs(60));
    let text = out.stdout_str();
    assert!(
        out.success() && summary_line(&out, "SUMMARY heap-stats-census").unwrap_or_default().contains("failed=0"),
        "{}",
        out.describe()
    );
    let f = fields(&text);
    let g = |k: &str| *f.get(k).unwrap_or_else(|| panic!("no {k}= in\n{text}"));

    assert_eq!(g("sizeof_stats") as usize, std::mem::size_of::<oxmalloc::Stats>(), "C header and Rust layout differ");
    let held = g("held_small");
    assert!(near(g("in_use"), held, 0.001), "in use {} vs held {held}\n{text}", g("in_use"));
    assert_eq!(g("class_bytes"), g("in_use"), "the classes sum to the arenas' in-use bytes");
    assert_eq!(g("mmapped_bytes"), g("held_large"));
    assert_eq!(g("mmapped_blocks"), 2);

    let parts = [
        "live_small",
        "live_big",
        "live_large",
        "free_in_thread_heaps",
        "free_in_orphans",
        "heap_top",
        "decay_free_runs",
        "decay_cached_spans",
        "outside_spans",
        "metadata",
    ];
    let sum: i64 = parts.iter().map(|p| g(p)).sum();
    assert_eq!(sum, g("allocator"), "the breakdown's parts sum to its total\n{text}");
    assert_eq!(g("allocator") + g("remainder"), g("process_rss"), "total + remainder = RSS\n{text}");
    assert_eq!(g("residency_errors"), 0);
    // Every page of the arenas is in exactly one line.
    let arena_lines = sum - g("live_large") - g("metadata");
    assert_eq!(arena_lines, g("arena_resident"), "arena lines vs the arenas' resident bytes\n{text}");

    assert!(near(g("live_small"), held, 0.01), "resident live small {} vs held {held}\n{text}", g("live_small"));
    assert_eq!(g("live_large"), g("held_large"), "large blocks are written through: all resident");
    let free = g("free_in_thread_heaps") + g("free_in_orphans");
    assert!(
        free >= g("freed_small") * 95 / 100 && free <= g("freed_small") * 110 / 100,
        "free blocks {free} vs freed {}\n{text}",
        g("freed_small")
    );
    let remainder = g("remainder");
    assert!((0..8 << 20).contains(&remainder), "remainder {remainder} (not the allocator's) should be small\n{text}");
}

/// A minimal XML well-formedness check: tags balance and nest, attributes are quoted,
/// and nothing follows the root. Returns the element names in document order.
fn check_xml(svg: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut rest = svg.trim_start();
    if let Some(r) = rest.strip_prefix("<?xml") {
        rest = &r[r.find("?>").expect("unterminated <?xml") + 2..];
    }
    let mut closed_root = false;
    while let Some(lt) = rest.find('<') {
        assert!(!closed_root || rest[..lt].trim().is_empty(), "text after the root element");
        let text = &rest[..lt];
        assert!(!text.contains('>'), "stray '>' in text {text:?}");
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").expect("unterminated comment") + 3..];
            continue;
        }
        let gt = rest.find('>').expect("unterminated tag");
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name.trim(), "</{name}> closes <{open}>");
            closed_root = stack.is_empty();
            continue;
        }
        assert!(!closed_root, "a second root element <{tag}>");
        let name: String = tag.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
        assert!(!name.is_empty(), "empty tag name");
        names.push(name.clone());
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert!(closed_root, "no root element");
    names
}

/// `oxmalloc run --map` on a fragmented heap: two brk segments (the program moves the
/// break itself between them), every other block freed, three large blocks. The SVG
/// is well-formed, has one `segment` group per segment and one `large` group per
/// large block, marks the break, has a legend, and agrees with the data file.
#[test]
fn heap_map_of_a_fragmented_heap_is_well_formed_and_shows_its_segments() {
    if testing_foreign_lib() {
        eprintln!("SKIP: OXMALLOC_LIB is not liboxmalloc.so");
        return;
    }
    let dir = TempDir::new("heap-map");
    let svg_path = dir.join("heap.svg");
    let data_path = dir.join("heap.map");
    let mut c = Command::new(launcher());
    c.arg("run").arg("--map").arg(&svg_path).arg("--map-data").arg(&data_path).arg("--").arg(heap_stats_exe()).arg("frag");
    c.env("OXMALLOC_LIB", lib_path());
    let out = run(c, &Preload::None, Duration::from_secs(60));
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout_str().contains("segments=2 large=3"), "{}", out.describe());
    assert!(out.stderr_str().contains("heap map of pid"), "{}", out.describe());

    let data = std::fs::read_to_string(&data_path).expect("map data kept");
    let count = |tag: &str| data.lines().filter(|l| l.split_whitespace().next() == Some(tag)).count();
    assert_eq!(count("region"), 2, "segments in the data:\n{data}");
    assert_eq!(count("large"), 3, "large blocks in the data:\n{data}");
    assert!(count("small") > 100, "spans in the data:\n{data}");
    assert!(data.lines().last() == Some("end"));

    let svg = std::fs::read_to_string(&svg_path).expect("svg written");
    let names = check_xml(&svg);
    assert_eq!(names.first().map(String::as_str), Some("svg"));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches("<g class=\"segment\"").count(), 2, "segments drawn");
    assert_eq!(svg.matches("<g class=\"large\"").count(), 3, "large blocks drawn");
    assert_eq!(svg.matches("<g class=\"brk\"").count(), 1, "the break is marked");
    assert_eq!(svg.matches("<g class=\"legend\"").count(), 1);
    // The spans are drawn: at least one rect per span of small blocks.
    assert!(svg.matches("class=\"span small\"").count() >= count("small"));
    assert!(svg.contains("2 segments"), "the header counts the segments");
}

/// OXMALLOC_STATS=1 on python3: the report on stderr, stdout byte-identical to a run
/// without the preload. OXMALLOC_STATS=path writes the report to that file instead.
#[test]
fn oxmalloc_stats_on_python_reports_without_changing_stdout() {
    if testing_foreign_lib() {
        eprintln!("SKIP: OXMALLOC_LIB is not liboxmalloc.so");
        return;
    }
    let Some(python) = which("python3") else {
        eprintln!("SKIP: python3 not found: the OXMALLOC_STATS check on a real program needs it");
        return;
    };
    let script = "import json\nd = {str(i): [i] * (i % 7) for i in range(50000)}\nprint(len(json.dumps(d)))\nprint(sorted(d)[:5])";
    let python_run = |env: &[(&str, String)], preload: &Preload| {
        let mut c = cmd(&python, &["-c", script]);
        c.env("PYTHONMALLOC", "malloc");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run(c, preload, Duration::from_secs(120));
        assert!(out.success(), "{}", out.describe());
        out
    };
    let plain = python_run(&[], &Preload::None);
    let with = python_run(&[("OXMALLOC_STATS", "1".into())], &Preload::Oxmalloc);
    assert_eq!(plain.stdout, with.stdout, "stdout changed under OXMALLOC_STATS=1");
    let err = with.stderr_str();
    for needle in [
        "oxmalloc: heap of pid",
        "Arena 0:",
        "system bytes     =",
        "Total (incl. mmap):",
        "max mmap regions =",
        "in use by size class",
        "RSS breakdown",
        "live small blocks",
        "= process RSS",
    ] {
        assert!(err.contains(needle), "no {needle:?} in stderr:\n{err}");
    }

    let dir = TempDir::new("stats-file");
    let file = dir.join("stats.%p.txt");
    let to_file = python_run(&[("OXMALLOC_STATS", file.display().to_string())], &Preload::Oxmalloc);
    assert_eq!(plain.stdout, to_file.stdout);
    assert!(!to_file.stderr_str().contains("Arena 0:"), "the report went to stderr, not the file");
    // Every process of the command writes its own file (a pyenv shim runs several):
    // one of them is python's.
    let reports: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    let python_report = reports
        .iter()
        .find(|r| r.lines().next().is_some_and(|l| l.contains("(python")))
        .unwrap_or_else(|| panic!("no report from python among {} files", reports.len()));
    assert!(python_report.contains("Total (incl. mmap):") && python_report.contains("RSS breakdown"), "{python_report}");
}

/// `oxmalloc run --stats` sets OXMALLOC_STATS for the command.
#[test]
fn run_stats_flag_prints_the_report() {
    if testing_foreign_lib() {
        eprintln!("SKIP: OXMALLOC_LIB is not liboxmalloc.so");
        return;
    }
    let mut c = Command::new(launcher());
    c.args(["run", "--stats", "--", "sort"]).arg(repo_dir().join("README.md"));
    c.env("OXMALLOC_LIB", lib_path());
    let out = run(c, &Preload::None, Duration::from_secs(60));
    assert!(out.success(), "{}", out.describe());
    let sorted = run(cmd("sort", &[repo_dir().join("README.md")]), &Preload::None, Duration::from_secs(60));
    assert_eq!(out.stdout, sorted.stdout);
    assert!(out.stderr_str().contains("Total (incl. mmap):") && out.stderr_str().contains("RSS breakdown"), "{}", out.describe());
}

/// `oxmalloc::stats()` in a Rust program whose global allocator is oxmalloc: 20 000
/// boxes of 1000 bytes show up in the 1024-byte class (other threads of the test
/// harness allocate too, so: at least these, and not 5% more), and the figures hold
/// together.
#[test]
fn rust_stats_see_the_programs_own_blocks() {
    let class = |st: &oxmalloc::Stats| *st.classes.iter().find(|c| c.block_size == 1024).expect("a 1024-byte class");
    let before = class(&oxmalloc::stats());
    let boxes: Vec<Box<[u8; 1000]>> = (0..20_000).map(|i| Box::new([i as u8; 1000])).collect();
    let st = oxmalloc::stats();
    let after = class(&st);
    let grew = after.bytes_in_use as i64 - before.bytes_in_use as i64;
    let want = 20_000 * 1024;
    assert!(grew >= want && grew <= want + want / 20, "1024-byte class grew by {grew}, want {want}");
    assert_eq!(after.blocks_in_use * 1024, after.bytes_in_use);
    assert!(after.blocks_total >= after.blocks_in_use);
    assert_eq!(st.size, std::mem::size_of::<oxmalloc::Stats>());
    let b = st.breakdown;
    assert!(b.live_small >= want as usize, "resident live small {}", b.live_small);
    assert!(b.allocator <= b.process_rss + (1 << 20), "allocator {} vs RSS {}", b.allocator, b.process_rss);
    assert_eq!(b.remainder, b.process_rss as isize - b.allocator as isize);
    let classes_in_use: usize = st.classes.iter().map(|c| c.bytes_in_use).sum();
    let arenas_in_use: usize = st.arenas.iter().take(st.arena_count).map(|a| a.in_use).sum();
    assert!(arenas_in_use >= classes_in_use, "arenas' in-use bytes include the classes'");
    drop(boxes);
}

/// The header's array sizes are the library's.
#[test]
fn c_header_matches_the_rust_layout() {
    let header = std::fs::read_to_string(repo_dir().join("include/oxmalloc.h")).unwrap();
    let define = |name: &str| -> usize {
        header
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no #define {name} in oxmalloc.h"))
    };
    assert_eq!(define("OXMALLOC_STATS_CLASSES"), oxmalloc::census::CLASSES);
    assert_eq!(define("OXMALLOC_STATS_ARENAS"), oxmalloc::census::ARENAS_MAX);
    assert!(Path::new(launcher()).is_file());
}
