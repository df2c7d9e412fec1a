//! The chunk codec: a run of `(timestamp ms, f64)` points packed into a few bits each.
//!
//! Timestamps: the first raw, the first delta, then one bit saying the chunk is perfectly
//! regular (nothing more to store), or else delta-of-deltas with Gorilla-style prefix
//! buckets (`0` for an unchanged interval: one bit per point).
//!
//! Values: when every value of the chunk is a finite decimal with at most 15 digits after
//! the point (what metrics nearly always are), they become integer mantissas at one shared
//! exponent, and the deltas (or delta-of-deltas, whichever is narrower) of the mantissas are
//! bit-packed at a single width: a constant series costs 0 bits per value, a 2-decimal
//! random walk about 8. Decoding divides by the same power of ten, which is exact: IEEE
//! division is correctly rounded, and the encoder verifies every value round-trips bit for
//! bit. Any other chunk (NaN, infinities, long fractions) uses Gorilla XOR encoding.
//! Every sequence of `i64` timestamps round-trips (arithmetic wraps).

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The chunk ends early.
    #[error("chunk truncated")]
    Truncated,
    /// A field holds an impossible value.
    #[error("chunk corrupt: {0}")]
    Corrupt(&'static str),
}

const MAX_DECIMALS: usize = 15;
const POW10: [f64; MAX_DECIMALS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
/// Mantissas must be exact integers in f64.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

const MODE_DELTA: u64 = 0;
const MODE_DOD: u64 = 1;
const MODE_XOR: u64 = 2;

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn new(capacity: usize) -> BitWriter {
        BitWriter {
            buf: Vec::with_capacity(capacity),
            acc: 0,
            n: 0,
        }
    }

    fn write(&mut self, value: u64, bits: u32) {
        if bits > 32 {
            self.write(value >> 32, bits - 32);
            self.write(value & 0xffff_ffff, 32);
            return;
        }
        if bits == 0 {
            return;
        }
        self.acc = (self.acc << bits) | (value & mask(bits));
        self.n += bits;
        while self.n >= 8 {
            self.n -= 8;
            self.buf.push((self.acc >> self.n) as u8);
        }
        self.acc &= mask(self.n);
    }

    fn varint(&mut self, mut v: u64) {
        // Byte-aligned callers only (the header), but correct anywhere.
        loop {
            let byte = v & 0x7f;
            v >>= 7;
            if v == 0 {
                self.write(byte, 8);
                return;
            }
            self.write(byte | 0x80, 8);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.buf.push((self.acc << (8 - self.n)) as u8);
        }
        self.buf
    }
}

struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> BitReader<'a> {
        BitReader {
            buf,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    /// Top up the accumulator: four bytes at once where it can, else byte by byte.
    #[inline]
    fn refill(&mut self) {
        if self.n <= 32
            && let Some(word) = self.buf.get(self.pos..self.pos + 4)
        {
            let word = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            self.acc = (self.acc << 32) | u64::from(word);
            self.n += 32;
            self.pos += 4;
            return;
        }
        while self.n <= 56 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return;
            };
            self.pos += 1;
            self.acc = (self.acc << 8) | u64::from(byte);
            self.n += 8;
        }
    }

    #[inline]
    fn read(&mut self, bits: u32) -> Result<u64, CodecError> {
        if bits > 32 {
            let hi = self.read(bits - 32)?;
            let lo = self.read(32)?;
            return Ok((hi << 32) | lo);
        }
        if self.n < bits {
            self.refill();
            if self.n < bits {
                return Err(CodecError::Truncated);
            }
        }
        self.n -= bits;
        let v = (self.acc >> self.n) & mask(bits);
        self.acc &= mask(self.n);
        Ok(v)
    }

    fn bit(&mut self) -> Result<bool, CodecError> {
        Ok(self.read(1)? == 1)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.read(8)?;
            v |= (byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Corrupt("varint too long"))
    }
}

