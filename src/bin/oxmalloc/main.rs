//! The `oxmalloc` command: run a program on oxmalloc, or benchmark it.
//!
//! ```text
//! oxmalloc run [--stats[=FILE]] [--map FILE.svg] [--] CMD [ARGS...]
//!                                     run CMD with liboxmalloc.so preloaded
//! oxmalloc bench [--quick] [...]      compare oxmalloc with glibc and the peers
//! ```

mod bench;
mod heapmap;
mod run;

use std::process::ExitCode;

const USAGE: &str = "usage:
  oxmalloc run [--] CMD [ARGS...]   run CMD with liboxmalloc.so preloaded
      --stats[=FILE]                print its heap statistics at exit (to stderr, or FILE)
      --map FILE.svg                draw its heap at exit as an SVG picture
      --map-data FILE               (with --map) keep the heap map data too
  oxmalloc bench [--quick] [--out DIR] [--only A,B] [--workloads W,..] [--reps N]
                                    benchmark oxmalloc against glibc and the peers
  oxmalloc lib                      print the path of liboxmalloc.so
Environment: OXMALLOC_LIB=/path/to/liboxmalloc.so overrides where the library is found.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("run") => run::main(&args[1..]),
        Some("bench") => bench::main(&args[1..]),
        Some("lib") => match run::library_path() {
            Ok(p) => {
                println!("{}", p.display());
                0
            }
            Err(e) => {
                eprintln!("oxmalloc: {e}");
                1
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            0
        }
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
