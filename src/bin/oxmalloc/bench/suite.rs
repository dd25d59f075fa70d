//! The measurement loop.
//!
//! For each workload, repetitions are rep-major and allocators interleaved within a
//! repetition (glibc, oxmalloc, jemalloc, ..., glibc, oxmalloc, ...), so that a drift
//! of the machine (thermal, other load) hits every allocator alike. glibc runs first in
//! each repetition: its time sets the timeout of the others (10x glibc's slowest run so
//! far, at least 10 s, at most the cap: 120 s by default). A pair (workload, allocator)
//! whose run fails or times out is not run again. After all repetitions, every
//! checksum is compared with glibc's (or, without glibc, with the first allocator's).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::allocators::Allocator;
use super::compile::Built;
use super::process::{self, Exit, Status};
use super::progress::Progress;
use super::redis;
use super::workloads::{Kind, Workload};

pub struct Config {
    pub reps: usize,
    pub quick: bool,
    pub timeout_cap: f64,
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    Ok,
    Failed(String),
    Timeout(String),
}

/// One run of one workload under one allocator.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub rep: usize,
    pub status: RunStatus,
    pub wall_s: f64,
    pub rss_kib: u64,
    pub checksum: Option<String>,
    /// Numeric `key=value` lines the workload printed (ops, max_rss_over_live, ...).
    pub metrics: Vec<(String, f64)>,
}

impl RunRecord {
    pub fn failed(rep: usize, status: RunStatus) -> RunRecord {
        RunRecord {
            rep,
            status,
            wall_s: 0.0,
            rss_kib: 0,
            checksum: None,
            metrics: Vec::new(),
        }
    }

    /// A finished workload process: Ok only with exit code 0 and a checksum line.
    pub fn from_exit(rep: usize, exit: &Exit) -> RunRecord {
        let kv = process::parse_kv(&exit.stdout);
        let checksum = kv
            .iter()
            .find(|(k, _)| k == "checksum")
            .map(|(_, v)| v.clone());
        let metrics: Vec<(String, f64)> = kv
            .iter()
            .filter(|(k, _)| k != "checksum")
            .filter_map(|(k, v)| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(|x| (k.clone(), x))
            })
            .collect();
        let status = if exit.status == Status::Timeout {
            RunStatus::Timeout(exit.describe_failure())
        } else if !exit.success() {
            RunStatus::Failed(format!(
                "{}{}",
                exit.describe_failure(),
                process::stderr_excerpt(&exit.stderr)
            ))
        } else if exit.stderr.contains("cannot be preloaded") {
            RunStatus::Failed(format!(
                "the preload was ignored{}",
                process::stderr_excerpt(&exit.stderr)
            ))
        } else if checksum.is_none() {
            RunStatus::Failed(format!(
                "no checksum= line in the output{}",
                process::stderr_excerpt(&exit.stderr)
            ))
        } else {
            RunStatus::Ok
        };
        RunRecord {
            rep,
            status,
            wall_s: exit.wall.as_secs_f64(),
            rss_kib: exit.maxrss_kib,
            checksum,
            metrics,
        }
    }
}

/// All the runs of one (workload, allocator).
#[derive(Debug)]
pub struct Pair {
    pub workload: &'static Workload,
    pub allocator: &'static str,
    pub runs: Vec<RunRecord>,
    /// Not run at all, and why (e.g. the Rust build for that allocator failed).
    pub skipped: Option<String>,
    /// Checksum disagreement, if any.
    pub mismatch: Option<String>,
}

impl Pair {
    fn broken(&self) -> bool {
        self.runs.iter().any(|r| r.status != RunStatus::Ok)
    }
}

