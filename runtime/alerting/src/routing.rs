//! Routing configuration (Alertmanager's model, one level deep): a root with a receiver and
//! grouping, child routes chosen by label matchers (first match wins unless `continue`),
//! receivers, inhibition rules and recurring maintenance windows; and matching alerts
//! against them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tocsin_store::{Selector, SeriesKey};

/// The `[routing]` table of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Receiver of alerts no route claims.
    pub receiver: String,
    /// Labels that make a group: alerts sharing their values are notified together.
    pub group_by: Vec<String>,
    /// Wait this long after a group's first alert, to batch its neighbours.
    #[serde(with = "humantime_serde")]
    pub group_wait: Duration,
    /// Then notify a changed group at most this often.
    #[serde(with = "humantime_serde")]
    pub group_interval: Duration,
    /// Remind of an unchanged firing group this often.
    #[serde(with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// Child routes, tried in order.
    pub routes: Vec<Route>,
    /// Where notifications go.
    pub receivers: Vec<Receiver>,
    /// Alerts that mute others while they fire.
    pub inhibit: Vec<InhibitRule>,
    /// Recurring windows in which matching alerts are not notified.
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            receiver: "log".into(),
            group_by: vec!["alertname".into()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            routes: Vec::new(),
            receivers: vec![Receiver {
                name: "log".into(),
                channel: "log".into(),
                to: Vec::new(),
                format: generic(),
                routing_key: Secret::default(),
            }],
            inhibit: vec![InhibitRule {
                source: r#"{alertname="host-down"}"#.into(),
                target: r#"{severity=~"warning|info"}"#.into(),
                equal: vec!["host".into()],
            }],
            maintenance: Vec::new(),
        }
    }
}

/// A child route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Label matchers in selector syntax, e.g. `{severity="critical"}`; `__name__` or
    /// `alertname` is the rule.
    pub matchers: String,
    /// The receiver.
    pub receiver: String,
    /// Grouping for this route (default: the root's).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Keep trying the next routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
}

/// A receiver: a channel and its recipients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Name routes refer to.
    pub name: String,
    /// `log` (the runtime's log), `mail`, `webhook`, `mqtt` or `pipe` (a command).
    pub channel: String,
    /// Addresses, URLs (`https://...`, `mqtt://host[:port]/topic`) or command lines (one
    /// message each).
    #[serde(default)]
    pub to: Vec<String>,
    /// Webhook payload shape: `generic` (Alertmanager-like JSON), `slack`, `discord` or
    /// `pagerduty` (Events API v2).
    #[serde(default = "generic", skip_serializing_if = "is_generic")]
    pub format: String,
    /// PagerDuty integration (routing) key. Never logged.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub routing_key: Secret,
}

fn generic() -> String {
    "generic".into()
}

fn is_generic(s: &String) -> bool {
    s == "generic"
}

/// A secret (password, routing key): read from configuration, never printed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// Whether none was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Webhook payload shapes.
pub const WEBHOOK_FORMATS: [&str; 4] = ["generic", "slack", "discord", "pagerduty"];

/// While an alert matching `source` fires, alerts matching `target` with the same values
/// of the `equal` labels are not notified (a host down mutes that host's warnings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Matchers of the muting alert.
    pub source: String,
    /// Matchers of the muted alerts.
    pub target: String,
    /// Labels that must be equal on both.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// A weekly window (UTC) in which alerts matching `matchers` are not notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Its name, for the API.
    pub name: String,
    /// Matchers of the alerts it covers.
    pub matchers: String,
    /// Days: `mon` .. `sun` (empty: every day).
    #[serde(default)]
    pub days: Vec<String>,
    /// Start, `HH:MM` UTC.
    pub start: String,
    /// End, `HH:MM` UTC (before `start`: the window crosses midnight).
    pub end: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes after midnight of an `HH:MM` time of day.
pub fn minutes(hhmm: &str) -> Result<i64, String> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| format!("`{hhmm}` is not HH:MM"))?;
    let (h, m): (i64, i64) = (
        h.parse().map_err(|_| format!("`{hhmm}` is not HH:MM"))?,
        m.parse().map_err(|_| format!("`{hhmm}` is not HH:MM"))?,
    );
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(format!("`{hhmm}` is not a time of day"));
    }
    Ok(h * 60 + m)
}

impl MaintenanceWindow {
    /// Whether `now_ms` falls in the window.
    pub fn active(&self, now_ms: i64) -> bool {
        let (Ok(start), Ok(end)) = (minutes(&self.start), minutes(&self.end)) else {
            return false;
        };
        let day_ms = 86_400_000;
        let days = now_ms.div_euclid(day_ms);
        let minute = now_ms.rem_euclid(day_ms) / 60_000;
        // 1970-01-01 was a Thursday.
        let weekday = |d: i64| DAYS[(d + 3).rem_euclid(7) as usize];
        let on = |d: i64| self.days.is_empty() || self.days.iter().any(|x| x == weekday(d));
        if start <= end {
            on(days) && minute >= start && minute < end
        } else {
            // Crosses midnight: the evening part today, or the morning part of a window
            // that started yesterday.
            (on(days) && minute >= start) || (on(days - 1) && minute < end)
        }
    }
}

