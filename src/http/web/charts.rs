//! The dashboard's charts as inline SVG, drawn here: no script library, no
//! CDN, nothing fetched. Every function is pure (data in, SVG text out),
//! escapes every text it writes, gives the figure `role="img"`, an
//! `aria-label` that says what the data shows and a `<title>`, puts a
//! tooltip (`<title>`) on every slot or bin, and answers an empty input
//! with a figure that says "No data in this range" instead of panicking.
//!
//! Colours and fonts are SVG presentation attributes, not `style`: the
//! pages' Content-Security-Policy allows no inline styles, and a chart
//! looks the same wherever it is put. Slots are laid out at the same
//! x positions in every time chart (the centre of slot `i` of `n`), so
//! charts stacked on a page line up.

use std::fmt::Write;

use super::format;

pub const BLUE: &str = "#1f6feb";
pub const AMBER: &str = "#c98500";
pub const RED: &str = "#b42318";
pub const GREY: &str = "#8c959f";
pub const PURPLE: &str = "#8250df";
/// The fill of reference distributions.
pub const REFERENCE: &str = "#c4cbd2";
const INK: &str = "#1d2327";
const MUTED: &str = "#5f6b73";
const GRID: &str = "#e4e8eb";
const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
/// The text size, in the chart's units; charts are drawn 480 units wide,
/// so that text stays readable scaled to a phone (about 9 px) and to a
/// desktop card (about 15 px).
const FONT_SIZE: f64 = 13.0;
/// Width of one character of that font, for laying out text.
const CHAR_WIDTH: f64 = 7.4;
/// Width of the full-size charts.
const WIDTH: f64 = 480.0;

/// What the values of an axis are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Items, requests: whole numbers.
    Count,
    /// 0–1, shown as a percentage.
    Share,
    /// Milliseconds.
    Ms,
}

impl Unit {
    /// A value as a tooltip or summary says it.
    fn text(self, v: f64) -> String {
        match self {
            Unit::Count => format::count(v.max(0.0).round() as u64),
            Unit::Share => format::pct(v),
            Unit::Ms => format::ms(v),
        }
    }
}

/// Escapes text for SVG (and HTML) content and attribute values.
pub fn escape(s: &str) -> String {
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

/// A plain number, short: three significant digits without trailing zeros.
fn number(v: f64) -> String {
    let s = format::sig(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v.max(0.0)
    } else {
        0.0
    }
}

/// The opening tag of a chart and its title.
fn open(out: &mut String, class: &str, w: f64, h: f64, title: &str, summary: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="{class}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}" font-family="{FONT}" font-size="{FONT_SIZE}"><title>{}</title>"#,
        escape(summary),
        escape(title),
    );
}

/// A figure of the chart's size saying there is nothing to draw.
fn no_data(class: &str, w: f64, h: f64, title: &str) -> String {
    let mut out = String::new();
    open(
        &mut out,
        class,
        w,
        h,
        title,
        &format!("{title}: no data in this range"),
    );
    let small = h < 60.0;
    let _ = write!(
        out,
        r##"<rect x="0.5" y="0.5" width="{}" height="{}" rx="4" fill="#f6f7f8" stroke="{GRID}"/><text x="{}" y="{}" text-anchor="middle" dominant-baseline="middle" fill="{MUTED}"{}>No data in this range</text></svg>"##,
        w - 1.0,
        h - 1.0,
        w / 2.0,
        h / 2.0,
        if small { r#" font-size="10""# } else { "" },
    );
    out
}

/// The plot area inside a chart's margins.
#[derive(Debug, Clone, Copy)]
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn time_chart() -> Frame {
        Frame {
            w: WIDTH,
            h: 220.0,
            left: 50.0,
            right: 12.0,
            top: 32.0,
            bottom: 30.0,
        }
    }
    fn plot_w(&self) -> f64 {
        self.w - self.left - self.right
    }
    fn plot_h(&self) -> f64 {
        self.h - self.top - self.bottom
    }
    fn base(&self) -> f64 {
        self.h - self.bottom
    }
    /// The centre of slot `i` of `n`.
    fn slot_x(&self, i: usize, n: usize) -> f64 {
        self.left + (i as f64 + 0.5) * self.plot_w() / n.max(1) as f64
    }
    fn slot_w(&self, n: usize) -> f64 {
        self.plot_w() / n.max(1) as f64
    }
}

/// A y axis from `lo` to `hi` in round steps.
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    unit: Unit,
}

/// A round step (1, 2 or 5 times a power of ten) near `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

impl Axis {
    /// About four steps covering `lo..hi`.
    fn new(lo: f64, hi: f64, unit: Unit) -> Axis {
        let (mut lo, mut hi) = (lo.min(hi), hi.max(lo));
        if hi - lo < 1e-12 {
            // A flat series: give it room around its value.
            let pad = if unit == Unit::Share {
                0.05
            } else {
                (hi.abs() * 0.1).max(1.0)
            };
            hi += pad;
            lo = (lo - pad).max(0.0);
        }
        let mut step = nice_step((hi - lo) / 4.0);
        if unit == Unit::Count {
            step = step.max(1.0);
        }
        let mut lo = (lo / step).floor() * step;
        let mut hi = (hi / step).ceil() * step;
        if unit == Unit::Share {
            lo = lo.max(0.0);
            hi = hi.min(1.0).max(lo + step);
        }
        Axis { lo, hi, step, unit }
    }

