//! Talking to a running Tocsin over its API, for the commands that do (`tocsin check`,
//! `tocsin rule deploy`): where it is, the token, timeouts, JSON in and out.

use std::path::PathBuf;

/// Where the API is and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Tocsin's address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TOCSIN_URL")]
    pub url: String,
    /// An operator token (or `--token-file`).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Give up after this many seconds (UNKNOWN). Deploys, rollbacks and backtests compile
    /// a component on the server (seconds for Python/JS guests) and wait at least
    /// `POST_TIMEOUT_SECS`.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// The least time a POST (deploy, rollback, backtest) is given.
const POST_TIMEOUT_SECS: u64 = 300;

impl Target {
    /// GET `path_and_query`: the JSON body of a 200, else an error naming the status.
    pub fn get(&self, path_and_query: &str) -> Result<serde_json::Value, String> {
        let token = self.token()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(self.timeout)))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path_and_query}", self.url.trim_end_matches('/'));
        let mut request = agent.get(&url);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let mut response = request.call().map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response
            .body_mut()
            .read_json()
            .map_err(|e| format!("{url}: HTTP {status}, not JSON: {e}"))?;
        if status != 200 {
            let why = body["error"].as_str().unwrap_or("no reason given");
            return Err(format!("{url}: HTTP {status}: {why}"));
        }
        Ok(body)
    }
}

impl Target {
    fn token(&self) -> Result<Option<String>, String> {
        match (&self.token, &self.token_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(f)) => Ok(Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("reading {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            )),
            (None, None) => Ok(None),
        }
    }

    /// POST JSON to `path`: the status and the JSON answer (null when there is none).
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(
                self.timeout.max(POST_TIMEOUT_SECS),
            )))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = agent.post(&url);
        if let Some(t) = self.token()? {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let mut response = request.send_json(body).map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let answer = response
            .body_mut()
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        Ok((status, answer))
    }
}

/// Percent-encode a query parameter.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `tocsin rule deploy`: send a manifest and the component it names to a running Tocsin,
/// which checks and deploys it like a file change. New grants need `allow_new_grants`.
pub fn rule_deploy(
    target: &Target,
    manifest: &std::path::Path,
    allow_new_grants: bool,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    let files = tocsin_policy::read_files(manifest)?;
    let body = serde_json::json!({
        "manifest": files.text,
        "component_base64": base64::engine::general_purpose::STANDARD.encode(&files.component),
        "allow_new_grants": allow_new_grants,
    });
    let (status, answer) = target
        .post_json(&format!("/api/policies/{}", encode(&files.name)), &body)
        .map_err(anyhow::Error::msg)?;
    match status {
        200 => {
            let running = &answer["running"];
            println!(
                "deployed {} version {} (sha256 {})",
                files.name, running["version"], running["sha256"]
            );
            Ok(())
        }
        409 => {
            let list = |v: &serde_json::Value| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|g| g.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            anyhow::bail!(
                "{} asks for new grants: {} (running: {}); deploy again with --allow-new-grants to confirm",
                files.name,
                list(&answer["added_grants"]),
                list(&answer["running_grants"])
            )
        }
        _ => anyhow::bail!(
            "{} refused (HTTP {status}): {}",
            files.name,
            answer["error"].as_str().unwrap_or("no reason given")
        ),
    }
}

