//! The text table printed at the end (also saved as `table.txt`) and the markdown
//! snippet `README-table.md`.

use super::machine::{Date, Machine};
use super::stats::{Row, RowStatus, Summary};

/// Everything about the run that is not a measurement.
pub struct Meta {
    pub machine: Machine,
    pub started: Date,
    pub mode: &'static str,
    pub reps: usize,
    /// (name, how it is loaded).
    pub allocators: Vec<(String, String)>,
    /// (name, reason, hint) of allocators that were not run.
    pub missing: Vec<(String, String, Option<String>)>,
    pub notes: Vec<String>,
    /// ru_maxrss of a trivial program spawned by the driver (KiB).
    pub rss_floor_kib: u64,
}

pub fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) => format!("{x:.prec$}"),
        None => "-".into(),
    }
}

fn extra_label(name: &str) -> &str {
    match name {
        "max_rss_over_live" => "rss/live",
        other => other,
    }
}

/// Cells of one row of the text table (without the workload name).
fn cells(r: &Row) -> [String; 7] {
    let shows_numbers = matches!(r.status, RowStatus::Ok | RowStatus::Mismatch(_));
    let t = r.time.filter(|_| shows_numbers);
    let m = r.rss.filter(|_| shows_numbers);
    [
        fmt_opt(t.map(|s| s.median), 3),
        t.map(|s| format!("{:.3}..{:.3}", s.min, s.max))
            .unwrap_or_else(|| "-".into()),
        fmt_opt(m.map(|s| mib(s.median)), 1),
        fmt_opt(r.time_ratio, 2),
        fmt_opt(r.rss_ratio, 2),
        r.status.label().to_string(),
        r.extra
            .filter(|_| shows_numbers)
            .map(|(_, v)| format!("{v:.2}"))
            .unwrap_or_default(),
    ]
}

/// "1 run", "5 runs".
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

pub fn title(meta: &Meta) -> String {
    format!(
        "oxmalloc bench ({} suite, {}) on {}; {}",
        meta.mode,
        count(meta.reps, "rep"),
        meta.machine.summary(),
        meta.started.human()
    )
}

