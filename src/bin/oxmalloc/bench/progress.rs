//! The progress line on stderr: `[17/90] larson-2t  jemalloc  rep 2/5`, rewritten in
//! place (`\r`) when stderr is a terminal, one plain line per run otherwise.

use std::io::Write;

pub struct Progress {
    tty: bool,
    total: usize,
    done: usize,
    /// A `\r` line is on screen and must be cleared before other output.
    dirty: bool,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(2) } == 1;
        Progress {
            tty,
            total,
            done: 0,
            dirty: false,
        }
    }

    /// A run is starting.
    pub fn start(&mut self, workload: &str, allocator: &str, rep: usize, reps: usize) {
        self.done += 1;
        let line = format!(
            "[{}/{}] {:<16} {:<9} rep {}/{}",
            self.done, self.total, workload, allocator, rep, reps
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            self.dirty = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// A run that will not happen (its pair already failed): counts it as done.
    pub fn skip(&mut self) {
        self.done += 1;
    }

    /// A message on its own line (the progress line is redrawn by the next `start`).
    pub fn note(&mut self, msg: &str) {
        let mut err = std::io::stderr().lock();
        if self.dirty {
            let _ = write!(err, "\r\x1b[K");
            self.dirty = false;
        }
        let _ = writeln!(err, "{msg}");
    }

    /// End: leave the terminal on a fresh line.
    pub fn finish(&mut self) {
        if self.dirty {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.dirty = false;
        }
    }
}
