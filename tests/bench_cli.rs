//! End-to-end test of `oxmalloc bench`: a quick run under glibc and oxmalloc, one
//! repetition, without redis; checks the exit code, the printed table, and that
//! results.csv, results.json and chart.svg are complete and well-formed. No timing
//! assertions: the figures themselves are not checked, only their shape.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const ALLOCATORS: [&str; 2] = ["glibc", "oxmalloc"];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_oxmalloc")
}

/// Workload names from `oxmalloc bench --list`.
fn listed_workloads() -> Vec<String> {
    let out = Command::new(bin())
        .args(["bench", "--list"])
        .output()
        .expect("run oxmalloc bench --list");
    assert!(
        out.status.success(),
        "bench --list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut names = Vec::new();
    let mut in_workloads = false;
    for line in text.lines() {
        if line.starts_with("workloads:") {
            in_workloads = true;
        } else if !line.starts_with(' ') {
            in_workloads = false;
        } else if in_workloads {
            names.push(
                line.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert!(names.len() >= 10, "too few workloads listed:\n{text}");
    names
}

/// (workload, allocator) pairs of the printed table, geomean rows included.
fn table_pairs(stdout: &str) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("workload "));
    lines.next(); // header
    lines.next(); // rule
    let mut current = String::new();
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with('-') {
            continue; // rule before the geomean rows
        }
        let mut words = line.split_whitespace();
        let alloc = if line.starts_with(' ') {
            words.next()
        } else {
            current = words.next().unwrap_or_default().to_string();
            words.next()
        };
        if let Some(a) = alloc {
            pairs.insert((current.clone(), a.to_string()));
        }
    }
    pairs
}

/// Workloads the run reported as not run at all ("  workload NAME: reason").
fn not_run(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("workload "))
        .filter_map(|rest| rest.split(':').next())
        .map(|s| s.trim().to_string())
        .collect()
}

/// Split one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

// ---- a minimal JSON parser (validity + structure), no serde ----

#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Num,
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }
    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            self.err(&format!("expected {lit}"))
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut kv = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(kv));
                }
                loop {
                    self.ws();
                    let Json::Str(k) = self.string()? else {
                        unreachable!()
                    };
                    self.ws();
                    self.eat(":")?;
                    let v = self.value()?;
                    kv.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(kv));
                        }
                        _ => return self.err("expected , or }"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return self.err("expected , or ]"),
                    }
                }
            }
            Some(b'"') => self.string(),
            Some(b't') => self.eat("true").map(|_| Json::Bool),
            Some(b'f') => self.eat("false").map(|_| Json::Bool),
            Some(b'n') => self.eat("null").map(|_| Json::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
                    )
                {
                    self.i += 1;
                }
                let text =
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                let ok_syntax =
                    !text.starts_with("-.") && !text.ends_with('.') && !text.starts_with('.');
                let leading_zero = text.trim_start_matches('-').starts_with('0')
                    && text.trim_start_matches('-').len() > 1
                    && !text.trim_start_matches('-')[1..].starts_with(['.', 'e', 'E']);
                if text.parse::<f64>().is_err() || !ok_syntax || leading_zero {
                    return self.err(&format!("bad number {text}"));
                }
                Ok(Json::Num)
            }
            _ => self.err("unexpected character"),
        }
    }
    fn string(&mut self) -> Result<Json, String> {
        self.eat("\"")?;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'"' => {
                    return Ok(Json::Str(
                        String::from_utf8(out).map_err(|e| e.to_string())?,
                    ))
                }
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' | b'f' => out.push(b' '),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return self.err("bad \\u escape");
                            }
                            self.i += 4;
                            out.push(b'?');
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                c if c < 0x20 => return self.err("control character in string"),
                c => out.push(c),
            }
        }
        self.err("unterminated string")
    }
}

fn parse_json(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return p.err("trailing characters");
    }
    Ok(v)
}

