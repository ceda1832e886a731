//! `report.html`: per category the ROC curves, a grid of test images with anomaly-map
//! overlays, ground-truth contours and the F1-max segmentation, and the worst false positives
//! and false negatives. Self-contained: plots are inline SVG, pictures PNG data URIs.

use std::fmt::Write as _;
use std::io::Cursor;

use base64::Engine as _;
use image::{Rgb, RgbImage};
use ndarray::Array2;
pub use patchcore_model::render::{heatmap_image, heatmap_overlay};

/// One test image, ready to draw.
pub(crate) struct Shown<'a> {
    pub name: String,
    pub defect_type: String,
    pub score: f32,
    pub anomalous: bool,
    /// The network input (resized, cropped) as RGB.
    pub input: RgbImage,
    pub map: &'a Array2<f32>,
    /// 0/1 mask at the map's size, if any.
    pub mask: Option<&'a [u8]>,
}

/// What the category section shows.
pub(crate) struct CategoryView<'a> {
    pub name: &'a str,
    pub image_roc: &'a [(f64, f64)],
    pub image_auroc: f64,
    pub pixel_roc: Option<&'a [(f64, f64)]>,
    pub pixel_auroc: Option<f64>,
    pub image_threshold: f32,
    pub pixel_threshold: Option<f32>,
    /// Display range of the maps (category-wide).
    pub map_range: (f32, f32),
    /// Full-resolution overlays the page links to (path relative to the report, JPEG bytes),
    /// added by [`category_section`] for every overlay it shows downscaled.
    pub full_size: std::cell::RefCell<Vec<(String, Vec<u8>)>>,
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An ROC curve as inline SVG.
pub(crate) fn roc_svg(title: &str, points: &[(f64, f64)], auc: f64) -> String {
    let (w, h, m) = (280.0, 280.0, 36.0);
    let (pw, ph) = (w - 2.0 * m, h - 2.0 * m);
    let mut path = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.2},{:.2} ",
            if i == 0 { "M" } else { "L" },
            m + x * pw,
            m + (1.0 - y) * ph
        );
    }
    let mut ticks = String::new();
    for t in [0.0, 0.5, 1.0] {
        let _ = write!(
            ticks,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{t}</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{t}</text>"#,
            m + t * pw,
            h - m + 14.0,
            m - 4.0,
            m + (1.0 - t) * ph + 3.0
        );
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
<rect x="{m}" y="{m}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>
<line x1="{m}" y1="{y0}" x2="{x1}" y2="{m}" stroke="#ccc" stroke-dasharray="4 3"/>
<path d="{path}" fill="none" stroke="#c0392b" stroke-width="2"/>
{ticks}
<text x="{cx}" y="16" font-size="13" text-anchor="middle" font-weight="bold">{title} (AUROC {auc:.4})</text>
<text x="{cx}" y="{hb}" font-size="11" text-anchor="middle">false positive rate</text>
<text x="12" y="{cy}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {cy})">true positive rate</text>
</svg>"##,
        y0 = m + ph,
        x1 = m + pw,
        cx = w / 2.0,
        cy = h / 2.0,
        hb = h - 4.0,
        title = esc(title),
    )
}

/// Boundary pixels of a binary field (set, with a 4-neighbour unset or outside).
fn boundary(field: &[bool], h: usize, w: usize) -> Vec<bool> {
    let mut out = vec![false; field.len()];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !field[i] {
                continue;
            }
            let edge = y == 0 || x == 0 || y + 1 == h || x + 1 == w;
            out[i] = edge || !field[i - 1] || !field[i + 1] || !field[i - w] || !field[i + w];
        }
    }
    out
}

