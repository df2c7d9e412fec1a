//! The `tocsin` binary: command-line parsing and dispatch. Wiring lives in `run.rs`,
//! configuration in `config.rs`.

mod access;
mod agent;
mod check;
mod collector;
mod config;
mod exporters;
mod logging;
mod notify_cli;
mod reload;
mod remote;
mod rule_new;
mod run;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tocsin: a monitoring runtime extended with sandboxed WebAssembly guests.
#[derive(Debug, Parser)]
#[command(name = "tocsin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the runtime: load policies, run guests, serve HTTP.
    Run(RunArgs),
    /// Run the collectors here and ship to a Tocsin server over MQTT (`[agent]`,
    /// `[collect]`), spooling to disk while it is unreachable.
    Agent(AgentArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with alert rules.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Check mail settings.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Work with notification templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Nagios/Icinga plugin: check a running Tocsin (exit 0 OK, 1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN; performance data after `|`).
    #[command(subcommand)]
    Check(CheckCommand),
    /// Grafana: print the overview dashboard (import it with Tocsin as a Prometheus data
    /// source).
    #[command(subcommand)]
    Grafana(GrafanaCommand),
    /// Manage API tokens in a stopped instance's store (a running one: `/api/tokens`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Any PromQL query (the subset Tocsin answers): every result series is judged.
    Query {
        /// The query, e.g. `disk_used_percent` or `max by (host) (cpu_usage_percent)`.
        query: String,
        /// Name each value by this label's value.
        #[arg(long)]
        label: Option<String>,
        /// WARNING range (Nagios syntax: `80`, `10:`, `~:80`, `@10:20`, `-10:10`).
        #[arg(short, long, allow_hyphen_values = true)]
        warning: Option<String>,
        /// CRITICAL range.
        #[arg(short, long, allow_hyphen_values = true)]
        critical: Option<String>,
        /// Unit for the performance data (`%`, `B`, `s`, ...).
        #[arg(long, default_value = "")]
        uom: String,
        /// Smallest possible value (performance data).
        #[arg(long)]
        min: Option<f64>,
        /// Largest possible value (performance data).
        #[arg(long)]
        max: Option<f64>,
        #[command(flatten)]
        target: remote::Target,
    },
    /// Health scores (0-100): WARNING below 90, CRITICAL below 70 by default.
    Health {
        /// WARNING range.
        #[arg(short, long, default_value = "90:", allow_hyphen_values = true)]
        warning: String,
        /// CRITICAL range.
        #[arg(short, long, default_value = "70:", allow_hyphen_values = true)]
        critical: String,
        #[command(flatten)]
        target: remote::Target,
    },
    /// Firing alerts: CRITICAL while a critical one fires, WARNING while any other does.
    Alerts {
        #[command(flatten)]
        target: remote::Target,
    },
}

