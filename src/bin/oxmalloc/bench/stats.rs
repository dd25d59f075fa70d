//! Statistics (median, quartiles, geometric mean) and the summary rows that the
//! table, the CSV/JSON and the chart are made from.

use super::allocators::Allocator;
use super::suite::{Outcome, Pair, RunRecord, RunStatus};

/// Median and spread of a set of repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// First and third quartiles (linear interpolation between order statistics).
    pub q1: f64,
    pub q3: f64,
    pub n: usize,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn spread(xs: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Spread {
        median: quantile(&v, 0.5),
        min: v[0],
        max: v[v.len() - 1],
        q1: quantile(&v, 0.25),
        q3: quantile(&v, 0.75),
        n: v.len(),
    })
}

/// Geometric mean of positive numbers (None if there are none).
pub fn geomean(xs: &[f64]) -> Option<f64> {
    let v: Vec<f64> = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    Some((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowStatus {
    Ok,
    /// Crashed or exited with an error (the message says how).
    Failed(String),
    Timeout(String),
    /// Ran, but its checksum differs from glibc's: the allocator broke the program.
    Mismatch(String),
    /// Not run (e.g. its build failed).
    Skipped(String),
}

impl RowStatus {
    pub fn label(&self) -> &'static str {
        match self {
            RowStatus::Ok => "ok",
            RowStatus::Failed(_) => "FAILED",
            RowStatus::Timeout(_) => "TIMEOUT",
            RowStatus::Mismatch(_) => "MISMATCH",
            RowStatus::Skipped(_) => "SKIPPED",
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            RowStatus::Ok => None,
            RowStatus::Failed(s)
            | RowStatus::Timeout(s)
            | RowStatus::Mismatch(s)
            | RowStatus::Skipped(s) => Some(s),
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            RowStatus::Failed(_) | RowStatus::Timeout(_) | RowStatus::Mismatch(_)
        )
    }

    /// The run produced a bar in the chart (everything but Skipped).
    pub fn ran(&self) -> bool {
        !matches!(self, RowStatus::Skipped(_))
    }
}

/// One (workload, allocator) line of the results.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: &'static str,
    pub allocator: &'static str,
    pub status: RowStatus,
    pub reps_ok: usize,
    pub reps: usize,
    /// Wall time, seconds.
    pub time: Option<Spread>,
    /// Peak RSS, KiB.
    pub rss: Option<Spread>,
    /// Median over the repetitions of time / glibc's time in the same repetition
    /// (`paired_ratio`).
    pub time_ratio: Option<f64>,
    /// The same for peak RSS.
    pub rss_ratio: Option<f64>,
    pub checksum: Option<String>,
    /// Some(true) when equal to the reference (glibc's) checksum.
    pub checksum_ok: Option<bool>,
    /// The workload's extra figure (name, median), e.g. max_rss_over_live.
    pub extra: Option<(&'static str, f64)>,
}

/// Geometric means of the ratios of one allocator over the workloads where it is ok.
#[derive(Debug, Clone)]
pub struct Geo {
    pub allocator: &'static str,
    pub time_ratio: Option<f64>,
    pub rss_ratio: Option<f64>,
    pub n: usize,
}

pub struct Summary {
    pub rows: Vec<Row>,
    pub geo: Vec<Geo>,
    /// Workloads with rows, in table order.
    pub workloads: Vec<&'static str>,
    /// Allocators, in table order.
    pub allocators: Vec<&'static str>,
    /// Workloads not run at all: (name, reason).
    pub skipped_workloads: Vec<(&'static str, String)>,
}

impl Summary {
    pub fn row(&self, workload: &str, allocator: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.workload == workload && r.allocator == allocator)
    }
}

fn row_of(p: &Pair) -> Row {
    let ok: Vec<_> = p
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Ok)
        .collect();
    let status = if let Some(s) = &p.skipped {
        RowStatus::Skipped(s.clone())
    } else if let Some(r) = p
        .runs
        .iter()
        .find(|r| matches!(r.status, RunStatus::Timeout(_)))
    {
        let RunStatus::Timeout(m) = &r.status else {
            unreachable!()
        };
        RowStatus::Timeout(format!("rep {}: {m}", r.rep))
    } else if let Some(r) = p
        .runs
        .iter()
        .find(|r| matches!(r.status, RunStatus::Failed(_)))
    {
        let RunStatus::Failed(m) = &r.status else {
            unreachable!()
        };
        RowStatus::Failed(format!("rep {}: {m}", r.rep))
    } else if let Some(m) = &p.mismatch {
        RowStatus::Mismatch(m.clone())
    } else if ok.is_empty() {
        RowStatus::Failed("no run".into())
    } else {
        RowStatus::Ok
    };
    let times: Vec<f64> = ok.iter().map(|r| r.wall_s).collect();
    let rss: Vec<f64> = ok
        .iter()
        .map(|r| r.rss_kib as f64)
        .filter(|x| *x > 0.0)
        .collect();
    let extra = p.workload.extra_metric.and_then(|name| {
        let vals: Vec<f64> = ok
            .iter()
            .filter_map(|r| r.metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v))
            .collect();
        spread(&vals).map(|s| (name, s.median))
    });
    Row {
        workload: p.workload.name,
        allocator: p.allocator,
        status,
        reps_ok: ok.len(),
        reps: p.runs.len(),
        time: spread(&times),
        rss: spread(&rss),
        time_ratio: None,
        rss_ratio: None,
        checksum: ok.first().and_then(|r| r.checksum.clone()),
        checksum_ok: if ok.is_empty() {
            None
        } else {
            Some(p.mismatch.is_none())
        },
        extra,
    }
}

