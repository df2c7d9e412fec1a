//! Tocsin's configuration: one TOML file, `deny_unknown_fields`, every field documented.
//! Sources, strongest first: CLI flags > `TOCSIN_*` environment > file > defaults.
//! Nested keys in the environment use `__`: `TOCSIN_HTTP__LISTEN=0.0.0.0:8080`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for Tocsin's own data: the database and the compiled-guest cache.
    pub data_dir: PathBuf,
    /// The HTTP server (API, dashboard, /healthz).
    pub http: HttpConfig,
    /// The policy set.
    pub policies: PoliciesConfig,
    /// The wasm engine.
    pub engine: EngineSection,
    /// How long stored data is kept.
    pub retention: RetentionConfig,
    /// Where alerts go: routes, grouping, receivers, inhibition, maintenance windows.
    pub routing: tocsin_alerting::RoutingConfig,
    /// The SMTP server mail receivers send through.
    pub mail: tocsin_notify::MailConfig,
    /// Notification delivery: names and links in messages, retries, rate limits, kinds.
    pub notify: tocsin_notify::NotifyConfig,
    /// The SNMPv2c agent (off by default).
    pub snmp: tocsin_export::SnmpConfig,
    /// The MQTT client fleet: embedded broker, topic prefixes, liveness.
    pub mqtt: tocsin_fleet::MqttConfig,
    /// Built-in collectors: host metrics, GPUs, script metrics, log files and journals.
    pub collect: tocsin_collect::CollectConfig,
    /// `tocsin agent`: the server it reports to, its spool, an optional watchdog.
    pub agent: crate::agent::AgentConfig,
    /// Prometheus remote_write of every stored sample (off by default).
    pub remote_write: tocsin_export::RemoteWriteConfig,
    /// Forwarding of alerts to an external Alertmanager (off by default).
    pub alertmanager: tocsin_export::AlertmanagerConfig,
    /// Logging.
    pub log: LogConfig,
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Largest request body in bytes; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
    /// Serve `/metrics` without a token (for scrapers that cannot send one). Off: send
    /// an operator token (`authorization: {credentials_file: ...}` in Prometheus).
    pub metrics_public: bool,
    /// Add the newest stored value of every series to `/metrics`.
    pub metrics_export_series: bool,
    /// PEM certificate chain: with `tls_key`, the server speaks only HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

/// Policy set settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// Directory of policy manifests (`*.toml`), relative to the working directory. It is
    /// watched: a changed, added or removed manifest (or a rebuilt component, seen within
    /// `rescan`) is deployed live.
    pub dir: PathBuf,
    /// Rescan the directory this often even without a file event.
    #[serde(with = "humantime_serde")]
    pub rescan: std::time::Duration,
    /// Deploy versions that ask for more grants than the running one. Off: such a version
    /// is refused, with the added grants named, and the running one stays.
    pub allow_new_grants: bool,
}

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Epoch tick in milliseconds: the granularity of guest deadlines (1-100).
    pub epoch_tick_ms: u64,
    /// Keep compiled guests on disk under `data_dir/cache` and reuse them across restarts.
    pub compile_cache: bool,
}

/// Retention per data kind, enforced in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Metric samples older than this are deleted (whole 2 h windows), e.g. `"30d"`.
    #[serde(with = "humantime_serde")]
    pub metrics: std::time::Duration,
    /// 1-hour rollups (count/min/max/sum/last per series and hour, what long charts
    /// read) outlive the raw points: deleted after this, e.g. `"365d"`.
    #[serde(with = "humantime_serde")]
    pub hourly: std::time::Duration,
    /// The host's own log records older than this are deleted, e.g. `"7d"`.
    #[serde(with = "humantime_serde")]
    pub logs: std::time::Duration,
    /// Fleet clients' log records (sources `client/{id}`) older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub client_logs: std::time::Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            metrics: std::time::Duration::from_secs(30 * 24 * 3600),
            hourly: std::time::Duration::from_secs(365 * 24 * 3600),
            logs: std::time::Duration::from_secs(7 * 24 * 3600),
            client_logs: std::time::Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter in `tracing` syntax: `info`, `tocsin=debug,info`, ...
    pub level: String,
    /// `human` (text) or `json` (one object per line), for stderr and the file.
    pub format: LogFormat,
    /// Tocsin's own log file, relative to `data_dir` unless absolute; empty: stderr only.
    pub file: PathBuf,
    /// Rotate the file when it reaches this size.
    pub max_file_bytes: u64,
    /// Rotated files kept (`tocsin.log.1`, ...; all but the newest gzipped).
    pub keep_files: usize,
    /// Rotated files older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub max_age: std::time::Duration,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text for people.
    Human,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            http: HttpConfig::default(),
            policies: PoliciesConfig::default(),
            engine: EngineSection::default(),
            retention: RetentionConfig::default(),
            routing: tocsin_alerting::RoutingConfig::default(),
            mail: tocsin_notify::MailConfig::default(),
            notify: tocsin_notify::NotifyConfig::default(),
            snmp: tocsin_export::SnmpConfig::default(),
            mqtt: tocsin_fleet::MqttConfig::default(),
            collect: tocsin_collect::CollectConfig::default(),
            agent: crate::agent::AgentConfig::default(),
            remote_write: tocsin_export::RemoteWriteConfig::default(),
            alertmanager: tocsin_export::AlertmanagerConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            request_timeout: std::time::Duration::from_secs(30),
            metrics_public: false,
            metrics_export_series: false,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        PoliciesConfig {
            dir: PathBuf::from("policies"),
            rescan: std::time::Duration::from_secs(5),
            allow_new_grants: false,
        }
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            epoch_tick_ms: 1,
            compile_cache: true,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Human,
            file: PathBuf::from("logs/tocsin.log"),
            max_file_bytes: 10 * 1024 * 1024,
            keep_files: 3,
            max_age: std::time::Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The documented default file, as `tocsin config default` prints it.
