//! The allocators under test: where their libraries are, whether they are installed,
//! and a probe run that checks the LD_PRELOAD really takes effect.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process;

/// Every allocator the suite knows, in table order.
pub const NAMES: [&str; 5] = ["glibc", "oxmalloc", "jemalloc", "mimalloc", "tcmalloc"];

/// Peers: (name, library file in the multiarch lib folder, Debian package).
const PEERS: [(&str, &str, &str); 3] = [
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    (
        "tcmalloc",
        "libtcmalloc_minimal.so.4",
        "libtcmalloc-minimal4",
    ),
];

#[derive(Debug, Clone)]
pub struct Allocator {
    pub name: &'static str,
    /// The library to LD_PRELOAD; None for glibc (no preload).
    pub preload: Option<PathBuf>,
    /// glibc's own libc.so.6 as the probe found it, for programs that link another
    /// malloc (redis links jemalloc: preloading libc.so.6 puts glibc's malloc first).
    pub libc_path: Option<PathBuf>,
}

impl Allocator {
    pub fn describe(&self) -> String {
        match &self.preload {
            Some(p) => format!("LD_PRELOAD={}", p.display()),
            None => "glibc malloc (no preload)".into(),
        }
    }

    /// The LD_PRELOAD value for a program that may link its own malloc.
    pub fn preload_forcing_glibc(&self) -> Option<&Path> {
        self.preload.as_deref().or(self.libc_path.as_deref())
    }
}

#[derive(Debug, Clone)]
pub struct Missing {
    pub name: &'static str,
    pub reason: String,
    /// How to get it (an apt-get line, a cargo command).
    pub hint: Option<String>,
}

/// The allocator names selected by `--only` (all of them by default), in table order.
pub fn select_names(only: Option<&[String]>) -> Result<Vec<&'static str>, String> {
    let names: Vec<&'static str> = NAMES
        .iter()
        .copied()
        .filter(|n| match only {
            None => true,
            Some(l) => l.iter().any(|x| x == n),
        })
        .collect();
    if names.is_empty() {
        return Err("--only selected no allocator".into());
    }
    Ok(names)
}

fn multiarch_lib_dir() -> PathBuf {
    PathBuf::from(format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH))
}

/// liboxmalloc.so: $OXMALLOC_LIB, else next to the running executable.
pub fn oxmalloc_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("OXMALLOC_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    beside_exe("liboxmalloc.so")
}

/// `<exe dir>/NAME` or `<exe dir>/deps/NAME`, whichever is newer: `cargo build` puts the
/// library next to the binary, `cargo test` leaves it in deps/ only, and a stale copy
/// from an older build must not win. `<exe dir>/NAME` when neither exists.
pub fn beside_exe(name: &str) -> PathBuf {
    let top = exe_dir().join(name);
    let deps = exe_dir().join("deps").join(name);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(&top), mtime(&deps)) {
        (Some(a), Some(b)) if b > a => deps,
        (None, Some(_)) => deps,
        _ => top,
    }
}