/// Input with the anomaly map blended in, ground truth outlined in green and the pixels at or
/// above the pixel F1-max threshold outlined in white.
fn overlay(s: &Shown<'_>, view: &CategoryView<'_>) -> RgbImage {
    let (h, w) = s.map.dim();
    let mut img = heatmap_overlay(&s.input, s.map, view.map_range);
    if let Some(t) = view.pixel_threshold {
        let seg: Vec<bool> = s.map.iter().map(|v| *v >= t).collect();
        for (i, b) in boundary(&seg, h, w).into_iter().enumerate() {
            if b {
                img.put_pixel((i % w) as u32, (i / w) as u32, Rgb([255, 255, 255]));
            }
        }
    }
    if let Some(mask) = s.mask {
        let gt: Vec<bool> = mask.iter().map(|m| *m != 0).collect();
        for (i, b) in boundary(&gt, h, w).into_iter().enumerate() {
            if b {
                img.put_pixel((i % w) as u32, (i / w) as u32, Rgb([40, 230, 60]));
            }
        }
    }
    img
}

fn data_uri(img: &RgbImage) -> String {
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("PNG encoding to memory");
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The path (relative to the report) of an overlay's full-resolution JPEG, encoded and
/// recorded in `view.full_size` the first time the image is shown.
fn full_size_file(s: &Shown<'_>, view: &CategoryView<'_>, full: &RgbImage) -> String {
    let safe = |t: &str| -> String {
        t.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let path = format!("overlays/{}/{}.jpg", safe(view.name), safe(&s.name));
    let mut files = view.full_size.borrow_mut();
    if !files.iter().any(|(p, _)| *p == path) {
        let mut jpg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 90)
            .encode_image(full)
            .expect("JPEG encoding to memory");
        files.push((path.clone(), jpg));
    }
    path
}

/// Widest overlay embedded in the page, in pixels.
const MAX_SHOWN: u32 = 448;

fn tile(s: &Shown<'_>, view: &CategoryView<'_>) -> String {
    let verdict = if s.score >= view.image_threshold {
        "anomalous"
    } else {
        "good"
    };
    let wrong = (s.score >= view.image_threshold) != s.anomalous;
    let mut shown = overlay(s, view);
    // Full-resolution maps (tiled models) are downscaled for the page and linked in full.
    let mut link = None;
    if shown.width() > MAX_SHOWN {
        link = Some(full_size_file(s, view, &shown));
        let h = (shown.height() * MAX_SHOWN).div_ceil(shown.width()).max(1);
        shown =
            image::imageops::resize(&shown, MAX_SHOWN, h, image::imageops::FilterType::Triangle);
    }
    let (open, close) = match &link {
        Some(href) => (format!("<a href=\"{}\">", esc(href)), "</a>"),
        None => (String::new(), ""),
    };
    format!(
        r#"<figure class="{cls}">{open}<img src="{src}" width="{w}" height="{h}" alt="{name}">{close}<figcaption>{name}<br>{ty}, score {score:.3} → {verdict}</figcaption></figure>"#,
        cls = if wrong { "wrong" } else { "right" },
        src = data_uri(&shown),
        w = shown.width(),
        h = shown.height(),
        name = esc(&s.name),
        ty = esc(&s.defect_type),
        score = s.score,
    )
}

/// The HTML section of one category. `shown` are all test images; the grid shows up to
/// `grid` of them (anomalous and good alternating), then the worst 4 false positives
/// (highest-scored good images) and false negatives (lowest-scored anomalous ones).
pub(crate) fn category_section(
    view: &CategoryView<'_>,
    shown: &[Shown<'_>],
    grid: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<section><h2>{}</h2><div class=\"plots\">",
        esc(view.name)
    );
    s.push_str(&roc_svg("image ROC", view.image_roc, view.image_auroc));
    if let (Some(roc), Some(auc)) = (view.pixel_roc, view.pixel_auroc) {
        s.push_str(&roc_svg("pixel ROC", roc, auc));
    } else {
        s.push_str("<p class=\"note\">Pixel metrics absent: no ground-truth masks.</p>");
    }
    let _ = writeln!(
        s,
        "</div><p class=\"note\">Image F1-max threshold {:.4}{}. Overlays: anomaly map (blue = low, red = high, \
         one scale for the category), <span style=\"color:#28e63c\">ground truth</span> in green, pixels at or above \
         the pixel F1-max threshold outlined in white. Red frames: wrong verdicts.</p>",
        view.image_threshold,
        view.pixel_threshold
            .map(|t| format!("; pixel F1-max threshold {t:.4}"))
            .unwrap_or_default()
    );
    let (bad, good): (Vec<&Shown<'_>>, Vec<&Shown<'_>>) = shown.iter().partition(|s| s.anomalous);
    // Anomalous images round-robin over the defect types, so every type is shown.
    let mut types: Vec<&str> = bad.iter().map(|s| s.defect_type.as_str()).collect();
    types.dedup();
    let by_type: Vec<Vec<&Shown<'_>>> = types
        .iter()
        .map(|t| {
            bad.iter()
                .copied()
                .filter(|s| s.defect_type == *t)
                .collect()
        })
        .collect();
    let longest = by_type.iter().map(Vec::len).max().unwrap_or(0);
    let interleaved: Vec<&Shown<'_>> = (0..longest)
        .flat_map(|i| by_type.iter().filter_map(move |v| v.get(i).copied()))
        .collect();
    let mut picked = Vec::new();
    let (mut b, mut g) = (interleaved.iter(), good.iter());
    while picked.len() < grid {
        match (b.next(), g.next()) {
            (None, None) => break,
            (x, y) => picked.extend(x.into_iter().chain(y).copied()),
        }
    }
    s.push_str("<h3>Test images</h3><div class=\"grid\">");
    for t in picked.iter().take(grid) {
        s.push_str(&tile(t, view));
    }
    s.push_str("</div>");
    let mut fps: Vec<&Shown<'_>> = good.clone();
    fps.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut fns: Vec<&Shown<'_>> = bad.clone();
    fns.sort_by(|a, b| a.score.total_cmp(&b.score));
    s.push_str("<h3>Worst false positives (highest-scored good images)</h3><div class=\"grid\">");
    for t in fps.iter().take(4) {
        s.push_str(&tile(t, view));
    }
    s.push_str(
        "</div><h3>Worst false negatives (lowest-scored anomalous images)</h3><div class=\"grid\">",
    );
    for t in fns.iter().take(4) {
        s.push_str(&tile(t, view));
    }
    s.push_str("</div></section>\n");
    s
}

/// Escapes `s` and renders its `backtick` spans as `<code>`.
pub(crate) fn inline_code(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", esc(part))
            } else {
                esc(part)
            }
        })
        .collect()
}

