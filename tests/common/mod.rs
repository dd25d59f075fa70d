//! Shared helpers of oxmalloc's integration tests.
//!
//! - [`lib_path`]: the `liboxmalloc.so` under test (`<target>/release/liboxmalloc.so`, or
//!   the env `OXMALLOC_LIB`, which also lets the C programs be validated against another
//!   allocator, e.g. `OXMALLOC_LIB=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`).
//! - [`compile_c`]: builds `tests/c/<name>.c` with `cc -O2 -g -Wall -pthread` into
//!   `<target>/oxmalloc-tests/bin/`, cached by a hash of source + flags; parallel test
//!   threads (and processes) never clash: each compiles to a unique temp name and renames.
//! - [`run`]: runs a command with or without `LD_PRELOAD`, with a hard timeout (the whole
//!   process group is SIGKILLed, so a hang fails the test instead of hanging CI), and
//!   returns its stdout, stderr, status and peak RSS (from `wait4`).
//! - [`proc_status_kib`] / [`self_rss_kib`]: `VmRSS` / `VmHWM` readers.
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsStr;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `<target>/release` (the directory holding the test binary's `deps/`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/release/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()))
        .to_path_buf()
}

/// `<target>` (parent of the profile dir).
pub fn target_dir() -> PathBuf {
    profile_dir().parent().expect("target dir").to_path_buf()
}

/// The repository root (where Cargo.toml is).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared library under test: `$OXMALLOC_LIB`, else `<target>/release/liboxmalloc.so`.
///
/// `cargo test --release` alone compiles the cdylib but leaves it in
/// `<target>/release/deps/liboxmalloc.so` (only `cargo build` copies it up one level), so
/// when both exist the newer one is taken: a stale top-level copy from an older
/// `cargo build --release` must not be tested instead of the library just built.
pub fn lib_path() -> PathBuf {
    if let Some(v) = std::env::var_os("OXMALLOC_LIB").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if !p.is_file() {
            panic!("OXMALLOC_LIB={} does not exist", p.display());
        }
        return fs::canonicalize(&p).unwrap_or(p);
    }
    let top = profile_dir().join("liboxmalloc.so");
    let deps = profile_dir().join("deps").join("liboxmalloc.so");
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let p = match (mtime(&top), mtime(&deps)) {
        (Some(a), Some(b)) => {
            if b > a {
                deps
            } else {
                top
            }
        }
        (Some(_), None) => top,
        (None, Some(_)) => deps,
        (None, None) => panic!(
            "allocator library {} does not exist (nor {}): build it with `cargo build --release` \
             (or point OXMALLOC_LIB at a .so)",
            top.display(),
            deps.display()
        ),
    };
    fs::canonicalize(&p).unwrap_or(p)
}

/// True when `OXMALLOC_LIB` points at something else than liboxmalloc.so (validation runs
/// against glibc/jemalloc): oxmalloc-specific assertions are then skipped by the callers.
pub fn testing_foreign_lib() -> bool {
    !lib_path()
        .file_name()
        .map(|n| n.to_string_lossy().starts_with("liboxmalloc.so"))
        .unwrap_or(false)
}

/// Scratch root: `<target>/oxmalloc-tests`.
pub fn scratch_root() -> PathBuf {
    let d = target_dir().join("oxmalloc-tests");
    fs::create_dir_all(&d).expect("create <target>/oxmalloc-tests");
    d
}

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh private directory `<target>/oxmalloc-tests/tmp/<tag>-<pid>-<n>`; removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let d = scratch_root().join("tmp").join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Keep the directory of a failing test for post-mortem.
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn have_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Is `name` an executable found in PATH?
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if let Ok(md) = fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Some(p);
            }
        }
    }
    None
}

