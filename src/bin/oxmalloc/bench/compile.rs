//! Writing the embedded workload sources into `<out>/src/` and compiling them into
//! `<out>/bin/`: the C programs with `cc -O2 -pthread`, the Rust program with `rustc`
//! once per Rust global allocator. Compilations run in parallel.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use super::allocators;
use super::workloads::{self, Kind, Workload};

pub struct Toolchain {
    cc: String,
    rustc: String,
}

impl Toolchain {
    /// `cc` (or $CC) must work; `rustc` (or $RUSTC) is checked when needed.
    pub fn find() -> Result<Toolchain, String> {
        let cc = std::env::var("CC")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "cc".into());
        match Command::new(&cc).arg("--version").output() {
            Ok(o) if o.status.success() => {}
            Ok(_) | Err(_) => {
                return Err(format!(
                "C compiler `{cc}` not found or not working: it is needed to build the workloads \
                     (install one with: apt-get install -y gcc)"
            ))
            }
        }
        let rustc = std::env::var("RUSTC")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "rustc".into());
        Ok(Toolchain { cc, rustc })
    }
}

/// The result of the build step.
pub struct Built {
    /// The preload probe (see `allocators`).
    pub probe: PathBuf,
    /// C program name -> binary, or why it failed to build.
    pub programs: BTreeMap<&'static str, Result<PathBuf, String>>,
    /// Rust allocator variant (glibc/oxmalloc/mimalloc) -> binary, or why not.
    pub rust: BTreeMap<&'static str, Result<PathBuf, String>>,
    /// The Python script written out.
    pub python_script: PathBuf,
    /// Notes for the report.
    pub notes: Vec<String>,
}

fn write_source(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let p = dir.join(name);
    fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(p)
}

/// Compile with `cmd`; on failure keep the compiler's output in `<bin>.log`.
fn compile(mut cmd: Command, bin: &Path) -> Result<PathBuf, String> {
    let log = bin.with_extension("log");
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(bin.to_path_buf()),
        Ok(o) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            let _ = fs::write(&log, &text);
            let first = text
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or_else(|| text.lines().next().unwrap_or(""))
                .trim()
                .to_string();
            Err(format!(
                "build failed ({first}); full log in {}",
                log.display()
            ))
        }
        Err(e) => Err(format!(
            "cannot run {}: {e}",
            cmd.get_program().to_string_lossy()
        )),
    }
}

pub fn build_all(
    tc: &Toolchain,
    out: &Path,
    selected: &[&'static Workload],
    allocs: &[&'static str],
    needs_rust: bool,
) -> Result<Built, String> {
    let src = out.join("src");
    let bin = out.join("bin");
    for d in [&src, &bin] {
        fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    for (name, text) in workloads::C_SOURCES {
        write_source(&src, name, text)?;
    }
    let python_script = write_source(&src, workloads::PYTHON_SCRIPT.0, workloads::PYTHON_SCRIPT.1)?;
    let rust_src = write_source(&src, workloads::RUST_SOURCE.0, workloads::RUST_SOURCE.1)?;

    // Which C programs: the probe, and those of the selected workloads.
    let mut programs: Vec<&'static str> = vec!["probe"];
    for w in selected {
        if let Kind::C { program } = w.kind {
            if !programs.contains(&program) {
                programs.push(program);
            }
        }
    }

    let rust_job = if needs_rust {
        let rustc = tc.rustc.clone();
        let (rust_src, bin) = (rust_src.clone(), bin.clone());
        let allocs = allocs.to_vec();
        Some(thread::spawn(move || {
            build_rust(&rustc, &rust_src, &bin, &allocs)
        }))
    } else {
        None
    };

    let c_jobs: Vec<_> = programs
        .iter()
        .map(|&p| {
            let mut cmd = Command::new(&tc.cc);
            let exe = bin.join(p);
            cmd.args(["-O2", "-pthread", "-o"])
                .arg(&exe)
                .arg(src.join(format!("{p}.c")));
            if p == "probe" {
                cmd.arg("-ldl");
            }
            (p, thread::spawn(move || compile(cmd, &exe)))
        })
        .collect();

    let mut built = BTreeMap::new();
    for (p, job) in c_jobs {
        let r = job
            .join()
            .unwrap_or_else(|_| Err("compiler thread panicked".into()));
        built.insert(p, r);
    }
    let probe = match built.remove("probe") {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(format!("cannot build the probe program: {e}")),
        None => return Err("internal: no probe".into()),
    };
    let (rust, notes) = match rust_job {
        Some(j) => j
            .join()
            .unwrap_or_else(|_| (BTreeMap::new(), vec!["rust build thread panicked".into()])),
        None => (BTreeMap::new(), Vec::new()),
    };
    Ok(Built {
        probe,
        programs: built,
        rust,
        python_script,
        notes,
    })
}

/// liboxmalloc.rlib for the Rust workload: $OXMALLOC_RLIB, else next to the executable.
fn oxmalloc_rlib() -> PathBuf {
    match std::env::var_os("OXMALLOC_RLIB").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => allocators::beside_exe("liboxmalloc.rlib"),
    }
}

fn rustc_cmd(rustc: &str, src: &Path, exe: &Path, panic: &str) -> Command {
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition",
        "2021",
        "-C",
        "opt-level=3",
        "-C",
        "codegen-units=1",
        "-C",
    ])
    .arg(format!("panic={panic}"))
    .args(["--crate-name", "collections", "-o"])
    .arg(exe)
    .arg(src);
    cmd
}