/// The whole page around the category sections and the HTML summary.
pub(crate) fn page(summary_html: &str, sections: &[String]) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PatchCore evaluation</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
pre {{ background: #f4f4f4; padding: 1em; overflow-x: auto; white-space: pre-wrap; }}
.plots {{ display: flex; gap: 1em; flex-wrap: wrap; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 8px; }}
figure {{ margin: 0; padding: 3px; border: 3px solid #ddd; font-size: 11px; width: 224px; }}
figure.wrong {{ border-color: #c0392b; }}
.note {{ color: #555; font-size: 13px; max-width: 60em; }}
.warn {{ color: #b00; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; }}
th {{ background: #f0f0f0; }}
table.sortable th {{ cursor: pointer; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>PatchCore evaluation</h1>
{}
{}
</body></html>
"#,
        summary_html,
        sections.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_of_a_square() {
        let mut f = vec![false; 25];
        for y in 1..4 {
            for x in 1..4 {
                f[y * 5 + x] = true;
            }
        }
        let b = boundary(&f, 5, 5);
        assert_eq!(
            b.iter().filter(|v| **v).count(),
            8,
            "3x3 square: 8 edge pixels, centre inside"
        );
        assert!(!b[2 * 5 + 2]);
    }

    #[test]
    fn roc_svg_is_well_formed() {
        let svg = roc_svg("image ROC", &[(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)], 1.0);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("M36.00,244.00") && svg.contains("AUROC 1.0000"));
    }
}
