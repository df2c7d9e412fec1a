//! remote_write bodies (snappy + protobuf) as HTTP ingest receives them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tocsin_export::remote_write::decode(data, 100_000);
});
