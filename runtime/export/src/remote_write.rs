//! Prometheus remote_write (protocol 1.0: snappy-compressed protobuf `WriteRequest`) of
//! every sample the store accepts, to each configured receiver through its own bounded
//! queue. A batch is retried with exponential backoff until the receiver takes it (5xx,
//! 429 and network errors) or refuses it for good (other 4xx: dropped and counted). A full
//! queue drops its oldest samples and counts them: nothing is lost without a number.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tocsin_store::Sample;

use crate::config::RemoteWriteConfig;

/// The remote_write protobuf messages (prometheus/prompb/remote.proto, types.proto).
pub mod proto {
    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// The series.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Labels, sorted by name, `__name__` included.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Samples, oldest first.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// A series' identity: name and labels.
type SeriesId = (String, Vec<(String, String)>);

/// Encode samples as a snappy-compressed `WriteRequest`, one time series per series.
pub fn encode(samples: &[Sample]) -> Result<Vec<u8>, String> {
    use prost::Message as _;
    let mut series: BTreeMap<SeriesId, Vec<proto::Sample>> = BTreeMap::new();
    for s in samples {
        series
            .entry((s.name.clone(), s.labels.clone()))
            .or_default()
            .push(proto::Sample {
                value: s.value,
                timestamp: s.ts_ms,
            });
    }
    let request = proto::WriteRequest {
        timeseries: series
            .into_iter()
            .map(|((name, labels), mut samples)| {
                let mut labels: Vec<proto::Label> = labels
                    .into_iter()
                    .map(|(name, value)| proto::Label { name, value })
                    .collect();
                labels.push(proto::Label {
                    name: "__name__".into(),
                    value: name,
                });
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                samples.sort_by_key(|s| s.timestamp);
                proto::TimeSeries { labels, samples }
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .map_err(|e| format!("snappy: {e}"))
}

/// Largest decompressed `WriteRequest` accepted (a snappy bomb is refused before it
/// is inflated).
pub const MAX_DECODED: usize = 64 << 20;

/// Most bytes the decoded samples may take (labels copied into each): a small body of
/// many samples under long labels must not inflate without bound.
pub const MAX_DECODED_SAMPLE_BYTES: usize = 256 << 20;

/// Decode a snappy-compressed `WriteRequest` into at most `max_samples` samples (labels
/// as sent, `__name__` taken out as the name).
pub fn decode(body: &[u8], max_samples: usize) -> Result<Vec<Sample>, String> {
    use prost::Message as _;
    let len = snap::raw::decompress_len(body).map_err(|e| format!("not snappy: {e}"))?;
    if len > MAX_DECODED {
        return Err(format!(
            "decompresses to {len} bytes, more than {MAX_DECODED}"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy: {e}"))?;
    let request = proto::WriteRequest::decode(raw.as_slice())
        .map_err(|e| format!("not a WriteRequest: {e}"))?;
    // Count before copying anything: samples, and the bytes their labels will take.
    let mut samples = 0usize;
    let mut bytes = 0usize;
    for ts in &request.timeseries {
        let label_bytes: usize = ts
            .labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 48)
            .sum();
        samples = samples.saturating_add(ts.samples.len());
        bytes = bytes.saturating_add(ts.samples.len().saturating_mul(label_bytes + 64));
    }
    if samples > max_samples {
        return Err(format!(
            "{samples} samples, more than {max_samples} per request"
        ));
    }
    if bytes > MAX_DECODED_SAMPLE_BYTES {
        return Err(format!(
            "its samples would take {bytes} bytes, more than {MAX_DECODED_SAMPLE_BYTES}"
        ));
    }
    let mut out = Vec::with_capacity(samples);
    for ts in request.timeseries {
        let mut name = None;
        let mut labels = Vec::with_capacity(ts.labels.len());
        for l in ts.labels {
            if l.name == "__name__" {
                name = Some(l.value);
            } else {
                labels.push((l.name, l.value));
            }
        }
        let name = name.ok_or("a time series without __name__")?;
        for s in ts.samples {
            out.push(Sample {
                name: name.clone(),
                labels: labels.clone(),
                ts_ms: s.timestamp,
                value: s.value,
            });
        }
    }
    Ok(out)
}

/// Counters of one receiver.
#[derive(Debug, Default)]
pub struct Stats {
    /// Samples the receiver accepted.
    pub sent: AtomicU64,
    /// Samples dropped because the queue was full (oldest first).
    pub dropped: AtomicU64,
    /// Samples the receiver refused for good (a 4xx other than 429).
    pub rejected: AtomicU64,
    /// Failed attempts (each retried).
    pub failed_attempts: AtomicU64,
    /// Samples waiting now.
    pub queued: AtomicU64,
}

/// A bounded queue of samples for one receiver.
#[derive(Debug)]
pub struct Queue {
    samples: Mutex<VecDeque<Sample>>,
    ready: Condvar,
    capacity: usize,
    /// Its counters.
    pub stats: Stats,
}

impl Queue {
    /// A queue holding at most `capacity` samples.
    pub fn new(capacity: usize) -> Arc<Queue> {
        Arc::new(Queue {
            samples: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            stats: Stats::default(),
        })
    }

    /// Add samples; past the capacity the oldest are dropped and counted.
    pub fn push(&self, batch: &[Sample]) {
        let mut q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = 0;
        for s in batch {
            if q.len() >= self.capacity {
                q.pop_front();
                dropped += 1;
            }
            q.push_back(s.clone());
        }
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        self.stats.queued.store(q.len() as u64, Ordering::Relaxed);
        self.ready.notify_one();
    }

    /// Wait until `batch` samples wait or `wait` passed (or `stop`), then take up to
    /// `batch` of them, oldest first.
    fn take(&self, batch: usize, wait: Duration, stop: &AtomicBool) -> Vec<Sample> {
        let deadline = Instant::now() + wait;
        let mut q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while q.len() < batch && !stop.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Wake at least every 200 ms to notice `stop`.
            let (guard, _) = self
                .ready
                .wait_timeout(q, left.min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner());
            q = guard;
        }
        let n = q.len().min(batch);
        let out: Vec<Sample> = q.drain(..n).collect();
        self.stats.queued.store(q.len() as u64, Ordering::Relaxed);
        out
    }
}

enum Sent {
    Ok,
    Retry(String),
    Refused(String),
}

fn send(agent: &ureq::Agent, url: &str, token: &str, body: &[u8]) -> Sent {
    let mut request = agent
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("User-Agent", concat!("tocsin/", env!("CARGO_PKG_VERSION")))
        .header("X-Prometheus-Remote-Write-Version", "0.1.0");
    if !token.is_empty() {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    match request.send(body) {
        Ok(response) => {
            let status = response.status().as_u16();
            match status {
                200..=299 => Sent::Ok,
                429 | 500..=599 => Sent::Retry(format!("HTTP {status}")),
                _ => Sent::Refused(format!("HTTP {status}")),
            }
        }
        Err(e) => Sent::Retry(e.to_string()),
    }
}

/// Ship `queue` to `url` until `stop` (then one last flush attempt).
fn run(config: &RemoteWriteConfig, target: &str, queue: &Queue, stop: &AtomicBool) {
    let shown = crate::config::shown_url(target);
    let url = shown.as_str();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let batch_size = config.batch_samples.max(1);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let batch = queue.take(batch_size, config.flush_interval, stop);
        if batch.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let body = match encode(&batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(url, error = %e, "remote_write batch not encodable: dropped");
                queue
                    .stats
                    .rejected
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                continue;
            }
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match send(&agent, target, &config.bearer_token, &body) {
                Sent::Ok => {
                    queue
                        .stats
                        .sent
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break;
                }
                Sent::Refused(why) => {
                    tracing::error!(url, samples = batch.len(), reason = %why, "remote_write receiver refused a batch: dropped");
                    queue
                        .stats
                        .rejected
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break;
                }
                Sent::Retry(why) => {
                    queue.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        tracing::warn!(url, samples = batch.len(), reason = %why, "remote_write stopping with a batch unsent");
                        return;
                    }
                    tracing::warn!(url, reason = %why, retry_in_ms = backoff.as_millis() as u64, "remote_write failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(config.max_backoff);
                }
            }
        }
    }
}

/// Start one sender thread per receiver; answers each receiver's queue (give them to a
/// store tap).
pub fn spawn(
    config: &RemoteWriteConfig,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<(String, Arc<Queue>)>> {
    let mut out = Vec::new();
    for url in &config.urls {
        let queue = Queue::new(config.queue_samples);
        let (config, url_owned, q, stop) =
            (config.clone(), url.clone(), queue.clone(), stop.clone());
        std::thread::Builder::new()
            .name("remote-write".into())
            .spawn(move || run(&config, &url_owned, &q, &stop))?;
        out.push((url.clone(), queue));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn sample(name: &str, host: &str, ts: i64, v: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: vec![("host".into(), host.into())],
            ts_ms: ts,
            value: v,
        }
    }

    #[test]
    fn batches_encode_as_sorted_series_in_snappy_protobuf() {
        let bytes = encode(&[
            sample("up", "b", 2, 1.0),
            sample("up", "a", 1, 0.0),
            sample("up", "b", 1, 0.5),
        ])
        .expect("encode");
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&bytes)
            .expect("snappy");
        let request = proto::WriteRequest::decode(raw.as_slice()).expect("protobuf");
        assert_eq!(request.timeseries.len(), 2);
        let b = &request.timeseries[1];
        let names: Vec<&str> = b.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "host"], "sorted, name included");
        assert_eq!(b.labels[1].value, "b");
        let ts: Vec<i64> = b.samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(ts, [1, 2], "oldest first");
    }

    #[test]
    fn what_is_encoded_decodes_and_garbage_is_an_error() {
        let batch = vec![sample("up", "a", 1, 1.0), sample("up", "a", 2, 0.0)];
        assert_eq!(
            decode(&encode(&batch).expect("encode"), 10).expect("decode"),
            batch
        );
        assert!(
            decode(&encode(&batch).expect("encode"), 1)
                .expect_err("too many")
                .contains("more than 1")
        );
        // Many tiny samples under one long label: refused before it is copied.
        let long = Sample {
            name: "x".into(),
            labels: vec![("l".into(), "v".repeat(1 << 20))],
            ts_ms: 0,
            value: 0.0,
        };
        let many: Vec<Sample> = (0..1000)
            .map(|i| Sample {
                ts_ms: i,
                ..long.clone()
            })
            .collect();
        let body = encode(&many).expect("encode");
        assert!(
            decode(&body, 100_000)
                .expect_err("amplified")
                .contains("would take")
        );
        for bad in [&b""[..], b"\xff\xff\xff\xff\x0f", b"hello"] {
            assert!(decode(bad, 10).is_err(), "{bad:?}");
        }
        let bomb = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; MAX_DECODED + 1])
            .expect("bomb");
        assert!(decode(&bomb, 10).expect_err("bomb").contains("more than"));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let q = Queue::new(3);
        q.push(&[sample("x", "a", 1, 1.0), sample("x", "a", 2, 2.0)]);
        q.push(&[
            sample("x", "a", 3, 3.0),
            sample("x", "a", 4, 4.0),
            sample("x", "a", 5, 5.0),
        ]);
        assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 2);
        let stop = AtomicBool::new(false);
        let taken = q.take(10, Duration::from_millis(10), &stop);
        let ts: Vec<i64> = taken.iter().map(|s| s.ts_ms).collect();
        assert_eq!(ts, [3, 4, 5]);
        assert_eq!(q.stats.queued.load(Ordering::Relaxed), 0);
    }
}
