//! Real programs give byte-identical stdout and the same exit status with and without
//! `LD_PRELOAD=liboxmalloc.so`. gcc, g++ and python3 must be installed; perl, sort, awk, ls,
//! sha256sum are skipped (with a message) when missing.
mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the command built by `make` once under glibc and once under oxmalloc; asserts both
/// succeed with identical stdout; returns the (common) stdout.
fn same_output(what: &str, make: &dyn Fn() -> Command, stdin: Option<&Path>) -> Vec<u8> {
    let base = run_with_stdin(make(), &Preload::None, TIMEOUT, stdin);
    assert!(base.success(), "{what}: the reference run WITHOUT preload failed (test bug?):\n{}", base.describe());
    let ox = run_with_stdin(make(), &Preload::Oxmalloc, TIMEOUT, stdin);
    assert!(ox.success(), "{what}: failed under {}:\n{}", Preload::Oxmalloc.label(), ox.describe());
    assert_eq!(base.status.code(), ox.status.code(), "{what}: exit status differs");
    if base.stdout != ox.stdout {
        let a = base.stdout_str();
        let b = ox.stdout_str();
        let first = a.lines().zip(b.lines()).position(|(x, y)| x != y);
        panic!(
            "{what}: stdout differs under oxmalloc ({} vs {} bytes); first differing line {:?}:\n  glibc:    {:?}\n  oxmalloc: {:?}\n{}",
            base.stdout.len(),
            ox.stdout.len(),
            first,
            first.and_then(|i| a.lines().nth(i)),
            first.and_then(|i| b.lines().nth(i)),
            ox.describe()
        );
    }
    eprintln!(
        "{what}: identical output ({} bytes); glibc {:.2}s, oxmalloc {:.2}s",
        base.stdout.len(),
        base.elapsed.as_secs_f64(),
        ox.elapsed.as_secs_f64(),
    );
    ox.stdout
}

fn require(prog: &str) {
    assert!(which(prog).is_some(), "`{prog}` is required by the test suite but is not installed");
}

fn optional(prog: &str) -> bool {
    if which(prog).is_some() {
        true
    } else {
        eprintln!("SKIP: `{prog}` is not installed");
        false
    }
}

