//! Charts for notifications: the series an alert fired on over the last hours, with the
//! rule's threshold drawn in, as a small PNG rendered in Rust (plotters, an embedded
//! DejaVu font). Mails carry it inline; chat messages link to `/api/charts/alert.png`.

use std::collections::BTreeMap;
use std::sync::{Arc, Once, RwLock};

use plotters::prelude::*;
use tocsin_store::Store;

/// Width and height of a chart, in pixels.
pub const SIZE: (u32, u32) = (600, 240);

/// How far back a chart looks.
pub const SPAN_MS: i64 = 3 * 3600 * 1000;

/// How far back a young series' raw points are read.
const RECENT_MS: i64 = 15 * 60 * 1000;

/// `name{k="v",...}` matching exactly `key` (values escaped), `name` alone without labels.
fn exact_selector(key: &tocsin_store::SeriesKey) -> String {
    if key.labels.is_empty() {
        return key.name.clone();
    }
    let labels: Vec<String> = key
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{}{{{}}}", key.name, labels.join(","))
}

/// What a chart shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    /// The series, `name{labels}`.
    pub title: String,
    /// Points, ascending by time (ms).
    pub points: Vec<(i64, f64)>,
    /// The rule's threshold, if it has one.
    pub threshold: Option<f64>,
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_err()
        {
            tracing::warn!("the chart font did not load; charts will have no text");
        }
    });
}

/// Render `data` as a PNG.
pub fn png(data: &ChartData) -> Result<Vec<u8>, String> {
    register_font();
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, data).map_err(|e| format!("drawing the chart: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing the chart: {e}"))?;
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A UTC time of day: `HH:MM`, or `HH:MM:SS` when `seconds`.
fn time_of_day(ms: i64, seconds: bool) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    if seconds {
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 3600, s / 60 % 60)
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let finite: Vec<(i64, f64)> = data
        .points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let (t0, t1) = match (finite.first(), finite.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
        (Some(a), _) => (a.0 - 60_000, a.0 + 60_000),
        _ => (0, 1),
    };
    let mut lo = finite.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut hi = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if let Some(t) = data.threshold.filter(|t| t.is_finite()) {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.01).max(1e-9);
    let mut title: String = data.title.chars().take(70).collect();
    if data.title.chars().count() > 70 {
        title.push('…');
    }
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 14).into_font())
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(48)
        .build_cartesian_2d(t0..t1, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 240, 242))
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|t| time_of_day(*t, t1 - t0 < 10 * 60_000))
        .label_style(("sans-serif", 11))
        .draw()?;
    let blue = RGBColor(21, 101, 192);
    chart.draw_series(LineSeries::new(
        finite.iter().copied(),
        blue.stroke_width(2),
    ))?;
    if let [only] = finite.as_slice() {
        chart.draw_series(std::iter::once(Circle::new(*only, 4, blue.filled())))?;
    }
    if let Some(t) = data.threshold.filter(|t| t.is_finite()) {
        chart.draw_series(DashedLineSeries::new(
            [(t0, t), (t1, t)],
            6,
            4,
            RGBColor(198, 40, 40).stroke_width(1),
        ))?;
    }
    Ok(())
}

/// What the charts need to know of each alert rule: the series it reads and its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChart {
    /// The rule's `[input] select`.
    pub select: Vec<String>,
    /// `params.threshold`, if it is a number.
    pub threshold: Option<f64>,
}

/// The alert rules' chart settings, kept current by the policy reloader.
#[derive(Clone, Default, Debug)]
pub struct ChartRules(Arc<RwLock<BTreeMap<String, RuleChart>>>);

