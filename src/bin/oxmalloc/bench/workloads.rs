//! The workload table, and the sources embedded into the binary.
//!
//! Every workload runs as its own process. The C ones (and the Python script) take
//! a scale as first argument: `quick_scale` with `--quick`, `full_scale` otherwise;
//! the work grows linearly with it. They print `key=value` lines on stdout, among
//! which `checksum=` (independent of the allocator) is mandatory.

use super::cli::Options;

macro_rules! bench_file {
    ($rel:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/", $rel))
    };
}

/// Sources written into `<out>/src/` and compiled there: (file name, contents).
pub const C_SOURCES: &[(&str, &str)] = &[
    ("common.h", bench_file!("workloads/common.h")),
    ("cfrac.c", bench_file!("workloads/cfrac.c")),
    ("larson.c", bench_file!("workloads/larson.c")),
    ("prodcons.c", bench_file!("workloads/prodcons.c")),
    ("cache-scratch.c", bench_file!("workloads/cache-scratch.c")),
    ("realloc.c", bench_file!("workloads/realloc.c")),
    ("large.c", bench_file!("workloads/large.c")),
    ("frag.c", bench_file!("workloads/frag.c")),
    ("thread-churn.c", bench_file!("workloads/thread-churn.c")),
    ("probe.c", bench_file!("workloads/probe.c")),
];
pub const PYTHON_SCRIPT: (&str, &str) = ("alloc_heavy.py", bench_file!("scripts/alloc_heavy.py"));
pub const RUST_SOURCE: (&str, &str) = ("collections.rs", bench_file!("rust/collections.rs"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A C program `<program>.c`, run under each allocator through LD_PRELOAD.
    C { program: &'static str },
    /// `python3 alloc_heavy.py SCALE` under each allocator through LD_PRELOAD.
    Python,
    /// redis-server under each allocator, driven by redis-benchmark
    /// (5,000 x scale requests per test).
    Redis,
    /// `bench/rust/collections.rs`, built once per Rust global allocator
    /// (glibc = `std::alloc::System`, oxmalloc = `oxmalloc::OxMalloc`,
    /// mimalloc = FFI to the system libmimalloc); no LD_PRELOAD.
    Rust,
}

#[derive(Debug)]
pub struct Workload {
    pub name: &'static str,
    pub kind: Kind,
    /// Arguments after the scale.
    pub args: &'static [&'static str],
    pub quick_scale: u32,
    pub full_scale: u32,
    /// A figure the workload prints (`name=value`) to show in the table.
    pub extra_metric: Option<&'static str>,
    pub about: &'static str,
}

impl Workload {
    pub fn scale(&self, quick: bool) -> u32 {
        if quick {
            self.quick_scale
        } else {
            self.full_scale
        }
    }
}

const fn c(
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    full_scale: u32,
    about: &'static str,
) -> Workload {
    Workload {
        name,
        kind: Kind::C { program },
        args,
        quick_scale: 1,
        full_scale,
        extra_metric: None,
        about,
    }
}

pub const ALL: &[Workload] = &[
    c(
        "cfrac",
        "cfrac",
        &[],
        4,
        "single-thread churn of small mixed-size objects, drifting live set",
    ),
    c(
        "larson-2t",
        "larson",
        &["2"],
        4,
        "larson server: 2 threads, random sizes, hand-off through shared slots",
    ),
    c(
        "larson-4t",
        "larson",
        &["4"],
        4,
        "larson server: 4 threads (oversubscribed on 2 cores)",
    ),
    c(
        "prodcons",
        "prodcons",
        &["2"],
        4,
        "1 producer allocates, 2 consumers free (remote frees)",
    ),
    c(
        "cache-scratch",
        "cache-scratch",
        &["2"],
        4,
        "false sharing: small blocks written intensively by 2 threads",
    ),
    c(
        "realloc",
        "realloc",
        &[],
        4,
        "growth of many buffers by realloc (string +1..64 B, vector doubling)",
    ),
    c(
        "large",
        "large",
        &[],
        4,
        "blocks of 64 KiB..4 MiB around the mmap threshold: alloc, touch, free",
    ),
    Workload {
        extra_metric: Some("max_rss_over_live"),
        ..c(
            "frag",
            "frag",
            &[],
            4,
            "phases of random sizes, 90% freed at random: RSS over live bytes",
        )
    },
    c(
        "thread-churn",
        "thread-churn",
        &[],
        4,
        "500 x scale short-lived threads in batches of 8, 300 blocks each",
    ),
    Workload {
        name: "python",
        kind: Kind::Python,
        args: &[],
        quick_scale: 1,
        full_scale: 3,
        extra_metric: None,
        about: "python3 (PYTHONMALLOC=malloc): dicts, lists, strings, json",
    },
    Workload {
        name: "redis",
        kind: Kind::Redis,
        args: &[],
        quick_scale: 1,
        full_scale: 6,
        extra_metric: None,
        about: "redis-server under the allocator, redis-benchmark set,get,lpush,lpop (8 clients)",
    },
    Workload {
        name: "rust-collections",
        kind: Kind::Rust,
        args: &[],
        quick_scale: 1,
        full_scale: 4,
        extra_metric: None,
        about: "Rust HashMap/BTreeMap/Vec<String>/sort with #[global_allocator] (no LD_PRELOAD)",
    },
];

pub fn find(name: &str) -> Option<&'static Workload> {
    ALL.iter().find(|w| w.name == name)
}

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|w| w.name).collect()
}

/// The workloads selected by `--workloads` and `--skip`, in table order.
pub fn select(opts: &Options) -> Result<Vec<&'static Workload>, String> {
    let chosen: Vec<&'static Workload> = ALL
        .iter()
        .filter(|w| match &opts.workloads {
            None => true,
            Some(l) => l.iter().any(|n| n == w.name),
        })
        .filter(|w| !opts.skip.iter().any(|n| n == w.name))
        .collect();
    if chosen.is_empty() {
        return Err("no workload selected".into());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sources_embedded() {
        let mut n = names();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), ALL.len());
        for w in ALL {
            if let Kind::C { program } = w.kind {
                let file = format!("{program}.c");
                assert!(
                    C_SOURCES.iter().any(|(f, _)| *f == file),
                    "{file} is not embedded"
                );
            }
        }
        assert!(PYTHON_SCRIPT.1.contains("checksum="));
        assert!(RUST_SOURCE.1.contains("checksum="));
    }
}