/// Deterministic pseudo-random lines (xorshift64*).
fn gen_lines(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545F4914F6CDD1D)
    };
    let mut out = Vec::with_capacity(n * 48);
    for i in 0..n {
        let len = 1 + (next() % 90) as usize;
        for _ in 0..len {
            let r = next();
            let c = match r % 10 {
                0 => b' ',
                1..=3 => b'0' + (r >> 8) as u8 % 10,
                _ => b'a' + (r >> 8) as u8 % 26,
            };
            out.push(c);
        }
        if i % 7 == 0 {
            out.extend_from_slice(format!(" {}", next() % 100000).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

const PY_SCRIPT: &str = r#"
import hashlib, json, random, sys
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)
rng = random.Random(12345)
h = hashlib.sha256()

d = {}
for i in range(80000):
    d["key%d_%s" % (i, "x" * (i % 37))] = [i, str(i) * (i % 5), {"v": i * i}]
lst = [("s" * (i % 300)) + repr(rng.random()) for i in range(50000)]
lst.sort()
h.update("".join(lst[::997]).encode())

big = 1
for i in range(1, 4000):
    big *= i
s = str(big)
h.update(s.encode())
h.update(str(big % (2 ** 521 - 1)).encode())

struct = {
    "items": [{"id": i, "name": "n%d" % i, "tags": ["t%d" % j for j in range(i % 10)], "f": i / 7}
              for i in range(20000)],
    "nested": [[list(range(k % 50)) for k in range(200)] for _ in range(20)],
    "big": s[:2000],
}
txt = json.dumps(struct, sort_keys=True)
back = json.loads(txt)
assert back == struct, "json round trip changed the structure"
h.update(txt.encode())

for i in range(0, 80000, 2):
    del d["key%d_%s" % (i, "x" * (i % 37))]
h.update(json.dumps(sorted(d)[:200]).encode())
h.update(str(sum(v[0] for v in d.values())).encode())

ba = bytearray()
for i in range(40000):
    ba += bytes([i & 255]) * (i % 13)
h.update(hashlib.sha256(ba).digest())

words = {}
for i in range(100000):
    w = "w%d" % rng.randrange(20000)
    words[w] = words.get(w, 0) + 1
h.update(repr(sorted(words.items())[:500]).encode())
sets = [frozenset(range(i, i + i % 40)) for i in range(20000)]
h.update(str(len(set(sets))).encode())

print(len(txt), len(d), len(lst), len(s), len(ba))
print(h.hexdigest())
"#;

fn python_script(pymalloc: &str) {
    require("python3");
    let dir = TempDir::new("python");
    let script = dir.join("alloc_heavy.py");
    fs::write(&script, PY_SCRIPT).unwrap();
    let make = || {
        let mut c = Command::new("python3");
        c.arg(&script)
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONMALLOC", pymalloc)
            .env("LC_ALL", "C");
        c
    };
    let out = same_output(&format!("python3 (PYTHONMALLOC={pymalloc})"), &make, None);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.lines().count(), 2, "unexpected python output: {text}");
    assert_eq!(text.lines().nth(1).unwrap().len(), 64, "no sha256 printed: {text}");
}

/// python3 running an allocation-heavy script (dicts, lists, strings, big ints, json
/// round trip), with its default small-object allocator on top of malloc...
#[test]
fn python3_allocation_heavy_script() {
    python_script("pymalloc");
}

/// ... and with PYTHONMALLOC=malloc: every Python object straight from malloc/free.
#[test]
fn python3_allocation_heavy_script_pythonmalloc_malloc() {
    python_script("malloc");
}

/// GNU sort of 200k lines: in memory (-S 50M), with 2 threads, and as an external merge
/// through temp files (-S 1M); also equal to a byte-wise sort done here.
#[test]
fn sort_large_input() {
    if !optional("sort") {
        return;
    }
    let dir = TempDir::new("sort");
    let input = dir.join("input.txt");
    let data = gen_lines(200_000, 0x9E3779B97F4A7C15);
    fs::write(&input, &data).unwrap();
    let mut expect: Vec<&[u8]> = data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    expect.sort();
    let mut expected = Vec::with_capacity(data.len());
    for l in &expect {
        expected.extend_from_slice(l);
        expected.push(b'\n');
    }
    let tmp = dir.join("sort-tmp");
    fs::create_dir_all(&tmp).unwrap();
    let variants: Vec<Vec<String>> = vec![
        vec!["-S".into(), "50M".into()],
        vec!["--parallel=2".into(), "-S".into(), "50M".into()],
        vec!["-S".into(), "1M".into(), "-T".into(), tmp.display().to_string()],
        vec!["--parallel=2".into(), "-S".into(), "2M".into(), "-T".into(), tmp.display().to_string()],
    ];
    for v in variants {
        let make = || {
            let mut c = Command::new("sort");
            c.args(&v).arg(&input).env("LC_ALL", "C");
            c
        };
        let out = same_output(&format!("sort {}", v.join(" ")), &make, None);
        assert!(out == expected, "sort {} output is not the byte-wise sorted input", v.join(" "));
    }
    // numeric, reverse, unique on a key: a different code path (stdin input)
    let make = || {
        let mut c = Command::new("sort");
        c.args(["-t", " ", "-k2,2n", "-k1,1r", "-u", "-S", "20M"]).env("LC_ALL", "C");
        c
    };
    same_output("sort -k2,2n -k1,1r -u (stdin)", &make, Some(&input));
}

/// perl building hashes, arrays and strings, printing an MD5 over the sorted result.
#[test]
fn perl_hashes_and_strings() {
    if !optional("perl") {
        return;
    }
    let prog = r#"
        use strict; use warnings; use Digest::MD5 qw(md5_hex);
        my %h; my @a; my $s = "";
        for my $i (0 .. 99_999) {
            $h{"k$i" . ("z" x ($i % 29))} = [$i, "v" x ($i % 17), { n => $i * 3 }];
            push @a, join(",", map { $_ * $i } 1 .. ($i % 9));
            $s .= chr(65 + $i % 26) if $i % 3 == 0;
        }
        for my $i (grep { $_ % 3 == 0 } 0 .. 99_999) { delete $h{"k$i" . ("z" x ($i % 29))}; }
        my %count; $count{$_}++ for map { substr($_, 0, 3) } @a;
        my $ctx = Digest::MD5->new;
        $ctx->add($_, "=", $h{$_}[0], $h{$_}[1], $h{$_}[2]{n}) for sort keys %h;
        $ctx->add(join(";", map { "$_:$count{$_}" } sort keys %count));
        my $rev = reverse $s; my @parts = split /ABC/, $s;
        $ctx->add(md5_hex($rev), scalar(@parts), length($s));
        my @sorted = sort { length($a) <=> length($b) or $a cmp $b } @a;
        $ctx->add(@sorted[0 .. 999]);
        print scalar(keys %h), " ", scalar(@a), " ", length($s), "\n", $ctx->hexdigest, "\n";
    "#;
    let make = || {
        let mut c = Command::new("perl");
        c.arg("-e").arg(prog).env("PERL_HASH_SEED", "0").env("PERL_PERTURB_KEYS", "0").env("LC_ALL", "C");
        c
    };
    let out = same_output("perl hashes/strings", &make, None);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("66666 100000 33334\n"), "unexpected perl output: {text}");
}

