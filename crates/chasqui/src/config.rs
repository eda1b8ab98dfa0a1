//! The one validated configuration of a node. Sources, strongest first: command-line flags,
//! `CHASQUI_*` environment variables (both handled by clap), then `chasqui.toml`, then
//! defaults. A bad value is refused with the key and the value (never a secret's value).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

/// Which parts of Chasqui a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API and workers.
    All,
    /// HTTP only: webhooks are stored, not processed.
    Api,
    /// Workers only: no HTTP listener besides health checks.
    Worker,
}

impl Role {
    /// Whether this node serves the HTTP API.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    /// Whether this node runs the workers.
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
}

/// A configuration error naming the key and the offending value.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key} = {value:?}: {reason}")]
pub struct ConfigError {
    /// The key (flag/env/toml name).
    pub key: &'static str,
    /// The value as given (redacted for secrets).
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

fn err(key: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Flags shared by every command that opens the database.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML). Defaults to ./chasqui.toml when it exists.
    #[arg(long, env = "CHASQUI_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CHASQUI_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Data directory: SQLite file, instance key, media [default: ./chasqui-data].
    #[arg(long, env = "CHASQUI_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL, `sqlite:PATH` or `postgres://...` [default: sqlite:<data-dir>/chasqui.db].
    #[arg(
        long,
        env = "CHASQUI_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Node role: all, api or worker [default: all].
    #[arg(long, env = "CHASQUI_ROLE", global = true)]
    pub role: Option<String>,
    /// Public base URL used in links (paging, media) [default: http://<listen>].
    #[arg(long, env = "CHASQUI_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Graph API base URL for cloud numbers [default: https://graph.facebook.com].
    #[arg(long, env = "CHASQUI_GRAPH_BASE_URL", global = true)]
    pub graph_base_url: Option<String>,
    /// Lifetime of signed media URLs in seconds [default: 300].
    #[arg(long, env = "CHASQUI_MEDIA_URL_TTL", global = true)]
    pub media_url_ttl: Option<String>,
    /// Let outbound webhooks target loopback and private addresses (`true`/`false`)
    /// [default: false]. For local development and tests only.
    #[arg(long, env = "CHASQUI_WEBHOOK_ALLOW_PRIVATE", global = true)]
    pub webhook_allow_private: Option<String>,
    /// Seconds between a failed webhook delivery and each retry, comma-separated
    /// [default: 10,40,90].
    #[arg(long, env = "CHASQUI_WEBHOOK_RETRY_SCHEDULE", global = true)]
    pub webhook_retry_schedule: Option<String>,
    /// Lease of a workflow step in seconds [default: 60]: an execution whose node died is
    /// picked up after it, and an interrupted send is repeated only if Meta has not
    /// confirmed it by then. Keep it above the Graph API timeout (30 s) in production.
    #[arg(long, env = "CHASQUI_WORKFLOW_STEP_LEASE", global = true)]
    pub workflow_step_lease: Option<String>,
    /// Days a processed delivery from Meta stays in the inbox (its raw body, for replays and
    /// inspection) before it is deleted [default: 7]; `0` keeps them forever. Messages and
    /// statuses themselves are kept: only the raw deliveries go.
    #[arg(long, env = "CHASQUI_INBOUND_RETENTION_DAYS", global = true)]
    pub inbound_retention_days: Option<String>,
    /// Days the log of a delivered webhook event (the delivery and its attempts) is kept
    /// [default: 30]; `0` keeps it forever. Waiting and failed deliveries are kept whatever
    /// their age, so a failed one can still be retried.
    #[arg(long, env = "CHASQUI_WEBHOOK_RETENTION_DAYS", global = true)]
    pub webhook_retention_days: Option<String>,
    /// SMTP server for notices to project members (a webhook paused, a workflow failing):
    /// `smtps://user:pass@host:465`, `smtp://user:pass@host:587?tls=required`, or
    /// `smtp://host:25` (unencrypted). Unset: notices are only recorded.
    #[arg(long, env = "CHASQUI_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of those emails [default: Chasqui <chasqui@localhost>].
    #[arg(long, env = "CHASQUI_SMTP_FROM", global = true)]
    pub smtp_from: Option<String>,
    /// SQLite only: the CPU that SQLite's writer and the tasks driving it keep to: `auto`
    /// (the last CPU the process may use, when it may use two or more), `off`, or a CPU
    /// number [default: auto]. Keeping both ends of each statement hand-off on one CPU
    /// roughly doubles write throughput on virtual machines.
    #[arg(long, env = "CHASQUI_SQLITE_WRITER_CPU", global = true)]
    pub sqlite_writer_cpu: Option<String>,
}