    fn y(&self, frame: &Frame, v: f64) -> f64 {
        let t = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        frame.base() - t * frame.plot_h()
    }

    fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=n.min(20))
            .map(|k| self.lo + k as f64 * self.step)
            .collect()
    }

    /// A tick's text: as short as the step allows.
    fn tick_text(&self, v: f64) -> String {
        let decimals = |step: f64| -> usize {
            if step >= 1.0 {
                0
            } else {
                (-step.log10()).ceil().clamp(0.0, 6.0) as usize
            }
        };
        match self.unit {
            Unit::Count => format::count(v.max(0.0).round() as u64),
            Unit::Share => format!("{:.*}%", decimals(self.step * 100.0), v * 100.0),
            Unit::Ms if self.hi >= 2000.0 => {
                format!("{:.*} s", decimals(self.step / 1000.0), v / 1000.0)
            }
            Unit::Ms => format!("{:.*}", decimals(self.step), v),
        }
    }

    /// Grid lines and tick labels on the left, and the axis caption.
    fn draw(&self, out: &mut String, frame: &Frame, caption: &str) {
        for v in self.ticks() {
            let y = self.y(frame, v);
            let _ = write!(
                out,
                r#"<line x1="{}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{GRID}"/><text x="{}" y="{y:.1}" text-anchor="end" dominant-baseline="middle" fill="{MUTED}">{}</text>"#,
                frame.left,
                frame.w - frame.right,
                frame.left - 6.0,
                escape(&self.tick_text(v)),
            );
        }
        let caption = match self.unit {
            Unit::Ms if self.hi < 2000.0 => format!("{caption} (ms)"),
            _ => caption.to_string(),
        };
        let _ = write!(
            out,
            r#"<text x="4" y="15" dominant-baseline="middle" fill="{MUTED}">{}</text>"#,
            escape(&caption)
        );
    }
}

/// Indices of at most `max` labels spread over `n` slots, first and last
/// included.
fn label_indices(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut out: Vec<usize> = (0..max)
        .map(|k| ((k * (n - 1)) as f64 / (max - 1) as f64).round() as usize)
        .collect();
    out.dedup();
    out
}

/// Indices of the bin edges to label among `bins + 1`: every `k`-th with
/// `k` a round step (1, 2, 4, 5, 10, …) so that at most `max` are labelled,
/// and the last edge.
fn edge_indices(bins: usize, max: usize) -> Vec<usize> {
    let steps = [1, 2, 4, 5, 10, 20, 25, 50, 100];
    let k = steps
        .into_iter()
        .find(|k| bins / k < max)
        .unwrap_or(bins.max(1));
    let mut out: Vec<usize> = (0..=bins).step_by(k).collect();
    if out.last() != Some(&bins) {
        // The last edge replaces a label too close to it.
        if out.len() > 1 && bins - out[out.len() - 1] < k / 2 + 1 {
            out.pop();
        }
        out.push(bins);
    }
    out
}

/// Slot labels under the plot.
fn x_labels(out: &mut String, frame: &Frame, labels: &[String], n: usize) {
    let max = (frame.plot_w() / 85.0).floor().max(2.0) as usize;
    let at = label_indices(n, max);
    let last = at.last().copied();
    for &i in &at {
        let x = frame.slot_x(i, n);
        let anchor = if Some(i) == last && at.len() > 1 {
            "end"
        } else if i == 0 && at.len() > 1 {
            "start"
        } else {
            "middle"
        };
        let x = match anchor {
            "start" => x - frame.slot_w(n) / 2.0,
            "end" => x + frame.slot_w(n) / 2.0,
            _ => x,
        };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{b}" y2="{}" stroke="{MUTED}"/><text x="{x:.1}" y="{}" text-anchor="{anchor}" fill="{MUTED}">{}</text>"#,
            frame.base() + 4.0,
            frame.base() + 18.0,
            escape(labels.get(i).map(String::as_str).unwrap_or("")),
            b = frame.base(),
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{}" x2="{}" y1="{b}" y2="{b}" stroke="{MUTED}"/>"#,
        frame.left,
        frame.w - frame.right,
        b = frame.base(),
    );
}