/// Generated C source of a few thousand lines.
fn gen_c_source() -> String {
    let mut s = String::from("#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n\n");
    s.push_str("struct rec { int id; double w; char name[24]; struct rec *next; };\n");
    let n = 400;
    for i in 0..n {
        s.push_str(&format!(
            "static const char *names_{i}[] = {{ \"alpha{i}\", \"beta{i}\", \"gamma{i}\", \"delta{i}\" }};\n\
             __attribute__((noinline)) unsigned long f{i}(unsigned long x, struct rec *r) {{\n\
             \x20   unsigned long acc = {i}u;\n\
             \x20   for (int k = 0; k < (int)(x % 17) + {m}; k++) {{\n\
             \x20       switch ((x + k) % 7) {{\n\
             \x20       case 0: acc += x * {a}u + k; break;\n\
             \x20       case 1: acc ^= (acc << 7) | (x >> 3); break;\n\
             \x20       case 2: acc -= strlen(names_{i}[k & 3]) * {b}u; break;\n\
             \x20       case 3: acc = acc * 31 + (unsigned long)(r ? r->id : k); break;\n\
             \x20       case 4: if (r) {{ r->w += acc % 1000 / 7.0; acc += (unsigned long)r->w; }} break;\n\
             \x20       default: acc += {i} * (unsigned long)k;\n\
             \x20       }}\n\
             \x20   }}\n\
             \x20   return acc ^ (x * 0x9E3779B97F4A7C15ul);\n\
             }}\n",
            m = i % 5 + 1,
            a = i * 7 + 3,
            b = i % 11 + 1
        ));
    }
    s.push_str("typedef unsigned long (*fn)(unsigned long, struct rec *);\n");
    s.push_str("static fn table[] = {");
    for i in 0..n {
        s.push_str(&format!("f{i},"));
    }
    s.push_str("};\n");
    s.push_str(
        "int main(void) {\n\
         \x20   struct rec *head = NULL; unsigned long acc = 1;\n\
         \x20   for (int i = 0; i < 5000; i++) {\n\
         \x20       struct rec *r = malloc(sizeof *r); r->id = i; r->w = i / 3.0;\n\
         \x20       snprintf(r->name, sizeof r->name, \"rec%d\", i); r->next = head; head = r;\n\
         \x20       acc = table[i % (sizeof table / sizeof table[0])](acc + i, r);\n\
         \x20   }\n\
         \x20   double w = 0; int n = 0;\n\
         \x20   while (head) { struct rec *nx = head->next; w += head->w; n++; free(head); head = nx; }\n\
         \x20   printf(\"%lu %d %.3f\\n\", acc, n, w);\n\
         \x20   return 0;\n\
         }\n",
    );
    s
}

/// Runs `compiler flags -c src -o <dir>/<src stem>-<tag>.o` under `preload`; returns the
/// object file's path.
fn compile_object(compiler: &str, flags: &[&str], src: &Path, dir: &TempDir, tag: &str, preload: &Preload) -> PathBuf {
    let stem = src.file_stem().unwrap().to_string_lossy();
    let obj = dir.join(format!("{stem}-{tag}.o"));
    let mut c = Command::new(compiler);
    c.args(flags).arg("-c").arg(src).arg("-o").arg(&obj).current_dir(dir.path());
    let out = run(c, preload, TIMEOUT);
    assert!(out.success(), "{compiler} -c under {} failed:\n{}", preload.label(), out.describe());
    obj
}

