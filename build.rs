//! Turns `src/exports.list` into the glibc-named symbols of the C build.
//!
//! The crate is one compilation for both the cdylib and the rlib, so the glibc names
//! (`malloc`, `free`, ...) cannot be plain `#[no_mangle]` functions: a Rust program
//! linking the rlib would then silently replace its C malloc. Instead:
//! - the cdylib gets them as linker aliases (`--defsym malloc=oxmalloc_malloc`) plus a
//!   version script that exports them; these link arguments apply to the cdylib only;
//! - with the `override` feature, the rlib defines them as assembler aliases instead
//!   (`$OUT_DIR/override_aliases.rs`, included by `src/exports.rs`).

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src/exports.list");
    let list = fs::read_to_string("src/exports.list").expect("src/exports.list");
    let pairs: Vec<(&str, &str)> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut it = l.split_whitespace();
            (it.next().unwrap(), it.next().expect("two columns"))
        })
        .collect();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let override_feature = env::var_os("CARGO_FEATURE_OVERRIDE").is_some();

    // Version script: export the glibc names next to rustc's own list of oxmalloc_* symbols.
    let mut script = String::from("{\n  global:\n");
    for (name, _) in &pairs {
        script.push_str(&format!("    {name};\n"));
    }
    script.push_str("};\n");
    let script_path = out.join("exports.map");
    fs::write(&script_path, script).unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script_path.display());

    // std is linked for the cdylib's panic runtime only; its general-dynamic TLS
    // accesses sit on panic paths the library never takes. Binding them to a local stub
    // keeps `__tls_get_addr` out of liboxmalloc.so (see src/tls.rs).
    println!("cargo:rustc-cdylib-link-arg=-Wl,--defsym=__tls_get_addr=oxmalloc_no_dynamic_tls");
    // Bind the library's references to its own symbols at link time: internal calls and
    // statics are then reached directly instead of through the GOT.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");

    let mut asm = String::from("core::arch::global_asm!(\n");
    for (name, target) in &pairs {
        if override_feature {
            asm.push_str(&format!(
                "    \".globl {name}\", \".type {name},@function\", \".set {name}, {target}\",\n"
            ));
        } else {
            println!("cargo:rustc-cdylib-link-arg=-Wl,--defsym={name}={target}");
        }
    }
    asm.push_str(");\n");
    fs::write(out.join("override_aliases.rs"), asm).unwrap();
}
