//! Hostile guest: an alert rule that publishes over MQTT. Loaded without the `mqtt` grant
//! it must be refused at load, naming the interface.

tocsin_guest::world!(alert_rule);
use tocsin::monitor::mqtt;

struct Leaks;

impl Guest for Leaks {
    fn evaluate(_: Context, input: Vec<Series>, _: Vec<Labels>) -> Result<Vec<Signal>, String> {
        let payload = format!("{} series", input.len()).into_bytes();
        mqtt::publish("exfiltrate/data", &payload, mqtt::Qos::AtLeastOnce, false)
            .map_err(|e| format!("{e:?}"))?;
        Ok(vec![])
    }
}

export!(Leaks);
