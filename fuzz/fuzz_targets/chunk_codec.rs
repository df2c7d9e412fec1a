//! The chunk codec: arbitrary bytes decode or fail; what encodes decodes back exactly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tocsin_store::codec::decode(data);
    // Points from the input: 16 bytes each (timestamp, value bits), ascending timestamps.
    let mut points: Vec<(i64, f64)> = data
        .chunks_exact(16)
        .map(|c| {
            let ts = i64::from_le_bytes(c[..8].try_into().unwrap_or([0; 8]));
            let v = f64::from_bits(u64::from_le_bytes(c[8..].try_into().unwrap_or([0; 8])));
            (ts, v)
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    let encoded = tocsin_store::codec::encode(&points);
    let decoded = tocsin_store::codec::decode(&encoded).expect("what encodes decodes");
    assert_eq!(decoded.len(), points.len());
    for (a, b) in decoded.iter().zip(&points) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1.to_bits(), b.1.to_bits());
    }
});
