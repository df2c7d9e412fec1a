//! Tocsin's own log: `tracing` to stderr and to a size-rotated file under `data_dir`
//! (file-rotate: older files gzipped, at most `keep_files`, and deleted past `max_age` by
//! an hourly sweep), human-readable or JSON.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use crate::config::{LogConfig, LogFormat};

/// Install the global subscriber for `tocsin run`.
pub fn init(config: &LogConfig, data_dir: &Path) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.level)?;
    let json = config.format == LogFormat::Json;
    let stderr = if json {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };
    let file = match log_path(config, data_dir) {
        None => None,
        Some(path) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the log directory {}", dir.display()))?;
            prune(&path, config.max_age);
            spawn_pruner(path.clone(), config.max_age);
            let writer = Mutex::new(FileRotate::new(
                &path,
                AppendCount::new(config.keep_files),
                ContentLimit::BytesSurpassed(
                    usize::try_from(config.max_file_bytes).unwrap_or(usize::MAX),
                ),
                // The newest rotated file stays plain text for a quick look.
                Compression::OnRotate(1),
                None,
            ));
            Some(if json {
                fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(writer)
                    .boxed()
            } else {
                fmt::layer().with_ansi(false).with_writer(writer).boxed()
            })
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(())
}

/// The log file, if one is configured.
fn log_path(config: &LogConfig, data_dir: &Path) -> Option<PathBuf> {
    if config.file.as_os_str().is_empty() {
        return None;
    }
    Some(if config.file.is_absolute() {
        config.file.clone()
    } else {
        data_dir.join(&config.file)
    })
}

fn spawn_pruner(path: PathBuf, max_age: Duration) {
    let _ = std::thread::Builder::new()
        .name("log-prune".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
                prune(&path, max_age);
            }
        });
}

/// Delete rotated files of `path` (`NAME.N`, `NAME.N.gz`) last written before `max_age`.
fn prune(path: &Path, max_age: Duration) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let rotated = rest
            .trim_end_matches(".gz")
            .chars()
            .all(|c| c.is_ascii_digit());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age));
        if rotated && !rest.is_empty() && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn files_rotate_compress_and_age_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tocsin.log");
        let mut w = FileRotate::new(
            &path,
            AppendCount::new(3),
            ContentLimit::BytesSurpassed(1000),
            Compression::OnRotate(1),
            None,
        );
        for i in 0..200 {
            writeln!(w, "line {i} of the log, padded to some length").expect("write");
        }
        w.flush().expect("flush");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "tocsin.log",
                "tocsin.log.1",
                "tocsin.log.2.gz",
                "tocsin.log.3.gz"
            ]
        );
        // Nothing is old yet; then everything rotated is, and only those go.
        prune(&path, Duration::from_secs(3600));
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 4);
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.path().join("tocsin.log.notes"), "kept").expect("write");
        prune(&path, Duration::from_millis(1));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["tocsin.log", "tocsin.log.notes"]);
    }
}