/// Compiles `tests/c/<name>.c` (with `cc -O2 -g -Wall -pthread <extra>`), or
/// `tests/c/<name>.cpp` (with `c++ ... -std=c++17`), and returns the executable's path.
/// Cached by a hash of the source text and the flags.
pub fn compile_c(name: &str, extra: &[&str]) -> PathBuf {
    let dir = repo_dir().join("tests").join("c");
    let cxx = !dir.join(format!("{name}.c")).is_file() && dir.join(format!("{name}.cpp")).is_file();
    let src = dir.join(format!("{name}.{}", if cxx { "cpp" } else { "c" }));
    let text = fs::read(&src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    let (var, default) = if cxx { ("CXX", "c++") } else { ("CC", "cc") };
    let cc = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let mut flags: Vec<String> = ["-O2", "-g", "-Wall", "-pthread"].iter().map(|s| s.to_string()).collect();
    if cxx {
        flags.push("-std=c++17".to_string());
    }
    let mut libs: Vec<String> = Vec::new();
    for e in extra {
        if e.starts_with("-l") {
            libs.push(e.to_string());
        } else {
            flags.push(e.to_string());
        }
    }
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    // The headers beside the programs (check.h) are part of every program's source.
    let mut headers: Vec<PathBuf> = fs::read_dir(src.parent().unwrap())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "h")).collect())
        .unwrap_or_default();
    headers.sort();
    for header in &headers {
        fs::read(header).unwrap_or_default().hash(&mut h);
    }
    cc.hash(&mut h);
    flags.hash(&mut h);
    libs.hash(&mut h);
    let bin_dir = scratch_root().join("bin");
    fs::create_dir_all(&bin_dir).unwrap();
    let out = bin_dir.join(format!("{name}-{:016x}", h.finish()));
    if out.is_file() {
        return out;
    }
    if which(&cc).is_none() && !have_program(&cc) {
        panic!("compiler `{cc}` not found: the integration tests need gcc and g++ (scripts/install-deps.sh)");
    }
    let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
    let tmp = bin_dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let res = Command::new(&cc)
        .args(&flags)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .args(&libs)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run compiler `{cc}`: {e} (the tests need gcc and g++: scripts/install-deps.sh)"));
    if !res.status.success() {
        let _ = fs::remove_file(&tmp);
        panic!(
            "compiling {} failed ({}):\n{}{}",
            src.display(),
            res.status,
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
    }
    let warnings = String::from_utf8_lossy(&res.stderr);
    if !warnings.trim().is_empty() {
        eprintln!("[compile {name}] warnings:\n{warnings}");
    }
    fs::rename(&tmp, &out).expect("rename compiled binary into place");
    out
}

/// Which allocator a child runs with.
#[derive(Clone, Debug)]
pub enum Preload {
    /// No LD_PRELOAD: the system's glibc malloc.
    None,
    /// LD_PRELOAD=[`lib_path`]().
    Oxmalloc,
    /// LD_PRELOAD=this file.
    Lib(PathBuf),
}

impl Preload {
    pub fn label(&self) -> String {
        match self {
            Preload::None => "glibc (no preload)".into(),
            Preload::Oxmalloc => format!("LD_PRELOAD={}", lib_path().display()),
            Preload::Lib(p) => format!("LD_PRELOAD={}", p.display()),
        }
    }
}

/// Result of [`run`].
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    /// ru_maxrss of wait4, KiB. Only an upper bound: Linux carries the parent's RSS at
    /// spawn time into the child's ru_maxrss. For real bounds let the child read its own
    /// VmHWM from /proc/self/status.
    pub max_rss_kib: u64,
    pub elapsed: Duration,
    pub what: String,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.success()
    }
    /// A readable description (status, tail of stdout and stderr) for assertion messages.
    pub fn describe(&self) -> String {
        fn tail(b: &[u8]) -> String {
            let s = String::from_utf8_lossy(b);
            let lines: Vec<&str> = s.lines().collect();
            let start = lines.len().saturating_sub(200);
            let mut t = lines[start..].join("\n");
            if start > 0 {
                t = format!("[... {start} lines cut ...]\n{t}");
            }
            t
        }
        let status = if self.timed_out {
            "TIMED OUT (killed)".to_string()
        } else if let Some(sig) = self.status.signal() {
            format!("killed by signal {sig}{}", if self.status.core_dumped() { " (core dumped)" } else { "" })
        } else {
            format!("exit code {:?}", self.status.code())
        };
        format!(
            "{}: {status} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.elapsed.as_secs_f64(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
    /// Panics with the description unless the child exited 0 in time.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed\n{}", self.describe());
        self
    }
}