impl ChartRules {
    /// Set (or replace) `rule`'s settings.
    pub fn set(&self, rule: &str, chart: RuleChart) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert(rule.to_string(), chart);
    }

    /// Forget `rule`.
    pub fn remove(&self, rule: &str) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.remove(rule);
    }

    /// The data for an alert of `rule` with `labels`: the first series its selectors find
    /// over the last [`SPAN_MS`] that agrees with every alert label it carries.
    pub fn data(
        &self,
        store: &Store,
        rule: &str,
        labels: &BTreeMap<String, String>,
        now: i64,
    ) -> Option<ChartData> {
        let rc = {
            let map = self.0.read().unwrap_or_else(|e| e.into_inner());
            map.get(rule)?.clone()
        };
        for sel in &rc.select {
            let Ok(found) = store.query_range(sel, now - SPAN_MS, now, 60_000, 300_000) else {
                continue;
            };
            let agrees = |series: &tocsin_store::SeriesData| {
                series
                    .key
                    .labels
                    .iter()
                    .all(|(k, v)| labels.get(k).is_none_or(|want| want == v))
            };
            let chosen = found
                .into_iter()
                .find(|s| agrees(s) && !s.points.is_empty());
            if let Some(mut s) = chosen {
                let selector = exact_selector(&s.key);
                // A young series has few minute steps: show its raw points instead.
                if s.points.len() < 10
                    && let Ok(raw) = store.query_raw(&selector, now - RECENT_MS, now)
                    && let Some(r) = raw.into_iter().next()
                    && r.points.len() > s.points.len()
                {
                    s.points = r.points;
                }
                s.points.retain(|p| !tocsin_store::is_stale(p.1));
                let threshold = rc
                    .threshold
                    .map_or(String::new(), |t| format!(" (threshold {t})"));
                return Some(ChartData {
                    title: format!("{selector}{threshold}"),
                    points: s.points,
                    threshold: rc.threshold,
                });
            }
        }
        None
    }

    /// The PNG for an alert, if its rule is known and its series has points.
    pub fn png(
        &self,
        store: &Store,
        rule: &str,
        labels: &BTreeMap<String, String>,
        now: i64,
    ) -> Option<Vec<u8>> {
        let data = self.data(store, rule, labels, now)?;
        match png(&data) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(rule, error = %e, "chart not rendered");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_a_png_of_the_stated_size() {
        let points: Vec<(i64, f64)> = (0..180)
            .map(|i| (i * 60_000, 50.0 + (i as f64 / 10.0).sin() * 40.0))
            .collect();
        let bytes = png(&ChartData {
            title: "cpu_usage_percent{host=\"a\"}".into(),
            points,
            threshold: Some(90.0),
        })
        .expect("png");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, after the signature and chunk header.
        assert_eq!(
            u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            SIZE.0
        );
        assert_eq!(
            u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
            SIZE.1
        );
        assert!(bytes.len() < 60_000, "{} bytes", bytes.len());
    }

    #[test]
    fn odd_data_still_draws() {
        for points in [
            vec![],
            vec![(0, 1.0)],
            vec![(0, f64::NAN), (1, f64::INFINITY)],
            vec![(0, 5.0), (60_000, 5.0)],
        ] {
            png(&ChartData {
                title: "x".into(),
                points,
                threshold: None,
            })
            .expect("png");
        }
    }

    #[test]
    fn the_series_agreeing_with_the_alert_is_charted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("store");
        let now = 10 * 3600 * 1000;
        let mut batch = Vec::new();
        for host in ["a", "b"] {
            for i in 0..60 {
                batch.push(tocsin_store::Sample {
                    name: "cpu_usage_percent".into(),
                    labels: vec![("host".into(), host.into())],
                    ts_ms: now - 3_600_000 + i * 60_000,
                    value: if host == "b" { 95.0 } else { 10.0 },
                });
            }
        }
        store.ingest(&batch).expect("ingest");
        let rules = ChartRules::default();
        rules.set(
            "cpu-high",
            RuleChart {
                select: vec!["cpu_usage_percent".into()],
                threshold: Some(90.0),
            },
        );
        let labels: BTreeMap<String, String> = [
            ("host".to_string(), "b".to_string()),
            ("alertname".into(), "cpu-high".into()),
        ]
        .into();
        let data = rules.data(&store, "cpu-high", &labels, now).expect("data");
        assert_eq!(data.title, "cpu_usage_percent{host=\"b\"} (threshold 90)");
        assert!(data.points.iter().all(|p| p.1 == 95.0));
        assert!(rules.data(&store, "other", &labels, now).is_none());
        // A series younger than a few minute steps is charted from its raw points.
        let young: Vec<tocsin_store::Sample> = (0..20)
            .map(|i| tocsin_store::Sample {
                name: "young".into(),
                labels: vec![("v".into(), "a\"b".into())],
                ts_ms: now - 20_000 + i * 1000,
                value: i as f64,
            })
            .collect();
        store.ingest(&young).expect("ingest");
        rules.set(
            "young-rule",
            RuleChart {
                select: vec!["young".into()],
                threshold: None,
            },
        );
        let data = rules
            .data(&store, "young-rule", &BTreeMap::new(), now)
            .expect("young data");
        assert_eq!(data.points.len(), 20);
        assert_eq!(data.title, "young{v=\"a\\\"b\"}");
        assert!(rules.png(&store, "cpu-high", &labels, now).is_some());
    }
}
