//! Command-line options of `oxmalloc bench` (hand-parsed: no dependencies).

use std::path::PathBuf;

use super::{allocators, workloads};

pub const USAGE: &str = "\
usage: oxmalloc bench [--quick] [--out DIR] [--only A,B,..] [--with NAME=LIB ..]
                      [--workloads W,..] [--skip W,..] [--reps N] [--timeout SECS]
                      [--list]

Runs allocation workloads under glibc, oxmalloc (LD_PRELOAD of liboxmalloc.so next to
this executable, or $OXMALLOC_LIB) and the peer allocators installed (jemalloc,
mimalloc, tcmalloc), each workload as its own process, repetitions interleaved
allocator by allocator. Prints a table of median wall time, spread, peak RSS and
ratios to glibc, and writes results.csv, results.json, chart.svg, README-table.md
and table.txt into the output folder.

options:
  --quick           small scales and 3 repetitions (about a minute)
  --out DIR         output folder (default: bench-results/<timestamp>)
  --only A,B,..     allocators to run: glibc,oxmalloc,jemalloc,mimalloc,tcmalloc
  --with NAME=LIB   also run the preload library LIB (another build of oxmalloc, say)
                    as allocator NAME, interleaved with the others (repeatable;
                    NAME: letters, digits, '-' and '_', not a known allocator's)
  --workloads W,..  workloads to run (default: all; see --list)
  --skip W,..       workloads not to run
  --reps N          repetitions per (workload, allocator) (default 5, quick 3)
  --timeout SECS    upper bound of a run's timeout (default 120); a run is also
                    stopped after 10x glibc's time for the same workload (at least 10 s)
  --list            list the workloads and allocators, and exit
  -h, --help        this help

environment:
  OXMALLOC_LIB      liboxmalloc.so to preload (default: next to this executable, or
                    in deps/ beside it if newer, as `cargo test` leaves it)
  OXMALLOC_RLIB     liboxmalloc.rlib for the Rust workload (default: found the same
                    way; its dependencies are looked up in deps/)
  CC, RUSTC         compilers (default: cc, rustc)
";

#[derive(Debug, Default)]
pub struct Options {
    pub quick: bool,
    pub out: Option<PathBuf>,
    pub only: Option<Vec<String>>,
    /// Extra preload libraries to run (`--with NAME=LIB`), in the order given.
    pub with: Vec<(String, PathBuf)>,
    pub workloads: Option<Vec<String>>,
    pub skip: Vec<String>,
    pub reps: Option<usize>,
    pub timeout_cap: Option<f64>,
    pub list: bool,
}

pub enum Parsed {
    Run(Options),
    Help,
}

fn split_list(flag: &str, v: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if items.is_empty() {
        return Err(format!("{flag} needs a comma-separated list"));
    }
    Ok(items)
}

/// `NAME=LIB` of `--with`.
fn parse_with(v: &str) -> Result<(String, PathBuf), String> {
    let Some((name, lib)) = v.split_once('=') else {
        return Err(format!("--with needs NAME=LIB, not '{v}'"));
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!(
            "--with: '{name}' is not a usable name (letters, digits, '-' and '_')"
        ));
    }
    if allocators::NAMES.contains(&name) {
        return Err(format!(
            "--with: '{name}' is a known allocator's name; pick another"
        ));
    }
    if lib.is_empty() {
        return Err(format!("--with {name}= needs a library path"));
    }
    Ok((name.to_string(), PathBuf::from(lib)))
}

pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        // --flag=value or --flag value
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg, None),
        };
        let takes_value = matches!(
            flag,
            "--out" | "--only" | "--with" | "--workloads" | "--skip" | "--reps" | "--timeout"
        );
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => {
                    i += 1;
                    Some(
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| format!("{flag} needs a value"))?,
                    )
                }
            }
        } else {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            None
        };
        let value = value.unwrap_or_default();
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--quick" => o.quick = true,
            "--list" => o.list = true,
            "--out" => {
                if value.is_empty() {
                    return Err("--out needs a folder".into());
                }
                o.out = Some(PathBuf::from(value));
            }
            "--only" => {
                let names = split_list(flag, &value)?;
                for n in &names {
                    if !allocators::NAMES.contains(&n.as_str()) {
                        return Err(format!(
                            "unknown allocator '{n}' in --only (known: {})",
                            allocators::NAMES.join(",")
                        ));
                    }
                }
                o.only = Some(names);
            }
            "--with" => {
                let (name, lib) = parse_with(&value)?;
                if o.with.iter().any(|(n, _)| *n == name) {
                    return Err(format!("--with names '{name}' twice"));
                }
                o.with.push((name, lib));
            }
            "--workloads" | "--skip" => {
                let names = split_list(flag, &value)?;
                for n in &names {
                    if workloads::find(n).is_none() {
                        return Err(format!(
                            "unknown workload '{n}' in {flag} (known: {})",
                            workloads::names().join(",")
                        ));
                    }
                }
                if flag == "--skip" {
                    o.skip.extend(names);
                } else {
                    o.workloads = Some(names);
                }
            }
            "--reps" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("--reps needs a positive integer, not '{value}'"))?;
                if n == 0 || n > 1000 {
                    return Err("--reps must be between 1 and 1000".into());
                }
                o.reps = Some(n);
            }
            "--timeout" => {
                let s: f64 = value
                    .parse()
                    .map_err(|_| format!("--timeout needs seconds, not '{value}'"))?;
                if !(s.is_finite() && s > 0.0) {
                    return Err("--timeout must be a positive number of seconds".into());
                }
                o.timeout_cap = Some(s);
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
        i += 1;
    }
    Ok(Parsed::Run(o))
}

/// Text of `--list`.
pub fn listing() -> String {
    let mut s = String::from("workloads:\n");
    for w in workloads::ALL {
        s.push_str(&format!("  {:<16} {}\n", w.name, w.about));
    }
    s.push_str("allocators:\n");
    for a in allocators::NAMES {
        s.push_str(&format!("  {a}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags() {
        let Ok(Parsed::Run(o)) = parse(&args(&[
            "--quick",
            "--reps",
            "2",
            "--only=glibc,oxmalloc",
            "--out",
            "x",
            "--skip",
            "redis",
        ])) else {
            panic!("parse failed")
        };
        assert!(o.quick);
        assert_eq!(o.reps, Some(2));
        assert_eq!(
            o.only.as_deref(),
            Some(&["glibc".to_string(), "oxmalloc".to_string()][..])
        );
        assert_eq!(o.out, Some(PathBuf::from("x")));
        assert_eq!(o.skip, vec!["redis".to_string()]);
    }

    #[test]
    fn parses_with() {
        let Ok(Parsed::Run(o)) = parse(&args(&["--with", "branch=/tmp/a.so", "--with=old_2=b.so"]))
        else {
            panic!("parse failed")
        };
        assert_eq!(
            o.with,
            vec![
                ("branch".to_string(), PathBuf::from("/tmp/a.so")),
                ("old_2".to_string(), PathBuf::from("b.so")),
            ]
        );
        for bad in ["nolib", "=x.so", "a b=x.so", "tcmalloc=x.so", "x="] {
            assert!(parse(&args(&["--with", bad])).is_err(), "--with {bad}");
        }
        assert!(parse(&args(&["--with", "a=x.so", "--with", "a=y.so"])).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&args(&["--reps", "0"])).is_err());
        assert!(parse(&args(&["--only", "foo"])).is_err());
        assert!(parse(&args(&["--workloads", "nope"])).is_err());
        assert!(parse(&args(&["--out"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
        assert!(parse(&args(&["--quick=1"])).is_err());
    }
}