#[derive(Debug, Subcommand)]
enum GrafanaCommand {
    /// Print the dashboard JSON (what `examples/grafana/tocsin-overview.json` holds).
    Dashboard,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (shown this once).
    Create {
        /// Unique name (letters, digits, `-`, `_`, `.`).
        name: String,
        /// admin, operator or client.
        #[arg(long, value_parser = ["admin", "operator", "client"])]
        role: String,
        /// For a client token: the client id it may ingest for.
        #[arg(long)]
        client: Option<String>,
        /// The data directory (default: the configuration's `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List tokens (names and roles; secrets are never stored).
    List {
        /// The data directory (default: the configuration's `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Revoke a token.
    Revoke {
        /// Its name.
        name: String,
        /// The data directory (default: the configuration's `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// The data directory a token command works on.
fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => Ok(config::load(None, &config::Overrides::default())?.data_dir),
    }
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Connect to the configured SMTP server and, with `--to`, send a test message.
    Test {
        /// Configuration file (embedded defaults when absent).
        #[arg(long, env = "TOCSIN_CONFIG")]
        config: Option<PathBuf>,
        /// Recipient (repeat for several).
        #[arg(long)]
        to: Vec<String>,
        /// A file to attach (repeat for several).
        #[arg(long)]
        attach: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// Render a notification kind with the policy set's templates, without sending.
    Render {
        /// The kind: server_alert, alert_digest, daily_digest, maintenance, welcome, ...
        kind: String,
        /// JSON file: an object of variables, or a queued payload (firing/resolved alerts).
        #[arg(long)]
        vars: Option<PathBuf>,
        /// Policy directory holding the template policies.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Configuration file (server name, dashboard address).
        #[arg(long, env = "TOCSIN_CONFIG")]
        config: Option<PathBuf>,
        /// Output: text (subject and text part), html, or json (everything).
        #[arg(long, default_value = "text", value_parser = ["text", "html", "json"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
enum RuleCommand {
    /// Run the `[[fixture]]`s of policy manifests against their built components; exit 1
    /// if any fails.
    Test {
        /// Manifests (`policies/NAME.toml`).
        #[arg(required = true)]
        manifests: Vec<PathBuf>,
    },
    /// Scaffold an alert rule in a Tocsin checkout: a guest crate in `guests/alerts/NAME`
    /// (added to the guests workspace) and `policies/NAME.toml` with fixtures.
    New {
        /// The rule's name (lower-case letters, digits, `-`).
        name: String,
        /// The language: `rust` (a crate in guests/alerts), `python` (componentize-py) or
        /// `js` (jco); the last two live in rules/NAME.
        #[arg(long, value_enum, default_value = "rust")]
        lang: rule_new::Lang,
        /// The checkout's root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Build a rule's guest crate to `guests/target/wasm32-wasip2/release/NAME.wasm`.
    Build {
        /// The rule's name.
        name: String,
        /// The checkout's root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// List the policies of a running Tocsin: version, state, grants, who deployed.
    List {
        #[command(flatten)]
        target: remote::Target,
    },
    /// One policy of a running Tocsin: its versions, counters, last evaluation.
    Status {
        /// The policy.
        name: String,
        #[command(flatten)]
        target: remote::Target,
    },
    /// Replay stored history through the running version of a rule: when it would have
    /// gone pending, fired and resolved (nothing is written or notified).
    Backtest {
        /// The rule.
        name: String,
        /// How far back, e.g. `24h`.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Between evaluations.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        step: std::time::Duration,
        #[command(flatten)]
        target: remote::Target,
    },
    /// Run a policy's previous version again.
    Rollback {
        /// The policy.
        name: String,
        #[command(flatten)]
        target: remote::Target,
    },
    /// Deploy a manifest and its component to a running Tocsin over the API (checked like
    /// a file change; written into its policy directory once it runs).
    Deploy {
        /// The manifest (`my-rule.toml`); its `component` is read and sent with it.
        manifest: PathBuf,
        /// Confirm grants the running version does not have.
        #[arg(long)]
        allow_new_grants: bool,
        #[command(flatten)]
        target: remote::Target,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Configuration file (embedded defaults when absent).
    #[arg(long, env = "TOCSIN_CONFIG")]
    config: Option<PathBuf>,
    /// Override `http.listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Override `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override `policies.dir`.
    #[arg(long)]
    policies: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// Configuration file (embedded defaults when absent).
    #[arg(long, env = "TOCSIN_CONFIG")]
    config: Option<PathBuf>,
    /// Override `data_dir` (the spool lives there).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file (with the environment applied); exit 1 if invalid.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the documented default configuration file.
    Default,
}

/// `tocsin rule test`: load each manifest (hash, grants, imports checked as at deploy
/// time) and run its fixtures.
fn rule_test(manifests: &[PathBuf]) -> anyhow::Result<()> {
    let engine = tocsin_engine::Engine::new(
        tocsin_engine::EngineConfig::default(),
        tocsin_engine::Providers::local(),
    )?;
    let mut failures = 0;
    for path in manifests {
        let policy = match tocsin_policy::load_one(&engine, path) {
            Ok(p) => p,
            Err(e) => {
                println!("FAIL {}: {e}", path.display());
                failures += 1;
                continue;
            }
        };
        let results = tocsin_policy::run_fixtures(&policy);
        if results.is_empty() {
            println!("--   {}: no fixtures", policy.name);
        }
        for r in results {
            match r.failure {
                None => println!("ok   {}: {}", policy.name, r.name),
                Some(f) => {
                    println!("FAIL {}: {}: {f}", policy.name, r.name);
                    failures += 1;
                }
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} failed");
    }
    Ok(())
}

/// Run a `tocsin check` and answer its exit code.
fn check_command(command: CheckCommand) -> u8 {
    match command {
        CheckCommand::Query {
            query,
            label,
            warning,
            critical,
            uom,
            min,
            max,
            target,
        } => check::run(
            &query,
            check::query_measures(&target, &query, label.as_deref()),
            warning.as_deref(),
            critical.as_deref(),
            &uom,
            (min, max),
        ),
        CheckCommand::Health {
            warning,
            critical,
            target,
        } => check::run(
            "health",
            check::query_measures(&target, "health_score", Some("scorer")),
            Some(&warning),
            Some(&critical),
            "",
            (Some(0.0), Some(100.0)),
        ),
        CheckCommand::Alerts { target } => check::alerts(&target),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A Nagios plugin answers UNKNOWN (3) to a bad command line, never clap's 2
        // (which Nagios reads as CRITICAL).
        Err(e) if std::env::args().nth(1).as_deref() == Some("check") && e.use_stderr() => {
            println!(
                "TOCSIN UNKNOWN - {}",
                e.to_string().lines().next().unwrap_or("bad arguments")
            );
            return ExitCode::from(3);
        }
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Check(command) => return ExitCode::from(check_command(command)),
        Command::Run(args) => {
            let overrides = config::Overrides {
                data_dir: args.data_dir,
                listen: args.listen,
                policies: args.policies,
            };
            config::load(args.config.as_deref(), &overrides)
                .map_err(anyhow::Error::from)
                .and_then(run::run)
        }
        Command::Agent(args) => {
            let overrides = config::Overrides {
                data_dir: args.data_dir,
                ..config::Overrides::default()
            };
            config::load(args.config.as_deref(), &overrides)
                .map_err(anyhow::Error::from)
                .and_then(agent::agent)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            config::load(Some(&file), &config::Overrides::default())
                .map(|_| println!("{}: ok", file.display()))
                .map_err(anyhow::Error::from)
        }
        Command::Rule(RuleCommand::Test { manifests }) => rule_test(&manifests),
        Command::Rule(RuleCommand::New { name, lang, root }) => {
            rule_new::new_rule(&root, &name, lang)
        }
        Command::Rule(RuleCommand::Build { name, root }) => rule_new::build_rule(&root, &name),
        Command::Rule(RuleCommand::Backtest {
            name,
            since,
            step,
            target,
        }) => remote::rule_backtest(&target, &name, since, step),
        Command::Rule(RuleCommand::List { target }) => remote::rule_list(&target),
        Command::Rule(RuleCommand::Status { name, target }) => remote::rule_status(&target, &name),
        Command::Rule(RuleCommand::Rollback { name, target }) => {
            remote::rule_rollback(&target, &name)
        }
        Command::Rule(RuleCommand::Deploy {
            manifest,
            allow_new_grants,
            target,
        }) => remote::rule_deploy(&target, &manifest, allow_new_grants),
        Command::Mail(MailCommand::Test { config, to, attach }) => {
            config::load(config.as_deref(), &config::Overrides::default())
                .map_err(anyhow::Error::from)
                .and_then(|c| notify_cli::mail_test(&c, &to, &attach))
        }
        Command::Template(TemplateCommand::Render {
            kind,
            vars,
            policies,
            config,
            format,
        }) => config::load(config.as_deref(), &config::Overrides::default())
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                notify_cli::template_render(&c, &policies, &kind, vars.as_deref(), &format)
            }),
        Command::Token(TokenCommand::Create {
            name,
            role,
            client,
            data_dir: dir,
        }) => data_dir(dir).and_then(|d| access::cli_create(&d, &name, &role, client.as_deref())),
        Command::Token(TokenCommand::List { data_dir: dir }) => {
            data_dir(dir).and_then(|d| access::cli_list(&d))
        }
        Command::Token(TokenCommand::Revoke {
            name,
            data_dir: dir,
        }) => data_dir(dir).and_then(|d| access::cli_revoke(&d, &name)),
        Command::Grafana(GrafanaCommand::Dashboard) => {
            print!("{}", tocsin_api::grafana::dashboard_text());
            Ok(())
        }
        Command::Config(ConfigCommand::Default) => {
            print!("{}", config::DEFAULT_FILE);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tocsin: {e:#}");
            ExitCode::FAILURE
        }
    }
}
