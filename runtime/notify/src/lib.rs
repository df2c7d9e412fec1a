//! Notifications: template rendering with a built-in fallback, and delivery from the
//! durable outbox to mail (SMTP), webhooks (generic, Slack, Discord, PagerDuty), MQTT and
//! commands, with retries, per-recipient rate limits and digests.

pub mod chart;
pub mod chart_link;
pub mod command;
pub mod config;
pub mod daily;
pub mod deliver;
pub mod mail;
pub mod mqtt;
pub mod render;
pub mod send;
pub mod vars;
pub mod webhook;

pub use chart::{ChartData, ChartRules, RuleChart};
pub use config::{MailConfig, NotifyConfig, Preset, Secret, Security};
pub use daily::DailyDigestConfig;
pub use deliver::{Deliverer, PassReport, spawn};
pub use mail::{Email, FileAttachment, MailError, Mailer};
pub use render::{Rendered, Templates, builtin, escape};
pub use send::{Failure, redact};
pub use vars::{Site, as_payload, vars};