/// Build `collections.rs` once per Rust allocator variant among `allocs`.
///
/// The oxmalloc variant links liboxmalloc.rlib, so it must use the same panic
/// strategy as the rlib was built with (the release profile says abort; a test build
/// may be unwind): abort is tried first, then unwind, and the other variants then use
/// the same strategy so that the comparison is fair.
fn build_rust(
    rustc: &str,
    src: &Path,
    bin: &Path,
    allocs: &[&'static str],
) -> (BTreeMap<&'static str, Result<PathBuf, String>>, Vec<String>) {
    let mut res = BTreeMap::new();
    let mut notes = Vec::new();
    let mut panic = "abort";

    if allocs.contains(&"oxmalloc") {
        let rlib = oxmalloc_rlib();
        let r = if !rlib.is_file() {
            Err(format!(
                "{} not found (build it with `cargo build --release`, or set OXMALLOC_RLIB)",
                rlib.display()
            ))
        } else {
            // the rlib's dependencies (libc): deps/ beside it, or the folder itself
            let dir = rlib.parent().map(Path::to_path_buf).unwrap_or_default();
            let deps = if dir.ends_with("deps") {
                dir
            } else {
                dir.join("deps")
            };
            let exe = bin.join("collections-oxmalloc");
            let mk = |panic: &str| {
                let mut cmd = rustc_cmd(rustc, src, &exe, panic);
                cmd.args(["--cfg", "use_oxmalloc", "--extern"])
                    .arg(format!("oxmalloc={}", rlib.display()))
                    .arg("-L")
                    .arg(format!("dependency={}", deps.display()));
                cmd
            };
            match compile(mk("abort"), &exe) {
                Ok(p) => Ok(p),
                Err(e) => {
                    let log = fs::read_to_string(exe.with_extension("log")).unwrap_or_default();
                    if log.contains("panic strategy") {
                        panic = "unwind";
                        compile(mk("unwind"), &exe)
                    } else {
                        Err(e)
                    }
                }
            }
        };
        res.insert("oxmalloc", r);
    }

    let mut jobs = Vec::new();
    if allocs.contains(&"glibc") {
        let exe = bin.join("collections-system");
        let cmd = rustc_cmd(rustc, src, &exe, panic);
        jobs.push(("glibc", thread::spawn(move || compile(cmd, &exe))));
    }
    if allocs.contains(&"mimalloc") {
        let lib = PathBuf::from(format!(
            "/usr/lib/{}-linux-gnu/libmimalloc.so.2",
            std::env::consts::ARCH
        ));
        if lib.is_file() {
            let exe = bin.join("collections-mimalloc");
            let mut cmd = rustc_cmd(rustc, src, &exe, panic);
            cmd.args(["--cfg", "use_mimalloc", "-C"])
                .arg(format!("link-arg={}", lib.display()));
            jobs.push(("mimalloc", thread::spawn(move || compile(cmd, &exe))));
            notes.push(
                "rust-collections/mimalloc: mimalloc's C API from the system libmimalloc.so.2 as \
                 #[global_allocator] (the mimalloc crate is not available offline and would be a new dependency)"
                    .into(),
            );
        } else {
            res.insert(
                "mimalloc",
                Err(format!(
                    "{} not found (apt-get install -y libmimalloc2.0)",
                    lib.display()
                )),
            );
        }
    }
    for (name, j) in jobs {
        res.insert(
            name,
            j.join()
                .unwrap_or_else(|_| Err("rustc thread panicked".into())),
        );
    }
    if panic == "unwind" {
        notes.push("rust-collections: built with panic=unwind, as liboxmalloc.rlib was".into());
    }
    (res, notes)
}
