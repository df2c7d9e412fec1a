//! Collector `service-checks`: the checks its manifest lists, as Nagios or blackbox_exporter
//! would run them. Params (comma-separated): `ports` (`host:port` → `port_up{target}`,
//! `port_latency_seconds{target}`), `urls` (→ `http_up{url}` for a 2xx/3xx answer,
//! `http_status{url}`, `http_latency_seconds{url}`), `units` (systemd → `unit_active{unit}`
//! and `unit_state{unit,state}`, 1 for the current state and 0 for the others),
//! `timeout_ms` per check (default 2000).

tocsin_guest::world!(collector);
use tocsin::monitor::sensors;
use tocsin_guest::prelude::*;

struct ServiceChecks;

fn list(params: &[(String, String)], key: &str) -> Vec<String> {
    label(params, key)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn push(out: &mut Vec<Sample>, name: &str, labels: Vec<(String, String)>, ts_ms: i64, value: f64) {
    out.push(Sample {
        name: name.to_string(),
        labels,
        ts_ms,
        value,
    });
}

impl Guest for ServiceChecks {
    fn collect(ctx: Context) -> Result<Vec<Sample>, String> {
        let ts = ctx.now_ms;
        let timeout: u32 = param(&ctx.params, "timeout_ms", 2000);
        let mut out = Vec::new();
        for target in list(&ctx.params, "ports") {
            let l = sorted_labels([("target", target.as_str())]);
            let Some((host, port)) = target.rsplit_once(':') else {
                return Err(format!("ports: `{target}` is not host:port"));
            };
            let port: u16 = port
                .parse()
                .map_err(|_| format!("ports: `{target}` has no valid port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            match sensors::check_port(host, port, timeout) {
                Ok(s) => {
                    push(
                        &mut out,
                        "port_up",
                        l.clone(),
                        ts,
                        if s.open { 1.0 } else { 0.0 },
                    );
                    push(
                        &mut out,
                        "port_latency_seconds",
                        l,
                        ts,
                        s.latency_ms / 1000.0,
                    );
                }
                // Unresolvable: down, like a refused connection.
                Err(_) => push(&mut out, "port_up", l, ts, 0.0),
            }
        }
        for url in list(&ctx.params, "urls") {
            let l = sorted_labels([("url", url.as_str())]);
            match sensors::check_http(&url, timeout) {
                Ok(s) => {
                    let up = (200..400).contains(&s.status);
                    push(
                        &mut out,
                        "http_up",
                        l.clone(),
                        ts,
                        if up { 1.0 } else { 0.0 },
                    );
                    push(&mut out, "http_status", l.clone(), ts, f64::from(s.status));
                    push(
                        &mut out,
                        "http_latency_seconds",
                        l,
                        ts,
                        s.latency_ms / 1000.0,
                    );
                }
                Err(_) => push(&mut out, "http_up", l, ts, 0.0),
            }
        }
        for unit in list(&ctx.params, "units") {
            let l = sorted_labels([("unit", unit.as_str())]);
            match sensors::unit(&unit) {
                Ok(s) => {
                    let active = s.active_state == "active";
                    push(
                        &mut out,
                        "unit_active",
                        l,
                        ts,
                        if active { 1.0 } else { 0.0 },
                    );
                    let mut states = vec![
                        "active",
                        "reloading",
                        "inactive",
                        "failed",
                        "activating",
                        "deactivating",
                    ];
                    if !states.contains(&s.active_state.as_str()) {
                        states.push(s.active_state.as_str());
                    }
                    for state in states {
                        let now = if state == s.active_state { 1.0 } else { 0.0 };
                        push(
                            &mut out,
                            "unit_state",
                            sorted_labels([("unit", unit.as_str()), ("state", state)]),
                            ts,
                            now,
                        );
                    }
                }
                Err(_) => push(&mut out, "unit_active", l, ts, 0.0),
            }
        }
        Ok(out)
    }
}

export!(ServiceChecks);
