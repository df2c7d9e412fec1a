//! Following one log file like `tail -F`: complete lines only, rotation by rename followed
//! by inode (the old file is read to its end first), truncation (copytruncate) restarts
//! at 0, and a [`Position`] (inode, offset) to resume from after a restart — including a
//! file rotated to `NAME.1` while Tocsin was down.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tocsin_store::Level;

/// Longest line kept; the rest of a longer one is cut.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Where reading stopped: the next byte to read of the file with this inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Inode of the file.
    pub inode: u64,
    /// Bytes of it already turned into lines.
    pub offset: u64,
}

/// One followed file.
pub struct Tailer {
    path: PathBuf,
    from_start: bool,
    saved: Option<Position>,
    open: Option<(File, u64)>,
    /// Bytes read from the open file, complete lines or not.
    read: u64,
    /// The incomplete last line (at most `MAX_LINE_BYTES` of it kept) ...
    partial: Vec<u8>,
    /// ... and its length in the file.
    partial_len: u64,
}

impl Tailer {
    /// Follow `path`, resuming at `saved` when it still applies; a file seen for the first
    /// time is read from its end, or from its start with `from_start`.
    pub fn new(path: PathBuf, from_start: bool, saved: Option<Position>) -> Tailer {
        Tailer {
            path,
            from_start,
            saved,
            open: None,
            read: 0,
            partial: Vec::new(),
            partial_len: 0,
        }
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The position to persist: complete lines only, so a restart re-reads a partial one.
    pub fn position(&self) -> Option<Position> {
        self.open.as_ref().map(|(_, inode)| Position {
            inode: *inode,
            offset: self.read - self.partial_len,
        })
    }

    /// New complete lines since the previous poll. A missing file is no error: it is
    /// looked for again next time.
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut lines = Vec::new();
        if self.open.is_none() && !self.open_current(&mut lines)? {
            return Ok(lines);
        }
        self.read_available(&mut lines)?;
        let Some((file, inode)) = &self.open else {
            return Ok(lines);
        };
        let (inode, len) = (*inode, file.metadata()?.len());
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.ino() != inode => {
                // Rotated: what the writer added to the old file before switching is
                // read (to its end) first, then the new file from its start.
                while self.read_available(&mut lines)? > 0 {}
                self.flush_partial(&mut lines);
                self.open = None;
                self.saved = None;
                self.from_start = true;
                if self.open_current(&mut lines)? {
                    self.read_available(&mut lines)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && len <= self.read => {
                // Deleted and read to its end: let it go (its space is freed); a file
                // created under the name later is read from its start.
                self.flush_partial(&mut lines);
                self.open = None;
                self.saved = None;
                self.from_start = true;
            }
            Ok(_) if len < self.read => {
                // Truncated in place: start again from the top.
                self.read = 0;
                self.partial.clear();
                self.partial_len = 0;
                if let Some((f, _)) = &mut self.open {
                    f.seek(SeekFrom::Start(0))?;
                }
                self.read_available(&mut lines)?;
            }
            _ => {}
        }
        Ok(lines)
    }

    /// Open the file at `path`, positioned per the saved position. False when it is absent.
    fn open_current(&mut self, lines: &mut Vec<String>) -> std::io::Result<bool> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let start = match self.saved.take() {
            Some(p) if p.inode == meta.ino() && p.offset <= meta.len() => p.offset,
            Some(p) => {
                // Rotated while we were away: finish the old file if it sits at NAME.1.
                self.finish_rotated(p, lines)?;
                0
            }
            None if self.from_start => 0,
            None => meta.len(),
        };
        file.seek(SeekFrom::Start(start))?;
        self.open = Some((file, meta.ino()));
        self.read = start;
        self.partial.clear();
        self.partial_len = 0;
        Ok(true)
    }

    fn finish_rotated(&mut self, p: Position, lines: &mut Vec<String>) -> std::io::Result<()> {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        let Ok(mut old) = File::open(PathBuf::from(rotated)) else {
            return Ok(());
        };
        let meta = old.metadata()?;
        if meta.ino() != p.inode || p.offset > meta.len() {
            return Ok(());
        }
        old.seek(SeekFrom::Start(p.offset))?;
        let mut rest = Vec::new();
        old.read_to_end(&mut rest)?;
        self.partial.clear();
        self.partial_len = 0;
        self.split(&rest, lines);
        self.flush_partial(lines);
        Ok(())
    }

    /// Read up to 8 MiB (one burst does not hold the other files); the bytes read.
    fn read_available(&mut self, lines: &mut Vec<String>) -> std::io::Result<usize> {
        let Some((file, _)) = &mut self.open else {
            return Ok(0);
        };
        let mut buf = Vec::new();
        let n = file.take(8 << 20).read_to_end(&mut buf)?;
        self.read += n as u64;
        self.split(&buf, lines);
        Ok(n)
    }

    /// Cut `bytes` into lines; a line longer than `MAX_LINE_BYTES` keeps its start.
    fn split(&mut self, bytes: &[u8], lines: &mut Vec<String>) {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            self.keep(&rest[..nl]);
            lines.push(line_text(&self.partial));
            self.partial.clear();
            self.partial_len = 0;
            rest = &rest[nl + 1..];
        }
        self.keep(rest);
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.partial_len += bytes.len() as u64;
    }

    fn flush_partial(&mut self, lines: &mut Vec<String>) {
        if self.partial_len > 0 {
            lines.push(line_text(&self.partial));
            self.partial.clear();
            self.partial_len = 0;
        }
    }
}

fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let cut = &bytes[..bytes.len().min(MAX_LINE_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

/// The level a log line declares: a JSON `level`/`severity` field, or the first level word
/// (`ERROR`, `[warn]`, `level=debug`, `FATAL`, ...) among its first words; info otherwise.
pub fn detect_level(line: &str) -> Level {
    if line.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(line)
    {
        for key in ["level", "severity", "lvl", "log.level"] {
            if let Some(l) = map.get(key).and_then(|v| v.as_str())
                && let Ok(level) = l.parse()
            {
                return level;
            }
        }
    }
    let head = &line[..line.floor_char_boundary(200)];
    for word in head
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .take(12)
    {
        let level = match word.to_ascii_uppercase().as_str() {
            "ERROR" | "ERR" | "FATAL" | "CRIT" | "CRITICAL" | "PANIC" | "EMERG" | "ALERT"
            | "SEVERE" => Level::Error,
            "WARN" | "WARNING" => Level::Warn,
            "DEBUG" | "TRACE" => Level::Debug,
            "INFO" | "NOTICE" => Level::Info,
            _ => continue,
        };
        return level;
    }
    Level::Info
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("test");
        f.write_all(text.as_bytes()).expect("test");
    }

    #[test]
    fn rotation_by_rename_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().expect("test");
        let log = dir.path().join("app.log");
        append(&log, "before start\n");
        let mut t = Tailer::new(log.clone(), false, None);
        assert!(t.poll().expect("test").is_empty(), "starts at the end");
        append(&log, "one\ntw");
        assert_eq!(t.poll().expect("test"), vec!["one"]);
        append(&log, "o\nthree\n");
        // Rotate: the writer finishes a line in the old file after the rename.
        std::fs::rename(&log, dir.path().join("app.log.1")).expect("test");
        append(&dir.path().join("app.log.1"), "four\n");
        append(&log, "five\n");
        assert_eq!(
            t.poll().expect("test"),
            vec!["two", "three", "four", "five"]
        );
        append(&log, "six\n");
        assert_eq!(t.poll().expect("test"), vec!["six"]);
    }

    #[test]
    fn a_line_without_end_is_capped_and_a_deleted_file_let_go() {
        let dir = tempfile::tempdir().expect("test");
        let log = dir.path().join("app.log");
        let mut t = Tailer::new(log.clone(), true, None);
        append(&log, &"x".repeat(3 * MAX_LINE_BYTES));
        assert!(t.poll().expect("test").is_empty());
        assert!(t.partial.len() <= MAX_LINE_BYTES);
        assert_eq!(
            t.position().expect("open").offset,
            0,
            "a partial line is re-read"
        );
        append(&log, "\nnext\n");
        let lines = t.poll().expect("test");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1], "next");
        std::fs::remove_file(&log).expect("test");
        assert!(t.poll().expect("test").is_empty());
        assert!(t.open.is_none(), "the deleted file is closed");
        append(&log, "again\n");
        assert_eq!(t.poll().expect("test"), vec!["again"]);
    }

    #[test]
    fn truncation_restarts_at_the_top() {
        let dir = tempfile::tempdir().expect("test");
        let log = dir.path().join("app.log");
        let mut t = Tailer::new(log.clone(), true, None);
        assert!(
            t.poll().expect("test").is_empty(),
            "absent file is no error"
        );
        append(&log, "a\nb\n");
        assert_eq!(t.poll().expect("test"), vec!["a", "b"]);
        std::fs::write(&log, "c\n").expect("test");
        assert_eq!(t.poll().expect("test"), vec!["c"]);
    }

    #[test]
    fn a_restart_resumes_at_the_saved_position_even_after_rotation() {
        let dir = tempfile::tempdir().expect("test");
        let log = dir.path().join("app.log");
        append(&log, "a\n");
        let mut t = Tailer::new(log.clone(), true, None);
        assert_eq!(t.poll().expect("test"), vec!["a"]);
        append(&log, "b\npart");
        assert_eq!(t.poll().expect("test"), vec!["b"]);
        let saved = t.position().expect("test");
        drop(t);

        // Same file: continue after the last complete line.
        append(&log, "ial\n");
        let mut t = Tailer::new(log.clone(), false, Some(saved));
        assert_eq!(t.poll().expect("test"), vec!["partial"]);
        let saved = t.position().expect("test");
        drop(t);

        // Rotated while down: the rest of NAME.1, then the new file.
        append(&log, "c\n");
        std::fs::rename(&log, dir.path().join("app.log.1")).expect("test");
        append(&log, "d\n");
        let mut t = Tailer::new(log.clone(), false, Some(saved));
        assert_eq!(t.poll().expect("test"), vec!["c", "d"]);
    }

    #[test]
    fn levels_are_detected() {
        let cases = [
            ("2026-01-01 ERROR disk failed", Level::Error),
            ("[warn] low space", Level::Warn),
            ("ts=1 level=debug msg=x", Level::Debug),
            ("kernel: panic in module", Level::Error),
            (
                "{\"level\":\"warning\",\"msg\":\"error later\"}",
                Level::Warn,
            ),
            ("plain line mentioning nothing", Level::Info),
            ("INFO: all good, no errors", Level::Info),
            ("Errors happened", Level::Info),
        ];
        for (line, want) in cases {
            assert_eq!(detect_level(line), want, "{line}");
        }
    }
}
