//! `oxmalloc run --map heap.svg`: the heap map data the library writes at exit
//! (`OXMALLOC_MAP`, see src/heap_map.rs for the format) read back and drawn as SVG.
//!
//! Each region ("segment") of each arena is a block of rows of cells, one cell per
//! page (several per cell for a region too long to draw page by page; the scale is
//! written beside it), left to right in address order. Spans of small blocks are
//! coloured by size class and shaded by occupancy (blocks in use / capacity); big
//! blocks, free runs (dirty, decommitted, the top of the heap) and empty spans kept
//! ready have colours of their own; pages that are not resident are hatched. The
//! program break is a red mark where it lies. Large mmapped blocks are drawn beside
//! the heap on the same kind of rows. Every element has a `<title>` (hover text).
//!
//! In the SVG each segment is a `<g class="segment">` and each large block a
//! `<g class="large">`, which tests count.

use std::fmt::Write as _;

#[derive(Debug, Default)]
pub struct HeapMap {
    pub pid: u64,
    pub page: u64,
    pub brk: u64,
    pub classes: Vec<u64>,
    pub regions: Vec<Region>,
    pub large: Vec<Large>,
}

#[derive(Debug)]
pub struct Region {
    pub arena: u64,
    pub start: u64,
    pub end: u64,
    pub kind: String,
    pub items: Vec<Item>,
}

#[derive(Debug)]
pub enum Item {
    Small { start: u64, pages: u64, class: usize, block: u64, used: u64, capacity: u64, holder: String, resident: u64 },
    Big { start: u64, pages: u64, resident: u64 },
    Free { start: u64, pages: u64, state: String, resident: u64 },
}

#[derive(Debug)]
pub struct Large {
    pub start: u64,
    pub bytes: u64,
    pub resident: u64,
}

impl Item {
    fn start(&self) -> u64 {
        match self {
            Item::Small { start, .. } | Item::Big { start, .. } | Item::Free { start, .. } => *start,
        }
    }
    fn pages(&self) -> u64 {
        match self {
            Item::Small { pages, .. } | Item::Big { pages, .. } | Item::Free { pages, .. } => *pages,
        }
    }
    fn resident(&self) -> u64 {
        match self {
            Item::Small { resident, .. } | Item::Big { resident, .. } | Item::Free { resident, .. } => *resident,
        }
    }
}

fn num(s: Option<&str>, line: usize) -> Result<u64, String> {
    let s = s.ok_or_else(|| format!("line {line}: missing field"))?;
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("line {line}: bad number {s:?}"))
}

/// Parses the data file.
pub fn parse(text: &str) -> Result<HeapMap, String> {
    let mut map = HeapMap { page: 4096, ..HeapMap::default() };
    let mut arena = 0;
    let mut ended = false;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, "oxmalloc-heap-map 1")) => {}
        other => return Err(format!("not an oxmalloc heap map (first line {:?})", other.map(|l| l.1))),
    }
    for (i, line) in lines {
        let n = i + 1;
        let mut f = line.split_whitespace();
        let Some(tag) = f.next() else { continue };
        fn region(map: &mut HeapMap, n: usize) -> Result<&mut Region, String> {
            map.regions.last_mut().ok_or_else(|| format!("line {n}: span before any region"))
        }
        match tag {
            "pid" => map.pid = num(f.next(), n)?,
            "page" => map.page = num(f.next(), n)?.max(1),
            "brk" => map.brk = num(f.next(), n)?,
            "classes" => map.classes = f.map(|v| num(Some(v), n)).collect::<Result<_, _>>()?,
            "arena" => arena = num(f.next(), n)?,
            "region" => {
                let start = num(f.next(), n)?;
                let end = num(f.next(), n)?;
                let kind = f.next().unwrap_or("?").to_string();
                map.regions.push(Region { arena, start, end, kind, items: Vec::new() });
            }
            "small" => {
                let item = Item::Small {
                    start: num(f.next(), n)?,
                    pages: num(f.next(), n)?,
                    class: num(f.next(), n)? as usize,
                    block: num(f.next(), n)?,
                    used: num(f.next(), n)?,
                    capacity: num(f.next(), n)?,
                    holder: f.next().unwrap_or("?").to_string(),
                    resident: num(f.next(), n)?,
                };
                region(&mut map, n)?.items.push(item);
            }
            "big" => {
                let item = Item::Big { start: num(f.next(), n)?, pages: num(f.next(), n)?, resident: num(f.next(), n)? };
                region(&mut map, n)?.items.push(item);
            }
            "free" => {
                let start = num(f.next(), n)?;
                let pages = num(f.next(), n)?;
                let state = f.next().unwrap_or("?").to_string();
                let item = Item::Free { start, pages, state, resident: num(f.next(), n)? };
                region(&mut map, n)?.items.push(item);
            }
            "large" => {
                let l = Large { start: num(f.next(), n)?, bytes: num(f.next(), n)?, resident: num(f.next(), n)? };
                map.large.push(l);
            }
            "end" => ended = true,
            _ => {} // a later version's lines: skipped
        }
    }
    if !ended {
        return Err("the heap map is cut short (no `end` line): did the program exit normally?".into());
    }
    Ok(map)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1 << 20) as f64 {
        format!("{:.1} MiB", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// A colour per size class, from 24 well-separated colours (classes 24 apart, a
/// factor of 16 or more in block size, share one; the hover text tells them apart).
fn class_colour(class: usize) -> &'static str {
    const PALETTE: [&str; 24] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
        "#bcbd22", "#393b79", "#e6550d", "#31a354", "#843c39", "#7b4173", "#3182bd", "#637939",
        "#d6616b", "#6b6ecf", "#fd8d3c", "#74c476", "#ce6dbd", "#9c9ede", "#e7ba52", "#17a589",
    ];
    PALETTE[class % PALETTE.len()]
}

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 20.0;
const CELLS: u64 = 256;
const CELL_W: f64 = (WIDTH - 2.0 * LEFT) / CELLS as f64;
const ROW_H: f64 = 11.0;
const ROW_GAP: f64 = 2.0;
/// A region taller than this many rows is drawn at several pages per cell.
const MAX_ROWS: u64 = 48;
const BIG: &str = "#3b3b58";
const FREE_DIRTY: &str = "#c9c9c9";
const FREE_DECOMMITTED: &str = "#f3f3f3";
const FREE_TOP: &str = "#a9c4dc";