/// The exponent `e` at which `v * 10^e` is an exact integer that divides back to `v`.
fn decimal_exponent(v: f64) -> Option<usize> {
    if !v.is_finite() {
        return None;
    }
    (0..=MAX_DECIMALS).find(|&e| {
        let m = (v * POW10[e]).round();
        // Checked through the integer, as the decoder computes it (this rejects -0.0).
        m.abs() < MAX_MANTISSA && ((m as i64) as f64 / POW10[e]).to_bits() == v.to_bits()
    })
}

/// Integer mantissas of all values at one exponent, verified to decode bit for bit.
fn mantissas(points: &[(i64, f64)]) -> Option<(usize, Vec<i64>)> {
    let mut exp = 0;
    for &(_, v) in points {
        exp = exp.max(decimal_exponent(v)?);
    }
    let scale = POW10[exp];
    let mut out = Vec::with_capacity(points.len());
    for &(_, v) in points {
        let m = (v * scale).round();
        if m.abs() >= MAX_MANTISSA || ((m as i64) as f64 / scale).to_bits() != v.to_bits() {
            return None;
        }
        out.push(m as i64);
    }
    Some((exp, out))
}

fn width(values: impl Iterator<Item = u64>) -> u32 {
    64 - values.fold(0u64, |acc, v| acc | v).leading_zeros()
}

fn write_timestamps(w: &mut BitWriter, points: &[(i64, f64)]) {
    let t0 = points[0].0;
    w.varint(zigzag(t0));
    if points.len() < 2 {
        return;
    }
    let mut prev_delta = points[1].0.wrapping_sub(t0);
    w.varint(zigzag(prev_delta));
    // A perfectly regular chunk (the usual scrape) costs one bit for all its timestamps.
    let regular = points
        .windows(2)
        .all(|p| p[1].0.wrapping_sub(p[0].0) == prev_delta);
    w.write(u64::from(regular), 1);
    if regular {
        return;
    }
    for pair in points[1..].windows(2) {
        let delta = pair[1].0.wrapping_sub(pair[0].0);
        let zz = zigzag(delta.wrapping_sub(prev_delta));
        prev_delta = delta;
        match zz {
            0 => w.write(0, 1),
            z if z < 1 << 7 => {
                w.write(0b10, 2);
                w.write(z, 7);
            }
            z if z < 1 << 12 => {
                w.write(0b110, 3);
                w.write(z, 12);
            }
            z if z < 1 << 20 => {
                w.write(0b1110, 4);
                w.write(z, 20);
            }
            z => {
                w.write(0b1111, 4);
                w.write(z, 64);
            }
        }
    }
}

/// Timestamps into `out` as `(ts, 0.0)`; values are filled in afterwards.
fn read_timestamps(
    r: &mut BitReader<'_>,
    n: usize,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), CodecError> {
    let t0 = unzigzag(r.varint()?);
    out.push((t0, 0.0));
    if n < 2 {
        return Ok(());
    }
    let mut delta = unzigzag(r.varint()?);
    let mut t = t0.wrapping_add(delta);
    out.push((t, 0.0));
    if r.bit()? {
        for _ in 2..n {
            t = t.wrapping_add(delta);
            out.push((t, 0.0));
        }
        return Ok(());
    }
    for _ in 2..n {
        let zz = if !r.bit()? {
            0
        } else if !r.bit()? {
            r.read(7)?
        } else if !r.bit()? {
            r.read(12)?
        } else if !r.bit()? {
            r.read(20)?
        } else {
            r.read(64)?
        };
        delta = delta.wrapping_add(unzigzag(zz));
        t = t.wrapping_add(delta);
        out.push((t, 0.0));
    }
    Ok(())
}

fn write_decimal(w: &mut BitWriter, exp: usize, m: &[i64]) {
    let deltas: Vec<u64> = m
        .windows(2)
        .map(|p| zigzag(p[1].wrapping_sub(p[0])))
        .collect();
    let dods: Vec<u64> = m
        .windows(3)
        .map(|p| {
            zigzag(
                p[2].wrapping_sub(p[1])
                    .wrapping_sub(p[1].wrapping_sub(p[0])),
            )
        })
        .collect();
    let delta_width = width(deltas.iter().copied());
    let dod_width = width(dods.iter().copied());
    let use_dod = m.len() > 2 && dod_width < delta_width;
    w.write(if use_dod { MODE_DOD } else { MODE_DELTA }, 2);
    w.write(exp as u64, 4);
    w.write(m[0] as u64, 64);
    if m.len() < 2 {
        return;
    }
    let (first, rest, bits) = if use_dod {
        (deltas[0], &dods[..], dod_width)
    } else {
        (deltas[0], &deltas[1..], delta_width)
    };
    w.write(first, 64);
    w.write(u64::from(bits), 7);
    for &v in rest {
        w.write(v, bits);
    }
}

