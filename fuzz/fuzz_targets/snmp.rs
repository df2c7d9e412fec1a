//! SNMP datagrams as the agent receives them: an answer, a drop, never a panic.
#![no_main]

use tocsin_export::snmp::{Tree, Value, handle};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let tree: Tree = [
        (
            vec![1, 3, 6, 1, 4, 1, 32473, 1, 1, 0],
            Value::Text("0.1.0".into()),
        ),
        (vec![1, 3, 6, 1, 4, 1, 32473, 1, 3, 0], Value::Integer(97)),
        (vec![1, 3, 6, 1, 4, 1, 32473, 1, 4, 0], Value::Gauge(2)),
    ]
    .into_iter()
    .collect();
    let _ = handle(data, b"public", || tree);
});
