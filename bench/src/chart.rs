//! SVG chart of a comparison (plotters, SVG backend: text is SVG `<text>`,
//! so no system fonts are needed). Two panels of horizontal bars, one row
//! per matrix point:
//! shardtgt/tgt throughput (median, whiskers from the min/max of the
//! repeats) and shardtgt/tgt target CPU per I/O, each with a line at 1.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::compare::CompareResult;
use crate::stats::ratio;
use crate::{berr, Result};

/// One bar: label, value, optional whisker range.
type Bar = (String, f64, Option<(f64, f64)>);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    bars: &[Bar],
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| berr!("chart: {e:?}");
    let top = bars.iter().map(|b| b.2.map_or(b.1, |w| w.1.max(b.1))).fold(1.2f64, f64::max) * 1.1;
    let n = bars.len().max(1) as f64;
    // Horizontal bars, one row per point, first point on top.
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(210)
        .build_cartesian_2d(0f64..top, 0f64..n)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .y_label_formatter(&|_| String::new())
        .x_desc("shardtgt / tgt")
        .draw()
        .map_err(e)?;
    let row = |i: usize| n - 1.0 - i as f64;
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .map(|(i, b)| Rectangle::new([(0.0, row(i) + 0.15), (b.1, row(i) + 0.85)], color.filled())),
        )
        .map_err(e)?;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
            let (lo, hi) = b.2?;
            let y = row(i) + 0.5;
            Some(PathElement::new(vec![(lo, y), (hi, y)], BLACK.stroke_width(2)))
        }))
        .map_err(e)?;
    let value_font = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let right = b.2.map_or(b.1, |w| w.1.max(b.1));
            Text::new(format!("{:.2}", b.1), (right + top * 0.01, row(i) + 0.5), value_font.clone())
        }))
        .map_err(e)?;
    chart.draw_series(std::iter::once(PathElement::new(vec![(1.0, 0.0), (1.0, n)], RED.stroke_width(2)))).map_err(e)?;
    // Row labels left of the plot, in the panel's own pixel coordinates.
    let (bx, by) = area.get_base_pixel();
    let label_font = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, b) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, row(i) + 0.5));
        area.draw(&Text::new(b.0.clone(), (x - bx - 6, y - by), label_font.clone())).map_err(e)?;
    }
    Ok(())
}

/// Write the chart of `r` to `path`.
pub fn write_svg(r: &CompareResult, path: &Path) -> Result<()> {
    let height = 120 + 2 * (60 + 26 * r.points.len() as u32);
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<std::io::Error>| berr!("chart: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let (head, body) = root.split_vertically(40);
    head.draw(&Text::new(
        format!(
            "shardtgt vs tgt, {} — {} — targets CPU {}, clients CPU {}",
            r.date,
            r.machine.line(),
            r.target_cpus,
            r.client_cpus
        ),
        (10, 12),
        ("sans-serif", 13).into_font(),
    ))
    .map_err(e)?;
    let panels = body.split_evenly((2, 1));
    let thr: Vec<Bar> = r
        .points
        .iter()
        .filter_map(|p| {
            let v = p.thr_ratio()?;
            let w = match (p.thr(true), p.thr(false)) {
                (Some(s), Some(t)) if t.min > 0.0 && t.max > 0.0 => Some((s.min / t.max, s.max / t.min)),
                _ => None,
            };
            Some((p.point.label(), v, w))
        })
        .collect();
    panel(
        &panels[0],
        "throughput ratio (higher is better; whiskers: min/max over repeats)",
        &thr,
        RGBColor(60, 110, 180),
    )?;
    let cpu: Vec<Bar> =
        r.points.iter().filter_map(|p| Some((p.point.label(), ratio(p.cpu(true), p.cpu(false))?, None))).collect();
    panel(&panels[1], "target CPU time per I/O ratio (lower is better)", &cpu, RGBColor(200, 120, 40))?;
    root.present().map_err(e)?;
    Ok(())
}