/// One legend entry: what marks a series.
enum Swatch<'a> {
    Fill(&'a str),
    Line { color: &'a str, dashed: bool },
}

/// The legend, in a row at the top right.
fn legend(out: &mut String, frame: &Frame, entries: &[(&str, Swatch<'_>)]) {
    let width: f64 = entries
        .iter()
        .map(|(name, _)| 22.0 + name.chars().count() as f64 * CHAR_WIDTH + 12.0)
        .sum();
    let mut x = (frame.w - frame.right - width).max(frame.left);
    let y = 15.0;
    for (name, swatch) in entries {
        match swatch {
            Swatch::Fill(color) => {
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{}" width="12" height="12" rx="2" fill="{color}"/>"#,
                    y - 6.0
                );
            }
            Swatch::Line { color, dashed } => {
                let _ = write!(
                    out,
                    r#"<line x1="{x:.1}" x2="{:.1}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2.5"{}/>"#,
                    x + 16.0,
                    if *dashed {
                        r#" stroke-dasharray="5 3""#
                    } else {
                        ""
                    }
                );
            }
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{y}" dominant-baseline="middle" fill="{INK}">{}</text>"#,
            x + 20.0,
            escape(name)
        );
        x += 22.0 + name.chars().count() as f64 * CHAR_WIDTH + 12.0;
    }
}

/// A transparent column over slot `i` carrying the slot's tooltip.
fn hover(out: &mut String, frame: &Frame, i: usize, n: usize, tip: &str) {
    let w = frame.slot_w(n);
    let _ = write!(
        out,
        r##"<rect x="{:.1}" y="{}" width="{:.1}" height="{}" fill="#000" fill-opacity="0"><title>{}</title></rect>"##,
        frame.slot_x(i, n) - w / 2.0,
        frame.top,
        w,
        frame.plot_h(),
        escape(tip)
    );
}

/// A small line of values without axes (the overview's items per slot).
pub fn sparkline(title: &str, values: &[f64], unit: Unit) -> String {
    let (w, h) = (120.0, 30.0);
    if values.is_empty() {
        return no_data("spark", w, h, title);
    }
    let values: Vec<f64> = values.iter().map(|&v| finite(v)).collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let last = *values.last().expect("not empty");
    let summary = format!(
        "{title}: {} slots, lowest {}, highest {}, last {}",
        values.len(),
        unit.text(min),
        unit.text(max),
        unit.text(last)
    );
    let mut out = String::new();
    open(&mut out, "spark", w, h, title, &summary);
    let n = values.len();
    let x = |i: usize| {
        if n == 1 {
            w / 2.0
        } else {
            1.0 + i as f64 * (w - 2.0) / (n - 1) as f64
        }
    };
    let y = |v: f64| {
        if max > 0.0 {
            h - 2.0 - v / max * (h - 5.0)
        } else {
            h - 2.0
        }
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
        .collect();
    let _ = write!(
        out,
        r#"<polygon points="{:.1},{h} {} {:.1},{h}" fill="{BLUE}" fill-opacity="0.15"/><polyline points="{}" fill="none" stroke="{BLUE}" stroke-width="1.5" stroke-linejoin="round"/><circle cx="{:.1}" cy="{:.1}" r="2" fill="{BLUE}"/></svg>"#,
        x(0),
        points.join(" "),
        x(n - 1),
        points.join(" "),
        x(n - 1),
        y(last),
    );
    out
}

/// One series of [`stacked_bars`].
#[derive(Debug, Clone, Copy)]
pub struct BarSeries<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: &'a [f64],
}

/// Bars per slot, the series stacked bottom up in their order.
#[derive(Debug, Clone, Copy)]
pub struct StackedBars<'a> {
    pub title: &'a str,
    /// The caption above the y axis.
    pub y_label: &'a str,
    /// One per slot.
    pub x_labels: &'a [String],
    pub series: &'a [BarSeries<'a>],
    pub unit: Unit,
}

pub fn stacked_bars(chart: &StackedBars<'_>) -> String {
    let frame = Frame::time_chart();
    let n = chart
        .series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(chart.x_labels.len());
    let value = |s: &BarSeries<'_>, i: usize| finite(s.values.get(i).copied().unwrap_or(0.0));
    let totals: Vec<f64> = (0..n)
        .map(|i| chart.series.iter().map(|s| value(s, i)).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    if n == 0 || max <= 0.0 {
        return no_data("chart", frame.w, frame.h, chart.title);
    }
    let label = |i: usize| chart.x_labels.get(i).cloned().unwrap_or_default();
    let busiest = (0..n)
        .max_by(|&a, &b| totals[a].total_cmp(&totals[b]))
        .expect("n > 0");
    let sums: Vec<String> = chart
        .series
        .iter()
        .map(|s| {
            let sum: f64 = (0..n).map(|i| value(s, i)).sum();
            format!("{} {}", s.name, chart.unit.text(sum))
        })
        .collect();
    let summary = format!(
        "{}: {n} slots from {} to {}; in all {}; the highest slot is {} with {}",
        chart.title,
        label(0),
        label(n - 1),
        sums.join(", "),
        label(busiest),
        chart.unit.text(totals[busiest]),
    );
    let axis = Axis::new(0.0, max, chart.unit);
    let mut out = String::new();
    open(&mut out, "chart", frame.w, frame.h, chart.title, &summary);
    axis.draw(&mut out, &frame, chart.y_label);
    let bar_w = (frame.slot_w(n) * 0.8).max(1.0);
    for i in 0..n {
        let x = frame.slot_x(i, n) - bar_w / 2.0;
        let mut below = 0.0;
        out.push_str("<g>");
        for s in chart.series {
            let v = value(s, i);
            if v > 0.0 {
                let y_top = axis.y(&frame, below + v);
                let y_bottom = axis.y(&frame, below);
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{y_top:.1}" width="{bar_w:.1}" height="{:.1}" fill="{}"/>"#,
                    (y_bottom - y_top).max(0.5),
                    s.color
                );
            }
            below += v;
        }
        let parts: Vec<String> = chart
            .series
            .iter()
            .map(|s| format!("{} {}", s.name, chart.unit.text(value(s, i))))
            .collect();
        hover(
            &mut out,
            &frame,
            i,
            n,
            &format!("{}: {}", label(i), parts.join(", ")),
        );
        out.push_str("</g>");
    }
    x_labels(&mut out, &frame, chart.x_labels, n);
    let entries: Vec<(&str, Swatch<'_>)> = chart
        .series
        .iter()
        .map(|s| (s.name, Swatch::Fill(s.color)))
        .collect();
    legend(&mut out, &frame, &entries);
    out.push_str("</svg>");
    out
}

/// One series of [`lines`]; `None` is a gap (no data in the slot), never
/// drawn as zero.
#[derive(Debug, Clone, Copy)]
pub struct LineSeries<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub dashed: bool,
    pub values: &'a [Option<f64>],
}

