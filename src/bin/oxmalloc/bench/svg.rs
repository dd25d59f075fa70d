//! `chart.svg`: two panels of grouped bars, time ratio to glibc and peak-RSS ratio to
//! glibc, one group per workload and one bar per allocator that ran it; a dashed line
//! at 1.0, axis labels, a legend, and a title with the machine and the date.
//!
//! Every (workload, allocator) that ran gets exactly one `<rect class="bar ...">` in
//! each panel (`class="bar failed"` with a status label when it failed, `bar na` when
//! no ratio exists); the panels are `<g id="panel-time">` and `<g id="panel-rss">`.

use std::fmt::Write as _;

use super::report::{self, Meta};
use super::stats::{Row, RowStatus, Summary};

/// Colours per allocator (others cycle through the spare ones).
fn colour(alloc: &str, i: usize) -> &'static str {
    match alloc {
        "glibc" => "#8c8c8c",
        "oxmalloc" => "#d62728",
        "jemalloc" => "#1f77b4",
        "mimalloc" => "#2ca02c",
        "tcmalloc" => "#ff7f0e",
        _ => ["#9467bd", "#8c564b", "#e377c2", "#17becf"][i % 4],
    }
}

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

const LEFT: f64 = 78.0;
const RIGHT: f64 = 52.0;
const TOP: f64 = 96.0;
const PANEL_H: f64 = 230.0;
const LABEL_H: f64 = 96.0; // room under a panel for the rotated workload names
const BAR_W: f64 = 13.0;
const GROUP_GAP: f64 = 20.0;
/// Bars above this many times glibc are clipped (their value is written on top).
const CAP: f64 = 4.0;

/// A "nice" axis top and tick step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let top = max.clamp(1.25, CAP);
    let step = if top <= 1.5 {
        0.25
    } else if top <= 3.0 {
        0.5
    } else {
        1.0
    };
    ((top / step).ceil() * step, step)
}

struct Panel<'a> {
    id: &'a str,
    ylabel: &'a str,
    ratio: fn(&Row) -> Option<f64>,
    absolute: fn(&Row) -> String,
}

fn bar_title(r: &Row, ratio: Option<f64>, absolute: &str) -> String {
    match (&r.status, ratio) {
        (RowStatus::Ok, Some(v)) => format!(
            "{} / {}: {v:.2}x glibc ({absolute})",
            r.workload, r.allocator
        ),
        (RowStatus::Ok, None) => format!(
            "{} / {}: no glibc reference ({absolute})",
            r.workload, r.allocator
        ),
        (s, _) => format!(
            "{} / {}: {}: {}",
            r.workload,
            r.allocator,
            s.label(),
            s.detail().unwrap_or("")
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn panel(
    o: &mut String,
    s: &Summary,
    p: &Panel,
    y0: f64,
    plot_w: f64,
    group_w: f64,
    slots: &[Vec<&Row>],
) {
    let max = s
        .rows
        .iter()
        .filter(|r| r.status == RowStatus::Ok)
        .filter_map(|r| (p.ratio)(r))
        .fold(1.0_f64, f64::max);
    let (top, step) = axis(max * 1.05);
    let y = |v: f64| y0 + PANEL_H - (v.min(top) / top) * PANEL_H;
    let _ = writeln!(o, "<g id=\"{}\">", p.id);
    // frame, grid and ticks
    let _ = writeln!(
        o,
        "<rect class=\"frame\" x=\"{LEFT}\" y=\"{y0}\" width=\"{plot_w:.1}\" height=\"{PANEL_H}\" fill=\"#fafafa\" stroke=\"#cccccc\"/>"
    );
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let yy = y(v);
        let _ = writeln!(
            o,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e6e6e6\"/>",
            LEFT + plot_w
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.2}</text>",
            LEFT - 6.0,
            yy + 4.0
        );
        v += step;
    }
    // y axis label
    let cy = y0 + PANEL_H / 2.0;
    let _ = writeln!(
        o,
        "<text class=\"axis-label\" x=\"18\" y=\"{cy:.1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 18 {cy:.1})\">{}</text>",
        esc(p.ylabel)
    );
    // bars
    for (gi, rows) in slots.iter().enumerate() {
        // the group's bars, centred in its slot
        let gx = LEFT + gi as f64 * group_w + (group_w - rows.len() as f64 * BAR_W) / 2.0;
        for (bi, r) in rows.iter().enumerate() {
            let x = gx + bi as f64 * BAR_W;
            let ai = s
                .allocators
                .iter()
                .position(|a| *a == r.allocator)
                .unwrap_or(0);
            let fill = colour(r.allocator, ai);
            let ratio = (p.ratio)(r);
            let title = esc(&bar_title(r, ratio, &(p.absolute)(r)));
            let attrs = format!(
                "data-workload=\"{}\" data-allocator=\"{}\"",
                esc(r.workload),
                esc(r.allocator)
            );
            match (&r.status, ratio) {
                (RowStatus::Ok, Some(val)) => {
                    let yt = y(val);
                    let h = (y0 + PANEL_H - yt).max(0.5);
                    let _ = writeln!(
                        o,
                        "<rect class=\"bar\" {attrs} x=\"{:.1}\" y=\"{yt:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{fill}\"><title>{title}</title></rect>",
                        x + 1.0,
                        BAR_W - 2.0
                    );
                    if val > top {
                        // clipped: the value above the frame
                        let _ = writeln!(
                            o,
                            "<text class=\"clipped\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#333\">{val:.1}</text>",
                            x + BAR_W / 2.0,
                            y0 - 3.0
                        );
                    }
                }
                (RowStatus::Ok, None) => {
                    let _ = writeln!(
                        o,
                        "<rect class=\"bar na\" {attrs} x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"2\" fill=\"{fill}\"><title>{title}</title></rect>",
                        x + 1.0,
                        y0 + PANEL_H - 2.0,
                        BAR_W - 2.0
                    );
                }
                (status, _) => {
                    let base = y0 + PANEL_H;
                    let _ = writeln!(
                        o,
                        "<rect class=\"bar failed\" {attrs} x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"4\" fill=\"#ffffff\" stroke=\"#b00000\"><title>{title}</title></rect>",
                        x + 1.0,
                        base - 4.0,
                        BAR_W - 2.0
                    );
                    let tx = x + BAR_W / 2.0 + 3.0;
                    let ty = base - 8.0;
                    let _ = writeln!(
                        o,
                        "<text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"9\" fill=\"#b00000\" transform=\"rotate(-90 {tx:.1} {ty:.1})\">{}</text>",
                        status.label()
                    );
                }
            }
        }
        // workload label under the group
        if let Some(first) = rows.first() {
            let lx = gx + rows.len() as f64 * BAR_W / 2.0;
            let ly = y0 + PANEL_H + 14.0;
            let _ = writeln!(
                o,
                "<text class=\"workload\" x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" text-anchor=\"end\" transform=\"rotate(-35 {lx:.1} {ly:.1})\">{}</text>",
                esc(first.workload)
            );
        }
    }
    // the 1.0 line
    let y1 = y(1.0);
    let _ = writeln!(
        o,
        "<line class=\"baseline\" x1=\"{LEFT}\" y1=\"{y1:.1}\" x2=\"{:.1}\" y2=\"{y1:.1}\" stroke=\"#000000\" stroke-width=\"1\" stroke-dasharray=\"5 3\"/>",
        LEFT + plot_w
    );
    let _ = writeln!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">= glibc</text>",
        LEFT + plot_w + 4.0,
        y1 + 3.5
    );
    // x axis label
    let _ = writeln!(
        o,
        "<text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">workload</text>",
        LEFT + plot_w / 2.0,
        y0 + PANEL_H + LABEL_H - 8.0
    );
    o.push_str("</g>\n");
}