/// Runs `cmd` with the given allocator and a hard timeout. stdin is /dev/null unless
/// `stdin` is given (then it is fed from that file). The child runs in its own process
/// group; on timeout the whole group is SIGKILLed.
pub fn run_with_stdin(mut cmd: Command, preload: &Preload, timeout: Duration, stdin: Option<&Path>) -> Output {
    let what = format!("{:?} [{}]", cmd, preload.label());
    cmd.env_remove("LD_PRELOAD");
    match preload {
        Preload::None => {}
        Preload::Oxmalloc => {
            cmd.env("LD_PRELOAD", lib_path());
        }
        Preload::Lib(p) => {
            cmd.env("LD_PRELOAD", p);
        }
    }
    match stdin {
        Some(p) => {
            cmd.stdin(fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())));
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = start + timeout;
    let mut timed_out = false;
    let mut wstatus: libc::c_int = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut sleep = Duration::from_millis(1);
    loop {
        let r = unsafe { libc::wait4(pid, &mut wstatus, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            panic!("wait4({pid}) failed: {e}");
        }
        if Instant::now() >= deadline && !timed_out {
            timed_out = true;
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    // Anything left in the child's process group (grandchildren) goes too.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    // The pipes close once every process holding them is gone.
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    // `child` was reaped by wait4 above; forget it so std never waits for/kills a reused pid.
    std::mem::forget(child);
    Output {
        status: ExitStatus::from_raw(wstatus),
        stdout,
        stderr,
        timed_out,
        max_rss_kib: ru.ru_maxrss as u64,
        elapsed,
        what,
    }
}

/// [`run_with_stdin`] with stdin from /dev/null.
pub fn run(cmd: Command, preload: &Preload, timeout: Duration) -> Output {
    run_with_stdin(cmd, preload, timeout, None)
}

/// Convenience: `program args...` as a Command.
pub fn cmd<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// A field of `/proc/<pid>/status` in KiB (e.g. "VmRSS", "VmHWM"); `pid` 0 = self.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let path = if pid == 0 { "/proc/self/status".to_string() } else { format!("/proc/{pid}/status") };
    let s = fs::read_to_string(path).ok()?;
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field) {
            if let Some(rest) = rest.strip_prefix(':') {
                let num = rest.trim().trim_end_matches("kB").trim();
                return num.parse().ok();
            }
        }
    }
    None
}

/// This process's VmRSS (KiB).
pub fn self_rss_kib() -> u64 {
    proc_status_kib(0, "VmRSS").expect("VmRSS in /proc/self/status")
}

/// This process's peak RSS, VmHWM (KiB).
pub fn self_peak_rss_kib() -> u64 {
    proc_status_kib(0, "VmHWM").expect("VmHWM in /proc/self/status")
}

/// The glibc names of `src/exports.list` (first column), in file order.
pub fn export_pairs() -> Vec<(String, String)> {
    let p = repo_dir().join("src").join("exports.list");
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut it = l.split_whitespace();
            let a = it.next().unwrap().to_string();
            let b = it.next().unwrap_or_else(|| panic!("exports.list line without target: {l}")).to_string();
            (a, b)
        })
        .collect()
}

/// Looks for the program's final summary line (a line starting with `prefix`) in stdout.
pub fn summary_line(out: &Output, prefix: &str) -> Option<String> {
    out.stdout_str().lines().rev().find(|l| l.starts_with(prefix)).map(str::to_string)
}

/// The integer value of a `name=value` line of `out` (the first such line); panics with
/// the output when there is none.
pub fn line_field(out: &str, name: &str) -> i64 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in output:\n{out}"))
}