/// How the y axis of [`lines`] is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YRange {
    /// From zero to the largest value.
    FromZero,
    /// Around the values (shares stay within 0–1).
    Fit,
}

/// Lines over slots, with gaps where a slot has no value, and an optional
/// dashed reference level (e.g. the model card's accuracy).
#[derive(Debug, Clone, Copy)]
pub struct Lines<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub x_labels: &'a [String],
    pub series: &'a [LineSeries<'a>],
    pub unit: Unit,
    pub y_range: YRange,
    pub reference: Option<(&'a str, f64)>,
}

pub fn lines(chart: &Lines<'_>) -> String {
    let frame = Frame::time_chart();
    let n = chart
        .series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(chart.x_labels.len());
    let value =
        |s: &LineSeries<'_>, i: usize| s.values.get(i).copied().flatten().filter(|v| v.is_finite());
    let all: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| (0..n).filter_map(move |i| value(s, i)))
        .collect();
    if n == 0 || all.is_empty() {
        return no_data("chart", frame.w, frame.h, chart.title);
    }
    let label = |i: usize| chart.x_labels.get(i).cloned().unwrap_or_default();
    let reference = chart.reference.filter(|(_, v)| v.is_finite());
    let mut lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if let Some((_, r)) = reference {
        lo = lo.min(r);
        hi = hi.max(r);
    }
    if chart.y_range == YRange::FromZero {
        lo = lo.min(0.0);
    }
    let axis = Axis::new(lo, hi, chart.unit);

    let parts: Vec<String> = chart
        .series
        .iter()
        .map(|s| {
            let vs: Vec<f64> = (0..n).filter_map(|i| value(s, i)).collect();
            match (vs.first(), vs.last()) {
                (Some(_), Some(&last)) => {
                    let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!(
                        "{} from {} to {}, last {}",
                        s.name,
                        chart.unit.text(min),
                        chart.unit.text(max),
                        chart.unit.text(last)
                    )
                }
                _ => format!("{} no data", s.name),
            }
        })
        .collect();
    let empty = (0..n)
        .filter(|&i| chart.series.iter().all(|s| value(s, i).is_none()))
        .count();
    let mut summary = format!(
        "{}: {n} slots from {} to {}; {}",
        chart.title,
        label(0),
        label(n - 1),
        parts.join("; ")
    );
    if empty > 0 {
        let _ = write!(summary, "; {empty} of {n} slots without data");
    }
    if let Some((name, r)) = reference {
        let _ = write!(summary, "; {name} {}", chart.unit.text(r));
    }

    let mut out = String::new();
    open(&mut out, "chart", frame.w, frame.h, chart.title, &summary);
    axis.draw(&mut out, &frame, chart.y_label);
    if let Some((name, r)) = reference {
        let y = axis.y(&frame, r);
        let _ = write!(
            out,
            r#"<line x1="{}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{GREY}" stroke-width="1.5" stroke-dasharray="2 3"/><text x="{}" y="{:.1}" text-anchor="end" fill="{MUTED}">{}</text>"#,
            frame.left,
            frame.w - frame.right,
            frame.w - frame.right,
            y - 4.0,
            escape(&format!("{name} {}", chart.unit.text(r)))
        );
    }
    for s in chart.series {
        let mut path = String::new();
        let mut dots = String::new();
        for i in 0..n {
            let Some(v) = value(s, i) else { continue };
            let (x, y) = (frame.slot_x(i, n), axis.y(&frame, v));
            let joined = i > 0 && value(s, i - 1).is_some();
            let _ = write!(path, "{}{x:.1},{y:.1} ", if joined { "L" } else { "M" });
            let alone = !joined && value(s, i + 1).is_none();
            if alone {
                let _ = write!(
                    dots,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{}"/>"#,
                    s.color
                );
            }
        }
        if !path.is_empty() {
            let _ = write!(
                out,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"{}/>"#,
                path.trim_end(),
                s.color,
                if s.dashed {
                    r#" stroke-dasharray="5 3""#
                } else {
                    ""
                }
            );
        }
        out.push_str(&dots);
    }
    for i in 0..n {
        let parts: Vec<String> = chart
            .series
            .iter()
            .map(|s| match value(s, i) {
                Some(v) => format!("{} {}", s.name, chart.unit.text(v)),
                None => format!("{} no data", s.name),
            })
            .collect();
        hover(
            &mut out,
            &frame,
            i,
            n,
            &format!("{}: {}", label(i), parts.join(", ")),
        );
    }
    x_labels(&mut out, &frame, chart.x_labels, n);
    let entries: Vec<(&str, Swatch<'_>)> = chart
        .series
        .iter()
        .map(|s| {
            (
                s.name,
                Swatch::Line {
                    color: s.color,
                    dashed: s.dashed,
                },
            )
        })
        .collect();
    legend(&mut out, &frame, &entries);
    out.push_str("</svg>");
    out
}

