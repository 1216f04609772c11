//! A self-contained HTML report: summary tables and inline SVG plots (latency percentiles over
//! time, loss and calls over time, CPU against calls). No scripts, no external files.

use std::fmt::Write;

use super::Report;
use crate::run::fmt_score;

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 56.0;
const MARGIN_BOTTOM: f64 = 36.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_RIGHT: f64 = 16.0;

/// One line (or point cloud) of a plot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
    /// Draw points instead of a line.
    pub scatter: bool,
}

/// Renders the report as one HTML page.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let title = format!("bridgepool-loadgen: {}", escape(&r.target));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f4f4f4}}\
         td:first-child,th:first-child{{text-align:left}}svg{{background:#fff;border:1px solid #ddd;margin:0.5em 0}}\
         .bad{{color:#b00;font-weight:bold}}.ok{{color:#070;font-weight:bold}}</style></head><body>\n<h1>{title}</h1>\n"
    );
    let mode = r.config.as_ref().map_or("?", |c| c.mode.name());
    let (class, verdict) = if r.service_level_held {
        ("ok", "held")
    } else {
        ("bad", "NOT held")
    };
    let _ = writeln!(
        h,
        "<p>mode <b>{mode}</b>, {:.1} s, started at Unix time {}. Service level: <span class=\"{class}\">{verdict}</span>.</p>",
        r.duration_s, r.started_unix_s
    );
    let c = &r.calls;
    let _ = writeln!(
        h,
        "<table><tr><th>calls</th><th>attempted</th><th>transcoded</th><th>passthrough</th><th>relayed</th>\
         <th>wrongly transcoded</th><th>refused</th><th>failed</th><th>peak up</th></tr>\
         <tr><td></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        c.attempted,
        c.transcoded,
        c.passthrough,
        c.relayed,
        c.passthrough_expected_but_transcoded,
        c.refused,
        c.failed,
        c.peak_concurrent
    );
    let _ = writeln!(
        h,
        "<table><tr><th>direction</th><th>streams</th><th>sent</th><th>received</th><th>loss %</th><th>dup</th>\
         <th>reordered</th><th>jitter ms</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th>\
         <th>rule violations</th><th>MOS est. (E-model)</th><th>PESQ NB</th><th>PESQ NB min</th><th>PESQ WB</th></tr>"
    );
    let rows = r
        .directions
        .iter()
        .map(|d| (d.name.as_str(), &d.summary, d.mos, Some(&d.pesq)))
        .chain([("total", &r.total, r.mos, None)]);
    for (name, t, mos, pesq) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{:.2}</td>\
             <td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.streams,
            t.sent,
            t.received,
            t.loss_pct(),
            t.duplicates,
            t.reordered,
            t.jitter_ms_mean,
            t.latency.p50_ms,
            t.latency.p95_ms,
            t.latency.p99_ms,
            t.latency.max_ms,
            t.violations.total(),
            mos,
            fmt_score(pesq.and_then(|p| p.nb_mean)),
            fmt_score(pesq.and_then(|p| p.nb_min)),
            fmt_score(pesq.and_then(|p| p.wb_mean)),
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        "<p>{}<br>MOS est.: E-model estimate from loss, jitter and latency. PESQ: ITU-T P.862.1 \
         MOS-LQO narrowband and P.862.2 wideband of the sampled calls, the received audio decoded \
         as a receiver does (Opus at 48 kHz) and aligned with the speech sent.</p>",
        escape(&r.load)
    );
    if !r.quality.is_empty() {
        h.push_str("<table><tr><th>call</th><th>direction</th><th>codec</th><th>voice</th><th>client</th><th>step</th>\
            <th>frames</th><th>missing</th><th>correlation</th><th>PESQ NB</th><th>PESQ WB</th><th>PESQ error</th></tr>\n");
        for q in &r.quality {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&q.call_id),
                escape(&q.direction),
                escape(&q.codec),
                escape(&q.voice),
                escape(&q.client),
                q.step.map(|s| s.to_string()).unwrap_or_default(),
                q.frames,
                q.missing_frames,
                q.correlation,
                fmt_score(q.pesq_nb),
                fmt_score(q.pesq_wb),
                escape(q.pesq_error.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<table><tr><th>process</th><th>role</th><th>pid</th><th>mean CPU %</th><th>max CPU %</th></tr>\n");
    for p in &r.cpu {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            escape(&p.name),
            escape(&p.role),
            p.pid,
            p.mean_pct,
            p.max_pct
        );
    }
    h.push_str("</table>\n");

    let t = &r.timeline;
    let line = |name: &str, f: &dyn Fn(&super::TimelinePoint) -> f64| Series {
        name: name.to_owned(),
        points: t.iter().map(|p| (p.t_s, f(p))).collect(),
        scatter: false,
    };
    // Intervals without packets have no latency (not a latency of zero).
    let latency = |name: &str, f: &dyn Fn(&super::TimelinePoint) -> f64| Series {
        name: name.to_owned(),
        points: t
            .iter()
            .filter(|p| p.received > 0)
            .map(|p| (p.t_s, f(p)))
            .collect(),
        scatter: false,
    };
    h += &chart(
        "Added latency per interval",
        "time (s)",
        "ms",
        &[
            latency("p50", &|p| p.p50_ms),
            latency("p95", &|p| p.p95_ms),
            latency("p99", &|p| p.p99_ms),
        ],
    );
    h += &chart(
        "Loss per interval",
        "time (s)",
        "%",
        &[line("loss", &|p| p.loss_pct)],
    );
    h += &chart(
        "Calls up",
        "time (s)",
        "calls",
        &[
            line("calls", &|p| p.calls as f64),
            line("media calls", &|p| p.media_calls as f64),
        ],
    );
    let cpu_series: Vec<Series> = r
        .cpu
        .iter()
        .enumerate()
        .map(|(i, proc_)| Series {
            name: format!("{} ({})", proc_.name, proc_.role),
            points: t
                .iter()
                .filter_map(|p| {
                    p.cpu_pct
                        .get(i)
                        .copied()
                        .flatten()
                        .map(|c| (p.media_calls as f64, c))
                })
                .collect(),
            scatter: true,
        })
        .collect();
    h += &chart(
        "CPU against calls",
        "media calls",
        "% of one core",
        &cpu_series,
    );
    if let Some(ramp) = &r.ramp {
        let _ = writeln!(
            h,
            "<h2>Ramp</h2><p>highest density held: <b>{}</b> calls ({})</p>",
            ramp.highest_held,
            escape(&ramp.stopped_because)
        );
        let steps = |name: &str, f: &dyn Fn(&super::RampStep) -> f64| Series {
            name: name.to_owned(),
            points: ramp.steps.iter().map(|s| (s.calls as f64, f(s))).collect(),
            scatter: false,
        };
        h += &chart(
            "p99 latency per ramp step",
            "calls",
            "ms",
            &[steps("p99", &|s| s.p99_ms)],
        );
        h += &chart(
            "Loss per ramp step",
            "calls",
            "%",
            &[steps("loss", &|s| s.loss_pct)],
        );
        let pesq = |name: &str, f: &dyn Fn(&super::RampStep) -> Option<f64>| Series {
            name: name.to_owned(),
            points: ramp
                .steps
                .iter()
                .filter_map(|s| f(s).map(|v| (s.calls as f64, v)))
                .collect(),
            scatter: false,
        };
        h += &chart(
            "PESQ NB (lowest sampled call) per ramp step",
            "calls",
            "MOS-LQO",
            &[
                pesq("G.711 -> Opus", &|s| s.pesq_a_to_b.nb_min),
                pesq("Opus -> G.711", &|s| s.pesq_b_to_a.nb_min),
            ],
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// One SVG plot with axes, ticks and a legend.
pub fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let points = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let y1 = nice_ceiling(y1);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let sx = |x: f64| MARGIN_LEFT + (x - x0) / (x1 - x0) * plot_w;
    let sy = |y: f64| MARGIN_TOP + plot_h - y / y1 * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         font-size=\"11\"><text x=\"{MARGIN_LEFT}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    for i in 0..=4 {
        let y = y1 * f64::from(i) / 4.0;
        let py = sy(y);
        let _ = write!(
            s,
            "<line x1=\"{MARGIN_LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            MARGIN_LEFT + plot_w,
            MARGIN_LEFT - 4.0,
            py + 4.0,
            short(y)
        );
        let x = x0 + (x1 - x0) * f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            sx(x),
            MARGIN_TOP + plot_h + 14.0,
            short(x)
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{MARGIN_LEFT}\" y=\"{MARGIN_TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#888\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"12\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {:.1})\">{}</text>",
        MARGIN_LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        escape(x_label),
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        escape(y_label)
    );
    // The legend follows the title on the same line (about 7.5 px per bold character).
    let mut legend_x = MARGIN_LEFT + 7.5 * title.len() as f64 + 24.0;
    for (i, series) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| (sx(x), sy(y)))
            .collect();
        if series.scatter {
            for (x, y) in &pts {
                let _ = write!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{color}\"/>"
                );
            }
        } else if !pts.is_empty() {
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        let lx = legend_x;
        legend_x += 24.0 + 6.5 * series.name.len() as f64;
        let _ = write!(
            s,
            "<rect x=\"{lx:.1}\" y=\"9\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"18\">{}</text>",
            lx + 14.0,
            escape(&series.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The next 1, 2 or 5 times a power of ten at or above `v` (1 for nothing to show).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Escapes text for HTML and SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
