//! The redis workload: redis-server under the allocator (LD_PRELOAD), on 127.0.0.1 and
//! a free port, with persistence off; redis-benchmark (not preloaded) sends a bounded
//! number of requests (SET, GET, LPUSH, LPOP; 256-byte values) with 8 clients.
//! Reported: the wall time of the redis-benchmark run and the server's peak RSS
//! (VmHWM from /proc/<pid>/status just before it is stopped with SHUTDOWN NOSAVE, or
//! SIGTERM/SIGKILL if it does not stop).
//!
//! Debian's redis-server links jemalloc (unprefixed malloc/free from libjemalloc.so.2),
//! so "no preload" would measure jemalloc: its glibc run preloads libc.so.6, which puts
//! glibc's malloc first in the symbol lookup order.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::allocators::Allocator;
use super::process::{self, Child, Status};
use super::suite::{RunRecord, RunStatus};

#[derive(Debug, Clone)]
pub struct Tools {
    server: PathBuf,
    benchmark: PathBuf,
}

impl Tools {
    pub fn find() -> Result<Tools, String> {
        let hint = "(install with: apt-get install -y redis-server redis-tools)";
        let server =
            process::which("redis-server").ok_or(format!("redis-server not found {hint}"))?;
        let benchmark =
            process::which("redis-benchmark").ok_or(format!("redis-benchmark not found {hint}"))?;
        Ok(Tools { server, benchmark })
    }
}

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A port that was free a moment ago (bind to port 0, read it, release it).
fn free_port() -> Result<u16, String> {
    let l =
        TcpListener::bind((LOCALHOST, 0)).map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s =
        TcpStream::connect_timeout(&SocketAddr::from((LOCALHOST, port)), Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

/// Send one command and read a one-line reply (+simple, :integer, -error).
fn command(port: u16, args: &[&str]) -> Result<String, String> {
    let mut s = connect(port).map_err(|e| e.to_string())?;
    s.write_all(&encode(args)).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => reply.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
        if reply.len() > 4096 {
            break;
        }
    }
    let line = String::from_utf8_lossy(&reply).trim_end().to_string();
    if line.starts_with('-') || line.is_empty() {
        return Err(format!("redis replied '{line}' to {}", args.join(" ")));
    }
    Ok(line[1..].to_string())
}

fn wait_ready(port: u16, server: &Child, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(r) = command(port, &["PING"]) {
            if r == "PONG" {
                return Ok(());
            }
        }
        if server.exited() {
            return Err("redis-server exited during startup".into());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "redis-server did not answer PING within {} s",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// VmHWM (peak RSS) of a live process, in KiB.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `SET: 81234.56 requests per second, p50=...` -> ("rps_set", 81234.56).
fn parse_rps(stdout: &str) -> Vec<(String, f64)> {
    stdout
        .split(['\r', '\n'])
        .filter(|l| l.contains("requests per second"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let v: f64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((format!("rps_{}", name.trim().to_lowercase()), v))
        })
        .collect()
}

pub fn run_once(
    tools: &Tools,
    alloc: &Allocator,
    requests: u32,
    rep: usize,
    timeout: Duration,
    out: &Path,
) -> RunRecord {
    let fail = |msg: String| RunRecord::failed(rep, RunStatus::Failed(msg));
    let dir = out.join("redis");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("cannot create {}: {e}", dir.display()));
    }
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let port_s = port.to_string();
    let mut cmd = Command::new(&tools.server);
    cmd.args([
        "--port",
        &port_s,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .args([
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--loglevel",
        "warning",
        "--dir",
    ])
    .arg(&dir)
    .current_dir(&dir);
    match alloc.preload_forcing_glibc() {
        Some(p) => cmd.env("LD_PRELOAD", p),
        None => cmd.env_remove("LD_PRELOAD"),
    };
    let server = match Child::spawn(cmd) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };

    let mut result = match wait_ready(port, &server, Duration::from_secs(10)) {
        Err(e) => fail(e),
        Ok(()) => {
            let mut b = Command::new(&tools.benchmark);
            b.args([
                "-h",
                "127.0.0.1",
                "-p",
                &port_s,
                "-q",
                "-n",
                &requests.to_string(),
                "-c",
                "8",
            ])
            .args(["-d", "256", "-t", "set,get,lpush,lpop"])
            .env_remove("LD_PRELOAD");
            match process::run(b, timeout) {
                Err(e) => fail(e),
                Ok(exit) if exit.status == Status::Timeout => RunRecord::failed(
                    rep,
                    RunStatus::Timeout(format!("redis-benchmark {}", exit.describe_failure())),
                ),
                Ok(exit) if !exit.success() => fail(format!(
                    "redis-benchmark: {}{}",
                    exit.describe_failure(),
                    process::stderr_excerpt(&exit.stderr)
                )),
                Ok(exit) => {
                    let state = command(port, &["DBSIZE"])
                        .and_then(|d| Ok((d, command(port, &["LLEN", "mylist"])?)));
                    match state {
                        Err(e) => fail(format!(
                            "redis-server does not answer after the benchmark: {e}"
                        )),
                        Ok((dbsize, llen)) => RunRecord {
                            rep,
                            status: RunStatus::Ok,
                            wall_s: exit.wall.as_secs_f64(),
                            rss_kib: vm_hwm_kib(server.pid()).unwrap_or(0),
                            checksum: Some(format!("dbsize={dbsize},llen={llen}")),
                            metrics: parse_rps(&exit.stdout),
                        },
                    }
                }
            }
        }
    };

    // Stop the server: SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL (by Child::wait).
    let _ = connect(port).and_then(|mut s| s.write_all(&encode(&["SHUTDOWN", "NOSAVE"])));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.exited() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !server.exited() {
        server.signal(libc::SIGTERM);
    }
    match server.wait(Duration::from_secs(5)) {
        Ok(exit) => {
            if result.rss_kib == 0 {
                result.rss_kib = exit.maxrss_kib;
            }
            if result.status == RunStatus::Ok {
                if let Status::Signal(s) = exit.status {
                    if s != libc::SIGTERM {
                        result.status = RunStatus::Failed(format!(
                            "redis-server {}{}",
                            exit.describe_failure(),
                            process::stderr_excerpt(&exit.stderr)
                        ));
                    }
                }
            } else if let RunStatus::Failed(msg) = &mut result.status {
                msg.push_str(&process::stderr_excerpt(&exit.stderr));
            }
        }
        Err(e) => {
            if result.status == RunStatus::Ok {
                result.status = RunStatus::Failed(e);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_benchmark_output() {
        let out = "SET: rps=0.0 (overall: nan) avg_msec=nan\r\
                   SET: 86956.52 requests per second, p50=0.055 msec\n\
                   GET: 90909.09 requests per second, p50=0.047 msec\n";
        let v = parse_rps(out);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0, "rps_set");
        assert!((v[1].1 - 90909.09).abs() < 1e-6);
    }

    #[test]
    fn encodes_resp() {
        assert_eq!(
            encode(&["LLEN", "mylist"]),
            b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n".to_vec()
        );
    }
}
