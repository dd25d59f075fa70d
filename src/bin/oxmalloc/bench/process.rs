//! Running one child process: wall time, `wait4` rusage (peak RSS), captured output,
//! and a timeout after which the child is killed.
//!
//! Wall time is measured by the driver from just before the spawn to the return of
//! `wait4`, so it includes exec, dynamic loading (and the preloaded allocator's
//! initialisation) and process teardown; every workload runs for a few tenths of a
//! second at least, against about a millisecond of that overhead.
//!
//! Peak RSS is `ru_maxrss` of the child. Note that Linux folds the RSS high-water
//! mark of the process image replaced by `exec` into it, i.e. the driver's own RSS at
//! spawn time (the child starts as a vfork of the driver): the suite measures that
//! floor once (`/bin/true`) and reports it.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Code(i32),
    Signal(i32),
    /// Killed by the driver after the timeout.
    Timeout,
}

#[derive(Debug)]
pub struct Exit {
    pub status: Status,
    pub wall: Duration,
    pub maxrss_kib: u64,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.status == Status::Code(0)
    }

    pub fn describe_failure(&self) -> String {
        match self.status {
            Status::Code(0) => "exited normally".into(),
            Status::Code(c) => format!("exit code {c}"),
            Status::Signal(s) => format!("killed by signal {s} ({})", signal_name(s)),
            Status::Timeout => format!("timed out after {:.1} s", self.wall.as_secs_f64()),
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGTRAP => "SIGTRAP",
        _ => "signal",
    }
}

/// The last few lines of a child's stderr, for an error message ("" if empty).
pub fn stderr_excerpt(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(3)..];
    let mut s = tail.join(" | ");
    if s.chars().count() > 300 {
        s = s.chars().take(300).collect::<String>() + "...";
    }
    format!("; stderr: {s}")
}

/// `key=value` lines of a workload's output.
pub fn parse_kv(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty() && !k.contains(' '))
        .collect()
}

struct Reaped {
    status: libc::c_int,
    maxrss_kib: u64,
    at: Instant,
}

/// A running child, reaped by a thread blocked in `wait4`.
pub struct Child {
    pid: libc::pid_t,
    start: Instant,
    reaped: mpsc::Receiver<Result<Reaped, String>>,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Child {
    /// Spawn with stdin closed and stdout/stderr captured.
    pub fn spawn(mut cmd: Command) -> Result<Child, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()))?;
        let pid = child.id() as libc::pid_t;
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        // `child` is dropped without waiting: the thread below reaps it with wait4.
        drop(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut status: libc::c_int = 0;
            // SAFETY: rusage is plain old data; wait4 fills it.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            loop {
                // SAFETY: valid pointers to locals; pid is our own child.
                let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
                if r == pid {
                    let _ = tx.send(Ok(Reaped {
                        status,
                        maxrss_kib: ru.ru_maxrss.max(0) as u64,
                        at: Instant::now(),
                    }));
                    return;
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    let _ = tx.send(Err(format!("wait4({pid}) failed: {e}")));
                    return;
                }
            }
        });
        Ok(Child {
            pid,
            start,
            reaped: rx,
            out,
            err,
        })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Send a signal (ignored if the child is already gone).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain syscall; the pid is not reused before we reap it.
        unsafe {
            libc::kill(self.pid, sig);
        }
    }

    /// Wait up to `timeout`; on expiry, SIGKILL the child and report `Timeout`.
    pub fn wait(mut self, timeout: Duration) -> Result<Exit, String> {
        let (reaped, timed_out) = match self.reaped.recv_timeout(timeout) {
            Ok(r) => (r?, false),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.signal(libc::SIGKILL);
                let r = self
                    .reaped
                    .recv()
                    .map_err(|_| "lost the child's exit status".to_string())??;
                (r, true)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("lost the child's exit status".into())
            }
        };
        let stdout = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .err
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let st = reaped.status;
        let status = if timed_out {
            Status::Timeout
        } else if libc::WIFEXITED(st) {
            Status::Code(libc::WEXITSTATUS(st))
        } else if libc::WIFSIGNALED(st) {
            Status::Signal(libc::WTERMSIG(st))
        } else {
            Status::Code(-1)
        };
        Ok(Exit {
            status,
            wall: reaped.at - self.start,
            maxrss_kib: reaped.maxrss_kib,
            stdout,
            stderr,
        })
    }

    /// Has the child exited already? (Does not consume the exit status: only peeks.)
    pub fn exited(&self) -> bool {
        // SAFETY: kill with signal 0 only checks existence; a zombie still "exists",
        // so also look at /proc/<pid>/stat's state field.
        let alive = unsafe { libc::kill(self.pid, 0) } == 0;
        if !alive {
            return true;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(s) => s
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }
}

/// Look a program up in PATH, like `which`.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Run to completion (or timeout) and collect everything.
pub fn run(cmd: Command, timeout: Duration) -> Result<Exit, String> {
    Child::spawn(cmd)?.wait(timeout)
}
