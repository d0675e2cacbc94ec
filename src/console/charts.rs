//! Charts drawn by the server as SVG: no script, no fonts from anywhere, integer
//! arithmetic throughout (pixels from integer figures, never floats near money).
//! Every label goes through [`esc`]; pages embed the result as it is.

use std::fmt::Write;

const W: i64 = 640;
const H: i64 = 220;
/// Room for the axis labels.
const LEFT: i64 = 56;
const BOTTOM: i64 = 24;
const TOP: i64 = 12;
const RIGHT: i64 = 8;

/// Series colours (fill/stroke attributes, so that a strict CSP needs no inline style).
pub const COLOURS: [&str; 4] = ["#2f6fb0", "#d9822b", "#6a9f3c", "#a23b72"];

/// Text escaped for XML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `<svg>` that scales to its box (`fill`), or keeps its own size (the heat map, whose
/// width follows its months: a small one would otherwise be blown up).
fn open_sized(out: &mut String, title: &str, w: i64, h: i64, fill: bool) {
    let width = if fill { "100%".to_string() } else { w.to_string() };
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{width}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
}

fn open(out: &mut String, title: &str, w: i64, h: i64) {
    open_sized(out, title, w, h, true)
}

/// A round top for an axis whose half is a whole number too (the middle gridline's
/// label): the smallest of 2, 4, 10 x 10^k at or above `v`.
pub fn nice_max(v: i64) -> i64 {
    if v <= 2 {
        return 2;
    }
    let mut p = 1i64;
    while p.saturating_mul(10) < v {
        p *= 10;
    }
    for m in [2, 4, 10] {
        if p.saturating_mul(m) >= v {
            return p.saturating_mul(m);
        }
    }
    v
}

fn axes(out: &mut String, top: i64, fmt_value: &dyn Fn(i64) -> String) {
    let (x0, y0, y1) = (LEFT, H - BOTTOM, TOP);
    let _ = write!(
        out,
        r##"<g class="axis" stroke="#999" stroke-width="1"><line x1="{x0}" y1="{y0}" x2="{x2}" y2="{y0}"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/></g><line x1="{x0}" y1="{ym}" x2="{x2}" y2="{ym}" stroke="#ddd" stroke-dasharray="4 4"/><g font-size="11" fill="#555" text-anchor="end"><text x="{xl}" y="{yt}">{top}</text><text x="{xl}" y="{ymt}">{mid}</text><text x="{xl}" y="{y0t}">0</text></g>"##,
        x2 = W - RIGHT,
        ym = (y0 + y1) / 2,
        xl = x0 - 4,
        yt = y1 + 4,
        ymt = (y0 + y1) / 2 + 4,
        y0t = y0,
        top = esc(&fmt_value(top)),
        mid = esc(&fmt_value(top / 2)),
    );
}

/// Labels under the x axis: the first, the last and a few between, so that they do not
/// overlap whatever the number of points.
fn x_labels(out: &mut String, labels: &[String], x_of: &dyn Fn(usize) -> i64) {
    let n = labels.len();
    if n == 0 {
        return;
    }
    let step = n.div_ceil(6).max(1);
    out.push_str(r##"<g font-size="11" fill="#555" text-anchor="middle">"##);
    for (i, l) in labels.iter().enumerate() {
        if i % step == 0 || i + 1 == n {
            // The last label ends at its point, so that it is not cut at the right edge.
            let anchor = if i + 1 == n && n > 1 {
                r#" text-anchor="end""#
            } else {
                ""
            };
            let _ = write!(out, r#"<text x="{}" y="{}"{anchor}>{}</text>"#, x_of(i), H - 6, esc(l));
        }
    }
    out.push_str("</g>");
}

/// Bars, one per label (sales by day).
pub fn bars(title: &str, labels: &[String], values: &[i64], fmt_value: &dyn Fn(i64) -> String) -> String {
    let mut out = String::new();
    open(&mut out, title, W, H);
    let top = nice_max(values.iter().copied().max().unwrap_or(0));
    axes(&mut out, top, fmt_value);
    let n = values.len().max(1) as i64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - BOTTOM - TOP;
    let slot = plot_w / n;
    let bar_w = (slot * 3 / 4).max(1);
    out.push_str(&format!(r#"<g fill="{}">"#, COLOURS[0]));
    for (i, v) in values.iter().enumerate() {
        let h = (*v).max(0) * plot_h / top;
        let x = LEFT + slot * i as i64 + (slot - bar_w) / 2;
        let label = labels.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{y}" width="{bar_w}" height="{h}"><title>{l}: {v}</title></rect>"#,
            y = H - BOTTOM - h,
            l = esc(label),
            v = esc(&fmt_value(*v)),
        );
    }
    out.push_str("</g>");
    x_labels(&mut out, labels, &|i| LEFT + slot * i as i64 + slot / 2);
    out.push_str("</svg>");
    out
}

/// Lines, one per named series over the same labels, with a legend.
pub fn lines(title: &str, labels: &[String], series: &[(&str, Vec<i64>)]) -> String {
    let mut out = String::new();
    open(&mut out, title, W, H + 18);
    let top = nice_max(series.iter().flat_map(|(_, v)| v.iter().copied()).max().unwrap_or(0));
    axes(&mut out, top, &|v| v.to_string());
    let n = labels.len() as i64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - BOTTOM - TOP;
    let x_of = |i: usize| -> i64 {
        if n <= 1 {
            LEFT + plot_w / 2
        } else {
            LEFT + plot_w * i as i64 / (n - 1)
        }
    };
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{},{}", x_of(i), H - BOTTOM - (*v).max(0) * plot_h / top))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            esc(name)
        );
        if values.len() == 1 {
            let _ = write!(
                out,
                r#"<circle cx="{}" cy="{}" r="3" fill="{colour}"/>"#,
                x_of(0),
                H - BOTTOM - values[0].max(0) * plot_h / top
            );
        }
        let lx = LEFT + 140 * k as i64;
        let _ = write!(
            out,
            r##"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colour}"/><text x="{tx}" y="{ty}" font-size="12" fill="#333">{name}</text>"##,
            ly = H + 2,
            tx = lx + 16,
            ty = H + 12,
            name = esc(name)
        );
    }
    x_labels(&mut out, labels, &x_of);
    out.push_str("</svg>");
    out
}

/// Horizontal bars with a label and a count each (tier mix).
pub fn hbars(title: &str, rows: &[(String, i64)]) -> String {
    let row_h = 26;
    let h = (rows.len() as i64 * row_h).max(row_h) + 8;
    let mut out = String::new();
    open(&mut out, title, W, h);
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let label_w = 140;
    let plot_w = W - label_w - 80;
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = 4 + row_h * i as i64;
        let w = (*n).max(0) * plot_w / max;
        let _ = write!(
            out,
            r##"<text x="{tx}" y="{ty}" font-size="12" fill="#333" text-anchor="end">{l}</text><rect x="{label_w}" y="{y}" width="{w}" height="18" fill="{c}"/><text x="{nx}" y="{ty}" font-size="12" fill="#333">{n}</text>"##,
            tx = label_w - 6,
            ty = y + 13,
            l = esc(label),
            c = COLOURS[i % COLOURS.len()],
            nx = label_w + w + 6,
        );
    }
    out.push_str("</svg>");
    out
}

