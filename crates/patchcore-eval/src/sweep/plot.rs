//! The sweep plot: one metric against one swept key, one line per value of a second key (or
//! per combination of the other keys), error bars of ± one standard deviation over seeds.
//! Inline SVG, no dependencies.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::table::{RunRow, SweepTable, show};
use crate::report::html::esc;

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One line of the plot: its label and `(x position, mean, std)` points in x order.
type Line = (String, Vec<(f64, f64, f64)>);

/// The horizontal axis: the distinct x values in order of appearance, their positions
/// (numeric values; their logarithm when all are positive and span a factor of 10 or more;
/// evenly spaced otherwise) and whether the scale is logarithmic.
struct XAxis {
    values: Vec<Value>,
    pos: Vec<f64>,
    log: bool,
}

impl XAxis {
    fn of(t: &SweepTable, xi: usize) -> Self {
        let mut values: Vec<Value> = Vec::new();
        for r in &t.runs {
            let v = &r.point[xi].1;
            if !values.contains(v) {
                values.push(v.clone());
            }
        }
        let nums: Option<Vec<f64>> = values.iter().map(Value::as_f64).collect();
        let (pos, log) = match &nums {
            Some(n) if n.len() > 1 => {
                let (lo, hi) = n
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                        (a.min(*v), b.max(*v))
                    });
                if lo > 0.0 && hi / lo >= 10.0 {
                    (n.iter().map(|v| v.ln()).collect(), true)
                } else {
                    (n.clone(), false)
                }
            }
            _ => ((0..values.len()).map(|i| i as f64).collect(), false),
        };
        Self { values, pos, log }
    }

    /// Indices of the values in position order.
    fn order(&self) -> Vec<usize> {
        let mut o: Vec<usize> = (0..self.values.len()).collect();
        o.sort_by(|a, b| self.pos[*a].total_cmp(&self.pos[*b]));
        o
    }
}