/// The size of a [`histogram_pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// With axes and a legend.
    Full,
    /// A small figure in a table row: bins and tooltips only.
    Mini,
}

/// A reference and a current distribution on the same bins: the
/// reference as grey bars, the current as a blue outline over them. Bins
/// are drawn at equal widths (they are often quantiles of the reference),
/// their edges named on the axis and in each bin's tooltip.
#[derive(Debug, Clone, Copy)]
pub struct HistogramPair<'a> {
    pub title: &'a str,
    /// One more than the bins.
    pub edges: &'a [f64],
    /// Shares per bin.
    pub reference: &'a [f64],
    pub current: &'a [f64],
    pub size: Size,
    /// What the legend calls the grey bars and the blue outline.
    pub names: (&'a str, &'a str),
}

pub fn histogram_pair(chart: &HistogramPair<'_>) -> String {
    let frame = match chart.size {
        Size::Full => Frame {
            w: WIDTH,
            h: 200.0,
            left: 50.0,
            right: 12.0,
            top: 32.0,
            bottom: 30.0,
        },
        Size::Mini => Frame {
            w: 180.0,
            h: 44.0,
            left: 1.0,
            right: 1.0,
            top: 3.0,
            bottom: 2.0,
        },
    };
    let class = match chart.size {
        Size::Full => "chart",
        Size::Mini => "chart mini",
    };
    let n = chart.reference.len().max(chart.current.len());
    let reference: Vec<f64> = (0..n)
        .map(|i| finite(chart.reference.get(i).copied().unwrap_or(0.0)))
        .collect();
    let current: Vec<f64> = (0..n)
        .map(|i| finite(chart.current.get(i).copied().unwrap_or(0.0)))
        .collect();
    let max = reference
        .iter()
        .chain(&current)
        .copied()
        .fold(0.0, f64::max);
    if n == 0 || max <= 0.0 {
        return no_data(class, frame.w, frame.h, chart.title);
    }
    let edges_fit = chart.edges.len() == n + 1;
    let bin = |i: usize| -> String {
        if edges_fit {
            format!(
                "[{}, {})",
                number(chart.edges[i]),
                number(chart.edges[i + 1])
            )
        } else {
            format!("bin {}", i + 1)
        }
    };
    let has_current = current.iter().any(|&v| v > 0.0);
    let has_reference = reference.iter().any(|&v| v > 0.0);
    let widest = (0..n)
        .max_by(|&a, &b| {
            (current[a] - reference[a])
                .abs()
                .total_cmp(&(current[b] - reference[b]).abs())
        })
        .expect("n > 0");
    let range = if edges_fit {
        format!(
            " from {} to {}",
            number(chart.edges[0]),
            number(chart.edges[n])
        )
    } else {
        String::new()
    };
    let mut summary = format!(
        "{}: reference and current shares on {n} bins{range}",
        chart.title
    );
    match (has_reference, has_current) {
        (true, true) => {
            let _ = write!(
                summary,
                "; the largest difference is in {}: reference {}, current {}",
                bin(widest),
                format::pct(reference[widest]),
                format::pct(current[widest])
            );
        }
        (true, false) => summary.push_str("; no current data, the reference only"),
        (false, _) => summary.push_str("; no reference, the current data only"),
    }

    let axis = Axis::new(0.0, max, Unit::Share);
    let mut out = String::new();
    open(&mut out, class, frame.w, frame.h, chart.title, &summary);
    if chart.size == Size::Full {
        axis.draw(&mut out, &frame, "share");
    }
    let bw = frame.slot_w(n);
    for (i, &r) in reference.iter().enumerate() {
        if r > 0.0 {
            let y = axis.y(&frame, r);
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{REFERENCE}"/>"#,
                frame.left + i as f64 * bw + 0.5,
                (bw - 1.0).max(0.5),
                (frame.base() - y).max(0.5),
            );
        }
    }
    if has_current {
        // The current distribution as a step outline, filled lightly.
        let mut d = format!("M{:.1},{:.1}", frame.left, frame.base());
        for (i, &c) in current.iter().enumerate() {
            let y = axis.y(&frame, c);
            let _ = write!(
                d,
                " L{:.1},{y:.1} L{:.1},{y:.1}",
                frame.left + i as f64 * bw,
                frame.left + (i + 1) as f64 * bw
            );
        }
        let _ = write!(d, " L{:.1},{:.1}", frame.left + n as f64 * bw, frame.base());
        let _ = write!(
            out,
            r#"<path d="{d}" fill="{BLUE}" fill-opacity="0.12" stroke="{BLUE}" stroke-width="{}" stroke-linejoin="round"/>"#,
            if chart.size == Size::Full { "2" } else { "1.5" }
        );
    }
    for i in 0..n {
        hover(
            &mut out,
            &frame,
            i,
            n,
            &format!(
                "{}: reference {}, current {}",
                bin(i),
                format::pct(reference[i]),
                if has_current {
                    format::pct(current[i])
                } else {
                    "no data".to_string()
                }
            ),
        );
    }
    match chart.size {
        Size::Full => {
            // Edge values under the bins' boundaries.
            let max_labels = (frame.plot_w() / 70.0).floor() as usize;
            let _ = write!(
                out,
                r#"<line x1="{}" x2="{}" y1="{b}" y2="{b}" stroke="{MUTED}"/>"#,
                frame.left,
                frame.w - frame.right,
                b = frame.base()
            );
            if edges_fit {
                for k in edge_indices(n, max_labels.max(2)) {
                    let x = frame.left + k as f64 * bw;
                    let _ = write!(
                        out,
                        r#"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="{MUTED}"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
                        frame.base(),
                        frame.base() + 4.0,
                        frame.base() + 18.0,
                        escape(&number(chart.edges[k]))
                    );
                }
            }
            legend(
                &mut out,
                &frame,
                &[
                    (chart.names.0, Swatch::Fill(REFERENCE)),
                    (
                        chart.names.1,
                        Swatch::Line {
                            color: BLUE,
                            dashed: false,
                        },
                    ),
                ],
            );
        }
        Size::Mini => {
            let _ = write!(
                out,
                r#"<line x1="0" x2="{}" y1="{b}" y2="{b}" stroke="{GREY}"/>"#,
                frame.w,
                b = frame.base()
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Shares per category, current beside reference: horizontal bars, one
/// row per category, so long names stay readable.
#[derive(Debug, Clone, Copy)]
pub struct BarsPair<'a> {
    pub title: &'a str,
    pub categories: &'a [String],
    pub current: &'a [f64],
    /// `None` where there is no reference.
    pub reference: &'a [Option<f64>],
}

pub fn bars_pair(chart: &BarsPair<'_>) -> String {
    let n = chart.categories.len();
    let current: Vec<f64> = (0..n)
        .map(|i| finite(chart.current.get(i).copied().unwrap_or(0.0)))
        .collect();
    let reference: Vec<Option<f64>> = (0..n)
        .map(|i| chart.reference.get(i).copied().flatten().map(finite))
        .collect();
    let max = current
        .iter()
        .copied()
        .chain(reference.iter().flatten().copied())
        .fold(0.0, f64::max);
    let row = 34.0;
    let name_chars = chart
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0)
        .min(22);
    let frame = Frame {
        w: WIDTH,
        h: 30.0 + row * n.max(1) as f64 + 26.0,
        left: (name_chars as f64 * CHAR_WIDTH + 14.0).clamp(60.0, 170.0),
        right: 64.0,
        top: 30.0,
        bottom: 26.0,
    };
    if n == 0 || max <= 0.0 {
        return no_data("chart", frame.w, 120.0, chart.title);
    }
    let has_reference = reference.iter().any(Option::is_some);
    let parts: Vec<String> = (0..n)
        .map(|i| match reference[i] {
            Some(r) => format!(
                "{} {} (reference {})",
                chart.categories[i],
                format::pct(current[i]),
                format::pct(r)
            ),
            None => format!("{} {}", chart.categories[i], format::pct(current[i])),
        })
        .collect();
    let summary = format!("{}: {}", chart.title, parts.join("; "));
    let hi = Axis::new(0.0, max, Unit::Share).hi;
    let x = |v: f64| frame.left + (v / hi).clamp(0.0, 1.0) * frame.plot_w();
    let mut out = String::new();
    open(&mut out, "chart", frame.w, frame.h, chart.title, &summary);
    // Vertical grid with share ticks at the bottom.
    let axis = Axis {
        lo: 0.0,
        hi,
        step: nice_step(hi / 4.0),
        unit: Unit::Share,
    };
    for v in axis.ticks() {
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="{GRID}"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
            frame.top,
            frame.base(),
            frame.base() + 16.0,
            escape(&axis.tick_text(v)),
            x = x(v),
        );
    }
    for i in 0..n {
        let y0 = frame.top + i as f64 * row;
        let name: String = if chart.categories[i].chars().count() > 22 {
            chart.categories[i].chars().take(21).collect::<String>() + "…"
        } else {
            chart.categories[i].clone()
        };
        let tip = parts[i].clone();
        let _ = write!(
            out,
            r#"<g><title>{}</title><text x="{}" y="{:.1}" text-anchor="end" dominant-baseline="middle" fill="{INK}">{}</text>"#,
            escape(&tip),
            frame.left - 8.0,
            y0 + row / 2.0,
            escape(&name)
        );
        let bars: Vec<(f64, &str, f64)> = match reference[i] {
            Some(r) => vec![(current[i], BLUE, y0 + 5.0), (r, REFERENCE, y0 + 18.0)],
            None => vec![(current[i], BLUE, y0 + 10.0)],
        };
        for (v, color, y) in bars {
            let _ = write!(
                out,
                r#"<rect x="{}" y="{y:.1}" width="{:.1}" height="11" rx="1.5" fill="{color}"/><text x="{:.1}" y="{:.1}" dominant-baseline="middle" fill="{MUTED}" font-size="11">{}</text>"#,
                frame.left,
                (x(v) - frame.left).max(1.0),
                x(v) + 4.0,
                y + 5.5,
                escape(&format::pct(v))
            );
        }
        out.push_str("</g>");
    }
    let mut entries = vec![("current", Swatch::Fill(BLUE))];
    if has_reference {
        entries.push(("reference", Swatch::Fill(REFERENCE)));
    }
    legend(&mut out, &frame, &entries);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `svg` is well-formed XML as far as these charts go:
    /// tags balance, attribute values are quoted, text and attributes have
    /// no raw `<` or stray `&`. Returns the element names in order.
    fn well_formed(svg: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = svg;
        let check_text = |t: &str| {
            let mut at = 0;
            while let Some(p) = t[at..].find('&') {
                let entity = &t[at + p..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "a raw & in {t:?}"
                );
                at += p + 1;
            }
            assert!(!t.contains('>'), "a raw > in text {t:?}");
        };
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt]);
            let gt = rest[lt..].find('>').expect("a tag ends") + lt;
            let tag = &rest[lt + 1..gt];
            assert!(!tag.contains('<'), "a < inside the tag {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "in {svg}");
            } else {
                let self_closing = tag.ends_with('/');
                let body = tag.trim_end_matches('/');
                let name = body.split_whitespace().next().expect("a name").to_string();
                // Attributes: name="value" pairs, values without quotes.
                let mut attrs = body[name.len()..].trim();
                while !attrs.is_empty() {
                    let eq = attrs.find("=\"").expect("name=\"value\"");
                    let end = attrs[eq + 2..].find('"').expect("a closing quote") + eq + 2;
                    check_text(&attrs[eq + 2..end]);
                    attrs = attrs[end + 1..].trim_start();
                }
                names.push(name.clone());
                if !self_closing {
                    stack.push(name);
                }
            }
            rest = &rest[gt + 1..];
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed {stack:?}");
        names
    }

    fn aria(svg: &str) -> &str {
        let at = svg.find("aria-label=\"").expect("an aria-label") + 12;
        &svg[at..at + svg[at..].find('"').unwrap()]
    }

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10:{i:02}")).collect()
    }

    #[test]
    fn every_chart_is_an_accessible_well_formed_svg() {
        let x = labels(4);
        let charts = [
            sparkline("items", &[1.0, 3.0, 2.0, 5.0], Unit::Count),
            stacked_bars(&StackedBars {
                title: "items",
                y_label: "items",
                x_labels: &x,
                series: &[
                    BarSeries {
                        name: "automated",
                        color: BLUE,
                        values: &[3.0, 4.0, 0.0, 1.0],
                    },
                    BarSeries {
                        name: "failed",
                        color: RED,
                        values: &[1.0, 0.0, 0.0, 2.0],
                    },
                ],
                unit: Unit::Count,
            }),
            lines(&Lines {
                title: "latency",
                y_label: "latency",
                x_labels: &x,
                series: &[LineSeries {
                    name: "p99",
                    color: PURPLE,
                    dashed: true,
                    values: &[Some(3.0), None, Some(4.0), Some(5.0)],
                }],
                unit: Unit::Ms,
                y_range: YRange::FromZero,
                reference: Some(("target", 10.0)),
            }),
            histogram_pair(&HistogramPair {
                names: ("reference", "current"),
                title: "confidence",
                edges: &[0.0, 0.5, 1.0],
                reference: &[0.3, 0.7],
                current: &[0.5, 0.5],
                size: Size::Full,
            }),
            histogram_pair(&HistogramPair {
                names: ("reference", "current"),
                title: "mean_radius",
                edges: &[0.0, 0.5, 1.0],
                reference: &[0.3, 0.7],
                current: &[0.5, 0.5],
                size: Size::Mini,
            }),
            bars_pair(&BarsPair {
                title: "labels",
                categories: &["benign".into(), "malignant".into()],
                current: &[0.6, 0.4],
                reference: &[Some(0.63), Some(0.37)],
            }),
        ];
        for svg in &charts {
            let names = well_formed(svg);
            assert_eq!(names[0], "svg", "{svg}");
            assert_eq!(names[1], "title", "the chart's title comes first: {svg}");
            assert!(svg.contains(r#"role="img""#), "{svg}");
            assert!(!aria(svg).is_empty());
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
            assert!(!svg.contains("style="), "no inline styles (CSP): {svg}");
        }
        assert!(
            aria(&charts[1]).contains("automated 8, failed 3"),
            "{}",
            aria(&charts[1])
        );
        assert!(aria(&charts[5]).contains("benign 60.0% (reference 63.0%)"));
    }

    #[test]
    fn every_text_is_escaped() {
        let evil = r#"<script>alert("x")</script> & 'q'"#;
        let x = vec![evil.to_string(), "b".to_string()];
        let charts = [
            sparkline(evil, &[1.0, 2.0], Unit::Count),
            stacked_bars(&StackedBars {
                title: evil,
                y_label: evil,
                x_labels: &x,
                series: &[BarSeries {
                    name: evil,
                    color: BLUE,
                    values: &[1.0, 2.0],
                }],
                unit: Unit::Count,
            }),
            lines(&Lines {
                title: evil,
                y_label: evil,
                x_labels: &x,
                series: &[LineSeries {
                    name: evil,
                    color: BLUE,
                    dashed: false,
                    values: &[Some(1.0), Some(2.0)],
                }],
                unit: Unit::Share,
                y_range: YRange::Fit,
                reference: Some((evil, 1.5)),
            }),
            histogram_pair(&HistogramPair {
                names: ("reference", "current"),
                title: evil,
                edges: &[0.0, 1.0],
                reference: &[1.0],
                current: &[1.0],
                size: Size::Full,
            }),
            bars_pair(&BarsPair {
                title: evil,
                categories: &[evil.to_string()],
                current: &[1.0],
                reference: &[None],
            }),
            sparkline(evil, &[], Unit::Count),
        ];
        for svg in &charts {
            well_formed(svg);
            assert!(!svg.contains("<script"), "{svg}");
            assert!(svg.contains("&lt;script&gt;alert(&quot;x&quot;)"), "{svg}");
            assert!(svg.contains("&amp; &#39;q&#39;"), "{svg}");
        }
    }

    #[test]
    fn empty_input_draws_a_figure_that_says_no_data() {
        let none: [String; 0] = [];
        let charts = [
            sparkline("items", &[], Unit::Count),
            stacked_bars(&StackedBars {
                title: "items",
                y_label: "items",
                x_labels: &none,
                series: &[],
                unit: Unit::Count,
            }),
            // Slots without a single item are no data either.
            stacked_bars(&StackedBars {
                title: "items",
                y_label: "items",
                x_labels: &labels(3),
                series: &[BarSeries {
                    name: "automated",
                    color: BLUE,
                    values: &[0.0, 0.0, 0.0],
                }],
                unit: Unit::Count,
            }),
            lines(&Lines {
                title: "agreement",
                y_label: "share",
                x_labels: &labels(3),
                series: &[LineSeries {
                    name: "blind",
                    color: BLUE,
                    dashed: false,
                    values: &[None, None, None],
                }],
                unit: Unit::Share,
                y_range: YRange::Fit,
                reference: None,
            }),
            histogram_pair(&HistogramPair {
                names: ("reference", "current"),
                title: "x",
                edges: &[],
                reference: &[],
                current: &[],
                size: Size::Mini,
            }),
            bars_pair(&BarsPair {
                title: "labels",
                categories: &[],
                current: &[],
                reference: &[],
            }),
        ];
        for svg in &charts {
            well_formed(svg);
            assert!(svg.contains("No data in this range"), "{svg}");
            assert!(aria(svg).ends_with("no data in this range"), "{svg}");
        }
    }

    #[test]
    fn gaps_break_the_line_instead_of_dropping_to_zero() {
        let x = labels(6);
        let svg = lines(&Lines {
            title: "agreement",
            y_label: "share",
            x_labels: &x,
            series: &[LineSeries {
                name: "blind",
                color: BLUE,
                dashed: false,
                values: &[Some(0.9), Some(0.8), None, Some(0.95), None, Some(0.7)],
            }],
            unit: Unit::Share,
            y_range: YRange::Fit,
            reference: None,
        });
        well_formed(&svg);
        let d_at = svg.find("<path d=\"").unwrap() + 9;
        let d = &svg[d_at..d_at + svg[d_at..].find('"').unwrap()];
        // Three runs: slots 0–1, slot 3 alone, slot 5 alone.
        assert_eq!(d.matches('M').count(), 3, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        // Points alone get a dot, or they would not show.
        assert_eq!(svg.matches("<circle").count(), 2);
        // No point sits on the zero line: the axis fits the values.
        assert!(aria(&svg).contains("2 of 6 slots without data"), "{svg}");
        assert!(svg.contains("10:02: blind no data"));
    }

    #[test]
    fn axes_take_round_steps() {
        let a = Axis::new(0.0, 37.0, Unit::Count);
        assert_eq!((a.lo, a.hi, a.step), (0.0, 40.0, 10.0));
        let a = Axis::new(0.0, 3.0, Unit::Count);
        assert_eq!(a.step, 1.0);
        let a = Axis::new(0.82, 0.97, Unit::Share);
        assert!(a.lo >= 0.0 && a.hi <= 1.0 && a.lo <= 0.82 && a.hi >= 0.97);
        assert_eq!(a.tick_text(0.85), "85%");
        let a = Axis::new(0.0, 0.0, Unit::Ms);
        assert!(a.hi > a.lo);
        assert_eq!(label_indices(100, 6), vec![0, 20, 40, 59, 79, 99]);
        assert_eq!(edge_indices(20, 6), vec![0, 4, 8, 12, 16, 20]);
        assert_eq!(edge_indices(12, 6), vec![0, 4, 8, 12]);
        assert_eq!(edge_indices(3, 6), vec![0, 1, 2, 3]);
    }

    #[test]
    fn mismatched_lengths_and_odd_values_do_not_panic() {
        let x = labels(2);
        let svg = stacked_bars(&StackedBars {
            title: "t",
            y_label: "y",
            x_labels: &x,
            series: &[BarSeries {
                name: "a",
                color: BLUE,
                values: &[f64::NAN, 5.0, -3.0, f64::INFINITY],
            }],
            unit: Unit::Count,
        });
        well_formed(&svg);
        let svg = histogram_pair(&HistogramPair {
            names: ("reference", "current"),
            title: "t",
            edges: &[0.0],
            reference: &[0.5, 0.5],
            current: &[1.0],
            size: Size::Full,
        });
        well_formed(&svg);
        assert!(svg.contains("bin 2"), "{svg}");
    }
}
