//! SVG bar charts of the report (plotters, SVG backend only).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One bar chart: `groups` on the x axis, one bar per series in each group.
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[(&str, Vec<f64>)],
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let n = series.len().max(1);
    let slots = groups.len() * (n + 1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..slots as f64, 0f64..max)
        .map_err(|e| anyhow!("{e}"))?;
    let labels = groups.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_label)
        .x_labels(slots)
        .x_label_formatter(&|x| {
            let slot = x.floor() as usize;
            if slot % (n + 1) == n / 2 {
                labels.get(slot / (n + 1)).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (si, (name, values)) in series.iter().enumerate() {
        let color = palette[si % palette.len()];
        chart
            .draw_series(values.iter().enumerate().map(|(gi, v)| {
                let x0 = (gi * (n + 1) + si) as f64 + 0.1;
                Rectangle::new([(x0, 0.0), (x0 + 0.8, *v)], color.filled())
            }))
            .map_err(|e| anyhow!("{e}"))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