/// Draws `[first, first + n)` (in cells) as one rect per row it touches.
#[allow(clippy::too_many_arguments)]
fn cells(svg: &mut String, y0: f64, first: f64, n: f64, fill: &str, opacity: f64, class: &str, title: &str, hatch: f64) {
    let mut c = first;
    let end = first + n.max(0.35);
    while c < end - 1e-9 {
        let row = (c / CELLS as f64).floor();
        let row_end = ((row + 1.0) * CELLS as f64).min(end);
        let x = LEFT + (c - row * CELLS as f64) * CELL_W;
        let y = y0 + row * (ROW_H + ROW_GAP);
        let w = (row_end - c) * CELL_W;
        let _ = write!(
            svg,
            r##"<rect class="{class}" x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{ROW_H}" fill="{fill}" fill-opacity="{opacity:.2}" stroke="#fff" stroke-width="0.3"><title>{}</title></rect>"##,
            esc(title)
        );
        if hatch > 0.02 {
            let _ = write!(
                svg,
                r#"<rect class="nonresident" x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{ROW_H}" fill="url(#nonres)" fill-opacity="{hatch:.2}"/>"#
            );
        }
        c = row_end;
    }
    svg.push('\n');
}

/// Renders the map as an SVG document.
pub fn render(map: &HeapMap) -> String {
    let page = map.page;
    let mut body = String::new();
    let mut y = 70.0;
    let mut used_classes = std::collections::BTreeSet::new();
    let (mut n_small, mut n_big, mut n_free) = (0, 0, 0);
    let mut regions: Vec<&Region> = map.regions.iter().collect();
    regions.sort_by_key(|r| (r.arena, r.start));
    let brk_inside = regions.iter().any(|r| r.kind == "brk" && map.brk >= r.start && map.brk <= r.end);
    for r in &regions {
        let pages = (r.end - r.start) / page;
        let per_cell = pages.div_ceil(CELLS * MAX_ROWS).max(1);
        let ncells = pages.div_ceil(per_cell);
        let rows = ncells.div_ceil(CELLS).max(1);
        let scale = if per_cell == 1 { "1 cell = 1 page".to_string() } else { format!("1 cell = {per_cell} pages") };
        let _ = writeln!(
            body,
            r#"<g class="segment" data-arena="{}" data-start="{:#x}" data-pages="{pages}">"#,
            r.arena, r.start
        );
        let _ = writeln!(
            body,
            r#"<text x="{LEFT}" y="{:.1}" class="label">arena {} · {} region {:#x}–{:#x} · {} · {} spans · {scale}</text>"#,
            y - 4.0,
            r.arena,
            esc(&r.kind),
            r.start,
            r.end,
            human(r.end - r.start),
            r.items.len()
        );
        let _ = writeln!(
            body,
            r##"<rect x="{LEFT}" y="{y:.1}" width="{:.2}" height="{:.1}" fill="none" stroke="#999" stroke-width="0.5"/>"##,
            CELL_W * CELLS as f64,
            rows as f64 * (ROW_H + ROW_GAP) - ROW_GAP
        );
        for it in &r.items {
            let first = (it.start().saturating_sub(r.start) / page) as f64 / per_cell as f64;
            let n = it.pages() as f64 / per_cell as f64;
            let hatch = if it.pages() == 0 { 0.0 } else { 1.0 - it.resident().min(it.pages()) as f64 / it.pages() as f64 };
            let bytes = it.pages() * page;
            match it {
                Item::Small { class, block, used, capacity, holder, resident, .. } => {
                    n_small += 1;
                    used_classes.insert((*class, *block));
                    let occ = if *capacity == 0 { 0.0 } else { *used as f64 / *capacity as f64 };
                    let (opacity, kind) = if holder == "cached" { (0.12, "span cached") } else { (0.2 + 0.8 * occ, "span small") };
                    let title = format!(
                        "{block} B blocks (class {class}): {used}/{capacity} in use ({:.0}%), {} pages, {resident} resident, {holder} @ {:#x}",
                        occ * 100.0,
                        it.pages(),
                        it.start()
                    );
                    cells(&mut body, y, first, n, class_colour(*class), opacity, kind, &title, hatch);
                }
                Item::Big { resident, .. } => {
                    n_big += 1;
                    let title = format!("big block, {} ({resident} of {} pages resident) @ {:#x}", human(bytes), it.pages(), it.start());
                    cells(&mut body, y, first, n, BIG, 1.0, "span big", &title, hatch);
                }
                Item::Free { state, resident, .. } => {
                    n_free += 1;
                    let fill = match state.as_str() {
                        "top" => FREE_TOP,
                        "decommitted" => FREE_DECOMMITTED,
                        _ => FREE_DIRTY,
                    };
                    let title = format!("free run ({state}), {} ({resident} pages resident) @ {:#x}", human(bytes), it.start());
                    cells(&mut body, y, first, n, fill, 1.0, "span free", &title, if state == "decommitted" { 0.0 } else { hatch });
                }
            }
        }
        if r.kind == "brk" && map.brk >= r.start && map.brk <= r.end {
            let c = ((map.brk - r.start) / page) as f64 / per_cell as f64;
            let row = ((c / CELLS as f64).floor()).min(rows as f64 - 1.0).max(0.0);
            let x = LEFT + (c - row * CELLS as f64) * CELL_W;
            let yy = y + row * (ROW_H + ROW_GAP);
            let _ = writeln!(
                body,
                r##"<g class="brk"><line x1="{x:.2}" y1="{:.1}" x2="{x:.2}" y2="{:.1}" stroke="#e00" stroke-width="2"/><text x="{:.2}" y="{:.1}" fill="#e00" class="note">brk</text><title>program break {:#x}</title></g>"##,
                yy - 3.0,
                yy + ROW_H + 3.0,
                x + 3.0,
                yy + ROW_H + 10.0,
                map.brk
            );
        }
        body.push_str("</g>\n");
        y += rows as f64 * (ROW_H + ROW_GAP) + 32.0;
    }

    // Large mmapped blocks, beside the heap: on rows of their own, at one scale.
    let large_pages: u64 = map.large.iter().map(|l| l.bytes.div_ceil(page)).sum();
    let per_cell = large_pages.div_ceil(CELLS * 16).max(1);
    let _ = writeln!(
        body,
        r#"<g class="large-blocks"><text x="{LEFT}" y="{:.1}" class="label">large blocks (each mmapped on its own): {} · {} · {}</text>"#,
        y - 4.0,
        map.large.len(),
        human(map.large.iter().map(|l| l.bytes).sum()),
        if per_cell == 1 { "1 cell = 1 page".to_string() } else { format!("1 cell = {per_cell} pages") }
    );
    let mut at = 0.0;
    let mut large: Vec<&Large> = map.large.iter().collect();
    large.sort_by_key(|l| l.start);
    for l in &large {
        let pages = l.bytes.div_ceil(page);
        let n = pages as f64 / per_cell as f64;
        // A block that does not fit in what is left of the row starts the next one.
        let left = CELLS as f64 - at % CELLS as f64;
        if n > left && at % CELLS as f64 != 0.0 {
            at += left;
        }
        let hatch = if pages == 0 { 0.0 } else { 1.0 - l.resident.min(pages) as f64 / pages as f64 };
        let title = format!("large block, {} ({} of {pages} pages resident) @ {:#x}", human(l.bytes), l.resident, l.start);
        let _ = write!(body, r#"<g class="large" data-start="{:#x}" data-bytes="{}">"#, l.start, l.bytes);
        cells(&mut body, y, at, n, BIG, 0.85, "block", &title, hatch);
        body.push_str("</g>\n");
        at = (at + n.max(0.35)).ceil() + 1.0;
    }
    let large_rows = (at / CELLS as f64).ceil().max(1.0);
    body.push_str("</g>\n");
    y += large_rows * (ROW_H + ROW_GAP) + 30.0;

    // Legend.
    let mut legend = String::new();
    let _ = writeln!(legend, r#"<g class="legend"><text x="{LEFT}" y="{y:.1}" class="label">legend</text>"#);
    y += 8.0;
    let mut x = LEFT;
    let swatch = |legend: &mut String, x: &mut f64, y: &mut f64, fill: &str, opacity: f64, extra: &str, label: &str| {
        if *x > WIDTH - 170.0 {
            *x = LEFT;
            *y += 18.0;
        }
        let _ = write!(
            legend,
            r##"<rect x="{:.1}" y="{:.1}" width="14" height="11" fill="{fill}" fill-opacity="{opacity}" stroke="#888" stroke-width="0.4"/>{extra}<text x="{:.1}" y="{:.1}" class="note">{}</text>"##,
            *x,
            *y,
            *x + 18.0,
            *y + 9.5,
            esc(label)
        );
        *x += 30.0 + 6.2 * label.chars().count() as f64;
    };
    for (class, block) in &used_classes {
        swatch(&mut legend, &mut x, &mut y, class_colour(*class), 1.0, "", &format!("{block} B"));
    }
    x = LEFT;
    y += 22.0;
    for (occ, label) in [(0.0, "0% in use"), (0.5, "50% in use"), (1.0, "100% in use")] {
        swatch(&mut legend, &mut x, &mut y, class_colour(5), 0.2 + 0.8 * occ, "", label);
    }
    swatch(&mut legend, &mut x, &mut y, class_colour(5), 0.12, "", "empty span kept ready");
    swatch(&mut legend, &mut x, &mut y, BIG, 1.0, "", "big / large block");
    x = LEFT;
    y += 18.0;
    swatch(&mut legend, &mut x, &mut y, FREE_DIRTY, 1.0, "", "free run (waiting for decay)");
    swatch(&mut legend, &mut x, &mut y, FREE_DECOMMITTED, 1.0, "", "free run (decommitted)");
    swatch(&mut legend, &mut x, &mut y, FREE_TOP, 1.0, "", "top of the heap");
    let hatch_rect = format!(r#"<rect x="{x:.1}" y="{y:.1}" width="14" height="11" fill="url(#nonres)"/>"#);
    swatch(&mut legend, &mut x, &mut y, "#fff", 1.0, &hatch_rect, "not resident");
    let _ = write!(
        legend,
        r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e00" stroke-width="2"/><text x="{:.1}" y="{:.1}" class="note">program break</text>"##,
        y - 2.0,
        y + 13.0,
        x + 6.0,
        y + 9.5
    );
    legend.push_str("</g>\n");
    y += 30.0;

    let live: u64 = map
        .regions
        .iter()
        .flat_map(|r| &r.items)
        .map(|it| match it {
            Item::Small { block, used, .. } => block * used,
            Item::Big { pages, .. } => pages * page,
            Item::Free { .. } => 0,
        })
        .sum::<u64>()
        + map.large.iter().map(|l| l.bytes).sum::<u64>();
    let heap: u64 = map.regions.iter().map(|r| r.end - r.start).sum();
    let brk_note = if brk_inside { "" } else { " (outside the heap's regions: moved by someone else, or no brk heap)" };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y:.0}" viewBox="0 0 {WIDTH} {y:.0}" font-family="sans-serif">"#
    );
    svg.push_str(
        r##"<defs><pattern id="nonres" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="4" height="4" fill="#fff"/><line x1="0" y1="0" x2="0" y2="4" stroke="#777" stroke-width="1.2"/></pattern></defs>
<style>.label{font-size:11px;fill:#222}.note{font-size:10px;fill:#333}.title{font-size:15px;font-weight:bold}</style>
<rect width="100%" height="100%" fill="#fff"/>
"##,
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" class="title">oxmalloc heap map — pid {}</text>"#,
        map.pid
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="44" class="label">{} segment{} ({} of address space), {n_small} spans of small blocks, {n_big} big blocks, {n_free} free runs, {} large blocks; {} handed out; program break {:#x}{}</text>"#,
        regions.len(),
        if regions.len() == 1 { "" } else { "s" },
        human(heap),
        map.large.len(),
        human(live),
        map.brk,
        esc(brk_note)
    );
    svg.push_str(&body);
    svg.push_str(&legend);
    svg.push_str("</svg>\n");
    svg
}
