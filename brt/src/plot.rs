//! The picture of what recurrence buys: bits per byte against position in the
//! document, log-scaled, as a PNG.

use crate::error::{Error, Result};
use crate::eval::{bin_start, Score};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::Once;

/// DejaVu Sans reduced to printable ASCII (see `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-ascii.ttf");

fn ensure_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One curve: a name and a pooled score.
pub struct Curve<'a> {
    /// Legend text.
    pub name: String,
    /// The score whose `by_position` is drawn.
    pub score: &'a Score,
}

/// Draws bits per unit (byte or token, by `unit`) against position for each curve.
pub fn plot_by_position(path: &Path, title: &str, unit: &str, curves: &[Curve<'_>]) -> Result<()> {
    ensure_font();
    let fail = |e: &dyn std::fmt::Display| Error::Invalid(format!("plot {}: {e}", path.display()));
    let series: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|c| {
            let points = c
                .score
                .by_position
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(b, (nats, n))| (bin_start(b), nats / *n as f64 / std::f64::consts::LN_2))
                .collect();
            (c.name.clone(), points)
        })
        .collect();
    let all: Vec<&(f64, f64)> = series.iter().flat_map(|(_, p)| p).collect();
    if all.is_empty() {
        return Err(Error::Invalid("nothing to plot: no position was predicted".into()));
    }
    let x_max = all.iter().map(|p| p.0).fold(2.0, f64::max) * 1.2;
    let y_max = all.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1 + 1e-9;
    let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).min(y_max) * 0.9;
    {
        let root = BitMapBackend::new(path, (1000, 620)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((1f64..x_max).log_scale(), y_min..y_max)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("position in the document (tokens, log scale)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .y_desc(format!("bits per {unit}"))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(|e| fail(&e))?;
        let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (i, (name, points)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| fail(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(())
}
