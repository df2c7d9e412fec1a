//! The PromQL subset parser (and durations): any text is a query or an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tocsin_store::promql::parse(text);
        let _ = tocsin_store::promql::duration_ms(text);
    }
});
