//! The command channel (`pipe` receivers): a configured command line, run without a shell,
//! gets the notification as JSON on its standard input; exit status 0 is acceptance.
//! It runs in its own process group, which is killed at the timeout (children included).

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Run `command_line` with `input` on stdin; returns `exit 0` and the first output line.
pub fn run(command_line: &str, input: &[u8], timeout: Duration) -> Result<String, String> {
    let argv = shlex::split(command_line)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| format!("`{command_line}` is not a command line"))?;
    let mut command = Command::new(&argv[0]);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
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
    // Each pipe is read on its own thread into a shared head (first 4 KiB kept).
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let head = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let shared = head.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            if let Some(mut r) = pipe {
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut h = shared.lock().unwrap_or_else(|e| e.into_inner());
                    let keep = n.min(4096usize.saturating_sub(h.len()));
                    h.extend_from_slice(&buf[..keep]);
                }
            }
            let _ = done.send(());
        });
        (head, finished)
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
                kill_group(&mut child);
                return Err(format!("{}: killed after {timeout:?}", argv[0]));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{}: {e}", argv[0])),
        }
    };
    // What it printed; a child it left behind holding the pipes is not waited for.
    let text = |(head, finished): (Arc<Mutex<Vec<u8>>>, std::sync::mpsc::Receiver<()>)| {
        let _ = finished.recv_timeout(Duration::from_millis(500));
        let h = head.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&h).trim().to_string()
    };
    let stdout = text(stdout);
    let stderr = text(stderr);
    if status.success() {
        let first = stdout.lines().next().unwrap_or("");
        Ok(format!("exit 0 {first}").trim().to_string())
    } else {
        Err(format!("{}: {status}: {stderr}", argv[0]))
    }
}

/// Kill the command's process group (its children too), then reap it.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
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
        // A command whose background child keeps the pipes open returns on its own exit ...
        let started = Instant::now();
        let left = run("sh -c 'sleep 5 & echo done'", b"", Duration::from_secs(5));
        assert_eq!(left, Ok("exit 0 done".into()));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // ... and a hung one is killed with its children.
        let started = Instant::now();
        let hung = run("sh -c 'sleep 5 & sleep 5'", b"", Duration::from_millis(200));
        assert!(hung.is_err_and(|e| e.contains("killed")));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(run("'unclosed", b"", Duration::from_secs(1)).is_err());
    }
}