/// The file form; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    role: Option<String>,
    public_url: Option<String>,
    graph_base_url: Option<String>,
    media_url_ttl: Option<toml::Value>,
    webhook_allow_private: Option<bool>,
    webhook_retry_schedule: Option<String>,
    workflow_step_lease: Option<toml::Value>,
    inbound_retention_days: Option<toml::Value>,
    webhook_retention_days: Option<toml::Value>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    sqlite_writer_cpu: Option<toml::Value>,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL (may hold a password: never printed).
    pub database_url: String,
    /// Role.
    pub role: Role,
    /// Public base URL, when configured.
    pub public_url: Option<String>,
    /// Graph API base URL.
    pub graph_base_url: String,
    /// Signed media URL lifetime (seconds).
    pub media_url_ttl: i64,
    /// Whether webhooks may target loopback and private addresses.
    pub webhook_allow_private: bool,
    /// Delays before each webhook retry (seconds).
    pub webhook_retry_schedule: Vec<u64>,
    /// Lease of a workflow step (seconds).
    pub workflow_step_lease: i64,
    /// Days processed inbound deliveries are kept; `None` keeps them forever.
    pub inbound_retention_days: Option<i64>,
    /// Days delivered webhook events are logged; `None` keeps them forever.
    pub webhook_retention_days: Option<i64>,
    /// SMTP for notices (the URL may hold a password: never printed).
    pub smtp: Option<chasqui_app::mail::SmtpSettings>,
    /// Where the SQLite writer runs.
    pub sqlite_writer_cpu: LanePin,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("role", &self.role)
            .field("public_url", &self.public_url)
            .field("graph_base_url", &self.graph_base_url)
            .field("media_url_ttl", &self.media_url_ttl)
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("webhook_retry_schedule", &self.webhook_retry_schedule)
            .field("workflow_step_lease", &self.workflow_step_lease)
            .field("inbound_retention_days", &self.inbound_retention_days)
            .field("webhook_retention_days", &self.webhook_retention_days)
            .field("sqlite_writer_cpu", &self.sqlite_writer_cpu)
            .field(
                "smtp",
                &self
                    .smtp
                    .as_ref()
                    .map(|m| (redact_url(&m.url), m.from.clone())),
            )
            .finish()
    }
}

use chasqui_store::lane::LanePin;
pub use chasqui_store::redact_url;

/// A file value given as a string or a bare number, as text.
fn toml_text(v: toml::Value) -> String {
    match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A whole number within `range`, else an error naming `key` and the value.
fn whole(
    key: &'static str,
    text: &str,
    range: std::ops::RangeInclusive<i64>,
    expected: &'static str,
) -> Result<i64, ConfigError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| err(key, text, expected))
}

/// A retention in whole days (`default` when unset); `None` for 0, which keeps forever.
fn retention_days(
    key: &'static str,
    text: Option<String>,
    default: &str,
) -> Result<Option<i64>, ConfigError> {
    let text = text.unwrap_or_else(|| default.to_owned());
    let days = whole(
        key,
        &text,
        0..=3650,
        "expected whole days, 0 (keep forever) to 3650",
    )?;
    Ok(Some(days).filter(|d| *d > 0))
}

fn check_http_url(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| err(key, value, "must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(err(key, value, "must name a host"));
    }
    Ok(trimmed.to_owned())
}

