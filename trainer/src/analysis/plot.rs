//! Line charts as PNG files, drawn with `plotters`' bitmap backend and encoded with `image`.
//! Text uses a font compiled into the binary (Ubuntu Light from `epaint_default_fonts`,
//! registered with plotters' `ab_glyph` renderer), so plots work on a machine without system
//! fonts.

use crate::model::write_atomic;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One curve: points `(x, y)` and optionally a shaded band `(x, low, high)`.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub band: Option<Vec<(f64, f64, f64)>>,
}

/// One chart of a figure.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Curve colours (colour-blind friendly, Okabe–Ito), repeated when there are more curves.
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

fn register_font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded plot font could not be loaded"))
    }
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        0.06 * span
    } else {
        0.5 * lo.abs().max(1e-3)
    };
    (lo - pad, hi + pad)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &Panel,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the plot failed: {e:?}");
    let xs = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
    let (x0, x1) = range(xs);
    let ys = p.series.iter().flat_map(|s| {
        let band = s.band.iter().flatten().flat_map(|b| [b.1, b.2]);
        s.points.iter().map(|q| q.1).chain(band)
    });
    let (y0, y1) = range(ys);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for (i, s) in p.series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        if let Some(band) = &s.band {
            let mut poly: Vec<(f64, f64)> = band.iter().map(|b| (b.0, b.2)).collect();
            poly.extend(band.iter().rev().map(|b| (b.0, b.1)));
            chart
                .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3)));
        chart
            .draw_series(s.points.iter().map(|&q| Circle::new(q, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Draw `panels` side by side (each `panel_w × h` pixels) and write them to `path` as PNG.
pub fn write_png(path: &Path, panels: &[Panel], panel_w: u32, h: u32) -> Result<()> {
    register_font()?;
    if panels.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let w = panel_w * panels.len() as u32;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let areas = root.split_evenly((1, panels.len()));
        for (a, p) in areas.iter().zip(panels) {
            draw_panel(a, p)?;
        }
        root.present().map_err(|e| anyhow!("{e:?}"))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("plot buffer size"))?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| anyhow!("cannot encode PNG: {e}"))?;
    write_atomic(path, &bytes)
}