fn grants_of(v: &serde_json::Value) -> String {
    v["grants"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// `tocsin rule list`: every policy of a running Tocsin with its version, grants and state,
/// then the refused versions.
pub fn rule_list(target: &Target) -> anyhow::Result<()> {
    let answer = target.get("/api/policies").map_err(anyhow::Error::msg)?;
    println!(
        "{:<24} {:>7}  {:<12} {:<24} deployed by",
        "POLICY", "VERSION", "STATE", "GRANTS"
    );
    for p in answer["policies"].as_array().into_iter().flatten() {
        let current = &p["current"];
        let state = if p["quarantined"] == true {
            "quarantined"
        } else {
            "running"
        };
        println!(
            "{:<24} {:>7}  {:<12} {:<24} {}",
            p["name"].as_str().unwrap_or("?"),
            current["version"]
                .as_u64()
                .map_or("-".into(), |v| v.to_string()),
            state,
            grants_of(current),
            current["actor"].as_str().unwrap_or("-"),
        );
    }
    for e in answer["errors"].as_array().into_iter().flatten() {
        println!("refused: {}", e.as_str().unwrap_or(""));
    }
    Ok(())
}

/// `tocsin rule status NAME`: one policy's versions, counters and (for a rule) its last
/// evaluation.
pub fn rule_status(target: &Target, name: &str) -> anyhow::Result<()> {
    let policies = target.get("/api/policies").map_err(anyhow::Error::msg)?;
    let p = policies["policies"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .ok_or_else(|| anyhow::anyhow!("no policy named `{name}` runs there"))?;
    println!(
        "{name}: {}",
        if p["quarantined"] == true {
            "quarantined"
        } else {
            "running"
        }
    );
    for v in p["versions"].as_array().into_iter().flatten() {
        let mark = if v["version"] == p["current"]["version"] {
            "*"
        } else {
            " "
        };
        println!(
            " {mark} version {:<4} sha256 {} grants {} by {}",
            v["version"],
            v["sha256"]
                .as_str()
                .map(|s| s.chars().take(12).collect::<String>())
                .unwrap_or_else(|| "?".into()),
            grants_of(v),
            v["actor"].as_str().unwrap_or("-")
        );
    }
    let guest = target
        .get(&format!("/api/guests/{}", encode(name)))
        .map_err(anyhow::Error::msg)?;
    let s = &guest["stats"];
    println!(
        "calls {} ok {} deadline {} memory {} output {} trap {} failed {} (memory high-water {} bytes)",
        s["calls"],
        s["ok"],
        s["deadline"],
        s["memory"],
        s["output"],
        s["trap"],
        s["failed"],
        s["memory_high_water"]
    );
    if let Some(e) = s["last_error"].as_str() {
        println!("last error: {e}");
    }
    // Rules have an evaluation to show; for other kinds this is a 404, and nothing to say.
    if let Ok(rule) = target.get(&format!("/api/rules/{}", encode(name))) {
        let eval = &rule["last_evaluation"];
        if !eval.is_null() {
            println!(
                "last evaluation at {} ms: {} input series, {} events",
                eval["at_ms"],
                eval["input_series"],
                eval["events"].as_array().map_or(0, Vec::len)
            );
        }
    }
    Ok(())
}

/// `tocsin rule rollback NAME`: run the previous version again.
pub fn rule_rollback(target: &Target, name: &str) -> anyhow::Result<()> {
    let (status, answer) = target
        .post_json(
            &format!("/api/policies/{}/rollback", encode(name)),
            &serde_json::Value::Null,
        )
        .map_err(anyhow::Error::msg)?;
    if status != 200 {
        anyhow::bail!(
            "rollback of {name} refused (HTTP {status}): {}",
            answer["error"].as_str().unwrap_or("no reason given")
        );
    }
    println!("{name} runs version {} again", answer["running"]["version"]);
    Ok(())
}

/// `tocsin rule backtest NAME`: replay the last `since` of stored history through the
/// running version of a rule and print when it would have gone pending, fired, resolved.
pub fn rule_backtest(
    target: &Target,
    name: &str,
    since: std::time::Duration,
    step: std::time::Duration,
) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let body = serde_json::json!({
        "from_ms": now.saturating_sub(ms(since)),
        "to_ms": now,
        "step_ms": ms(step),
    });
    let (status, answer) = target
        .post_json(&format!("/api/rules/{}/backtest", encode(name)), &body)
        .map_err(anyhow::Error::msg)?;
    if status != 200 {
        anyhow::bail!(
            "backtest of {name} refused (HTTP {status}): {}",
            answer["error"].as_str().unwrap_or("no reason given")
        );
    }
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    for e in &events {
        let at = e["at_ms"].as_i64().unwrap_or(0);
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at.max(0) as u64);
        let labels: Vec<String> = e["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        println!(
            "{}  {:<8} {name}{{{}}} {} value {} {}",
            humantime::format_rfc3339_seconds(when),
            e["kind"].as_str().unwrap_or("?"),
            labels.join(","),
            e["severity"].as_str().unwrap_or(""),
            e["value"],
            e["summary"].as_str().unwrap_or("")
        );
    }
    println!(
        "{} change(s) over the last {}",
        events.len(),
        humantime::format_duration(since)
    );
    Ok(())
}
