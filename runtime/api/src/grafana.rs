//! A Grafana dashboard for Tocsin, generated: health score, fleet status, active alerts,
//! CPU, memory, disk, network and GPU over Tocsin's Prometheus-compatible API (a Grafana
//! "Prometheus" data source whose URL is Tocsin's, with an operator token as a header).
//! `tocsin grafana dashboard` prints it; `examples/grafana/tocsin-overview.json` is its
//! output, checked by a test.

use serde_json::{Value, json};

/// A panel's query: the PromQL text and its legend.
pub struct Target {
    /// PromQL (the subset of [`tocsin_store::promql`]; `$host` is the dashboard's variable).
    pub expr: &'static str,
    /// Legend format.
    pub legend: &'static str,
}

/// One panel: title, Grafana panel type, unit, position and size, queries.
pub struct Panel {
    /// Title.
    pub title: &'static str,
    /// `stat`, `piechart`, `timeseries`.
    pub kind: &'static str,
    /// Grafana unit (`percent`, `bytes`, `Bps`, `celsius`, `none`).
    pub unit: &'static str,
    /// `(x, y, w, h)` on Grafana's 24-column grid.
    pub grid: (u32, u32, u32, u32),
    /// Queries.
    pub targets: Vec<Target>,
}

/// The panels of the overview dashboard.
pub fn panels() -> Vec<Panel> {
    let t = |expr, legend| Target { expr, legend };
    vec![
        Panel {
            title: "Health score",
            kind: "stat",
            unit: "none",
            grid: (0, 0, 6, 6),
            targets: vec![t("health_score", "{{scorer}}")],
        },
        Panel {
            title: "Fleet status",
            kind: "piechart",
            unit: "none",
            grid: (6, 0, 6, 6),
            targets: vec![
                t("count(client_up == 1)", "online"),
                t("count(client_up == 0)", "offline"),
            ],
        },
        Panel {
            title: "Firing alerts",
            kind: "timeseries",
            unit: "none",
            grid: (12, 0, 12, 6),
            targets: vec![t("sum by (severity) (alerts_firing)", "{{severity}}")],
        },
        Panel {
            title: "CPU",
            kind: "timeseries",
            unit: "percent",
            grid: (0, 6, 12, 8),
            targets: vec![t(
                r#"max by (host) (cpu_usage_percent{host=~"$host"})"#,
                "{{host}}",
            )],
        },
        Panel {
            title: "Memory",
            kind: "timeseries",
            unit: "percent",
            grid: (12, 6, 12, 8),
            targets: vec![t(
                r#"max by (host) (memory_used_percent{host=~"$host"})"#,
                "{{host}}",
            )],
        },
        Panel {
            title: "Disk used",
            kind: "timeseries",
            unit: "percent",
            grid: (0, 14, 12, 8),
            targets: vec![t(
                r#"max by (host, mount) (disk_used_percent{host=~"$host"})"#,
                "{{host}} {{mount}}",
            )],
        },
        Panel {
            title: "Network received",
            kind: "timeseries",
            unit: "Bps",
            grid: (12, 14, 12, 8),
            targets: vec![t(
                r#"sum by (host) (rate(net_rx_bytes_total{host=~"$host"}[5m]))"#,
                "{{host}}",
            )],
        },
        Panel {
            title: "GPU temperature",
            kind: "timeseries",
            unit: "celsius",
            grid: (0, 22, 12, 8),
            targets: vec![t(
                r#"max by (host, gpu) (gpu_temperature_celsius{host=~"$host"})"#,
                "{{host}} GPU {{gpu}}",
            )],
        },
        Panel {
            title: "GPU utilisation",
            kind: "timeseries",
            unit: "percent",
            grid: (12, 22, 12, 8),
            targets: vec![t(
                r#"max by (host, gpu) (gpu_utilization_percent{host=~"$host"})"#,
                "{{host}} GPU {{gpu}}",
            )],
        },
    ]
}

const DATASOURCE: &str = "${DS_TOCSIN}";

fn panel(id: usize, p: &Panel) -> Value {
    let datasource = json!({ "type": "prometheus", "uid": DATASOURCE });
    let targets: Vec<Value> = p
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "refId": ((b'A' + i as u8) as char).to_string(),
                "datasource": datasource,
                "expr": t.expr,
                "legendFormat": t.legend,
                "range": true,
            })
        })
        .collect();
    let thresholds = if p.title == "Health score" {
        json!({ "mode": "absolute", "steps": [
            { "color": "red", "value": null },
            { "color": "orange", "value": 70 },
            { "color": "green", "value": 90 },
        ] })
    } else {
        json!({ "mode": "absolute", "steps": [{ "color": "green", "value": null }] })
    };
    json!({
        "id": id + 1,
        "type": p.kind,
        "title": p.title,
        "datasource": datasource,
        "gridPos": { "x": p.grid.0, "y": p.grid.1, "w": p.grid.2, "h": p.grid.3 },
        "fieldConfig": {
            "defaults": { "unit": p.unit, "thresholds": thresholds },
            "overrides": [],
        },
        "options": {},
        "targets": targets,
    })
}

/// The dashboard, importable as-is (Grafana asks for the data source on import).
pub fn dashboard() -> Value {
    let panels: Vec<Value> = panels()
        .iter()
        .enumerate()
        .map(|(i, p)| panel(i, p))
        .collect();
    json!({
        "__inputs": [{
            "name": "DS_TOCSIN",
            "label": "Tocsin",
            "description": "A Prometheus data source with Tocsin's URL and an operator token",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "__requires": [
            { "type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0" },
            { "type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0" },
            { "type": "panel", "id": "stat", "name": "Stat", "version": "" },
            { "type": "panel", "id": "piechart", "name": "Pie chart", "version": "" },
            { "type": "panel", "id": "timeseries", "name": "Time series", "version": "" },
        ],
        "uid": "tocsin-overview",
        "title": "Tocsin overview",
        "tags": ["tocsin"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "templating": { "list": [{
            "name": "host",
            "label": "Host",
            "type": "query",
            "datasource": { "type": "prometheus", "uid": DATASOURCE },
            "query": { "query": "label_values(cpu_usage_percent, host)", "refId": "host" },
            "definition": "label_values(cpu_usage_percent, host)",
            "includeAll": true,
            "allValue": ".*",
            "multi": true,
            "current": { "text": "All", "value": "$__all" },
            "refresh": 2,
            "sort": 1,
        }] },
        "annotations": { "list": [] },
        "panels": panels,
    })
}

/// The dashboard as the file in `examples/grafana/` holds it.
pub fn dashboard_text() -> String {
    let mut text = serde_json::to_string_pretty(&dashboard()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_query_is_one_tocsin_answers() {
        for p in panels() {
            for t in &p.targets {
                let expr = t.expr.replace("$host", ".*");
                tocsin_store::promql::parse(&expr)
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", p.title, t.expr));
            }
        }
    }

    #[test]
    fn the_example_file_is_the_generated_dashboard() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/grafana/tocsin-overview.json"
        );
        let file = std::fs::read_to_string(path).expect("examples/grafana/tocsin-overview.json");
        assert!(
            file == dashboard_text(),
            "examples/grafana/tocsin-overview.json is stale: `tocsin grafana dashboard > examples/grafana/tocsin-overview.json`"
        );
    }
}
