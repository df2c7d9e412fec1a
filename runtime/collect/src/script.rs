//! Script metrics: run a configured command (no shell unless asked), wait at most its
//! timeout, and read `name value` / `name{labels} value` lines from its standard output.
//! Every sample gets a `script` label; `script_success` and `script_duration_seconds`
//! say how the run went.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tocsin_store::Sample;

/// The most standard output read from one run; the rest is discarded.
pub const MAX_OUTPUT_BYTES: u64 = 1 << 20;

/// One script metric source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptConfig {
    /// Name, the value of the `script` label.
    pub name: String,
    /// Program and arguments, run directly (no shell).
    pub command: Vec<String>,
    /// Run `command` as one `sh -c` line instead.
    #[serde(default)]
    pub shell: bool,
    /// How often to run it.
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    /// Kill it after this long (the round then reports `script_success` 0).
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl ScriptConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a script needs a name".into());
        }
        if self.command.first().is_none_or(|p| p.is_empty()) {
            return Err(format!("script `{}`: empty command", self.name));
        }
        if self.shell && self.command.len() != 1 {
            return Err(format!(
                "script `{}`: with shell = true, command is one line",
                self.name
            ));
        }
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "script `{}`: a name is letters, digits, `-`, `_`, `.`",
                self.name
            ));
        }
        let day = Duration::from_secs(24 * 3600);
        if self.interval < Duration::from_secs(1)
            || self.interval > day
            || self.timeout.is_zero()
            || self.timeout > Duration::from_secs(3600)
        {
            return Err(format!(
                "script `{}`: interval must be 1s..24h and timeout above 0 and at most 1h",
                self.name
            ));
        }
        Ok(())
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    /// The samples read plus `script_success` and `script_duration_seconds`.
    pub samples: Vec<Sample>,
    /// Why the run failed, or lines that were not samples.
    pub problems: Vec<String>,
}

/// Run `script` once, stamping samples `ts_ms`.
pub fn run(script: &ScriptConfig, ts_ms: i64) -> Run {
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut samples = Vec::new();
    let ok = match execute(script) {
        Ok(stdout) => {
            let (read, errors) = tocsin_store::exposition::parse_text(&stdout, ts_ms);
            for (line, why) in errors {
                problems.push(format!("line {line}: {why}"));
            }
            for mut s in read {
                s.labels.retain(|(k, _)| k != "script");
                s.labels.push(("script".into(), script.name.clone()));
                samples.push(s);
            }
            true
        }
        Err(e) => {
            problems.push(e);
            false
        }
    };
    let label = vec![("script".to_string(), script.name.clone())];
    samples.push(Sample {
        name: "script_success".into(),
        labels: label.clone(),
        ts_ms,
        value: if ok { 1.0 } else { 0.0 },
    });
    samples.push(Sample {
        name: "script_duration_seconds".into(),
        labels: label,
        ts_ms,
        value: started.elapsed().as_secs_f64(),
    });
    Run { samples, problems }
}

/// Standard output of a successful run.
fn execute(script: &ScriptConfig) -> Result<String, String> {
    let command = if script.shell {
        let mut c = Command::new("sh");
        c.arg("-c").args(&script.command);
        c
    } else {
        let mut c = Command::new(&script.command[0]);
        c.args(&script.command[1..]);
        c
    };
    output(command, script.timeout)
}

/// Standard output (at most `MAX_OUTPUT_BYTES`) of `command` if it succeeds within
/// `timeout`; it runs in its own process group, killed whole at the deadline.
pub(crate) fn output(mut command: Command, timeout: Duration) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    // Its own process group: a timeout kills what it started too, and nothing it leaves
    // behind keeps the output pipe (and this thread) waiting.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no standard output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut limited = stdout.take(MAX_OUTPUT_BYTES);
        let _ = limited.read_to_end(&mut buf);
        // Drain the rest so a chatty script is not blocked on a full pipe.
        let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        let _ = tx.send(buf);
    });
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("timed out after {timeout:?}");
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                return Err(timed_out());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting: {e}")),
        }
    };
    // Its output ends when every process holding the pipe has exited: a background
    // process it left behind is killed with its group at the deadline.
    let out = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(out) => out,
        Err(_) => {
            kill_group(&mut child);
            return Err(timed_out());
        }
    };
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Kill the script's process group (what it started too), then reap it.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory effects; the child is not reaped yet, so its
        // process group id (its pid, from `process_group(0)`) cannot have been reused.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(command: &[&str], shell: bool, timeout_ms: u64) -> ScriptConfig {
        ScriptConfig {
            name: "t".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            shell,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn value(run: &Run, name: &str) -> Option<f64> {
        run.samples.iter().find(|s| s.name == name).map(|s| s.value)
    }

    #[test]
    fn output_lines_become_samples_with_the_script_label() {
        let r = run(
            &script(
                &[
                    "printf",
                    "jobs_waiting{queue=\"a\"} 3\\nbroken line x\\nage 1.5\\n",
                ],
                false,
                5000,
            ),
            7,
        );
        assert_eq!(value(&r, "jobs_waiting"), Some(3.0));
        assert_eq!(value(&r, "age"), Some(1.5));
        assert_eq!(value(&r, "script_success"), Some(1.0));
        let jobs = r
            .samples
            .iter()
            .find(|s| s.name == "jobs_waiting")
            .expect("test");
        assert_eq!(
            jobs.labels,
            vec![("queue".into(), "a".into()), ("script".into(), "t".into())]
        );
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].starts_with("line 2:"));
    }

    #[test]
    fn no_shell_unless_asked() {
        // Without a shell the `;` and `$` reach printf as text.
        let r = run(&script(&["printf", "a 1; echo b $HOME"], false, 5000), 1);
        assert_eq!(r.problems.len(), 1);
        let r = run(&script(&["echo a 1; echo b 2"], true, 5000), 1);
        assert_eq!((value(&r, "a"), value(&r, "b")), (Some(1.0), Some(2.0)));
    }

    #[test]
    fn a_background_process_holding_the_output_does_not_hang_the_run() {
        let started = Instant::now();
        let r = run(&script(&["echo a 1; sleep 30 &"], true, 500), 1);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(value(&r, "script_success"), Some(0.0), "{:?}", r.problems);
    }

    #[test]
    fn failures_and_timeouts_report_success_zero() {
        let r = run(&script(&["sleep", "5"], false, 200), 1);
        assert_eq!(value(&r, "script_success"), Some(0.0));
        assert!(r.problems[0].contains("timed out"), "{:?}", r.problems);
        assert!(value(&r, "script_duration_seconds").expect("test") < 2.0);
        let r = run(&script(&["false"], false, 5000), 1);
        assert_eq!(value(&r, "script_success"), Some(0.0));
        let r = run(&script(&["/nonexistent/x"], false, 5000), 1);
        assert!(r.problems[0].contains("cannot start"));
    }
}
