//! The command channel (`pipe` receivers): a configured command line, run without a shell,
//! gets the notification as JSON on its standard input; exit status 0 is acceptance.
//! It is killed at the timeout.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `command_line` with `input` on stdin; returns `exit 0` and the first output line.
pub fn run(command_line: &str, input: &[u8], timeout: Duration) -> Result<String, String> {
    let argv = shlex::split(command_line)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| format!("`{command_line}` is not a command line"))?;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    // Input and output move on their own threads, so a command that neither reads nor
    // stops writing is still ended at the timeout.
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut head = Vec::new();
            if let Some(mut r) = pipe {
                let _ = (&mut r).take(4096).read_to_end(&mut head);
                let _ = std::io::copy(&mut r, &mut std::io::sink());
            }
            String::from_utf8_lossy(&head).trim().to_string()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{}: killed after {timeout:?}", argv[0]));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{}: {e}", argv[0])),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if status.success() {
        let first = stdout.lines().next().unwrap_or("");
        Ok(format!("exit 0 {first}").trim().to_string())
    } else {
        Err(format!("{}: {status}: {stderr}", argv[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_reaches_the_command_and_failure_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("got");
        let ok = run(
            &format!("sh -c 'cat > {}; echo accepted'", out.display()),
            b"{\"a\":1}",
            Duration::from_secs(5),
        );
        assert_eq!(ok, Ok("exit 0 accepted".into()));
        assert_eq!(
            std::fs::read_to_string(&out).ok().as_deref(),
            Some("{\"a\":1}")
        );
        let err = run("sh -c 'echo nope >&2; exit 3'", b"", Duration::from_secs(5))
            .expect_err("an error");
        assert!(err.contains("nope") && err.contains('3'), "{err}");
        let slow = run("sleep 5", b"", Duration::from_millis(200)).expect_err("an error");
        assert!(slow.contains("killed"), "{slow}");
        assert!(run("'unclosed", b"", Duration::from_secs(1)).is_err());
    }
}