pub struct Outcome {
    pub pairs: Vec<Pair>,
    /// Workloads that could not run at all: (name, reason).
    pub skipped_workloads: Vec<(&'static str, String)>,
    pub notes: Vec<String>,
    /// ru_maxrss of `/bin/true` spawned by the driver: the floor of every RSS figure.
    pub rss_floor_kib: u64,
}

/// How to run one (workload, allocator).
enum How {
    Exe {
        exe: PathBuf,
        pre_args: Vec<String>,
        env: Vec<(String, String)>,
        preload: Option<PathBuf>,
    },
    Redis {
        tools: redis::Tools,
        alloc: Allocator,
    },
    Skip(String),
}

struct Plan {
    workload: &'static Workload,
    entries: Vec<(&'static str, How)>,
}

/// The real python3 executable (sys.executable): a pyenv shim is a bash script, which
/// would run, preloaded, before Python itself.
fn python_exe() -> Result<PathBuf, String> {
    let python = process::which("python3")
        .ok_or("python3 not found in PATH (apt-get install -y python3)")?;
    let out = Command::new(&python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || exe.is_empty() {
        return Err(format!("{} does not run", python.display()));
    }
    Ok(PathBuf::from(exe))
}

fn plan(
    workloads: &[&'static Workload],
    allocs: &[Allocator],
    built: &Built,
    outcome: &mut Outcome,
) -> Vec<Plan> {
    let python = if workloads.iter().any(|w| w.kind == Kind::Python) {
        Some(python_exe())
    } else {
        None
    };
    let redis_tools = if workloads.iter().any(|w| w.kind == Kind::Redis) {
        Some(redis::Tools::find())
    } else {
        None
    };
    let mut plans = Vec::new();
    for &w in workloads {
        let entries: Vec<(&'static str, How)> = match w.kind {
            Kind::C { program } => match built.programs.get(program) {
                Some(Ok(exe)) => allocs
                    .iter()
                    .map(|a| {
                        let how = How::Exe {
                            exe: exe.clone(),
                            pre_args: Vec::new(),
                            env: Vec::new(),
                            preload: a.preload.clone(),
                        };
                        (a.name, how)
                    })
                    .collect(),
                Some(Err(e)) => {
                    outcome.skipped_workloads.push((w.name, e.clone()));
                    continue;
                }
                None => {
                    outcome
                        .skipped_workloads
                        .push((w.name, format!("program {program} was not built")));
                    continue;
                }
            },
            Kind::Python => match python.as_ref() {
                Some(Ok(py)) => allocs
                    .iter()
                    .map(|a| {
                        let how = How::Exe {
                            exe: py.clone(),
                            pre_args: vec!["-S".into(), built.python_script.display().to_string()],
                            env: vec![
                                ("PYTHONMALLOC".into(), "malloc".into()),
                                ("PYTHONHASHSEED".into(), "0".into()),
                                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                            ],
                            preload: a.preload.clone(),
                        };
                        (a.name, how)
                    })
                    .collect(),
                Some(Err(e)) => {
                    outcome.skipped_workloads.push((w.name, e.clone()));
                    continue;
                }
                None => continue,
            },
            Kind::Redis => match redis_tools.as_ref() {
                Some(Ok(t)) => allocs
                    .iter()
                    .map(|a| {
                        (
                            a.name,
                            How::Redis {
                                tools: t.clone(),
                                alloc: a.clone(),
                            },
                        )
                    })
                    .collect(),
                Some(Err(e)) => {
                    outcome.skipped_workloads.push((w.name, e.clone()));
                    continue;
                }
                None => continue,
            },
            Kind::Rust => allocs
                .iter()
                .filter_map(|a| {
                    let r = built.rust.get(a.name)?;
                    let how = match r {
                        Ok(exe) => How::Exe {
                            exe: exe.clone(),
                            pre_args: Vec::new(),
                            env: Vec::new(),
                            preload: None,
                        },
                        Err(e) => How::Skip(e.clone()),
                    };
                    Some((a.name, how))
                })
                .collect(),
        };
        if entries.is_empty() {
            outcome
                .skipped_workloads
                .push((w.name, "no allocator applies".into()));
            continue;
        }
        plans.push(Plan {
            workload: w,
            entries,
        });
    }
    plans
}

fn run_exe(cfg: &Config, w: &Workload, how: &How, rep: usize, timeout: Duration) -> RunRecord {
    match how {
        How::Exe {
            exe,
            pre_args,
            env,
            preload,
        } => {
            let mut cmd = Command::new(exe);
            cmd.args(pre_args)
                .arg(w.scale(cfg.quick).to_string())
                .args(w.args)
                .current_dir(&cfg.out);
            for (k, v) in env {
                cmd.env(k, v);
            }
            match preload {
                Some(p) => cmd.env("LD_PRELOAD", p),
                None => cmd.env_remove("LD_PRELOAD"),
            };
            match process::run(cmd, timeout) {
                Ok(exit) => RunRecord::from_exit(rep, &exit),
                Err(e) => RunRecord::failed(rep, RunStatus::Failed(e)),
            }
        }
        How::Redis { tools, alloc } => redis::run_once(
            tools,
            alloc,
            5_000 * w.scale(cfg.quick),
            rep,
            timeout,
            &cfg.out,
        ),
        How::Skip(e) => RunRecord::failed(rep, RunStatus::Failed(e.clone())),
    }
}

/// Timeout of a run: 10x the slowest glibc run of this workload so far, at least
/// 10 s, at most the cap; the cap itself for glibc or when glibc has no time yet.
fn timeout_for(cfg: &Config, allocator: &str, glibc: Option<&Pair>) -> Duration {
    let cap = cfg.timeout_cap;
    if allocator == "glibc" {
        return Duration::from_secs_f64(cap);
    }
    let reference = glibc
        .map(|p| {
            p.runs
                .iter()
                .filter(|r| r.status == RunStatus::Ok)
                .map(|r| r.wall_s)
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0);
    let secs = if reference > 0.0 {
        (10.0 * reference).clamp(10.0_f64.min(cap), cap)
    } else {
        cap
    };
    Duration::from_secs_f64(secs)
}

/// Compare checksums with the reference (glibc's, else the first allocator's).
fn check_checksums(pairs: &mut [Pair]) {
    let reference = pairs
        .iter()
        .find(|p| p.allocator == "glibc")
        .into_iter()
        .chain(pairs.iter())
        .find_map(|p| {
            p.runs
                .iter()
                .find(|r| r.status == RunStatus::Ok)
                .and_then(|r| r.checksum.clone())
                .map(|c| (p.allocator, c))
        });
    let Some((ref_alloc, ref_sum)) = reference else {
        return;
    };
    for p in pairs.iter_mut() {
        let bad: Vec<&RunRecord> = p
            .runs
            .iter()
            .filter(|r| {
                r.status == RunStatus::Ok && r.checksum.as_deref() != Some(ref_sum.as_str())
            })
            .collect();
        if let Some(r) = bad.first() {
            p.mismatch = Some(format!(
                "checksum {} in rep {} differs from {ref_alloc}'s {ref_sum}",
                r.checksum.as_deref().unwrap_or("?"),
                r.rep
            ));
        }
    }
}

fn one_line(pairs: &[Pair]) -> String {
    let glibc = pairs
        .iter()
        .find(|p| p.allocator == "glibc" && !p.broken() && p.mismatch.is_none())
        .and_then(median_wall);
    let parts: Vec<String> = pairs
        .iter()
        .map(|p| {
            if let Some(s) = &p.skipped {
                return format!("{} skipped ({s})", p.allocator);
            }
            if let Some(r) = p.runs.iter().find(|r| r.status != RunStatus::Ok) {
                return match &r.status {
                    RunStatus::Timeout(_) => format!("{} TIMEOUT", p.allocator),
                    _ => format!("{} FAILED", p.allocator),
                };
            }
            if p.mismatch.is_some() {
                return format!("{} MISMATCH", p.allocator);
            }
            match (median_wall(p), glibc) {
                (Some(t), Some(g)) if p.allocator != "glibc" => {
                    format!("{} {t:.3}s ({:.2}x)", p.allocator, t / g)
                }
                (Some(t), _) => format!("{} {t:.3}s", p.allocator),
                _ => format!("{} -", p.allocator),
            }
        })
        .collect();
    parts.join(" | ")
}

fn median_wall(p: &Pair) -> Option<f64> {
    let mut v: Vec<f64> = p
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Ok)
        .map(|r| r.wall_s)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// ru_maxrss of a trivial program spawned the way workloads are.
fn rss_floor(cfg: &Config) -> u64 {
    let Some(t) = process::which("true") else {
        return 0;
    };
    let mut cmd = Command::new(t);
    cmd.env_remove("LD_PRELOAD").current_dir(&cfg.out);
    process::run(cmd, Duration::from_secs(10))
        .map(|e| e.maxrss_kib)
        .unwrap_or(0)
}

pub fn run(
    cfg: &Config,
    workloads: &[&'static Workload],
    allocs: &[Allocator],
    built: &Built,
) -> Outcome {
    let mut outcome = Outcome {
        pairs: Vec::new(),
        skipped_workloads: Vec::new(),
        notes: built.notes.clone(),
        rss_floor_kib: 0,
    };
    let plans = plan(workloads, allocs, built, &mut outcome);
    let total: usize = plans
        .iter()
        .map(|p| {
            p.entries
                .iter()
                .filter(|(_, h)| !matches!(h, How::Skip(_)))
                .count()
                * cfg.reps
        })
        .sum();
    let mut progress = Progress::new(total);
    for (name, why) in &outcome.skipped_workloads {
        progress.note(&format!("oxmalloc bench: skipping workload {name}: {why}"));
    }
    outcome.rss_floor_kib = rss_floor(cfg);

    for plan in &plans {
        let w = plan.workload;
        let mut pairs: Vec<Pair> = plan
            .entries
            .iter()
            .map(|(a, how)| Pair {
                workload: w,
                allocator: a,
                runs: Vec::new(),
                skipped: match how {
                    How::Skip(e) => Some(e.clone()),
                    _ => None,
                },
                mismatch: None,
            })
            .collect();
        for rep in 1..=cfg.reps {
            // Each repetition runs every allocator once, back to back, starting one
            // further along each time: no allocator always runs right after the same
            // one, or first after a workload's build.
            let n = plan.entries.len();
            for k in 0..n {
                let i = (k + rep - 1) % n;
                let (alloc, how) = &plan.entries[i];
                if pairs[i].skipped.is_some() {
                    continue;
                }
                if pairs[i].broken() {
                    progress.skip();
                    continue;
                }
                progress.start(w.name, alloc, rep, cfg.reps);
                let timeout =
                    timeout_for(cfg, alloc, pairs.iter().find(|p| p.allocator == "glibc"));
                let rec = run_exe(cfg, w, how, rep, timeout);
                if let RunStatus::Failed(e) | RunStatus::Timeout(e) = &rec.status {
                    progress.note(&format!(
                        "oxmalloc bench: {} under {alloc}, rep {rep}: {e}",
                        w.name
                    ));
                }
                pairs[i].runs.push(rec);
            }
        }
        check_checksums(&mut pairs);
        for p in &pairs {
            if let Some(m) = &p.mismatch {
                progress.note(&format!(
                    "oxmalloc bench: {} under {}: CHECKSUM MISMATCH: {m}",
                    w.name, p.allocator
                ));
            }
        }
        progress.note(&format!("{:<16} {}", w.name, one_line(&pairs)));
        outcome.pairs.extend(pairs);
    }
    progress.finish();
    outcome
}