pub const DEFAULT_FILE: &str = include_str!("default-config.toml");

/// Overrides from command-line flags (only the ones given).
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--policies`.
    pub policies: Option<PathBuf>,
}

/// A configuration error naming the field and where its value came from.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn figment(file: Option<&Path>, overrides: &Overrides) -> Figment {
    let env = Env::prefixed("TOCSIN_").ignore(&["config"]).split("__");
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = file {
        fig = fig.merge(Toml::file_exact(file));
    }
    let mut flat = Figment::new();
    for (key, value) in [
        (
            "data_dir",
            overrides.data_dir.as_ref().map(|p| p.display().to_string()),
        ),
        ("http.listen", overrides.listen.map(|a| a.to_string())),
        (
            "policies.dir",
            overrides.policies.as_ref().map(|p| p.display().to_string()),
        ),
    ] {
        if let Some(v) = value {
            flat = flat.merge(Serialized::global(key, v));
        }
    }
    fig.merge(env).merge(flat)
}

/// Load the configuration: defaults, then `file` (when given), then the environment,
/// then `overrides`; validated.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let fig = figment(file, overrides);
    let config: Config = fig.extract().map_err(|e| ConfigError(describe(&e)))?;
    validate(&config, &fig)?;
    Ok(config)
}

fn describe(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn validate(config: &Config, fig: &Figment) -> Result<(), ConfigError> {
    let origin = |key: &str| {
        fig.find_metadata(key)
            .map(|m| match &m.source {
                Some(src) => format!("{} ({src})", m.name),
                None => m.name.to_string(),
            })
            .unwrap_or_else(|| "defaults".into())
    };
    if !(1..=100).contains(&config.engine.epoch_tick_ms) {
        return Err(ConfigError(format!(
            "engine.epoch_tick_ms = {} is out of range 1..=100, from {}",
            config.engine.epoch_tick_ms,
            origin("engine.epoch_tick_ms")
        )));
    }
    if config.data_dir.as_os_str().is_empty() {
        return Err(ConfigError(format!(
            "data_dir is empty, from {}",
            origin("data_dir")
        )));
    }
    for (key, value) in [
        ("retention.metrics", config.retention.metrics),
        ("retention.hourly", config.retention.hourly),
        ("retention.logs", config.retention.logs),
        ("retention.client_logs", config.retention.client_logs),
    ] {
        if value < std::time::Duration::from_secs(3600) {
            return Err(ConfigError(format!(
                "{key} must be at least 1h, from {}",
                origin(key)
            )));
        }
    }
    if config.retention.hourly < config.retention.metrics {
        return Err(ConfigError(format!(
            "retention.hourly ({:?}) must be at least retention.metrics ({:?}): long charts read \
             hourly rollups where raw points are gone, from {}",
            config.retention.hourly,
            config.retention.metrics,
            origin("retention.hourly")
        )));
    }
    if let Err(e) = config.routing.validate() {
        return Err(ConfigError(format!("{e}, from {}", origin("routing"))));
    }
    for r in config
        .routing
        .receivers
        .iter()
        .filter(|r| r.channel == "mqtt")
    {
        for to in &r.to {
            if let Err(e) = tocsin_notify::mqtt::parse(to) {
                return Err(ConfigError(format!(
                    "routing receiver `{}`: {e}, from {}",
                    r.name,
                    origin("routing")
                )));
            }
        }
    }
    if config.mqtt.enabled
        && let Err(e) = config.mqtt.validate()
    {
        return Err(ConfigError(format!("{e}, from {}", origin("mqtt"))));
    }
    if let Err(e) = config.agent.validate() {
        return Err(ConfigError(format!("{e}, from {}", origin("agent"))));
    }
    if let Err(e) = config.collect.validate() {
        return Err(ConfigError(format!("{e}, from {}", origin("collect"))));
    }
    if let Err(e) = config.mail.validate() {
        return Err(ConfigError(format!("{e}, from {}", origin("mail"))));
    }
    if let Err(e) = config.notify.validate().and_then(|()| {
        config
            .notify
            .daily_digest
            .validate(&config.routing.receivers)
    }) {
        return Err(ConfigError(format!("{e}, from {}", origin("notify"))));
    }
    if let Some(r) = config
        .routing
        .receivers
        .iter()
        .find(|r| r.channel == "mail")
        .filter(|_| !config.mail.configured())
    {
        return Err(ConfigError(format!(
            "routing receiver `{}` sends mail, but [mail] has no sender (from) and server \
             (host or a preset), from {}",
            r.name,
            origin("mail")
        )));
    }
    if config.log.max_file_bytes < 4096
        || config.log.keep_files == 0
        || config.log.max_age < std::time::Duration::from_secs(3600)
    {
        return Err(ConfigError(format!(
            "log.max_file_bytes must be at least 4096, log.keep_files at least 1 and log.max_age at least 1h, from {}",
            origin("log")
        )));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        return Err(ConfigError(format!(
            "log.level = {:?} is not a valid filter ({e}), from {}",
            config.log.level,
            origin("log.level")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use figment::Jail;

    /// Load `text` as ./tocsin.toml with `env` set, inside a jail (serialised, restored).
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn load_text(text: &str, env: &[(&str, &str)], o: &Overrides) -> Result<Config, ConfigError> {
        let mut out = None;
        Jail::expect_with(|jail| {
            jail.create_file("tocsin.toml", text)?;
            for (k, v) in env {
                jail.set_env(k, v);
            }
            out = Some(load(Some(Path::new("tocsin.toml")), o));
            Ok(())
        });
        out.expect("jail ran")
    }

    #[test]
    fn default_file_is_the_defaults() {
        let parsed: Config = toml::from_str(DEFAULT_FILE).expect("default file parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = "[http]\nlisten = \"127.0.0.1:9000\"\n[policies]\ndir = \"from-file\"\n";
        let c = load_text(file, &[], &Overrides::default()).expect("file");
        assert_eq!(c.http.listen.port(), 9000);
        let c = load_text(
            file,
            &[("TOCSIN_HTTP__LISTEN", "127.0.0.1:9001")],
            &Overrides::default(),
        )
        .expect("env");
        assert_eq!(c.http.listen.port(), 9001);
        assert_eq!(c.policies.dir, PathBuf::from("from-file"));
        let flags = Overrides {
            listen: Some("127.0.0.1:9002".parse().expect("addr")),
            ..Default::default()
        };
        let c =
            load_text(file, &[("TOCSIN_HTTP__LISTEN", "127.0.0.1:9001")], &flags).expect("flags");
        assert_eq!(c.http.listen.port(), 9002);
    }

    #[test]
    fn unknown_field_is_named_with_its_file() {
        let err = load_text(
            "[http]\nlisten = \"127.0.0.1:1\"\nport = 3\n",
            &[],
            &Overrides::default(),
        )
        .expect_err("unknown");
        assert!(
            err.0.contains("port") && err.0.contains("tocsin.toml"),
            "{}",
            err.0
        );
    }

    #[test]
    fn bad_value_is_named_with_its_file() {
        let err = load_text(
            "[http]\nlisten = \"not an address\"\n",
            &[],
            &Overrides::default(),
        )
        .expect_err("bad addr");
        assert!(
            err.0.contains("http.listen") && err.0.contains("tocsin.toml"),
            "{}",
            err.0
        );
        let err = load_text("[engine]\nepoch_tick_ms = 0\n", &[], &Overrides::default())
            .expect_err("range");
        assert!(
            err.0.contains("engine.epoch_tick_ms") && err.0.contains("tocsin.toml"),
            "{}",
            err.0
        );
    }

    #[test]
    fn missing_file_is_an_error() {
        let err = load(
            Some(Path::new("/nonexistent/tocsin.toml")),
            &Overrides::default(),
        )
        .expect_err("missing");
        assert!(err.0.contains("/nonexistent/tocsin.toml"), "{}", err.0);
    }
}