/// The label of a run's line: the series key's value, or every other key's values.
fn line_label(t: &SweepTable, xi: usize, r: &RunRow) -> String {
    match &t.plot.series {
        Some(s) => {
            let si = t.keys.iter().position(|k| k == s).expect("validated");
            format!("{s} = {}", show(&r.point[si].1))
        }
        None => r
            .point
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != xi)
            .map(|(_, (k, v))| format!("{k} = {}", show(v)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The plotted lines, in order of first appearance; several runs at one point (a third swept
/// key not plotted) are averaged.
fn lines_of(t: &SweepTable, xi: usize, axis: &XAxis) -> Vec<Line> {
    let mut lines: BTreeMap<String, BTreeMap<usize, Vec<(f64, f64)>>> = BTreeMap::new();
    let mut line_order: Vec<String> = Vec::new();
    for r in &t.runs {
        let Some(m) = r.metrics.get(&t.plot.metric) else {
            continue;
        };
        let l = line_label(t, xi, r);
        if !line_order.contains(&l) {
            line_order.push(l.clone());
        }
        let x = axis
            .values
            .iter()
            .position(|v| v == &r.point[xi].1)
            .expect("listed");
        lines
            .entry(l)
            .or_default()
            .entry(x)
            .or_default()
            .push((m.mean, m.std));
    }
    let order = axis.order();
    line_order
        .iter()
        .map(|l| {
            let by_x = &lines[l];
            let p = order
                .iter()
                .filter_map(|&x| {
                    by_x.get(&x).map(|v| {
                        let n = v.len() as f64;
                        (
                            axis.pos[x],
                            v.iter().map(|p| p.0).sum::<f64>() / n,
                            v.iter().map(|p| p.1).sum::<f64>() / n,
                        )
                    })
                })
                .collect();
            (l.clone(), p)
        })
        .collect()
}

/// Pixel geometry of the plot: data ranges and margins.
struct Frame {
    x_lo: f64,
    x_span: f64,
    y_lo: f64,
    y_hi: f64,
    w: f64,
    h: f64,
    ml: f64,
    mr: f64,
    mt: f64,
    mb: f64,
}

impl Frame {
    fn of(axis: &XAxis, lines: &[Line]) -> Self {
        let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (_, p) in lines {
            for (_, m, s) in p {
                y_lo = y_lo.min(m - s);
                y_hi = y_hi.max(m + s);
            }
        }
        if y_hi - y_lo < 1e-3 {
            y_lo -= 0.005;
            y_hi += 0.005;
        }
        let pad = (y_hi - y_lo) * 0.08;
        let x_lo = axis.pos.iter().copied().fold(f64::INFINITY, f64::min);
        let x_hi = axis.pos.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            x_lo,
            x_span: if x_hi > x_lo { x_hi - x_lo } else { 1.0 },
            y_lo: y_lo - pad,
            y_hi: y_hi + pad,
            w: 640.0,
            h: 360.0,
            ml: 70.0,
            mr: 200.0,
            mt: 20.0,
            mb: 50.0,
        }
    }

    fn px(&self, x: f64) -> f64 {
        let inner = self.w - self.ml - self.mr;
        self.ml + (x - self.x_lo) / self.x_span * inner * 0.9 + inner * 0.05
    }

    fn py(&self, y: f64) -> f64 {
        self.mt + (self.y_hi - y) / (self.y_hi - self.y_lo) * (self.h - self.mt - self.mb)
    }
}

/// The frame, the grid lines, the ticks and the axis titles.
fn axes(s: &mut String, f: &Frame, axis: &XAxis, x_key: &str, metric: &str) {
    let (w, h, ml, mr, mt, mb) = (f.w, f.h, f.ml, f.mr, f.mt, f.mb);
    let _ = write!(
        s,
        "<rect x=\"{ml}\" y=\"{mt}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>",
        w - ml - mr,
        h - mt - mb
    );
    for i in 0..=4 {
        let y = f.y_lo + (f.y_hi - f.y_lo) * i as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{ml}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{y:.4}</text>",
            w - mr,
            ml - 6.0,
            f.py(y) + 4.0,
            py = f.py(y)
        );
    }
    for (i, v) in axis.values.iter().enumerate() {
        let x = f.px(axis.pos[i]);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#888\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            h - mb,
            h - mb + 5.0,
            h - mb + 18.0,
            esc(&show(v))
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>\
         <text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{} (mean ± std over seeds)</text>",
        ml + (w - ml - mr) / 2.0,
        h - 10.0,
        esc(x_key),
        if axis.log { " (log scale)" } else { "" },
        mt + (h - mt - mb) / 2.0,
        esc(metric)
    );
}

/// One line with its error bars and its legend entry.
fn draw_line(s: &mut String, f: &Frame, li: usize, (label, p): &Line) {
    let c = COLOURS[li % COLOURS.len()];
    let path: Vec<String> = p
        .iter()
        .map(|(x, m, _)| format!("{:.1},{:.1}", f.px(*x), f.py(*m)))
        .collect();
    let _ = write!(
        s,
        "<polyline class=\"series\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
        path.join(" ")
    );
    for (x, m, sd) in p {
        let (cx, cy) = (f.px(*x), f.py(*m));
        let _ = write!(
            s,
            "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{c}\"/>\
             <circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{c}\"><title>{}: {m:.4} ± {sd:.4}</title></circle>",
            f.py(m - sd),
            f.py(m + sd),
            esc(label)
        );
    }
    let ly = f.mt + 14.0 + li as f64 * 18.0;
    let _ = write!(
        s,
        "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/>\
         <text x=\"{}\" y=\"{}\">{}</text>",
        f.w - f.mr + 10.0,
        f.w - f.mr + 30.0,
        f.w - f.mr + 36.0,
        ly + 4.0,
        esc(label)
    );
}

/// The plot of a sweep table as an SVG element.
pub(crate) fn svg(t: &SweepTable) -> String {
    let Some(x_key) = t.plot.x.as_ref() else {
        return String::new();
    };
    let xi = t.keys.iter().position(|k| k == x_key).expect("validated");
    let axis = XAxis::of(t, xi);
    let lines = lines_of(t, xi, &axis);
    if lines.is_empty() {
        return format!("<p>No run has the metric {}.</p>", esc(&t.plot.metric));
    }
    let f = Frame::of(&axis, &lines);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" \
         viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\" \
         aria-label=\"{} against {}\">",
        f.w,
        f.h,
        f.w,
        f.h,
        esc(&t.plot.metric),
        esc(x_key)
    );
    axes(&mut s, &f, &axis, x_key, &t.plot.metric);
    for (li, line) in lines.iter().enumerate() {
        draw_line(&mut s, &f, li, line);
    }
    s.push_str("</svg>");
    s
}
