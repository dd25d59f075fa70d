//! Reports written when the process exits, if the environment asks for them:
//!
//! - `OXMALLOC_STATS=1`: the malloc_stats report (report.rs: glibc's lines, bytes in
//!   use by class, arenas, RSS breakdown) to stderr; `OXMALLOC_STATS=path` to a file.
//! - `OXMALLOC_MAP=path`: the heap map data (heap_map.rs) to a file.
//!
//! In a path, `%p` becomes the process id (children inherit the environment: each
//! writes its own file). `0` or an empty value asks for nothing.
//!
//! The variables are read by the library constructor (init.rs) and copied, so a
//! program that edits its environment does not change them. For a report to stderr
//! the constructor keeps a duplicate of fd 2 (numbered 200 or above, close-on-exec):
//! many programs close stderr on their way out (GNU coreutils' `close_stdout`). The reports run from a
//! `.fini_array` destructor: glibc calls it from `exit()` (after the `atexit`
//! handlers), and registering it needs no call, so no allocation. A process that
//! ends with `_exit` or a signal writes nothing. Nothing here allocates; other threads
//! may still run, and are seen as they are.

use core::ffi::CStr;

use crate::census;
use crate::fmt::Buf;
use crate::heap_map;
use crate::options;
use crate::os;
use crate::report;
use crate::sync::Mutex;

const PATH_MAX: usize = 4096;

/// Where a report goes.
struct Dest {
    /// Nothing asked (false), or a destination below.
    wanted: bool,
    /// To stderr rather than to `path`: the duplicate of fd 2 made at start, or 2.
    stderr: bool,
    stderr_fd: i32,
    path: [u8; PATH_MAX],
    len: usize,
}

impl Dest {
    const fn none() -> Dest {
        Dest { wanted: false, stderr: false, stderr_fd: 2, path: [0; PATH_MAX], len: 0 }
    }

    /// Reads `name`: "1" means stderr when `stderr_ok`, any other value but "0" and ""
    /// a path (too long a path is ignored).
    fn read(&mut self, name: &CStr, stderr_ok: bool) {
        *self = Dest::none();
        let Some(v) = options::getenv(name) else { return };
        if v.is_empty() || v == b"0" {
            return;
        }
        if stderr_ok && v == b"1" {
            self.wanted = true;
            self.stderr = true;
            self.stderr_fd = os::dup_above(2, 200).unwrap_or(2);
            return;
        }
        if let Some(slot) = self.path.get_mut(..v.len()) {
            slot.copy_from_slice(v);
            self.len = v.len();
            self.wanted = true;
        }
    }

    /// Opens the destination (`%p` expanded to the pid). None if the file cannot be
    /// created (a message on stderr says so).
    fn open(&self, what: &str) -> Option<i32> {
        if self.stderr {
            return Some(self.stderr_fd);
        }
        let mut buf = [0u8; PATH_MAX + 32];
        let mut w = Buf::new(&mut buf);
        let path = self.path.get(..self.len).unwrap_or(&[]);
        let mut i = 0;
        while let Some(&c) = path.get(i) {
            if c == b'%' && path.get(i + 1) == Some(&b'p') {
                w.dec(os::pid() as u64);
                i += 2;
            } else {
                w.bytes(&[c]);
                i += 1;
            }
        }
        w.bytes(&[0]);
        let fd = CStr::from_bytes_with_nul(w.as_bytes()).ok().and_then(os::create_file);
        if fd.is_none() {
            let mut msg = [0u8; 256];
            let mut m = Buf::new(&mut msg);
            m.str("oxmalloc: cannot write the ").str(what).str(" file ").bytes(path).str("\n");
            os::write_all(2, m.as_bytes());
        }
        fd
    }
}

static STATS: Mutex<Dest> = Mutex::new(Dest::none());
static MAP: Mutex<Dest> = Mutex::new(Dest::none());

/// Reads OXMALLOC_STATS and OXMALLOC_MAP (the library constructor calls this).
pub fn init_from_env() {
    STATS.lock().read(c"OXMALLOC_STATS", true);
    MAP.lock().read(c"OXMALLOC_MAP", false);
}

/// Writes the reports that were asked for.
fn run() {
    let stats = STATS.lock();
    if stats.wanted {
        if let Some(fd) = stats.open("OXMALLOC_STATS") {
            header(fd);
            report::write(fd, &census::take());
            if fd != 2 {
                os::close(fd);
            }
        }
    }
    drop(stats);
    let map = MAP.lock();
    if map.wanted {
        if let Some(fd) = map.open("OXMALLOC_MAP") {
            heap_map::write(fd);
            os::close(fd);
        }
    }
}

/// "oxmalloc: heap of pid 1234 (python3) at exit", so that the reports of a program
/// and its children can be told apart.
fn header(fd: i32) {
    let mut comm = [0u8; 64];
    let len = os::read_small_file(c"/proc/self/comm", &mut comm);
    let name = comm.get(..len).unwrap_or(&[]);
    let name = name.strip_suffix(b"\n").unwrap_or(name);
    let mut buf = [0u8; 160];
    let mut w = Buf::new(&mut buf);
    w.str("oxmalloc: heap of pid ").dec(os::pid() as u64).str(" (").bytes(name).str(") at exit\n");
    os::write_all(fd, w.as_bytes());
}

extern "C" fn at_exit() {
    let saved = os::errno();
    run();
    os::set_errno(saved);
}

#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;
