//! Series selectors (`name{label=~"re"}`): any text is a selector or an error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tocsin_store::Selector::parse(text);
    }
});