/// Parse matchers; `alertname` is accepted as the rule's name.
pub fn matchers(text: &str) -> Result<Selector, String> {
    Selector::parse(text).map_err(|e| e.to_string())
}

/// The label set an alert is matched as: `__name__` = rule, plus its labels (which include
/// `alertname` and `severity`).
pub fn alert_key(rule: &str, labels: &[(String, String)]) -> SeriesKey {
    let mut labels = labels.to_vec();
    labels.sort();
    SeriesKey {
        name: rule.to_string(),
        labels,
    }
}

impl RoutingConfig {
    /// Check references, matchers and windows; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let known = |name: &str| self.receivers.iter().any(|r| r.name == name);
        if !known(&self.receiver) {
            return Err(format!(
                "routing.receiver: no receiver named `{}`",
                self.receiver
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            matchers(&r.matchers).map_err(|e| format!("routing.routes[{i}].matchers: {e}"))?;
            if !known(&r.receiver) {
                return Err(format!(
                    "routing.routes[{i}].receiver: no receiver named `{}`",
                    r.receiver
                ));
            }
        }
        for (i, r) in self.receivers.iter().enumerate() {
            if !["log", "mail", "webhook", "mqtt", "pipe"].contains(&r.channel.as_str()) {
                return Err(format!(
                    "routing.receivers[{i}].channel: `{}` is not one of log, mail, webhook, mqtt, pipe",
                    r.channel
                ));
            }
            if r.channel != "log" && (r.to.is_empty() || r.to.iter().any(|t| t.trim().is_empty())) {
                return Err(format!(
                    "routing.receivers[{i}].to: a {} receiver needs at least one non-empty address",
                    r.channel
                ));
            }
            if !WEBHOOK_FORMATS.contains(&r.format.as_str()) {
                return Err(format!(
                    "routing.receivers[{i}].format: `{}` is not one of {}",
                    r.format,
                    WEBHOOK_FORMATS.join(", ")
                ));
            }
            if r.format == "pagerduty" && r.routing_key.is_empty() {
                return Err(format!(
                    "routing.receivers[{i}]: format pagerduty needs routing_key"
                ));
            }
        }
        for (i, r) in self.inhibit.iter().enumerate() {
            matchers(&r.source).map_err(|e| format!("routing.inhibit[{i}].source: {e}"))?;
            matchers(&r.target).map_err(|e| format!("routing.inhibit[{i}].target: {e}"))?;
        }
        for (i, w) in self.maintenance.iter().enumerate() {
            matchers(&w.matchers).map_err(|e| format!("routing.maintenance[{i}].matchers: {e}"))?;
            minutes(&w.start).map_err(|e| format!("routing.maintenance[{i}].start: {e}"))?;
            minutes(&w.end).map_err(|e| format!("routing.maintenance[{i}].end: {e}"))?;
            if let Some(d) = w.days.iter().find(|d| !DAYS.contains(&d.as_str())) {
                return Err(format!(
                    "routing.maintenance[{i}].days: `{d}` is not mon..sun"
                ));
            }
        }
        if self.group_interval.is_zero() || self.repeat_interval.is_zero() {
            return Err("routing.group_interval and repeat_interval must be > 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_references_are_named() {
        RoutingConfig::default()
            .validate()
            .expect("defaults are valid");
        let mut c = RoutingConfig::default();
        c.routes.push(Route {
            matchers: r#"{severity="critical"}"#.into(),
            receiver: "pager".into(),
            group_by: None,
            continue_: false,
        });
        let e = c.validate().expect_err("unknown receiver");
        assert!(
            e.contains("routing.routes[0].receiver") && e.contains("pager"),
            "{e}"
        );
        c.routes[0].receiver = "log".into();
        c.routes[0].matchers = "{severity=".into();
        assert!(
            c.validate()
                .expect_err("bad matchers")
                .contains("routes[0].matchers")
        );
    }

    #[test]
    fn maintenance_windows_follow_days_and_cross_midnight() {
        // 22:00 - 02:00 on Saturdays.
        let day = 86_400_000i64;
        let thursday0 = 0i64; // 1970-01-01 00:00 UTC, a Thursday
        let saturday = thursday0 + 2 * day;
        let w = MaintenanceWindow {
            name: "backup".into(),
            matchers: r#"{alertname="disk-io"}"#.into(),
            days: vec!["sat".into()],
            start: "22:00".into(),
            end: "02:00".into(),
        };
        let at = |d: i64, h: i64, m: i64| d + h * 3_600_000 + m * 60_000;
        assert!(!w.active(at(saturday, 21, 59)));
        assert!(w.active(at(saturday, 22, 0)));
        assert!(
            w.active(at(saturday + day, 1, 59)),
            "Sunday morning, window of Saturday"
        );
        assert!(!w.active(at(saturday + day, 2, 0)));
        assert!(!w.active(at(saturday - day, 23, 0)), "not on Friday");
        let daily = MaintenanceWindow {
            days: vec![],
            start: "09:00".into(),
            end: "10:00".into(),
            ..w
        };
        assert!(daily.active(at(thursday0 + 5 * day, 9, 30)));
    }
}