/// The folder of the running executable (target/<profile>/ under cargo).
pub fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Resolve the selected allocators. Missing peers are returned in the second list
/// (never fatal). A missing or unusable liboxmalloc.so is fatal only when `--only`
/// named it explicitly. Every preload is checked with `probe`.
pub fn discover(
    selected: &[&'static str],
    explicit: bool,
    probe: &Path,
) -> Result<(Vec<Allocator>, Vec<Missing>), String> {
    let mut found = Vec::new();
    let mut missing = Vec::new();

    // glibc first: the probe tells which libc.so.6 provides malloc.
    let libc_path = match probe_run(probe, None) {
        Ok(p) => Some(p),
        Err(e) => return Err(format!("the probe program fails without any preload: {e}")),
    };

    for &name in selected {
        let (path, hint) = match name {
            "glibc" => {
                found.push(Allocator { name, preload: None, libc_path: libc_path.clone() });
                continue;
            }
            "oxmalloc" => (
                oxmalloc_lib(),
                "build it with `cargo build --release` (it lands next to the oxmalloc binary), or point OXMALLOC_LIB at it"
                    .to_string(),
            ),
            _ => {
                let Some((_, file, pkg)) = PEERS.iter().find(|(n, _, _)| *n == name) else {
                    continue;
                };
                (multiarch_lib_dir().join(file), format!("install it with: apt-get install -y {pkg}"))
            }
        };
        if !path.is_file() {
            let reason = format!("{} not found", path.display());
            if name == "oxmalloc" && explicit {
                return Err(format!("--only names oxmalloc but {reason}; {hint}"));
            }
            missing.push(Missing {
                name,
                reason,
                hint: Some(hint),
            });
            continue;
        }
        let path = path.canonicalize().unwrap_or(path);
        match check_preload(probe, &path) {
            Ok(()) => found.push(Allocator {
                name,
                preload: Some(path),
                libc_path: libc_path.clone(),
            }),
            Err(reason) => {
                if name == "oxmalloc" && explicit {
                    return Err(reason);
                }
                missing.push(Missing {
                    name,
                    reason,
                    hint: None,
                });
            }
        }
    }
    Ok((found, missing))
}

/// Runs the probe under `LD_PRELOAD=path`: Ok if malloc then comes from `path`, else
/// why not.
fn check_preload(probe: &Path, path: &Path) -> Result<(), String> {
    match probe_run(probe, Some(path)) {
        Ok(from) if same_file(&from, path) => Ok(()),
        Ok(from) => Err(format!(
            "LD_PRELOAD={} does not take effect (malloc still comes from {})",
            path.display(),
            from.display()
        )),
        Err(e) => Err(format!("a trivial program fails under LD_PRELOAD={}: {e}", path.display())),
    }
}

/// The libraries of `--with NAME=LIB`, after the standard allocators. Each must exist
/// and take effect under LD_PRELOAD (checked with `probe`): it was asked for by name,
/// so any problem is fatal.
pub fn discover_extra(extra: &[(String, PathBuf)], probe: &Path) -> Result<Vec<Allocator>, String> {
    let mut found = Vec::new();
    for (name, lib) in extra {
        if !lib.is_file() {
            return Err(format!("--with {name}: {} not found", lib.display()));
        }
        let path = lib.canonicalize().unwrap_or_else(|_| lib.clone());
        check_preload(probe, &path).map_err(|reason| format!("--with {name}: {reason}"))?;
        // Allocator names are `&'static str` everywhere in the suite; these few
        // bytes live as long as the run anyway.
        let name: &'static str = Box::leak(name.clone().into_boxed_str());
        // (No libc_path: it serves only allocators without a preload.)
        found.push(Allocator { name, preload: Some(path), libc_path: None });
    }
    Ok(found)
}

fn same_file(a: &Path, b: &Path) -> bool {
    let ca = a.canonicalize().unwrap_or_else(|_| a.to_path_buf());
    let cb = b.canonicalize().unwrap_or_else(|_| b.to_path_buf());
    ca == cb
}

/// Run the probe (with `preload`, or none) and return the file providing `malloc`.
fn probe_run(probe: &Path, preload: Option<&Path>) -> Result<PathBuf, String> {
    let mut cmd = Command::new(probe);
    match preload {
        Some(p) => cmd.env("LD_PRELOAD", p),
        None => cmd.env_remove("LD_PRELOAD"),
    };
    let exit = process::run(cmd, Duration::from_secs(20))?;
    if !exit.success() {
        return Err(format!(
            "{}{}",
            exit.describe_failure(),
            process::stderr_excerpt(&exit.stderr)
        ));
    }
    if exit.stderr.contains("cannot be preloaded") {
        return Err(exit.stderr.trim().to_string());
    }
    process::parse_kv(&exit.stdout)
        .into_iter()
        .find(|(k, _)| k == "malloc_from")
        .map(|(_, v)| PathBuf::from(v))
        .ok_or_else(|| "the probe printed no malloc_from= line".to_string())
}
