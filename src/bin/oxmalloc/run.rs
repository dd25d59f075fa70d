//! `oxmalloc run`: start a program with liboxmalloc.so in LD_PRELOAD; with `--stats`,
//! its malloc_stats report at exit (OXMALLOC_STATS); with `--map heap.svg`, a picture
//! of its heap at exit (OXMALLOC_MAP, drawn by heapmap.rs).

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

/// What `oxmalloc run` was asked for besides running the command.
#[derive(Default)]
struct RunOptions {
    /// OXMALLOC_STATS for the child ("1": stderr, or a path).
    stats: Option<String>,
    /// Render the heap map to this SVG file after the command exits.
    map: Option<PathBuf>,
    /// Also keep the heap map data here.
    map_data: Option<PathBuf>,
}

const RUN_USAGE: &str = "usage: oxmalloc run [--stats[=FILE]] [--map FILE.svg [--map-data FILE]] [--] CMD [ARGS...]";

/// Splits the options off the command line; the rest is the command.
fn parse_options(args: &[String]) -> Result<(RunOptions, &[String]), String> {
    let mut o = RunOptions::default();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let value = |i: &mut usize, name: &str| -> Result<String, String> {
            if let Some(v) = a.strip_prefix(&format!("{name}=")) {
                return Ok(v.to_string());
            }
            *i += 1;
            args.get(*i).cloned().ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--" => return Ok((o, &args[i + 1..])),
            "--stats" => o.stats = Some("1".into()),
            s if s.starts_with("--stats=") => o.stats = Some(s["--stats=".len()..].to_string()),
            s if s == "--map" || s.starts_with("--map=") => o.map = Some(value(&mut i, "--map")?.into()),
            s if s == "--map-data" || s.starts_with("--map-data=") => o.map_data = Some(value(&mut i, "--map-data")?.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => return Ok((o, &args[i..])),
        }
        i += 1;
    }
    Ok((o, &args[args.len()..]))
}

pub fn main(args: &[String]) -> i32 {
    let (opts, args) = match parse_options(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("oxmalloc run: {e}\n{RUN_USAGE}");
            return 2;
        }
    };
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{RUN_USAGE}");
        return 2;
    };
    let lib = match library_path() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("oxmalloc: {e}");
            return 1;
        }
    };
    let mut command = Command::new(cmd);
    command.args(rest).env("LD_PRELOAD", preload_value(&lib));
    if let Some(stats) = &opts.stats {
        command.env("OXMALLOC_STATS", stats);
    }
    let Some(svg) = &opts.map else {
        let err = command.exec();
        eprintln!("oxmalloc: cannot run {cmd}: {err}");
        return 127;
    };
    // With a map to draw, the command runs as a child, and the picture is drawn
    // after it exits. Every process of the command writes its own data file
    // (%p = its pid); the command's own process is drawn.
    let dir = std::env::temp_dir().join(format!("oxmalloc-map-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("oxmalloc: cannot create {}: {e}", dir.display());
        return 1;
    }
    command.env("OXMALLOC_MAP", dir.join("heap.%p.map"));
    let code = match command.spawn() {
        Ok(mut child) => {
            let pid = child.id();
            let status = child.wait();
            let code = match status {
                Ok(st) => st.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)),
                Err(e) => {
                    eprintln!("oxmalloc: waiting for {cmd}: {e}");
                    1
                }
            };
            match draw_map(&dir, pid, svg, opts.map_data.as_deref()) {
                Ok(msg) => eprintln!("oxmalloc: {msg}"),
                Err(e) => eprintln!("oxmalloc: no heap map: {e}"),
            }
            code
        }
        Err(e) => {
            eprintln!("oxmalloc: cannot run {cmd}: {e}");
            127
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    code
}

/// Renders the data file of process `pid` (or, if it wrote none, the largest one in
/// `dir`) to `svg`.
fn draw_map(dir: &std::path::Path, pid: u32, svg: &std::path::Path, keep: Option<&std::path::Path>) -> Result<String, String> {
    let own = dir.join(format!("heap.{pid}.map"));
    let file = if own.is_file() {
        own
    } else {
        std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .map(|e| e.path())
            .ok_or("the program wrote no heap map data (it did not exit through exit(), or did not load liboxmalloc.so)")?
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    if let Some(keep) = keep {
        std::fs::write(keep, &text).map_err(|e| format!("{}: {e}", keep.display()))?;
    }
    let map = crate::heapmap::parse(&text)?;
    std::fs::write(svg, crate::heapmap::render(&map)).map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(format!(
        "heap map of pid {} ({} segment{}, {} large blocks) written to {}",
        map.pid,
        map.regions.len(),
        if map.regions.len() == 1 { "" } else { "s" },
        map.large.len(),
        svg.display()
    ))
}