/// The colour of a share in basis points: white to the first series colour.
fn heat(bp: i64) -> String {
    let bp = bp.clamp(0, 10_000);
    // From #ffffff to #2f6fb0.
    let mix = |to: i64| 255 - (255 - to) * bp / 10_000;
    format!("#{:02x}{:02x}{:02x}", mix(0x2f), mix(0x6f), mix(0xb0))
}

/// The retention heat map: a row per cohort (month, members), a cell per month after
/// enrolment holding the share of the cohort active then.
pub fn heatmap(title: &str, rows: &[(String, i64, Vec<i64>)], month_label: &str) -> String {
    let cols = rows.iter().map(|r| r.2.len()).max().unwrap_or(0) as i64;
    let (cell, label_w, head) = (34, 120, 18);
    let w = (label_w + cell * cols.max(1) + 8).max(200);
    let h = head + 22 * rows.len().max(1) as i64 + 8;
    let mut out = String::new();
    open_sized(&mut out, title, w, h, false);
    out.push_str(r##"<g font-size="11" fill="#555" text-anchor="middle">"##);
    for k in 0..cols {
        let _ = write!(
            out,
            r#"<text x="{}" y="12">{}{k}</text>"#,
            label_w + cell * k + cell / 2,
            esc(month_label)
        );
    }
    out.push_str("</g>");
    for (i, (month, members, active)) in rows.iter().enumerate() {
        let y = head + 22 * i as i64;
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="12" fill="#333" text-anchor="end">{} ({members})</text>"##,
            label_w - 6,
            y + 14,
            esc(month)
        );
        for (k, a) in active.iter().enumerate() {
            let bp = if *members > 0 { a * 10_000 / members } else { 0 };
            let x = label_w + cell * k as i64;
            let ink = if bp > 5_000 { "#fff" } else { "#222" };
            let _ = write!(
                out,
                r#"<rect x="{x}" y="{y}" width="{cw}" height="20" fill="{f}"><title>{m} +{k}: {a}/{members}</title></rect><text x="{tx}" y="{ty}" font-size="10" fill="{ink}" text-anchor="middle">{pct}%</text>"#,
                cw = cell - 2,
                f = heat(bp),
                m = esc(month),
                tx = x + cell / 2 - 1,
                ty = y + 14,
                pct = bp / 100,
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_axes_round() {
        let svg = hbars("t<i>", &[("<script>".into(), 3)]);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(svg.contains("t&lt;i&gt;"));
        assert_eq!(
            [0, 3, 7, 10, 11, 120, 5000].map(nice_max),
            [2, 4, 10, 10, 20, 200, 10000]
        );
        let b = bars("s", &["a".into(), "b".into()], &[0, 10], &|v| v.to_string());
        assert_eq!(b.matches("<rect").count(), 2);
        assert_eq!(heat(0), "#ffffff");
        assert_eq!(heat(10_000), "#2f6fb0");
    }
}
