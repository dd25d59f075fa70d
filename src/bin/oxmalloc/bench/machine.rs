//! What machine the suite ran on, and dates (local time, via libc: no dependencies).

use std::ffi::CStr;

#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub glibc: String,
    pub mem_gib: f64,
}

impl Machine {
    pub fn detect() -> Machine {
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            nproc,
            cpu_model,
            kernel: kernel(),
            glibc: glibc_version(),
            mem_gib: mem_kib / 1048576.0,
        }
    }

    /// One line: "2 x AMD EPYC, 24 GiB, Linux 6.1, glibc 2.36".
    pub fn summary(&self) -> String {
        format!(
            "nproc={} {}, {:.0} GiB, Linux {}, glibc {}",
            self.nproc, self.cpu_model, self.mem_gib, self.kernel, self.glibc
        )
    }
}

fn kernel() -> String {
    // SAFETY: utsname is plain old data filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "?".into();
    }
    // SAFETY: uname NUL-terminates the fields.
    unsafe { CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn glibc_version() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) }
        .to_string_lossy()
        .into_owned()
}

/// A point in time, in local time, broken down.
#[derive(Debug, Clone, Copy)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// Offset from UTC in seconds.
    pub utc_offset: i64,
}

pub fn now() -> Date {
    // SAFETY: time(NULL) and localtime_r with valid pointers.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return Date {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                min: 0,
                sec: 0,
                utc_offset: 0,
            };
        }
        Date {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            min: tm.tm_min as u32,
            sec: tm.tm_sec as u32,
            utc_offset: tm.tm_gmtoff,
        }
    }
}

impl Date {
    /// For folder names: 2025-11-21T23-07-05.
    pub fn stamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
            self.year, self.month, self.day, self.hour, self.min, self.sec
        )
    }

    /// For people: 2025-11-21 23:07.
    pub fn human(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.min
        )
    }

    /// ISO 8601 with offset: 2025-11-21T23:07:05+01:00.
    pub fn iso(&self) -> String {
        let off = self.utc_offset;
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.abs();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.min,
            self.sec,
            sign,
            off / 3600,
            (off % 3600) / 60
        )
    }
}
