//! Helpers of the end-to-end tests: start the real binary, talk HTTP to it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The data directory of the instance started on each port (where its admin token is).
static DATA_DIRS: Mutex<BTreeMap<u16, PathBuf>> = Mutex::new(BTreeMap::new());

/// The admin token the instance on `port` wrote at its first start.
pub fn admin_token(port: u16) -> Option<String> {
    let dir = DATA_DIRS.lock().ok()?.get(&port)?.clone();
    let text = std::fs::read_to_string(dir.join("admin.token")).ok()?;
    Some(text.trim().to_string())
}

fn auth_header(token: Option<&str>) -> String {
    token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default()
}

/// GET `path` over plain HTTP/1.1 with the instance's admin token: status and body;
/// `None` while the server is not up.
pub fn get_text(port: u16, path: &str) -> Option<(u16, String)> {
    get_text_as(port, path, admin_token(port).as_deref())
}

/// GET `path` with `token` (or none).
pub fn get_text_as(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Connection: close\r\n\r\n",
        auth_header(token)
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// GET `path` and parse the body as JSON.
pub fn get(port: u16, path: &str) -> Option<(u16, Value)> {
    let (status, body) = get_text(port, path)?;
    Some((status, serde_json::from_str(&body).ok()?))
}

pub struct Tocsin(pub Child);

impl Drop for Tocsin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start(policies: &Path, data: &Path, port: u16) -> Tocsin {
    start_with(policies, data, port, &[])
}

pub fn start_with(policies: &Path, data: &Path, port: u16, env: &[(&str, &str)]) -> Tocsin {
    spawn_run(policies, data, port, &[], env)
}

/// Start `tocsin run --config FILE` (plus the usual flags).
pub fn start_config(policies: &Path, data: &Path, port: u16, config: &Path) -> Tocsin {
    let config = config.display().to_string();
    spawn_run(policies, data, port, &["--config", &config], &[])
}

/// Start `tocsin run` with extra arguments and environment.
pub fn spawn_run(
    policies: &Path,
    data: &Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Tocsin {
    if let Ok(mut dirs) = DATA_DIRS.lock() {
        dirs.insert(port, data.to_path_buf());
    }
    let child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        // Each instance's embedded broker on its own port (an `env` entry may override).
        .env("TOCSIN_MQTT__LISTEN", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied())
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .arg("--policies")
        .arg(policies)
        .arg("--data-dir")
        .arg(data)
        .env_remove("TOCSIN_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tocsin");
    Tocsin(child)
}

/// The newest value of the first series `selector` picks, through the API.
pub fn latest(port: u16, selector: &str) -> Option<f64> {
    let encoded = selector
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace(' ', "%20");
    let (_, body) = get(port, &format!("/api/metrics/latest?selector={encoded}"))?;
    body["values"].as_array()?.first()?["value"].as_f64()
}

pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Send `method path` with a JSON body and the admin token: status and parsed body (null
/// when not JSON).
pub fn send(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    send_as(port, method, path, body, admin_token(port).as_deref())
}

/// Send `method path` with a JSON body and `token` (or none).
pub fn send_as(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         {}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        auth_header(token),
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// The built guests.
pub fn guest(name: &str) -> String {
    repo()
        .join("guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// A self-signed certificate for `localhost` (and 127.0.0.1) made by openssl in `dir`:
/// (certificate, key) PEM files.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            // An end-entity certificate: rustls refuses a CA certificate as a server's.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package; `cargo xtask test` installs it)");
    assert!(made.success());
    (cert, key)
}

/// A child process killed (and reaped) when dropped: the servers tests start.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Write `host-basics.toml` into `dir`: the host collector every second.
pub fn write_collector(dir: &Path) {
    std::fs::write(
        dir.join("host-basics.toml"),
        format!(
            "kind = \"collector\"\ncomponent = \"{}\"\ninterval = \"1s\"\n\
             grants = [\"sensors\"]\n[budgets]\ndeadline_ms = 2000\n",
            guest("host_basics")
        ),
    )
    .expect("collector policy");
}

/// Debian's mosquitto on `port` (loopback, anonymous, no persistence), killed on drop.
pub struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start mosquitto with its config in `dir`. It queues plenty for an offline persistent
/// session (its default 1000 drops further QoS 1 messages silently).
pub fn mosquitto(dir: &Path, port: u16) -> Mosquitto {
    mosquitto_with(dir, port, false)
}

/// Mosquitto keeping sessions and queues in `dir` across a restart (written when it is
/// stopped with SIGTERM; see [`Mosquitto::terminate`]).
pub fn mosquitto_persistent(dir: &Path, port: u16) -> Mosquitto {
    mosquitto_with(dir, port, true)
}

impl Mosquitto {
    /// Stop it with SIGTERM (it saves its persistence file) and wait for it to exit.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn mosquitto_with(dir: &Path, port: u16, persistent: bool) -> Mosquitto {
    let conf = dir.join("mosquitto.conf");
    let persistence = if persistent {
        format!(
            // Run as root, mosquitto would drop to user `mosquitto` and could not write
            // its database into the test's directory.
            "persistence true\npersistence_location {}/\nuser root\n",
            dir.display()
        )
    } else {
        "persistence false\n".to_string()
    };
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n{persistence}\
             log_dest stderr\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n"
        ),
    )
    .expect("conf");
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (Debian package; `cargo xtask test` installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Mosquitto(child)
}
