//! The sweep plot: one metric against one swept key, one line per value of a second key (or
//! per combination of the other keys), error bars of ± one standard deviation over seeds.
//! Inline SVG, no dependencies.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::SweepTable;
use super::merge::show;

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    crate::report::html::esc(s)
}

/// The plot of a sweep table as an SVG element.
pub(crate) fn svg(t: &SweepTable) -> String {
    let Some(x_key) = t.plot.x.as_ref() else {
        return String::new();
    };
    let xi = t.keys.iter().position(|k| k == x_key).expect("validated");
    // x positions: the distinct x values in order; numeric axes use their values (log scale
    // when all are positive and span a factor of 10 or more), others are evenly spaced.
    let mut xs: Vec<Value> = Vec::new();
    for r in &t.runs {
        let v = &r.point[xi].1;
        if !xs.contains(v) {
            xs.push(v.clone());
        }
    }
    let nums: Option<Vec<f64>> = xs.iter().map(Value::as_f64).collect();
    let (pos, log): (Vec<f64>, bool) = match &nums {
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
        _ => ((0..xs.len()).map(|i| i as f64).collect(), false),
    };
    let order: Vec<usize> = {
        let mut o: Vec<usize> = (0..xs.len()).collect();
        o.sort_by(|a, b| pos[*a].total_cmp(&pos[*b]));
        o
    };
    // Lines: by the series key's value, or by every other key's values.
    let line_of = |r: &super::RunRow| -> String {
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
    };
    // line -> x index -> (mean, std) values (several runs at one point are averaged, e.g.
    // a third swept key not plotted).
    let mut lines: BTreeMap<String, BTreeMap<usize, Vec<(f64, f64)>>> = BTreeMap::new();
    let mut line_order: Vec<String> = Vec::new();
    for r in &t.runs {
        let Some(m) = r.metrics.get(&t.plot.metric) else {
            continue;
        };
        let l = line_of(r);
        if !line_order.contains(&l) {
            line_order.push(l.clone());
        }
        let x = xs.iter().position(|v| v == &r.point[xi].1).expect("listed");
        lines
            .entry(l)
            .or_default()
            .entry(x)
            .or_default()
            .push((m.mean, m.std));
    }
    if lines.is_empty() {
        return format!("<p>No run has the metric {}.</p>", esc(&t.plot.metric));
    }
    // Per line: its label and (x position, mean, std) points in x order.
    type Line = (String, Vec<(f64, f64, f64)>);
    let pts: Vec<Line> = line_order
        .iter()
        .map(|l| {
            let by_x = &lines[l];
            let p = order
                .iter()
                .filter_map(|&x| {
                    by_x.get(&x).map(|v| {
                        let n = v.len() as f64;
                        (
                            pos[x],
                            v.iter().map(|p| p.0).sum::<f64>() / n,
                            v.iter().map(|p| p.1).sum::<f64>() / n,
                        )
                    })
                })
                .collect();
            (l.clone(), p)
        })
        .collect();
    let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, p) in &pts {
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
    let (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
    let (x_lo, x_hi) = (
        pos.iter().copied().fold(f64::INFINITY, f64::min),
        pos.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let x_span = if x_hi > x_lo { x_hi - x_lo } else { 1.0 };
    let (w, h, ml, mr, mt, mb) = (640.0, 360.0, 70.0, 200.0, 20.0, 50.0);
    let px = |x: f64| ml + (x - x_lo) / x_span * (w - ml - mr) * 0.9 + (w - ml - mr) * 0.05;
    let py = |y: f64| mt + (y_hi - y) / (y_hi - y_lo) * (h - mt - mb);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\" \
         aria-label=\"{} against {}\">",
        esc(&t.plot.metric),
        esc(x_key)
    );
    let _ = write!(
        s,
        "<rect x=\"{ml}\" y=\"{mt}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>",
        w - ml - mr,
        h - mt - mb
    );
    for i in 0..=4 {
        let y = y_lo + (y_hi - y_lo) * i as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{ml}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{y:.4}</text>",
            w - mr,
            ml - 6.0,
            py(y) + 4.0,
            py = py(y)
        );
    }
    for (i, v) in xs.iter().enumerate() {
        let x = px(pos[i]);
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
        if log { " (log scale)" } else { "" },
        mt + (h - mt - mb) / 2.0,
        esc(&t.plot.metric)
    );
    for (li, (label, p)) in pts.iter().enumerate() {
        let c = COLOURS[li % COLOURS.len()];
        let path: Vec<String> = p
            .iter()
            .map(|(x, m, _)| format!("{:.1},{:.1}", px(*x), py(*m)))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (x, m, sd) in p {
            let (cx, cy) = (px(*x), py(*m));
            let _ = write!(
                s,
                "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{c}\"/>\
                 <circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{c}\"><title>{}: {m:.4} ± {sd:.4}</title></circle>",
                py(m - sd),
                py(m + sd),
                esc(label)
            );
        }
        let ly = mt + 14.0 + li as f64 * 18.0;
        let _ = write!(
            s,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            w - mr + 10.0,
            w - mr + 30.0,
            w - mr + 36.0,
            ly + 4.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}