// ---- SVG: tags balance ----

/// Checks that every element is closed in order; returns the number of elements.
fn check_tags(svg: &str) -> Result<usize, String> {
    let b = svg.as_bytes();
    let mut stack: Vec<String> = Vec::new();
    let mut count = 0;
    let mut i = 0;
    while let Some(off) = svg[i..].find('<') {
        let start = i + off;
        if svg[start..].starts_with("<!--") {
            let end = svg[start..].find("-->").ok_or("unterminated comment")?;
            i = start + end + 3;
            continue;
        }
        // find the closing '>' outside quotes
        let mut j = start + 1;
        let mut quote: Option<u8> = None;
        while j < b.len() {
            match (b[j], quote) {
                (b'"' | b'\'', None) => quote = Some(b[j]),
                (q, Some(open)) if q == open => quote = None,
                (b'>', None) => break,
                (b'<', None) => return Err(format!("'<' inside a tag at byte {j}")),
                _ => {}
            }
            j += 1;
        }
        if j >= b.len() {
            return Err(format!("unterminated tag at byte {start}"));
        }
        let tag = &svg[start + 1..j];
        i = j + 1;
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => return Err(format!("</{name}> closes <{open}>")),
                None => return Err(format!("</{name}> without an open element")),
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        if name.is_empty() {
            return Err(format!("empty tag name at byte {start}"));
        }
        count += 1;
        if !tag.ends_with('/') {
            stack.push(name);
        }
        // text between tags must not contain a bare '&' that is not an entity
        let text_end = svg[i..].find('<').map_or(svg.len(), |k| i + k);
        let text = &svg[i..text_end];
        for (k, _) in text.match_indices('&') {
            let rest = &text[k..];
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                .iter()
                .any(|e| rest.starts_with(e));
            if !ok {
                return Err(format!("bare '&' in text near byte {}", i + k));
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> is never closed"));
    }
    Ok(count)
}

/// The text of the element `<g id="ID">...</g>` (no nested <g> inside, as the chart writes them).
fn group<'a>(svg: &'a str, id: &str) -> &'a str {
    let open = format!("<g id=\"{id}\">");
    let start = svg
        .find(&open)
        .unwrap_or_else(|| panic!("chart.svg has no {open}"));
    let end = svg[start..].find("</g>").expect("group is closed") + start;
    &svg[start..end]
}

