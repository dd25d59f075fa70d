//! `oxmalloc run`: start a program with liboxmalloc.so in LD_PRELOAD.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Where liboxmalloc.so is: $OXMALLOC_LIB, else next to this executable (cargo puts
/// both in target/<profile>/), else one level up (when run from target/*/deps).
pub fn library_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("OXMALLOC_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("OXMALLOC_LIB={} does not exist", p.display())) };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let dir = exe.parent().ok_or("executable has no directory")?;
    for cand in [dir.join("liboxmalloc.so"), dir.join("../liboxmalloc.so")] {
        if cand.is_file() {
            return cand.canonicalize().map_err(|e| e.to_string());
        }
    }
    Err(format!(
        "liboxmalloc.so not found next to {} (build it with `cargo build --release`, or set OXMALLOC_LIB)",
        exe.display()
    ))
}

/// LD_PRELOAD with `lib` first, keeping whatever the environment preloads already.
pub fn preload_value(lib: &std::path::Path) -> String {
    match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.trim().is_empty() => format!("{}:{}", lib.display(), old),
        _ => lib.display().to_string(),
    }
}

pub fn main(args: &[String]) -> i32 {
    let args = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: oxmalloc run [--] CMD [ARGS...]");
        return 2;
    };
    let lib = match library_path() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("oxmalloc: {e}");
            return 1;
        }
    };
    let err = Command::new(cmd).args(rest).env("LD_PRELOAD", preload_value(&lib)).exec();
    eprintln!("oxmalloc: cannot run {cmd}: {err}");
    127
}