/// gcc (cc1, as, collect2/ld all preloaded) compiles a generated file to an identical
/// object file, and the linked programs print the same thing.
#[test]
fn gcc_compiles_identically() {
    require("gcc");
    let dir = TempDir::new("gcc");
    let src = dir.join("gen.c");
    fs::write(&src, gen_c_source()).unwrap();
    let mut objects = Vec::new();
    let mut programs = Vec::new();
    for (tag, preload) in [("glibc", Preload::None), ("oxmalloc", Preload::Oxmalloc)] {
        let obj = compile_object("gcc", &["-O2", "-g", "-Wall"], &src, &dir, tag, &preload);
        objects.push(fs::read(&obj).unwrap());
        let exe = dir.join(format!("gen-{tag}"));
        let mut l = Command::new("gcc");
        l.arg(&obj).arg("-o").arg(&exe).current_dir(dir.path());
        let out = run(l, &preload, TIMEOUT);
        assert!(out.success(), "gcc link under {} failed:\n{}", preload.label(), out.describe());
        programs.push(exe);
    }
    assert!(objects[0] == objects[1], "gcc -O2 -g -c produced different object files with and without oxmalloc");
    let p0 = programs[0].clone();
    let p1 = programs[1].clone();
    let a = same_output("program built under glibc", &|| Command::new(&p0), None);
    let b = same_output("program built under oxmalloc", &|| Command::new(&p1), None);
    assert_eq!(a, b, "the two compiled programs print different results");
    assert!(String::from_utf8_lossy(&a).contains(" 5000 "), "unexpected program output {:?}", String::from_utf8_lossy(&a));
}

/// A C++ program (tests/c/cxx.cpp: operator new and delete of every kind, containers,
/// iostreams, exceptions, shared pointers, objects built and destroyed in different
/// std::threads) prints the same with and without the preload, and under it the
/// blocks of every kind of new are oxmalloc's.
#[test]
fn cxx_program_new_and_delete() {
    let exe = compile_c("cxx", &[]);
    let out = same_output("cxx", &|| cmd(&exe, &["8"]), None);
    let text = String::from_utf8_lossy(&out);
    for want in ["misaligned=0 ", "nothrow=null bad_alloc=1", "handoff destroyed=36000 ", "exceptions=360", "failures 0"] {
        assert!(text.contains(want), "cxx: no {want:?} in its output:\n{text}");
    }
    let ox = run(cmd(&exe, &["8"]), &Preload::Oxmalloc, TIMEOUT);
    assert!(
        ox.success() && ox.stderr_str().contains("oxmalloc loaded: 6 of 6 checks of new gave oxmalloc blocks"),
        "cxx: operator new did not hand out oxmalloc's blocks:\n{}",
        ox.describe()
    );
}

/// g++ (cc1plus, a C++ program itself) compiles tests/c/cxx.cpp to an identical object
/// file under oxmalloc.
#[test]
fn gxx_compiles_identically() {
    require("g++");
    let dir = TempDir::new("gxx");
    let src = repo_dir().join("tests").join("c").join("cxx.cpp");
    let mut objects = Vec::new();
    for (tag, preload) in [("glibc", Preload::None), ("oxmalloc", Preload::Oxmalloc)] {
        let obj = compile_object("g++", &["-O2", "-g", "-std=c++17"], &src, &dir, tag, &preload);
        objects.push(fs::read(&obj).unwrap());
    }
    assert!(objects[0] == objects[1], "g++ -O2 -g -c produced different object files with and without oxmalloc");
}

/// Shell pipelines: every process of the pipeline is preloaded.
#[test]
fn shell_pipelines() {
    for p in ["sh", "ls", "sort", "sha256sum", "wc"] {
        if !optional(p) {
            return;
        }
    }
    let dir = TempDir::new("pipeline");
    let input = dir.join("words.txt");
    fs::write(&input, gen_lines(50_000, 77)).unwrap();
    let pipelines = [
        "ls -lR /usr/include | sort | sha256sum; ls -lR /usr/include | wc",
        "find /usr/include -type f -name '*.h' | sort | head -2000 | xargs cat | sha256sum",
    ];
    for p in pipelines {
        let make = || {
            let mut c = Command::new("sh");
            c.arg("-c").arg(p).env("LC_ALL", "C");
            c
        };
        let out = same_output(p, &make, None);
        assert!(!out.is_empty(), "{p}: no output");
    }
    if which("awk").is_some() {
        let p = "awk '{for (i = 1; i <= NF; i++) c[$i]++} END {for (w in c) print c[w], w}' | sort | sha256sum";
        let make = || {
            let mut c = Command::new("sh");
            c.arg("-c").arg(p).env("LC_ALL", "C");
            c
        };
        same_output("awk word count", &make, Some(&input));
    } else {
        eprintln!("SKIP: awk is not installed");
    }
}
