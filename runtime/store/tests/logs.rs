//! Log records on a real redb file: append, filtered newest-first queries, 24 h counts,
//! retention, persistence.

use tocsin_store::{Level, LogQuery, LogRecord, MAX_LOG_LIMIT, Store};

const HOUR: i64 = 3600 * 1000;

fn rec(source: &str, level: Level, ts_ms: i64, message: &str) -> LogRecord {
    LogRecord {
        source: source.into(),
        level,
        ts_ms,
        message: message.into(),
        fields: vec![],
    }
}

fn seeded(path: &std::path::Path) -> Store {
    let store = Store::open(path).expect("open");
    let mut batch = Vec::new();
    for i in 0..100i64 {
        let level = match i % 10 {
            0 => Level::Error,
            1 | 2 => Level::Warn,
            _ => Level::Info,
        };
        let source = if i % 2 == 0 { "web" } else { "db" };
        batch.push(rec(
            source,
            level,
            10 * HOUR + i * 60_000,
            &format!("line {i}"),
        ));
    }
    assert_eq!(store.append_logs(&batch).expect("append"), 100);
    store
}

#[test]
fn queries_filter_by_source_level_time_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = seeded(&dir.path().join("db"));

    let newest = store.query_logs(&LogQuery::default()).expect("query");
    assert_eq!(newest.len(), 50, "default limit");
    assert_eq!(newest[0].message, "line 99");
    assert!(
        newest.windows(2).all(|w| w[0].ts_ms >= w[1].ts_ms),
        "newest first"
    );

    let errors = store
        .query_logs(&LogQuery {
            min_level: Some(Level::Error),
            ..Default::default()
        })
        .expect("errors");
    assert_eq!(errors.len(), 10);
    assert!(errors.iter().all(|r| r.level == Level::Error));

    let warn_up = store
        .query_logs(&LogQuery {
            min_level: Some(Level::Warn),
            limit: Some(5),
            ..Default::default()
        })
        .expect("warn+");
    let msgs: Vec<&str> = warn_up.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["line 92", "line 91", "line 90", "line 82", "line 81"]
    );

    let web_errors = store
        .query_logs(&LogQuery {
            source: Some("web".into()),
            min_level: Some(Level::Error),
            since_ms: Some(10 * HOUR + 50 * 60_000),
            ..Default::default()
        })
        .expect("web errors since");
    let msgs: Vec<&str> = web_errors.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["line 90", "line 80", "line 70", "line 60", "line 50"]
    );

    let all = store
        .query_logs(&LogQuery {
            limit: Some(10_000),
            ..Default::default()
        })
        .expect("capped");
    assert_eq!(all.len(), 100.min(MAX_LOG_LIMIT));
    let none = store
        .query_logs(&LogQuery {
            source: Some("nope".into()),
            ..Default::default()
        })
        .expect("none");
    assert!(none.is_empty());
}

#[test]
fn counts_per_source_and_level_over_hours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = seeded(&dir.path().join("db"));
    // Records span 10:00-11:39; a 24 h window ending at 12:00 sees them all.
    let counts = store.log_counts(12 * HOUR, 24).expect("counts");
    assert_eq!(counts.len(), 2);
    let (source, c) = &counts[1];
    assert_eq!(source, "web");
    assert_eq!(c[Level::Error as usize], 10, "every error is at an even i");
    assert_eq!(c.iter().sum::<u64>(), 50);
    // One hour ending at 11:xx sees only the 11:00 hour (i = 60..99).
    let counts = store.log_counts(11 * HOUR + 1, 1).expect("counts");
    assert_eq!(
        counts
            .iter()
            .map(|(_, c)| c.iter().sum::<u64>())
            .sum::<u64>(),
        40
    );
}

#[test]
fn retention_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = seeded(&path);
        assert_eq!(
            store
                .enforce_log_retention(10 * HOUR + 30 * 60_000, 10 * HOUR + 30 * 60_000)
                .expect("retention"),
            30
        );
    }
    let store = Store::open(&path).expect("reopen");
    let all = store
        .query_logs(&LogQuery {
            limit: Some(500),
            ..Default::default()
        })
        .expect("query");
    assert_eq!(all.len(), 70);
    assert_eq!(all.last().expect("oldest").message, "line 30");
    let web = store
        .query_logs(&LogQuery {
            source: Some("web".into()),
            limit: Some(500),
            ..Default::default()
        })
        .expect("web");
    assert_eq!(web.len(), 35, "index entries went with their records");
    let counts = store.log_counts(12 * HOUR, 24).expect("counts");
    assert_eq!(
        counts
            .iter()
            .map(|(_, c)| c.iter().sum::<u64>())
            .sum::<u64>(),
        70,
        "counts follow deleted records"
    );
    // Long messages are kept, cut, and marked.
    store
        .append_logs(&[rec("big", Level::Info, 20 * HOUR, &"x".repeat(100_000))])
        .expect("append");
    let big = store
        .query_logs(&LogQuery {
            source: Some("big".into()),
            ..Default::default()
        })
        .expect("big");
    assert!(big[0].message.len() < 17_000 && big[0].message.ends_with("[truncated]"));
}

#[test]
fn client_logs_keep_their_own_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let day = 24 * HOUR;
    let mut batch = Vec::new();
    for d in 0..100i64 {
        batch.push(rec("syslog", Level::Warn, d * day, &format!("host {d}")));
        batch.push(rec(
            "client/kiosk-1",
            Level::Error,
            d * day,
            &format!("client {d}"),
        ));
    }
    store.append_logs(&batch).expect("append");
    // Now = day 99: host logs keep 7 days, client logs 90.
    let now = 99 * day;
    let deleted = store
        .enforce_log_retention(now - 7 * day, now - 90 * day)
        .expect("retention");
    assert_eq!(deleted, 92 + 9);
    let left = |source: &str| {
        store
            .query_logs(&LogQuery {
                source: Some(source.into()),
                limit: Some(500),
                ..Default::default()
            })
            .expect("query")
    };
    let host = left("syslog");
    assert_eq!(host.len(), 8);
    assert_eq!(host.last().expect("oldest").message, "host 92");
    let client = left("client/kiosk-1");
    assert_eq!(client.len(), 91);
    assert_eq!(client.last().expect("oldest").message, "client 9");
    let counts = store.log_counts(now + HOUR, 100 * 24).expect("counts");
    let total: u64 = counts.iter().map(|(_, c)| c.iter().sum::<u64>()).sum();
    assert_eq!(total, 99, "counts follow");
}
