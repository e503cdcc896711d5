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
///
/// A curve draws the score's bits per unit in each position bin that has
/// predictions:
///
/// ```
/// use brt::eval::Score;
/// use brt::plot::{plot_by_position, Curve};
/// let score = Score { by_position: vec![(0.0, 0), (2.0, 1), (3.0, 2)], ..Score::default() };
/// let curve = Curve { name: "model".into(), score: &score };
/// let dir = tempfile::tempdir()?;
/// plot_by_position(&dir.path().join("curve.png"), "One curve", "token", &[curve])?;
/// assert!(dir.path().join("curve.png").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Curve<'a> {
    /// Legend text.
    pub name: String,
    /// The score whose `by_position` is drawn.
    pub score: &'a Score,
}

/// A named series of points, drawn as a line with markers.
///
/// ```
/// use brt::plot::{plot_lines, Series};
/// let series = Series { name: "loss".into(), points: vec![(1.0, 3.0), (2.0, 2.0), (3.0, 1.5)] };
/// let dir = tempfile::tempdir()?;
/// plot_lines(&dir.path().join("loss.png"), "Loss", "step", "nats", false, &[series])?;
/// assert!(std::fs::metadata(dir.path().join("loss.png"))?.len() > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// Draws bits per unit (byte or token, by `unit`) against position for each curve.
///
/// Two scores on one picture, written as a PNG; scores without predictions
/// leave nothing to plot:
///
/// ```
/// use brt::eval::Score;
/// use brt::plot::{plot_by_position, Curve};
/// let slide = Score { by_position: vec![(0.0, 0), (1.4, 1), (2.6, 2)], ..Score::default() };
/// let recurrent = Score { by_position: vec![(0.0, 0), (1.2, 1), (2.0, 2)], ..Score::default() };
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("by-position.png");
/// let curves = [Curve { name: "slide".into(), score: &slide }, Curve { name: "recurrent".into(), score: &recurrent }];
/// plot_by_position(&path, "Bits per byte", "byte", &curves)?;
/// assert!(std::fs::read(&path)?.starts_with(b"\x89PNG"));
/// let empty = Score::default();
/// assert!(plot_by_position(&path, "Nothing", "byte", &[Curve { name: "none".into(), score: &empty }]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_by_position(path: &Path, title: &str, unit: &str, curves: &[Curve<'_>]) -> Result<()> {
    let series: Vec<Series> = curves
        .iter()
        .map(|c| Series {
            name: c.name.clone(),
            points: c
                .score
                .by_position
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(b, (nats, n))| (bin_start(b), nats / *n as f64 / std::f64::consts::LN_2))
                .collect(),
        })
        .collect();
    plot_lines(path, title, "position in the document (tokens, log scale)", &format!("bits per {unit}"), true, &series)
}

/// Draws line series on linear or logarithmic x.
///
/// A PNG on a log scale of x; non-finite points are left out, and with no point
/// left there is nothing to plot:
///
/// ```
/// use brt::plot::{plot_lines, Series};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("lines.png");
/// let series = [Series { name: "a".into(), points: vec![(1.0, 2.0), (10.0, 1.0), (100.0, f64::NAN)] }];
/// plot_lines(&path, "Lines", "x", "y", true, &series)?;
/// assert!(std::fs::read(&path)?.starts_with(b"\x89PNG"));
/// let none = [Series { name: "b".into(), points: vec![(1.0, f64::INFINITY)] }];
/// assert!(plot_lines(&path, "None", "x", "y", false, &none).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, log_x: bool, series: &[Series]) -> Result<()> {
    ensure_font();
    let fail = |e: &dyn std::fmt::Display| Error::Invalid(format!("plot {}: {e}", path.display()));
    let all: Vec<&(f64, f64)> =
        series.iter().flat_map(|s| &s.points).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    if all.is_empty() {
        return Err(Error::Invalid("nothing to plot".into()));
    }
    let x_min = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_max = all.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let y_max = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let pad = ((y_max - y_min) * 0.08).max(1e-3);
    let (y_lo, y_hi) = ((y_min - pad).max(0.0), y_max + pad);
    let root = BitMapBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.2}"))
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .draw()
                .map_err(|e| fail(&e))?;
            for (i, s) in series.iter().enumerate() {
                let color = colors[i % colors.len()];
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                    .map_err(|e| fail(&e))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                if s.points.len() <= 64 {
                    chart
                        .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| fail(&e))?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| fail(&e))?;
        }};
    }
    let mut builder = ChartBuilder::on(&root);
    builder.caption(title, ("sans-serif", 26)).margin(20).x_label_area_size(50).y_label_area_size(70);
    if log_x {
        let (lo, hi) = (x_min.max(1e-9), (x_max * 1.2).max(x_min.max(1e-9) * 2.0));
        draw!(builder.build_cartesian_2d((lo..hi).log_scale(), y_lo..y_hi).map_err(|e| fail(&e))?);
    } else {
        let hi = if x_max > x_min { x_max } else { x_min + 1.0 };
        draw!(builder.build_cartesian_2d(x_min..hi, y_lo..y_hi).map_err(|e| fail(&e))?);
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