pub fn chart(s: &Summary, meta: &Meta) -> String {
    // bars per workload: the rows that ran, in allocator order
    let slots: Vec<Vec<&Row>> = s
        .workloads
        .iter()
        .map(|w| {
            s.allocators
                .iter()
                .filter_map(|a| s.row(w, a))
                .filter(|r| r.status.ran())
                .collect::<Vec<&Row>>()
        })
        .collect();
    let title = format!(
        "oxmalloc bench: time and peak RSS relative to glibc ({} suite, median of {})",
        meta.mode,
        report::count(meta.reps, "run")
    );
    let subtitle = format!("{} \u{b7} {}", meta.machine.summary(), meta.started.human());
    // wide enough for the bars, and for the title (about 9.5 px per bold 16 px character)
    let nalloc = s.allocators.len().max(1) as f64;
    let ngroups = slots.len().max(1) as f64;
    let text_w = (title.chars().count() as f64 * 9.5).max(subtitle.chars().count() as f64 * 7.0);
    let plot_w = (ngroups * (nalloc * BAR_W + GROUP_GAP))
        .max(560.0)
        .max(text_w - RIGHT);
    let group_w = plot_w / ngroups;
    let width = LEFT + plot_w + RIGHT;
    let height = TOP + 2.0 * (PANEL_H + LABEL_H) + 10.0;

    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">"
    );
    let _ = writeln!(o, "<rect class=\"background\" x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"#ffffff\"/>");
    let _ = writeln!(o, "<title>{}</title>", esc(&title));
    let _ = writeln!(o, "<text class=\"title\" x=\"{LEFT}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>", esc(&title));
    let _ = writeln!(
        o,
        "<text class=\"subtitle\" x=\"{LEFT}\" y=\"44\" font-size=\"12\" fill=\"#444\">{}</text>",
        esc(&subtitle)
    );

    // legend
    let mut lx = LEFT;
    o.push_str("<g id=\"legend\">\n");
    for (i, a) in s.allocators.iter().enumerate() {
        let _ = writeln!(
            o,
            "<rect class=\"legend\" x=\"{lx:.1}\" y=\"58\" width=\"12\" height=\"12\" fill=\"{}\"/>",
            colour(a, i)
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"69\" font-size=\"12\">{}</text>",
            lx + 16.0,
            esc(a)
        );
        lx += 24.0 + 8.0 * a.chars().count() as f64;
    }
    let _ = writeln!(
        o,
        "<text x=\"{:.1}\" y=\"69\" font-size=\"11\" fill=\"#666\">lower is better; bars above {CAP:.0}x are clipped</text>",
        lx + 12.0
    );
    o.push_str("</g>\n");

    let time = Panel {
        id: "panel-time",
        ylabel: "wall time / glibc",
        ratio: |r| r.time_ratio,
        absolute: |r| {
            r.time
                .map(|t| format!("{:.3} s", t.median))
                .unwrap_or_else(|| "-".into())
        },
    };
    let rss = Panel {
        id: "panel-rss",
        ylabel: "peak RSS / glibc",
        ratio: |r| r.rss_ratio,
        absolute: |r| {
            r.rss
                .map(|m| format!("{:.1} MiB", m.median / 1024.0))
                .unwrap_or_else(|| "-".into())
        },
    };
    panel(&mut o, s, &time, TOP, plot_w, group_w, &slots);
    panel(
        &mut o,
        s,
        &rss,
        TOP + PANEL_H + LABEL_H,
        plot_w,
        group_w,
        &slots,
    );
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_nice() {
        assert_eq!(axis(0.5), (1.25, 0.25));
        assert_eq!(axis(2.2), (2.5, 0.5));
        assert_eq!(axis(30.0), (4.0, 1.0));
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