fn read_decimal(
    r: &mut BitReader<'_>,
    mode: u64,
    out: &mut [(i64, f64)],
) -> Result<(), CodecError> {
    let exp = r.read(4)? as usize;
    let scale = *POW10.get(exp).ok_or(CodecError::Corrupt("exponent"))?;
    // Integers (counters, most gauges) need no division.
    let value = |m: i64| if exp == 0 { m as f64 } else { m as f64 / scale };
    let mut m = r.read(64)? as i64;
    out[0].1 = value(m);
    if out.len() < 2 {
        return Ok(());
    }
    let mut delta = unzigzag(r.read(64)?);
    let bits = r.read(7)? as u32;
    if bits > 64 {
        return Err(CodecError::Corrupt("width"));
    }
    m = m.wrapping_add(delta);
    out[1].1 = value(m);
    for point in &mut out[2..] {
        let v = unzigzag(r.read(bits)?);
        if mode == MODE_DOD {
            delta = delta.wrapping_add(v);
        } else {
            delta = v;
        }
        m = m.wrapping_add(delta);
        point.1 = value(m);
    }
    Ok(())
}

fn write_xor(w: &mut BitWriter, points: &[(i64, f64)]) {
    w.write(MODE_XOR, 2);
    let mut prev = points[0].1.to_bits();
    w.write(prev, 64);
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for &(_, v) in &points[1..] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write(0, 1);
            continue;
        }
        w.write(1, 1);
        let (l, t) = (x.leading_zeros().min(63), x.trailing_zeros());
        if lead != u32::MAX && l >= lead && t >= trail {
            w.write(0, 1);
            w.write(x >> trail, 64 - lead - trail);
        } else {
            lead = l;
            trail = t;
            let len = 64 - l - t;
            w.write(1, 1);
            w.write(u64::from(l), 6);
            w.write(u64::from(len - 1), 6);
            w.write(x >> t, len);
        }
    }
}

fn read_xor(r: &mut BitReader<'_>, out: &mut [(i64, f64)]) -> Result<(), CodecError> {
    let mut prev = r.read(64)?;
    out[0].1 = f64::from_bits(prev);
    let (mut lead, mut trail) = (0u32, 0u32);
    for point in &mut out[1..] {
        if r.bit()? {
            if r.bit()? {
                lead = r.read(6)? as u32;
                let len = r.read(6)? as u32 + 1;
                if lead + len > 64 {
                    return Err(CodecError::Corrupt("xor window"));
                }
                trail = 64 - lead - len;
            }
            let x = r.read(64 - lead - trail)? << trail;
            prev ^= x;
        }
        point.1 = f64::from_bits(prev);
    }
    Ok(())
}

/// Most points in one chunk.
pub const MAX_POINTS: usize = 1 << 16;

/// Encode `points` (any order, any values, at most [`MAX_POINTS`]) into a chunk.
pub fn encode(points: &[(i64, f64)]) -> Vec<u8> {
    debug_assert!(points.len() <= MAX_POINTS);
    let mut w = BitWriter::new(16 + points.len() * 2);
    w.varint(points.len() as u64);
    if points.is_empty() {
        return w.finish();
    }
    write_timestamps(&mut w, points);
    match mantissas(points) {
        Some((exp, m)) => write_decimal(&mut w, exp, &m),
        None => write_xor(&mut w, points),
    }
    w.finish()
}

/// Decode a chunk made by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, f64)>, CodecError> {
    let mut points = Vec::new();
    decode_append(bytes, &mut points)?;
    Ok(points)
}