pub fn text_table(s: &Summary, meta: &Meta) -> String {
    // the last column (the workloads' extra figure) only when some row has one
    let extra = s
        .rows
        .iter()
        .find_map(|r| r.extra.map(|(n, _)| extra_label(n)));
    let ncols = if extra.is_some() { 9 } else { 8 };
    let extra_name = extra.unwrap_or("");
    let header = [
        "workload",
        "allocator",
        "time s",
        "spread s (min..max)",
        "RSS MiB",
        "time/glibc",
        "RSS/glibc",
        "check",
        extra_name,
    ];
    let mut lines: Vec<[String; 9]> = Vec::new();
    for w in &s.workloads {
        for (i, r) in s.rows.iter().filter(|r| r.workload == *w).enumerate() {
            let c = cells(r);
            let name = if i == 0 { w.to_string() } else { String::new() };
            lines.push([
                name,
                r.allocator.to_string(),
                c[0].clone(),
                c[1].clone(),
                c[2].clone(),
                c[3].clone(),
                c[4].clone(),
                c[5].clone(),
                c[6].clone(),
            ]);
        }
    }
    let geo_start = lines.len();
    for (i, g) in s.geo.iter().enumerate() {
        lines.push([
            if i == 0 {
                "geomean".into()
            } else {
                String::new()
            },
            g.allocator.to_string(),
            String::new(),
            String::new(),
            String::new(),
            fmt_opt(g.time_ratio, 2),
            fmt_opt(g.rss_ratio, 2),
            format!("n={}", g.n),
            String::new(),
        ]);
    }
    let mut width = header.map(|h| h.chars().count());
    for l in &lines {
        for (k, c) in l.iter().enumerate() {
            width[k] = width[k].max(c.chars().count());
        }
    }
    // left-aligned text columns, right-aligned numbers
    let left = [true, true, false, false, false, false, false, true, false];
    let fmt_line = |cols: &[String]| -> String {
        let mut out = String::new();
        for (k, c) in cols.iter().enumerate().take(ncols) {
            let pad = width[k].saturating_sub(c.chars().count());
            if k > 0 {
                out.push_str("  ");
            }
            if left[k] {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
        }
        out.trim_end().to_string()
    };

    let mut out = String::new();
    out.push_str(&title(meta));
    out.push('\n');
    out.push_str(
        "time: median wall time of the workload process; spread: min..max over the repetitions; \
         RSS: median peak RSS; ratios: to glibc (median over the repetitions of the ratio to \
         glibc's run in the same repetition), lower is better\n\n",
    );
    out.push_str(&fmt_line(&header.map(String::from)));
    out.push('\n');
    out.push_str(&fmt_line(&width.map(|w| "-".repeat(w))));
    out.push('\n');
    for (i, l) in lines.iter().enumerate() {
        if i == geo_start {
            out.push_str(&fmt_line(&width.map(|w| "-".repeat(w))));
            out.push('\n');
        }
        out.push_str(&fmt_line(l));
        out.push('\n');
    }

    let problems: Vec<&Row> = s
        .rows
        .iter()
        .filter(|r| !matches!(r.status, RowStatus::Ok))
        .collect();
    if !problems.is_empty() {
        out.push_str("\nproblems:\n");
        for r in problems {
            out.push_str(&format!(
                "  {}/{}: {}: {}\n",
                r.workload,
                r.allocator,
                r.status.label(),
                r.status.detail().unwrap_or("")
            ));
        }
    }
    if !meta.missing.is_empty() || !s.skipped_workloads.is_empty() {
        out.push_str("\nnot run:\n");
        for (name, reason, hint) in &meta.missing {
            out.push_str(&format!("  allocator {name}: {reason}"));
            if let Some(h) = hint {
                out.push_str(&format!("; {h}"));
            }
            out.push('\n');
        }
        for (name, reason) in &s.skipped_workloads {
            out.push_str(&format!("  workload {name}: {reason}\n"));
        }
    }
    out.push_str("\nnotes:\n");
    for n in notes(s, meta) {
        out.push_str(&format!("  - {n}\n"));
    }
    out
}

/// Notes common to the table and the markdown.
pub fn notes(s: &Summary, meta: &Meta) -> Vec<String> {
    let mut v = Vec::new();
    v.push(format!(
        "peak RSS is the child's ru_maxrss from wait4 (redis: the server's VmHWM); Linux counts in it the \
         driver's RSS at spawn, here {:.1} MiB (measured on /bin/true)",
        mib(meta.rss_floor_kib as f64)
    ));
    if s.workloads.contains(&"frag") {
        v.push(
            "frag rss/live: the largest ratio of RSS to live bytes the workload saw while running \
             (sampled from /proc/self/statm; 1.0 is perfect)"
                .into(),
        );
    }
    if s.workloads.contains(&"python") {
        v.push(
            "python runs with PYTHONMALLOC=malloc, so every object goes through the allocator"
                .into(),
        );
    }
    if s.workloads.contains(&"redis") {
        v.push(
            "redis: time of the redis-benchmark run; redis-server links jemalloc, so its glibc row preloads \
             libc.so.6 to get glibc's malloc"
                .into(),
        );
    }
    if s.workloads.contains(&"rust-collections") {
        v.push(
            "rust-collections: no LD_PRELOAD; one build per #[global_allocator] (glibc = std::alloc::System, \
             oxmalloc = oxmalloc::OxMalloc); the other allocators do not apply"
                .into(),
        );
    }
    v.push("geomean: over the workloads where the allocator is ok (n of them)".into());
    v.extend(meta.notes.iter().cloned());
    v
}

/// README-table.md: time and RSS ratios to glibc per workload, glibc's absolute figures.
pub fn markdown(s: &Summary, meta: &Meta) -> String {
    let others: Vec<&str> = s
        .allocators
        .iter()
        .copied()
        .filter(|a| *a != "glibc")
        .collect();
    let has_glibc = s.allocators.contains(&"glibc");
    let mut out = String::new();
    out.push_str(&format!(
        "<!-- generated by `oxmalloc bench` ({}) -->\n",
        meta.started.iso()
    ));
    out.push_str(&format!(
        "Benchmarks ({} suite, median of {}) on {}, {}. \
         Cells: wall time / peak RSS relative to glibc (lower is better), the median of \
         the ratios to glibc's run in the same repetition; \
         the glibc column gives glibc's own figures.\n\n",
        meta.mode,
        count(meta.reps, "run"),
        meta.machine.summary(),
        meta.started.human()
    ));
    let mut header = String::from("| workload |");
    let mut rule = String::from("|---|");
    if has_glibc {
        header.push_str(" glibc |");
        rule.push_str("---:|");
    }
    for a in &others {
        header.push_str(&format!(" {a} |"));
        rule.push_str("---:|");
    }
    out.push_str(&header);
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for w in &s.workloads {
        let mut line = format!("| {w} |");
        if has_glibc {
            let cell = match s.row(w, "glibc") {
                Some(r) if r.status == RowStatus::Ok => {
                    let mut c = format!(
                        "{} s / {} MiB",
                        fmt_opt(r.time.map(|t| t.median), 3),
                        fmt_opt(r.rss.map(|m| mib(m.median)), 1)
                    );
                    if let Some((n, v)) = r.extra {
                        c.push_str(&format!(" ({} {v:.1})", extra_label(n)));
                    }
                    c
                }
                Some(r) => r.status.label().to_string(),
                None => "n/a".into(),
            };
            line.push_str(&format!(" {cell} |"));
        }
        for a in &others {
            let cell = match s.row(w, a) {
                Some(r) if matches!(r.status, RowStatus::Ok) => {
                    let mut c = format!(
                        "{}× / {}×",
                        fmt_opt(r.time_ratio, 2),
                        fmt_opt(r.rss_ratio, 2)
                    );
                    if let Some((n, v)) = r.extra {
                        c.push_str(&format!(" ({} {v:.1})", extra_label(n)));
                    }
                    c
                }
                Some(r) => format!("**{}**", r.status.label()),
                None => "n/a".into(),
            };
            line.push_str(&format!(" {cell} |"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    let mut line = String::from("| **geomean** |");
    if has_glibc {
        line.push_str(" 1.00× / 1.00× |");
    }
    for a in &others {
        let cell = s
            .geo
            .iter()
            .find(|g| g.allocator == *a)
            .map(|g| {
                format!(
                    "**{}× / {}×**",
                    fmt_opt(g.time_ratio, 2),
                    fmt_opt(g.rss_ratio, 2)
                )
            })
            .unwrap_or_else(|| "n/a".into());
        line.push_str(&format!(" {cell} |"));
    }
    out.push_str(&line);
    out.push_str("\n\n");
    for n in notes(s, meta) {
        out.push_str(&format!("- {n}\n"));
    }
    out
}