#[test]
fn bench_quick_glibc_oxmalloc() {
    let workloads = listed_workloads();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-cli-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let run = Command::new(bin())
        .args([
            "bench",
            "--quick",
            "--only",
            "glibc,oxmalloc",
            "--reps",
            "1",
            "--skip",
            "redis",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run oxmalloc bench");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        run.status.success(),
        "oxmalloc bench exited with {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status
    );

    // -- the printed table
    let skipped = not_run(&stdout);
    let expected: Vec<&String> = workloads
        .iter()
        .filter(|w| *w != "redis" && !skipped.contains(*w))
        .collect();
    assert!(
        expected.len() >= 9,
        "too many workloads not run: {skipped:?}\n{stdout}"
    );
    let pairs = table_pairs(&stdout);
    for w in &expected {
        for a in ALLOCATORS {
            assert!(
                pairs.contains(&(w.to_string(), a.to_string())),
                "no table row for {w}/{a}:\n{stdout}"
            );
        }
    }
    for a in ALLOCATORS {
        assert!(
            pairs.contains(&("geomean".to_string(), a.to_string())),
            "no geomean row for {a}:\n{stdout}"
        );
    }
    assert!(
        !pairs.iter().any(|(w, _)| w == "redis"),
        "redis ran although skipped"
    );
    // the progress lines (plain lines: stderr is not a terminal here)
    assert!(
        stderr.contains("[1/") && stderr.contains("rep 1/1"),
        "no progress lines on stderr:\n{stderr}"
    );
    if stdout.contains("FAILED") || stdout.contains("TIMEOUT") || stdout.contains("MISMATCH") {
        eprintln!("note: some runs failed (not a failure of this test):\n{stdout}");
    }

    // -- results.csv
    let csv = fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().expect("CSV header"));
    assert_eq!(
        &header[..5],
        ["workload", "allocator", "status", "reps_ok", "reps"]
    );
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let data_rows: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] != "geomean").collect();
    assert_eq!(
        data_rows.len(),
        expected.len() * ALLOCATORS.len(),
        "CSV data rows:\n{csv}"
    );
    assert_eq!(
        rows.len() - data_rows.len(),
        ALLOCATORS.len(),
        "CSV geomean rows:\n{csv}"
    );
    let numeric = [
        "reps_ok",
        "reps",
        "median_s",
        "min_s",
        "max_s",
        "q1_s",
        "q3_s",
        "peak_rss_kib",
        "rss_min_kib",
        "rss_max_kib",
        "time_ratio",
        "rss_ratio",
        "checksum_ok",
        "max_rss_over_live",
    ];
    for r in &rows {
        assert_eq!(
            r.len(),
            header.len(),
            "CSV row with {} fields, header has {}: {r:?}",
            r.len(),
            header.len()
        );
        for name in numeric {
            let k = header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("no CSV column {name}"));
            let v = &r[k];
            assert!(
                v.is_empty() || v.parse::<f64>().is_ok(),
                "CSV {name}={v:?} is not a number in {r:?}"
            );
        }
    }
    for r in &data_rows {
        let k = header.iter().position(|h| h == "median_s").unwrap_or(5);
        if r[2] == "ok" {
            assert!(!r[k].is_empty(), "ok row without a time: {r:?}");
        }
    }

    // -- results.json
    let json_text = fs::read_to_string(out.join("results.json")).expect("results.json");
    let json =
        parse_json(&json_text).unwrap_or_else(|e| panic!("results.json is not valid JSON: {e}"));
    match json.get("results") {
        Some(Json::Arr(items)) => {
            assert_eq!(items.len(), data_rows.len(), "results.json rows");
            for it in items {
                assert!(matches!(it.get("workload"), Some(Json::Str(_))));
                assert!(matches!(it.get("runs"), Some(Json::Arr(_))));
            }
        }
        other => panic!("results.json has no results array: {other:?}"),
    }
    assert!(matches!(json.get("geomean"), Some(Json::Arr(g)) if g.len() == ALLOCATORS.len()));
    assert!(matches!(json.get("machine"), Some(Json::Obj(_))));

    // -- chart.svg
    let svg = fs::read_to_string(out.join("chart.svg")).expect("chart.svg");
    let trimmed = svg.trim();
    assert!(
        trimmed.starts_with("<svg"),
        "chart.svg does not start with <svg"
    );
    assert!(
        trimmed.ends_with("</svg>"),
        "chart.svg does not end with </svg>"
    );
    let elements = check_tags(&svg).unwrap_or_else(|e| panic!("chart.svg is not well-formed: {e}"));
    assert!(elements > 20);
    let ran = data_rows.iter().filter(|r| r[2] != "SKIPPED").count();
    for panel in ["panel-time", "panel-rss"] {
        let bars = group(&svg, panel).matches("<rect class=\"bar").count();
        assert_eq!(
            bars, ran,
            "{panel}: {bars} bars for {ran} (workload, allocator) pairs"
        );
    }

    // -- README-table.md: a markdown table with a row per workload and a geomean row
    let md = fs::read_to_string(out.join("README-table.md")).expect("README-table.md");
    for w in &expected {
        assert!(
            md.contains(&format!("| {w} |")),
            "README-table.md has no row for {w}"
        );
    }
    assert!(md.contains("geomean"));

    let _ = fs::remove_dir_all(&out);
}