impl ConfigArgs {
    /// Merges flags/env with the file and defaults, validating every value.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = self.load_file()?;
        let listen_text = self
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|e| {
            err(
                "listen",
                &listen_text,
                format!("expected HOST:PORT with an IP address ({e})"),
            )
        })?;
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./chasqui-data"));
        if data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "", "must not be empty"));
        }
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("chasqui.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(err(
                "database_url",
                &redact_url(&database_url),
                "expected sqlite:PATH or postgres://...",
            ));
        }
        let role_text = self
            .role
            .clone()
            .or(file.role)
            .unwrap_or_else(|| "all".into());
        let role = match role_text.as_str() {
            "all" => Role::All,
            "api" => Role::Api,
            "worker" => Role::Worker,
            _ => return Err(err("role", &role_text, "expected all, api or worker")),
        };
        let public_url = match self.public_url.clone().or(file.public_url) {
            Some(u) => Some(check_http_url("public_url", &u)?),
            None => None,
        };
        let graph_text = self
            .graph_base_url
            .clone()
            .or(file.graph_base_url)
            .unwrap_or_else(|| chasqui_meta::graph::DEFAULT_BASE_URL.into());
        let graph_base_url = check_http_url("graph_base_url", &graph_text)?;
        let ttl_text = self
            .media_url_ttl
            .clone()
            .or(file.media_url_ttl.map(toml_text))
            .unwrap_or_else(|| "300".into());
        let media_url_ttl = whole(
            "media_url_ttl",
            &ttl_text,
            10..=86_400,
            "expected seconds from 10 to 86400",
        )?;
        let allow_text = self
            .webhook_allow_private
            .clone()
            .or(file.webhook_allow_private.map(|b| b.to_string()))
            .unwrap_or_else(|| "false".into());
        let webhook_allow_private = match allow_text.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(err(
                    "webhook_allow_private",
                    &allow_text,
                    "expected true or false",
                ));
            }
        };
        let schedule_text = self
            .webhook_retry_schedule
            .clone()
            .or(file.webhook_retry_schedule)
            .unwrap_or_else(|| "10,40,90".into());
        let webhook_retry_schedule = schedule_text
            .split(',')
            .map(|s| s.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|v| v.len() <= 30 && v.iter().all(|s| (1..=604_800).contains(s)))
            .ok_or_else(|| {
                err(
                    "webhook_retry_schedule",
                    &schedule_text,
                    "expected up to 30 comma-separated delays in seconds, each 1 to 604800",
                )
            })?;
        let lease_text = self
            .workflow_step_lease
            .clone()
            .or(file.workflow_step_lease.map(toml_text))
            .unwrap_or_else(|| "60".into());
        let workflow_step_lease = whole(
            "workflow_step_lease",
            &lease_text,
            1..=3600,
            "expected whole seconds, 1 to 3600",
        )?;
        let inbound_retention_days = retention_days(
            "inbound_retention_days",
            self.inbound_retention_days
                .clone()
                .or(file.inbound_retention_days.map(toml_text)),
            "7",
        )?;
        let webhook_retention_days = retention_days(
            "webhook_retention_days",
            self.webhook_retention_days
                .clone()
                .or(file.webhook_retention_days.map(toml_text)),
            "30",
        )?;
        let smtp_from = self
            .smtp_from
            .clone()
            .or(file.smtp_from)
            .unwrap_or_else(|| "Chasqui <chasqui@localhost>".into());
        let smtp = match self.smtp_url.clone().or(file.smtp_url) {
            None => None,
            Some(url) => {
                let settings = chasqui_app::mail::SmtpSettings {
                    url,
                    from: smtp_from,
                };
                chasqui_app::mail::Mailer::new(&settings)
                    .map_err(|reason| err("smtp", &redact_url(&settings.url), reason))?;
                Some(settings)
            }
        };
        let pin_text = self
            .sqlite_writer_cpu
            .clone()
            .or(file.sqlite_writer_cpu.map(toml_text))
            .unwrap_or_else(|| "auto".into());
        let sqlite_writer_cpu = pin_text
            .parse::<LanePin>()
            .map_err(|reason| err("sqlite_writer_cpu", &pin_text, reason))?;
        Ok(Config {
            smtp,
            sqlite_writer_cpu,
            listen,
            data_dir,
            database_url,
            role,
            public_url,
            graph_base_url,
            media_url_ttl,
            webhook_allow_private,
            webhook_retry_schedule,
            workflow_step_lease,
            inbound_retention_days,
            webhook_retention_days,
        })
    }

    fn load_file(&self) -> Result<FileConfig, ConfigError> {
        let (path, required) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("chasqui.toml"), false),
        };
        if !required && !Path::new(&path).exists() {
            return Ok(FileConfig::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(
                "config",
                &path.display().to_string(),
                format!("cannot read: {e}"),
            )
        })?;
        toml::from_str(&text).map_err(|e| err("config", &path.display().to_string(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_key_and_value() {
        let c = ConfigArgs::default().resolve().expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.role, Role::All);
        assert!(c.database_url.starts_with("sqlite:"));
        let bad = ConfigArgs {
            listen: Some("nope".into()),
            ..Default::default()
        }
        .resolve();
        let msg = bad.expect_err("bad listen").to_string();
        assert!(msg.contains("listen") && msg.contains("nope"), "{msg}");
        let bad = ConfigArgs {
            role: Some("boss".into()),
            ..Default::default()
        }
        .resolve();
        assert!(bad.expect_err("bad role").to_string().contains("boss"));
        assert_eq!(c.sqlite_writer_cpu, LanePin::Auto);
        let pinned = ConfigArgs {
            sqlite_writer_cpu: Some("1".into()),
            ..Default::default()
        }
        .resolve()
        .expect("cpu 1");
        assert_eq!(pinned.sqlite_writer_cpu, LanePin::Cpu(1));
        let bad = ConfigArgs {
            sqlite_writer_cpu: Some("fastest".into()),
            ..Default::default()
        }
        .resolve();
        let msg = bad.expect_err("bad cpu").to_string();
        assert!(
            msg.contains("sqlite_writer_cpu") && msg.contains("fastest"),
            "{msg}"
        );
        assert_eq!(c.inbound_retention_days, Some(7));
        let forever = ConfigArgs {
            inbound_retention_days: Some("0".into()),
            ..Default::default()
        }
        .resolve()
        .expect("keep forever");
        assert_eq!(forever.inbound_retention_days, None);
        let bad = ConfigArgs {
            inbound_retention_days: Some("-1".into()),
            ..Default::default()
        }
        .resolve();
        let msg = bad.expect_err("negative retention").to_string();
        assert!(
            msg.contains("inbound_retention_days") && msg.contains("-1"),
            "{msg}"
        );
        assert_eq!(c.webhook_retention_days, Some(30));
        let forever = ConfigArgs {
            webhook_retention_days: Some("0".into()),
            ..Default::default()
        }
        .resolve()
        .expect("keep forever");
        assert_eq!(forever.webhook_retention_days, None);
        let bad = ConfigArgs {
            webhook_retention_days: Some("3651".into()),
            ..Default::default()
        }
        .resolve();
        let msg = bad.expect_err("too long").to_string();
        assert!(
            msg.contains("webhook_retention_days") && msg.contains("3651"),
            "{msg}"
        );
    }

    #[test]
    fn file_is_weaker_than_flags_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nrole = \"api\"\ndatabase_url = \"postgres://u:hunter2@h/db\"\n").expect("write");
        let args = ConfigArgs {
            config: Some(path),
            role: Some("worker".into()),
            ..Default::default()
        };
        let c = args.resolve().expect("resolve");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.role, Role::Worker);
        assert!(!format!("{c:?}").contains("hunter2"));
        let bad = ConfigArgs {
            database_url: Some("mysql://u:hunter2@h/db".into()),
            ..Default::default()
        }
        .resolve();
        let msg = bad.expect_err("bad url").to_string();
        assert!(
            msg.contains("database_url") && !msg.contains("hunter2"),
            "{msg}"
        );
    }
}
