//! `--plot FILE.svg`: dT over time with the losses marked, and the distribution (CDF) with
//! the percentiles marked. Drawn with plotters into a string; the caller writes the file.

use std::time::Duration;

use plotters::prelude::*;

use super::meter::Singleton;
use super::report::Summary;

/// The picture's size in pixels.
pub const SIZE: (u32, u32) = (960, 720);

/// Why no plot.
#[derive(Debug, thiserror::Error)]
#[error("drawing the plot: {0}")]
pub struct PlotError(String);

fn err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

fn us(n: u64) -> f64 {
    n as f64 / 1e3
}

/// The SVG document.
pub fn svg(title: &str, singletons: &[Singleton], summary: &Summary) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
        let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);

        let defined: Vec<(f64, f64)> = singletons
            .iter()
            .filter_map(|s| {
                s.dt().map(|d| {
                    (
                        Duration::from_nanos(s.sent).as_secs_f64(),
                        d.as_nanos() as f64 / 1e3,
                    )
                })
            })
            .collect();
        let lost: Vec<f64> = singletons
            .iter()
            .filter(|s| s.dt().is_none())
            .map(|s| Duration::from_nanos(s.sent).as_secs_f64())
            .collect();
        let t_max = singletons
            .last()
            .map_or(1.0, |s| Duration::from_nanos(s.sent).as_secs_f64())
            .max(1e-3)
            * 1.02;
        let y_max = defined.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;

        let mut chart = ChartBuilder::on(&top)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .caption(
                format!(
                    "dT over time ({} probes, {} without a reply marked ×)",
                    singletons.len(),
                    lost.len()
                ),
                ("sans-serif", 15),
            )
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("T − T0 (s)")
            .y_desc("dT (µs)")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                defined
                    .iter()
                    .map(|&(t, d)| Circle::new((t, d), 2, BLUE.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(
                lost.iter()
                    .map(|&t| Cross::new((t, y_max * 0.97), 5, RED.stroke_width(2))),
            )
            .map_err(err)?;

        let mut sorted: Vec<f64> = defined.iter().map(|p| p.1).collect();
        sorted.sort_by(f64::total_cmp);
        let n = singletons.len().max(1) as f64;
        let x_max = sorted.last().copied().unwrap_or(1.0) * 1.05;
        let mut cdf = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .caption(
                "distribution of dT (losses count as +∞, so the curve ends below 1 when probes were lost)",
                ("sans-serif", 15),
            )
            .build_cartesian_2d(0.0..x_max, 0.0..1.0)
            .map_err(err)?;
        cdf.configure_mesh()
            .x_desc("dT (µs)")
            .y_desc("fraction ≤ dT")
            .draw()
            .map_err(err)?;
        let mut steps = vec![(0.0, 0.0)];
        for (i, &d) in sorted.iter().enumerate() {
            steps.push((d, i as f64 / n));
            steps.push((d, (i + 1) as f64 / n));
        }
        steps.push((x_max, sorted.len() as f64 / n));
        cdf.draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))
            .map_err(err)?;
        for (x, v) in &summary.percentiles {
            let Some(Some(d)) = v else {
                // Undefined (too many losses): named in the legend, no line to draw.
                if v.is_some() {
                    cdf.draw_series(LineSeries::new(std::iter::empty::<(f64, f64)>(), RED))
                        .map_err(err)?
                        .label(format!("p{x} = +∞ (lost probes)"))
                        .legend(|(x, y)| Cross::new((x + 7, y), 4, RED));
                }
                continue;
            };
            let at = us(d.as_nanos() as u64);
            cdf.draw_series(LineSeries::new(
                [(at, 0.0), (at, x / 100.0)],
                RED.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("p{x} = {at:.1} µs"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], RED));
        }
        if let Some(Some(m)) = summary.median {
            let at = us(m.as_nanos() as u64);
            cdf.draw_series(LineSeries::new(
                [(at, 0.0), (at, 0.5)],
                GREEN.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("median = {at:.1} µs"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], GREEN));
        }
        cdf.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtt::report::{Asked, summarize};

    #[test]
    fn the_plot_marks_losses_and_percentiles() {
        let singletons: Vec<Singleton> = (0..50)
            .map(|i| Singleton {
                seq: i,
                sent: u64::from(i) * 10_000_000,
                host: (i % 10 != 3).then_some(20_000 + u64::from(i) * 100),
                ..Singleton::default()
            })
            .collect();
        let m = crate::rtt::client::Measurement::for_tests(singletons.clone());
        let asked = Asked {
            percentiles: vec![50.0, 90.0, 95.0],
            threshold: Duration::from_millis(1),
        };
        let s = summarize(&m, &asked);
        let svg = svg("test", &singletons, &s).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("p50 = "), "percentile label");
        // 5 of 50 lost: the 95th percentile is +∞, and the legend says so.
        assert!(
            svg.contains("p95 = +∞"),
            "undefined percentile in the legend"
        );
        assert!(svg.contains("median = "));
        assert!(svg.contains("5 without a reply"));
        // One cross (two lines) per loss, in red.
        assert!(svg.matches("#FF0000").count() >= 5 * 2);
    }
}