/// Decode a chunk made by [`encode`], appending its points to `out`. On error `out` may
/// hold part of the chunk.
pub fn decode_append(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), CodecError> {
    let mut r = BitReader::new(bytes);
    let n = usize::try_from(r.varint()?).map_err(|_| CodecError::Corrupt("length"))?;
    if n == 0 {
        return Ok(());
    }
    // A corrupt count must not become a huge allocation.
    if n > MAX_POINTS {
        return Err(CodecError::Corrupt("length"));
    }
    let base = out.len();
    out.reserve(n);
    read_timestamps(&mut r, n, out)?;
    let points = &mut out[base..];
    match r.read(2)? {
        MODE_XOR => read_xor(&mut r, points)?,
        mode @ (MODE_DELTA | MODE_DOD) => read_decimal(&mut r, mode, points)?,
        _ => return Err(CodecError::Corrupt("value mode")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn same(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
    }

    fn roundtrip(points: &[(i64, f64)]) -> Vec<u8> {
        let bytes = encode(points);
        let back = decode(&bytes).expect("decodes");
        assert!(same(points, &back), "{points:?}\n{back:?}");
        bytes
    }

    #[test]
    fn regular_constant_series_is_tiny() {
        let pts: Vec<_> = (0..240)
            .map(|i| (1_700_000_000_000 + i * 15_000, 42.0))
            .collect();
        let bytes = roundtrip(&pts);
        assert!(bytes.len() < 60, "{} bytes", bytes.len());
    }

    #[test]
    fn two_decimal_random_walk_is_about_a_byte_per_point() {
        let mut v = 50.0f64;
        let pts: Vec<_> = (0..240)
            .map(|i| {
                v = ((v + ((i * 7919) % 41) as f64 / 100.0 - 0.2) * 100.0).round() / 100.0;
                (i * 10_000, v)
            })
            .collect();
        let bytes = roundtrip(&pts);
        assert!(bytes.len() < 240 + 40, "{} bytes", bytes.len());
    }

    #[test]
    fn special_values_and_edges() {
        roundtrip(&[]);
        roundtrip(&[(5, 1.5)]);
        roundtrip(&[(i64::MIN, f64::NAN), (i64::MAX, f64::INFINITY), (0, -0.0)]);
        roundtrip(&[(0, 0.1), (1, 0.2), (2, 0.30000000000000004), (3, -1e300)]);
        roundtrip(&[(0, 1e15), (1, 9.007199254740993e15), (2, -0.0), (3, 0.0)]);
        roundtrip(&[(10, 1.0), (5, 2.0), (5, 3.0), (-100, 4.0)]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            &[0xff; 3][..],
            &[5, 0, 0][..],
            &[0x80; 12][..],
            &[200, 1, 2, 3][..],
        ] {
            assert!(decode(bytes).is_err(), "{bytes:?}");
        }
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (-1_000_000i64..1_000_000).prop_map(|m| m as f64 / 100.0),
            Just(f64::NAN),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ]
    }

    proptest! {
        #[test]
        fn any_series_roundtrips(points in prop::collection::vec((any::<i64>(), value()), 0..300)) {
            let bytes = encode(&points);
            let back = decode(&bytes).expect("decodes");
            prop_assert!(same(&points, &back));
        }

        #[test]
        fn regular_decimal_series_roundtrip(
            start in any::<i64>(),
            step in 1i64..100_000,
            values in prop::collection::vec(-100_000_000i64..100_000_000, 1..300),
            decimals in 0u32..6,
        ) {
            let scale = 10f64.powi(decimals as i32);
            let points: Vec<_> = values.iter().enumerate()
                .map(|(i, m)| (start.wrapping_add(step * i as i64), *m as f64 / scale))
                .collect();
            let back = decode(&encode(&points)).expect("decodes");
            prop_assert!(same(&points, &back));
        }

        #[test]
        fn corrupted_chunks_never_panic(points in prop::collection::vec((any::<i64>(), value()), 1..50), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = encode(&points);
            let i = flip.index(bytes.len());
            bytes[i] ^= byte | 1;
            let _ = decode(&bytes);
            let _ = decode(&bytes[..i]);
        }
    }
}
