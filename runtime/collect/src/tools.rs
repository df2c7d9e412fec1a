//! Metrics from tools that may be installed: IPMI hardware sensors (`ipmitool sdr`) and
//! container state (`docker ps`). Each is tried at start; a missing or unreadable tool is
//! one info line and no thread, not an error every round.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tocsin_store::Sample;

use crate::Sink;
use crate::script::output;

/// How long one tool run may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A tool whose output becomes samples.
#[derive(Debug, Clone, Copy)]
pub enum Tool {
    /// `ipmitool sdr`: temperatures, fans, voltages, power, per-sensor status.
    Ipmi,
    /// `docker ps -a`: one `container_up` per container.
    Docker,
}

impl Tool {
    fn command(self) -> Command {
        match self {
            Tool::Ipmi => {
                let mut c = Command::new("ipmitool");
                c.arg("sdr");
                c
            }
            Tool::Docker => {
                let mut c = Command::new("docker");
                c.args(["ps", "-a", "--no-trunc", "--format", "{{json .}}"]);
                c
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tool::Ipmi => "ipmitool",
            Tool::Docker => "docker",
        }
    }

    fn parse(self, text: &str, ts_ms: i64) -> Vec<Sample> {
        match self {
            Tool::Ipmi => ipmi_samples(text, ts_ms),
            Tool::Docker => docker_samples(text, ts_ms),
        }
    }
}

/// Run `tool` every `every` on its own thread if a first run works.
pub fn spawn(
    tool: Tool,
    every: Duration,
    sink: Arc<dyn Sink>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("collect-{}", tool.name()))
        .spawn(move || {
            if let Err(e) = output(tool.command(), TIMEOUT) {
                tracing::info!(tool = tool.name(), reason = %e, "not collecting from this tool");
                return;
            }
            let mut failing = false;
            while crate::wait_next(every, &stop) {
                match output(tool.command(), TIMEOUT) {
                    Ok(text) => {
                        failing = false;
                        let samples = tool.parse(&text, crate::now_ms());
                        if let Err(e) = sink.samples(&samples) {
                            tracing::error!(tool = tool.name(), error = %e, "storing samples failed");
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(tool = tool.name(), error = %e, "tool run failed");
                        }
                        failing = true;
                    }
                }
            }
        })?;
    Ok(())
}

fn sample(name: &str, labels: &[(&str, &str)], ts_ms: i64, value: f64) -> Sample {
    Sample {
        name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ts_ms,
        value,
    }
}

/// `ipmitool sdr` lines (`NAME | VALUE UNIT | STATUS`) as samples: readings by unit and
/// `ipmi_sensor_ok{sensor}` (1 for status `ok`); sensors without a reading (`ns`) are
/// left out.
pub fn ipmi_samples(text: &str, ts_ms: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, reading, status] = parts[..] else {
            continue;
        };
        if name.is_empty() || status == "ns" {
            continue;
        }
        let l = [("sensor", name)];
        out.push(sample(
            "ipmi_sensor_ok",
            &l,
            ts_ms,
            if status == "ok" { 1.0 } else { 0.0 },
        ));
        let mut words = reading.splitn(2, ' ');
        let (Some(number), Some(unit)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(value) = number.parse::<f64>() else {
            continue;
        };
        let metric = match unit.trim() {
            "degrees C" => "ipmi_temperature_celsius",
            "RPM" => "ipmi_fan_speed_rpm",
            "Volts" => "ipmi_voltage_volts",
            "Watts" => "ipmi_power_watts",
            "Amps" => "ipmi_current_amperes",
            "percent" => "ipmi_percent",
            _ => continue,
        };
        out.push(sample(metric, &l, ts_ms, value));
    }
    out
}

/// `docker ps -a --format '{{json .}}'` lines as `container_up{name,image}` (1 while
/// running) and, for exited containers, `container_exit_code{name,image}`.
pub fn docker_samples(text: &str, ts_ms: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(serde_json::Value::Object(c)) = serde_json::from_str(line) else {
            continue;
        };
        let field = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let (name, image, state) = (field("Names"), field("Image"), field("State"));
        if name.is_empty() {
            continue;
        }
        let l = [("name", name), ("image", image)];
        out.push(sample(
            "container_up",
            &l,
            ts_ms,
            if state == "running" { 1.0 } else { 0.0 },
        ));
        // "Exited (137) 3 minutes ago"
        if let Some(code) = field("Status")
            .strip_prefix("Exited (")
            .and_then(|r| r.split(')').next())
            .and_then(|c| c.parse::<f64>().ok())
        {
            out.push(sample("container_exit_code", &l, ts_ms, code));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(samples: &[Sample], name: &str, label: &str) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.name == name && s.labels.iter().any(|(_, v)| v == label))
            .map(|s| s.value)
    }

    #[test]
    fn ipmitool_sdr_output_is_read() {
        let text = "CPU Temp         | 45 degrees C      | ok\n\
                    FAN1             | 5400 RPM          | ok\n\
                    12V              | 12.10 Volts       | ok\n\
                    PS1 Status       | 0x01              | cr\n\
                    Fan2             | no reading        | ns\n\
                    Pwr Consumption  | 180 Watts         | ok\n\
                    garbage line\n";
        let s = ipmi_samples(text, 1);
        assert_eq!(find(&s, "ipmi_temperature_celsius", "CPU Temp"), Some(45.0));
        assert_eq!(find(&s, "ipmi_fan_speed_rpm", "FAN1"), Some(5400.0));
        assert_eq!(find(&s, "ipmi_voltage_volts", "12V"), Some(12.1));
        assert_eq!(find(&s, "ipmi_power_watts", "Pwr Consumption"), Some(180.0));
        assert_eq!(find(&s, "ipmi_sensor_ok", "PS1 Status"), Some(0.0));
        assert_eq!(find(&s, "ipmi_sensor_ok", "Fan2"), None);
        assert_eq!(s.len(), 9);
    }

    #[test]
    fn docker_ps_output_is_read() {
        let text = r#"{"ID":"a1","Image":"nginx:1.27","Names":"web","State":"running","Status":"Up 2 hours"}
{"ID":"b2","Image":"postgres:16","Names":"db","State":"exited","Status":"Exited (137) 3 minutes ago"}
not json
"#;
        let s = docker_samples(text, 1);
        assert_eq!(find(&s, "container_up", "web"), Some(1.0));
        assert_eq!(find(&s, "container_up", "db"), Some(0.0));
        assert_eq!(find(&s, "container_exit_code", "db"), Some(137.0));
        assert_eq!(find(&s, "container_exit_code", "web"), None);
    }
}
