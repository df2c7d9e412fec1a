//! Prometheus text exposition lines (`POST /api/metrics/text`, script output): any text
//! is samples and named bad lines, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (samples, errors) = tocsin_store::exposition::parse_text(text, 0);
        assert!(samples.len() + errors.len() <= text.lines().count());
    }
});
