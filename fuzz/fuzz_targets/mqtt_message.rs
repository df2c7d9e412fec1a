//! Fleet MQTT messages: any topic and payload is ingested or refused with an error —
//! never a panic. The first byte picks the topic kind, the rest is the payload.
#![no_main]

use tocsin_fleet::message;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let prefixes = vec!["tocsin".to_string()];
    let _ = message::parse_topic(&String::from_utf8_lossy(payload), &prefixes);
    match pick % 4 {
        0 => {
            let _ = message::metrics("k1", payload, 0);
        }
        1 => {
            let _ = message::log("k1", tocsin_store::Level::Warn, payload, 0);
        }
        2 => {
            if let Ok(h) = message::health(payload, 0) {
                let _ = h.samples("k1", 0);
            }
        }
        _ => {
            let _ = message::status_offline(payload);
        }
    }
});
