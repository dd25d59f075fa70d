//! `results.csv` and `results.json`, written by hand (no serde).
//!
//! CSV: one row per (workload, allocator), then one `geomean` row per allocator (whose
//! per-workload columns are empty). Empty field = not available.
//! JSON: machine, run parameters, allocators, rows (with every repetition), geomeans.

use std::fmt::Write as _;

use super::report::{self, Meta};
use super::stats::{Spread, Summary};
use super::suite::{Outcome, RunStatus};

pub const CSV_HEADER: &str = "workload,allocator,status,reps_ok,reps,median_s,min_s,max_s,q1_s,q3_s,\
peak_rss_kib,rss_min_kib,rss_max_kib,time_ratio,rss_ratio,checksum,checksum_ok,max_rss_over_live,detail";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => String::new(),
    }
}

pub fn csv(s: &Summary) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in &s.rows {
        let t = r.time;
        let m = r.rss;
        let fields = [
            csv_field(r.workload),
            csv_field(r.allocator),
            r.status.label().to_string(),
            r.reps_ok.to_string(),
            r.reps.to_string(),
            num(t.map(|x| x.median), 6),
            num(t.map(|x| x.min), 6),
            num(t.map(|x| x.max), 6),
            num(t.map(|x| x.q1), 6),
            num(t.map(|x| x.q3), 6),
            num(m.map(|x| x.median), 0),
            num(m.map(|x| x.min), 0),
            num(m.map(|x| x.max), 0),
            num(r.time_ratio, 4),
            num(r.rss_ratio, 4),
            csv_field(r.checksum.as_deref().unwrap_or("")),
            r.checksum_ok
                .map(|b| if b { "1" } else { "0" })
                .unwrap_or("")
                .to_string(),
            num(r.extra.map(|(_, v)| v), 3),
            csv_field(r.status.detail().unwrap_or("")),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    for g in &s.geo {
        let mut fields = vec![String::new(); 19];
        fields[0] = "geomean".into();
        fields[1] = csv_field(g.allocator);
        fields[2] = "geomean".into();
        fields[3] = g.n.to_string();
        fields[4] = g.n.to_string();
        fields[13] = num(g.time_ratio, 4);
        fields[14] = num(g.rss_ratio, 4);
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// A JSON string literal.
pub fn jstr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number, or null for None/NaN/inf.
fn jnum(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            let s = format!("{x}");
            // Rust prints integral floats as "3"; fine for JSON. Never "inf"/"NaN" here.
            s
        }
        _ => "null".into(),
    }
}

fn jopt_str(v: Option<&str>) -> String {
    v.map(jstr).unwrap_or_else(|| "null".into())
}

fn jspread(s: Option<Spread>) -> String {
    match s {
        None => "null".into(),
        Some(s) => format!(
            "{{\"median\": {}, \"min\": {}, \"max\": {}, \"q1\": {}, \"q3\": {}, \"n\": {}}}",
            jnum(Some(s.median)),
            jnum(Some(s.min)),
            jnum(Some(s.max)),
            jnum(Some(s.q1)),
            jnum(Some(s.q3)),
            s.n
        ),
    }
}

pub fn json(s: &Summary, meta: &Meta, outcome: &Outcome) -> String {
    let mut o = String::from("{\n");
    let m = &meta.machine;
    let _ = writeln!(o, "  \"tool\": \"oxmalloc bench\",");
    let _ = writeln!(o, "  \"title\": {},", jstr(&report::title(meta)));
    let _ = writeln!(o, "  \"date\": {},", jstr(&meta.started.iso()));
    let _ = writeln!(o, "  \"mode\": {},", jstr(meta.mode));
    let _ = writeln!(o, "  \"reps\": {},", meta.reps);
    let _ = writeln!(
        o,
        "  \"machine\": {{\"nproc\": {}, \"cpu_model\": {}, \"mem_gib\": {}, \"kernel\": {}, \"glibc\": {}}},",
        m.nproc,
        jstr(&m.cpu_model),
        jnum(Some((m.mem_gib * 10.0).round() / 10.0)),
        jstr(&m.kernel),
        jstr(&m.glibc)
    );
    let _ = writeln!(
        o,
        "  \"units\": {{\"time\": \"s (wall time of the workload process)\", \"rss\": \"KiB (ru_maxrss)\"}},"
    );
    let _ = writeln!(o, "  \"rss_floor_kib\": {},", meta.rss_floor_kib);

    let allocs: Vec<String> = meta
        .allocators
        .iter()
        .map(|(n, how)| format!("    {{\"name\": {}, \"load\": {}}}", jstr(n), jstr(how)))
        .collect();
    let _ = writeln!(o, "  \"allocators\": [\n{}\n  ],", allocs.join(",\n"));
    let missing: Vec<String> = meta
        .missing
        .iter()
        .map(|(n, reason, hint)| {
            format!(
                "    {{\"name\": {}, \"reason\": {}, \"hint\": {}}}",
                jstr(n),
                jstr(reason),
                jopt_str(hint.as_deref())
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "  \"missing_allocators\": [{}{}],",
        if missing.is_empty() { "" } else { "\n" },
        {
            let mut t = missing.join(",\n");
            if !missing.is_empty() {
                t.push_str("\n  ");
            }
            t
        }
    );
    let skipped: Vec<String> = s
        .skipped_workloads
        .iter()
        .map(|(n, r)| format!("{{\"name\": {}, \"reason\": {}}}", jstr(n), jstr(r)))
        .collect();
    let _ = writeln!(o, "  \"skipped_workloads\": [{}],", skipped.join(", "));

    let mut rows = Vec::new();
    for r in &s.rows {
        let pair = outcome
            .pairs
            .iter()
            .find(|p| p.workload.name == r.workload && p.allocator == r.allocator);
        let runs: Vec<String> = pair
            .map(|p| {
                p.runs
                    .iter()
                    .map(|run| {
                        let (status, err) = match &run.status {
                            RunStatus::Ok => ("ok", None),
                            RunStatus::Failed(e) => ("failed", Some(e.as_str())),
                            RunStatus::Timeout(e) => ("timeout", Some(e.as_str())),
                        };
                        let metrics: Vec<String> =
                            run.metrics.iter().map(|(k, v)| format!("{}: {}", jstr(k), jnum(Some(*v)))).collect();
                        format!(
                            "{{\"rep\": {}, \"status\": {}, \"error\": {}, \"wall_s\": {}, \"rss_kib\": {}, \
                             \"checksum\": {}, \"metrics\": {{{}}}}}",
                            run.rep,
                            jstr(status),
                            jopt_str(err),
                            jnum(Some(run.wall_s)),
                            run.rss_kib,
                            jopt_str(run.checksum.as_deref()),
                            metrics.join(", ")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let extra = match r.extra {
            Some((n, v)) => format!("{{{}: {}}}", jstr(n), jnum(Some(v))),
            None => "{}".into(),
        };
        rows.push(format!(
            "    {{\"workload\": {}, \"allocator\": {}, \"status\": {}, \"detail\": {}, \"reps_ok\": {}, \
             \"reps\": {},\n     \"time_s\": {},\n     \"rss_kib\": {},\n     \"time_ratio\": {}, \
             \"rss_ratio\": {}, \"checksum\": {}, \"checksum_ok\": {}, \"extra\": {},\n     \"runs\": [\n       {}\n     ]}}",
            jstr(r.workload),
            jstr(r.allocator),
            jstr(r.status.label()),
            jopt_str(r.status.detail()),
            r.reps_ok,
            r.reps,
            jspread(r.time),
            jspread(r.rss),
            jnum(r.time_ratio),
            jnum(r.rss_ratio),
            jopt_str(r.checksum.as_deref()),
            r.checksum_ok.map(|b| b.to_string()).unwrap_or_else(|| "null".into()),
            extra,
            runs.join(",\n       ")
        ));
    }
    let _ = writeln!(o, "  \"results\": [\n{}\n  ],", rows.join(",\n"));
    let geo: Vec<String> = s
        .geo
        .iter()
        .map(|g| {
            format!(
                "    {{\"allocator\": {}, \"time_ratio\": {}, \"rss_ratio\": {}, \"n\": {}}}",
                jstr(g.allocator),
                jnum(g.time_ratio),
                jnum(g.rss_ratio),
                g.n
            )
        })
        .collect();
    let _ = writeln!(o, "  \"geomean\": [\n{}\n  ],", geo.join(",\n"));
    let notes: Vec<String> = report::notes(s, meta)
        .iter()
        .map(|n| format!("    {}", jstr(n)))
        .collect();
    let _ = writeln!(o, "  \"notes\": [\n{}\n  ]", notes.join(",\n"));
    o.push_str("}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(jstr("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(jnum(Some(f64::NAN)), "null");
        assert_eq!(jnum(Some(1.5)), "1.5");
    }
}