/// Median over the repetitions where both ran of `value(run) / value(glibc's run of
/// the same repetition)`.
///
/// Why paired: this host has slow spells (a workload's time can double for a few
/// seconds and back), and a repetition runs all allocators back to back, so the two
/// runs of a pair share the host's state; the ratio of two medians compares runs from
/// different spells whenever one allocator's median falls in a slow run and the
/// other's in a fast one.
fn paired_ratio(p: &Pair, glibc: &Pair, value: impl Fn(&RunRecord) -> f64) -> Option<f64> {
    let ratios: Vec<f64> = p
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Ok)
        .filter_map(|r| {
            let g = glibc
                .runs
                .iter()
                .find(|g| g.rep == r.rep && g.status == RunStatus::Ok)?;
            let (x, y) = (value(r), value(g));
            (x > 0.0 && y > 0.0).then(|| x / y)
        })
        .collect();
    spread(&ratios).map(|s| s.median)
}

pub fn summarize(outcome: &Outcome, allocs: &[Allocator]) -> Summary {
    let mut rows: Vec<Row> = outcome.pairs.iter().map(row_of).collect();
    // ratios to glibc's runs of the same workload, when its row is ok
    for (i, p) in outcome.pairs.iter().enumerate() {
        if !matches!(rows[i].status, RowStatus::Ok | RowStatus::Mismatch(_)) {
            continue;
        }
        let glibc = outcome.pairs.iter().zip(&rows).find(|(g, row)| {
            g.workload.name == p.workload.name
                && g.allocator == "glibc"
                && row.status == RowStatus::Ok
        });
        if let Some((g, _)) = glibc {
            rows[i].time_ratio = paired_ratio(p, g, |r| r.wall_s);
            rows[i].rss_ratio = paired_ratio(p, g, |r| r.rss_kib as f64);
        }
    }
    let allocators: Vec<&'static str> = allocs.iter().map(|a| a.name).collect();
    let geo = allocators
        .iter()
        .map(|&a| {
            let ok: Vec<&Row> = rows
                .iter()
                .filter(|r| r.allocator == a && r.status == RowStatus::Ok)
                .collect();
            let t: Vec<f64> = ok.iter().filter_map(|r| r.time_ratio).collect();
            let m: Vec<f64> = ok.iter().filter_map(|r| r.rss_ratio).collect();
            Geo {
                allocator: a,
                time_ratio: geomean(&t),
                rss_ratio: geomean(&m),
                n: t.len(),
            }
        })
        .collect();
    let mut workloads: Vec<&'static str> = Vec::new();
    for r in &rows {
        if !workloads.contains(&r.workload) {
            workloads.push(r.workload);
        }
    }
    Summary {
        rows,
        geo,
        workloads,
        allocators,
        skipped_workloads: outcome.skipped_workloads.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quartiles() {
        let s = spread(&[3.0, 1.0, 2.0, 4.0, 5.0]).unwrap();
        assert_eq!(
            (s.median, s.min, s.max, s.q1, s.q3, s.n),
            (3.0, 1.0, 5.0, 2.0, 4.0, 5)
        );
        let s = spread(&[1.0, 2.0]).unwrap();
        assert_eq!(s.median, 1.5);
        assert!(spread(&[]).is_none());
    }

    fn run(rep: usize, wall_s: f64, ok: bool) -> RunRecord {
        let status = if ok {
            RunStatus::Ok
        } else {
            RunStatus::Failed("exit 1".into())
        };
        RunRecord {
            rep,
            status,
            wall_s,
            rss_kib: 1000,
            checksum: None,
            metrics: Vec::new(),
        }
    }

    fn pair(allocator: &'static str, runs: Vec<RunRecord>) -> Pair {
        Pair {
            workload: &super::super::workloads::ALL[0],
            allocator,
            runs,
            skipped: None,
            mismatch: None,
        }
    }

    #[test]
    fn ratios_pair_runs_of_the_same_repetition() {
        // glibc had a slow second repetition; the other allocator's median (1.5 s)
        // and glibc's (2 s) come from different host states, the pairs do not.
        let glibc = pair("glibc", vec![run(1, 1.0, true), run(2, 3.0, true), run(3, 2.0, true)]);
        let other = pair("x", vec![run(1, 0.6, true), run(2, 1.5, true), run(3, 3.0, true)]);
        assert_eq!(paired_ratio(&other, &glibc, |r| r.wall_s), Some(0.6));
        // A repetition where either failed does not count.
        let glibc = pair("glibc", vec![run(1, 1.0, true), run(2, 3.0, false), run(3, 2.0, true)]);
        let other = pair("x", vec![run(1, 0.5, true), run(2, 0.1, true), run(3, 1.0, false)]);
        assert_eq!(paired_ratio(&other, &glibc, |r| r.wall_s), Some(0.5));
        let none = pair("x", vec![run(2, 0.1, true)]);
        assert_eq!(paired_ratio(&none, &glibc, |r| r.wall_s), None);
    }

    #[test]
    fn geometric_mean() {
        let g = geomean(&[0.5, 2.0]).unwrap();
        assert!((g - 1.0).abs() < 1e-12);
        assert!(geomean(&[]).is_none());
    }
}