#[test]
fn bench_rejects_bad_arguments() {
    for args in [
        &["bench", "--reps", "0"][..],
        &["bench", "--only", "nosuchalloc"],
        &["bench", "--bogus"],
        &["bench", "--with", "nolib"],
        &["bench", "--with", "glibc=/lib/x.so"],
    ] {
        let out = Command::new(bin())
            .args(args)
            .output()
            .expect("run oxmalloc bench");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} should be a usage error"
        );
        assert!(!out.stderr.is_empty());
    }
}

/// The liboxmalloc.so that `cargo test` built (the bench finds it the same way).
fn built_lib() -> PathBuf {
    let dir = PathBuf::from(bin())
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let deps = dir.join("deps").join("liboxmalloc.so");
    if deps.is_file() {
        deps
    } else {
        dir.join("liboxmalloc.so")
    }
}

#[test]
fn bench_with_runs_another_library_beside_the_others() {
    let lib = built_lib();
    assert!(lib.is_file(), "{} not built", lib.display());
    // A copy under another name: `--with` must preload exactly the file it is given.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-with-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    let copy = tmp.join("libcopy.so");
    fs::copy(&lib, &copy).unwrap();
    // `bench --quick --only glibc --workloads larson-2t --reps 1 --with SPEC --out OUT`
    let bench_with = |spec: String, out: &PathBuf| {
        Command::new(bin())
            .args([
                "bench",
                "--quick",
                "--only",
                "glibc",
                "--workloads",
                "larson-2t",
                "--reps",
                "1",
                "--with",
            ])
            .arg(spec)
            .arg("--out")
            .arg(out)
            .output()
            .expect("run oxmalloc bench")
    };
    let out = tmp.join("out");
    let run = bench_with(format!("copy={}", copy.display()), &out);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "bench --with failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let pairs = table_pairs(&stdout);
    for a in ["glibc", "copy"] {
        assert!(
            pairs.contains(&("larson-2t".to_string(), a.to_string())),
            "no row for {a}:\n{stdout}"
        );
    }
    assert!(
        !pairs.iter().any(|(_, a)| a == "oxmalloc"),
        "--only glibc ran oxmalloc:\n{stdout}"
    );
    let csv = fs::read_to_string(out.join("results.csv")).unwrap();
    let row = csv
        .lines()
        .map(csv_fields)
        .find(|f| {
            f.first().map(String::as_str) == Some("larson-2t")
                && f.get(1).map(String::as_str) == Some("copy")
        })
        .unwrap_or_else(|| panic!("no larson-2t/copy row in results.csv:\n{csv}"));
    assert_eq!(
        row.get(2).map(String::as_str),
        Some("ok"),
        "larson-2t under the copy: {row:?}"
    );
    let json = fs::read_to_string(out.join("results.json")).unwrap();
    assert!(
        json.contains(&copy.display().to_string()),
        "results.json does not name the library"
    );

    // A library that is not there is an error, before anything runs.
    let missing = bench_with(
        format!("gone={}", tmp.join("nope.so").display()),
        &tmp.join("out2"),
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    let _ = fs::remove_dir_all(&tmp);
}

#[test]
fn checkers_catch_bad_output() {
    assert!(check_tags("<svg><g><rect/></g></svg>").is_ok());
    assert!(check_tags("<svg><g></svg>").is_err());
    assert!(check_tags("<svg><text>a & b</text></svg>").is_err());
    assert!(parse_json("{\"a\": [1, 2.5, -3e2, null, true], \"b\": \"x\\n\"}").is_ok());
    assert!(parse_json("{\"a\": [1, 2,]}").is_err());
    assert!(parse_json("{\"a\": NaN}").is_err());
    assert!(parse_json("{\"a\": 01}").is_err());
    assert_eq!(
        csv_fields("a,\"b,c\",\"d\"\"e\","),
        ["a", "b,c", "d\"e", ""]
    );
}
