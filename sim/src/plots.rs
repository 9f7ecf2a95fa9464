//! SVG plots: per site, renewable supply against each policy's facility load; per policy,
//! the cumulative renewable share of the jobs' energy.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::civil::{HOUR_S, format_date};
use crate::cluster::PolicyKind;
use crate::error::SimError;
use crate::outcome::RunOutcome;
use crate::sites::SimSite;

const SIZE: (u32, u32) = (1280, 440);

/// Line colour of a policy, readable on white.
fn colour(policy: PolicyKind) -> RGBColor {
    match policy {
        PolicyKind::Verdant => RGBColor(27, 120, 55),
        PolicyKind::Fifo => RGBColor(90, 90, 90),
        PolicyKind::ThresholdWait => RGBColor(33, 102, 172),
        PolicyKind::Oracle => RGBColor(178, 24, 43),
    }
}

fn plot_error(path: &Path) -> impl Fn(String) -> SimError + '_ {
    move |message| SimError::Plot {
        path: path.to_owned(),
        message,
    }
}

/// Draws every plot into `dir`; returns the files written.
pub fn draw_all(
    dir: &Path,
    sites: &[SimSite],
    runs: &[RunOutcome],
    start_s: i64,
) -> Result<Vec<PathBuf>, SimError> {
    let mut files = Vec::new();
    for (s, site) in sites.iter().enumerate() {
        let path = dir.join(format!("supply-load-{}.svg", site.name));
        draw_site(&path, site, s, runs, start_s).map_err(plot_error(&path))?;
        files.push(path);
    }
    let path = dir.join("renewable-share.svg");
    draw_share(&path, runs, start_s).map_err(plot_error(&path))?;
    files.push(path);
    Ok(files)
}

fn day_label(start_s: i64) -> impl Fn(&f64) -> String {
    move |hour: &f64| format_date(start_s + (*hour * HOUR_S as f64) as i64)[5..].to_owned()
}

fn draw_site(
    path: &Path,
    site: &SimSite,
    s: usize,
    runs: &[RunOutcome],
    start_s: i64,
) -> Result<(), String> {
    let hours = runs.first().map_or(0, |r| r.hourly[s].len());
    let supply: Vec<f64> = (0..hours)
        .map(|h| site.supply_kw_at(start_s + h as i64 * HOUR_S))
        .collect();
    let max_kw = runs
        .iter()
        .flat_map(|r| r.hourly[s].iter().map(|h| h.facility_load_kw))
        .chain(supply.iter().copied())
        .fold(1.0_f64, f64::max)
        * 1.08;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: renewable supply and facility load, kW", site.name),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..hours.max(1) as f64, 0.0..max_kw)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(hours.div_ceil(24).clamp(2, 24))
        .x_label_formatter(&day_label(start_s))
        .y_desc("kW")
        .x_desc("date (UTC)")
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    let sun = RGBColor(244, 190, 60);
    chart
        .draw_series(AreaSeries::new(
            supply.iter().enumerate().map(|(h, kw)| (h as f64, *kw)),
            0.0,
            sun.mix(0.35),
        ))
        .map_err(|e| e.to_string())?
        .label("renewable supply")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], sun.mix(0.6).filled()));
    for run in runs {
        let width = if run.policy == PolicyKind::Verdant {
            2
        } else {
            1
        };
        let style = colour(run.policy).stroke_width(width);
        chart
            .draw_series(LineSeries::new(
                run.hourly[s]
                    .iter()
                    .enumerate()
                    .map(|(h, r)| (h as f64, r.facility_load_kw)),
                style,
            ))
            .map_err(|e| e.to_string())?
            .label(format!("load: {}", run.policy))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn draw_share(path: &Path, runs: &[RunOutcome], start_s: i64) -> Result<(), String> {
    let hours = runs
        .first()
        .and_then(|r| r.hourly.first())
        .map_or(0, Vec::len);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cumulative renewable share of the jobs' GPU energy, all sites",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..hours.max(1) as f64, 0.0..100.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(hours.div_ceil(24).clamp(2, 24))
        .x_label_formatter(&day_label(start_s))
        .y_desc("renewable share, %")
        .x_desc("date (UTC)")
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    for run in runs {
        let (mut energy, mut renewable) = (0.0, 0.0);
        let points: Vec<(f64, f64)> = (0..hours)
            .filter_map(|h| {
                for site in &run.hourly {
                    energy += site[h].job_energy_j;
                    renewable += site[h].renewable_j;
                }
                (energy > 0.0).then(|| (h as f64 + 1.0, 100.0 * renewable / energy))
            })
            .collect();
        let style = colour(run.policy).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(|e| e.to_string())?
            .label(run.policy.name())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
