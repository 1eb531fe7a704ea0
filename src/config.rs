//! Typed configuration: embedded defaults → `--config FILE` → `HOURGLASS__SECTION__KEY`
//! environment variables → command-line flags. An unknown key anywhere is an error that names it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub tls: TlsConfig,
    pub jobs: JobsConfig,
    pub smtp: SmtpConfig,
    pub syslog: SyslogConfig,
    pub backup: BackupConfig,
    pub webhooks: WebhooksConfig,
}

/// Outgoing webhooks. Addresses of this machine itself (loopback) are refused unless allowed
/// here; link-local ones (cloud metadata services) always are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Let webhooks reach a relay on the appliance's own host (127.0.0.1, ::1, localhost).
    pub allow_loopback: bool,
}

/// Scheduled online backups (the same as `hourglass backup`), kept `keep` deep.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where they go; empty = `<data_dir>/backups`. Better: another disk or a mounted share.
    pub dir: String,
    /// How many to keep; 0 turns scheduled backups off.
    pub keep: u32,
    /// Hours between backups; the first one is taken this long after the first start.
    pub every_hours: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            keep: 7,
            every_hours: 24,
        }
    }
}

/// Audit forwarding to a SIEM as RFC 5424 syslog. An empty address means off.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// `udp://HOST:PORT` or `tcp://HOST:PORT` (octet-counted frames, RFC 6587).
    pub address: String,
}

/// Outgoing mail (enrollment links). An empty host means no mail: the normal air-gapped case.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `starttls` (port 587), `tls` (implicit TLS, port 465) or `none` (a trusted local relay).
    pub security: String,
    pub username: String,
    pub password: Secret<String>,
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            username: String::new(),
            password: Secret::default(),
            from: "Hourglass <hourglass@localhost>".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Portal (and, unless `agent_listen` is set, agent API) address.
    pub listen: String,
    /// Separate address for the agent API; empty = served on `listen`.
    pub agent_listen: String,
    /// Plain-HTTP address that only redirects to HTTPS; empty = off.
    pub redirect_listen: String,
    /// Base URL printed in links (setup, enrollment); empty = https://<hostname>:<port>.
    pub public_url: String,
    /// Serve /metrics to non-loopback clients too.
    pub metrics_remote: bool,
    /// Seconds given to in-flight requests on SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Seconds a request's whole body may take to arrive (WEB-06).
    pub body_timeout_secs: u64,
    /// Reverse proxies (addresses or CIDRs, comma-separated) whose `X-Forwarded-For` is
    /// believed: the client's address then comes from it, for the sign-in limiter and audit.
    pub trusted_proxies: String,
    /// Connections one client address may hold open at once (0 = no cap); trusted proxies are
    /// exempt. Each workstation holds one, so a site behind one NAT address needs room.
    pub max_connections_per_client: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8443".into(),
            agent_listen: String::new(),
            redirect_listen: String::new(),
            public_url: String::new(),
            metrics_remote: false,
            shutdown_timeout_secs: 30,
            body_timeout_secs: 30,
            trusted_proxies: String::new(),
            max_connections_per_client: 1000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub read_pool_size: u32,
    pub busy_timeout_ms: u64,
    /// Start a new appliance even though an empty database sits beside an existing
    /// master.key (normally refused: that is a lost database, not a new install).
    pub start_fresh: bool,
    /// /healthz answers 503 when less than this many MiB are free under `data_dir`, so an
    /// operator hears of a filling disk before writes start failing (DUR-02).
    pub min_free_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            read_pool_size: 8,
            busy_timeout_ms: 5000,
            start_fresh: false,
            min_free_mb: 64,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `hourglass=debug,warn`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Name put in the self-signed certificate; empty = the machine's hostname.
    pub hostname: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// How often the due-work sweep runs (expiry, time-outs, re-delivery).
    pub sweep_seconds: u32,
    /// Warn this many days before the TLS certificate expires.
    pub cert_warn_days: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            sweep_seconds: 5,
            cert_warn_days: 30,
        }
    }
}

/// Where a layer of configuration came from, for error messages.
enum Source<'a> {
    File(&'a Path),
    Env(&'a str),
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::Env(k) => write!(f, "environment variable {k}"),
        }
    }
}

impl Config {
    /// Embedded defaults, then the file, then the environment. Flags are applied by the caller.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let known = toml::Value::try_from(Config::default()).map_err(Error::internal)?;
        let mut merged = known.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::startup(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let value: toml::Value = toml::from_str(&text).map_err(|e| {
                Error::startup(format!("config file {}: {}", path.display(), one_line(&e)))
            })?;
            merge(&mut merged, &known, value, &Source::File(path), "")?;
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("HOURGLASS__"))
            .collect();
        env.sort();
        for (key, raw) in &env {
            let parts: Vec<String> = key
                .trim_start_matches("HOURGLASS__")
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect();
            let mut value = scalar(raw);
            for part in parts.iter().rev() {
                let mut t = toml::map::Map::new();
                t.insert(part.clone(), value);
                value = toml::Value::Table(t);
            }
            merge(&mut merged, &known, value, &Source::Env(key), "")?;
        }
        merged
            .try_into::<Config>()
            .map_err(|e| Error::startup(format!("configuration: {}", one_line(&e))))
    }

    /// The name in the self-signed certificate and in links: `tls.hostname`, else the
    /// machine's hostname.
    pub fn hostname(&self) -> String {
        if self.tls.hostname.is_empty() {
            gethostname::gethostname().to_string_lossy().to_lowercase()
        } else {
            self.tls.hostname.clone()
        }
    }

    /// Link bases before (or without) binding: from the configured addresses.
    pub fn links(&self) -> crate::model::links::Links {
        self.links_bound(None, None)
    }

    /// Link bases from the addresses actually bound (`serve`).
    pub fn links_bound(
        &self,
        bound: Option<std::net::SocketAddr>,
        agent_bound: Option<std::net::SocketAddr>,
    ) -> crate::model::links::Links {
        let hostname = self.hostname();
        crate::model::links::links(&crate::model::links::Where {
            public_url: &self.server.public_url,
            hostname: &hostname,
            listen: &self.server.listen,
            bound,
            agent_listen: &self.server.agent_listen,
            agent_bound,
        })
    }

    pub fn db_path(&self) -> PathBuf {
        self.storage.data_dir.join("hourglass.db")
    }
    pub fn key_path(&self) -> PathBuf {
        self.storage.data_dir.join("master.key")
    }

    /// Flattened `section.key = value` view, for auditing configuration changes.
    pub fn flatten(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Ok(toml::Value::Table(t)) = toml::Value::try_from(self) {
            for (section, v) in t {
                if let toml::Value::Table(keys) = v {
                    for (k, v) in keys {
                        // Secrets are recorded as set or not, never by value.
                        let shown = if k == "password" {
                            if v.as_str().is_some_and(str::is_empty) {
                                "(empty)".to_string()
                            } else {
                                "(set)".to_string()
                            }
                        } else {
                            v.to_string()
                        };
                        out.insert(format!("{section}.{k}"), shown);
                    }
                }
            }
        }
        out
    }
}

fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Environment values are strings; read numbers and booleans as such so typed fields accept them.
fn scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_string())
    }
}

/// Overlays `layer` onto `into`, refusing any key the defaults do not have.
fn merge(
    into: &mut toml::Value,
    known: &toml::Value,
    layer: toml::Value,
    src: &Source<'_>,
    prefix: &str,
) -> Result<()> {
    let toml::Value::Table(layer) = layer else {
        return Err(Error::startup(format!(
            "{src}: `{prefix}` must be a section"
        )));
    };
    for (k, v) in layer {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let Some(known_v) = known.get(&k) else {
            return Err(Error::startup(format!(
                "{src}: unknown config key `{path}`"
            )));
        };
        match (known_v, v) {
            (toml::Value::Table(_), v @ toml::Value::Table(_)) => {
                let slot = match into {
                    toml::Value::Table(t) => t
                        .entry(k.clone())
                        .or_insert_with(|| toml::Value::Table(Default::default())),
                    _ => return Err(Error::internal("config merge")),
                };
                merge(slot, known_v, v, src, &path)?;
            }
            (toml::Value::Table(_), _) => {
                return Err(Error::startup(format!(
                    "{src}: `{path}` is a section, not a value"
                )));
            }
            (_, toml::Value::Table(_)) => {
                return Err(Error::startup(format!(
                    "{src}: `{path}` is a value, not a section"
                )));
            }
            (_, v) => {
                if let toml::Value::Table(t) = into {
                    // A string field given a number by the environment stays a string.
                    let v = match (known_v, v) {
                        (toml::Value::String(_), toml::Value::Integer(i)) => {
                            toml::Value::String(i.to_string())
                        }
                        (toml::Value::String(_), toml::Value::Boolean(b)) => {
                            toml::Value::String(b.to_string())
                        }
                        (_, v) => v,
                    };
                    t.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

/// A value that never prints itself (logs, Debug output).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret<T>(pub T);

impl<T> Secret<T> {
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:8443");
        assert_eq!(c.storage.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn environment_overrides_typed_fields() {
        let c = Config::load(
            None,
            env(&[
                ("HOURGLASS__SERVER__LISTEN", "127.0.0.1:9443"),
                ("HOURGLASS__JOBS__SWEEP_SECONDS", "2"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9443");
        assert_eq!(c.jobs.sweep_seconds, 2);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::load(None, env(&[("HOURGLASS__SERVER__LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown config key `server.listn`"), "{e}");
        assert!(e.contains("HOURGLASS__SERVER__LISTN"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[storage]\ndata_dir = \"/x\"\n[bogus]\nk = 1\n").unwrap();
        let e = Config::load(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown config key `bogus`"), "{e}");
    }

    #[test]
    fn wrong_types_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[jobs]\nsweep_seconds = \"often\"\n").unwrap();
        let e = Config::load(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("sweep_seconds"), "{e}");
    }

    #[test]
    fn shipped_example_matches_the_embedded_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("appliance/hourglass.toml");
        let c = Config::load(Some(&example), env(&[])).unwrap();
        let mut d = Config::default();
        d.storage.data_dir = PathBuf::from("/var/lib/hourglass");
        assert_eq!(c, d);
    }

    #[test]
    fn the_smtp_password_is_never_flattened_into_the_audit() {
        let c = Config::load(
            None,
            env(&[("HOURGLASS__SMTP__PASSWORD", "hunter2-secret")]),
        )
        .unwrap();
        assert_eq!(c.smtp.password.expose(), "hunter2-secret");
        let flat = c.flatten();
        assert_eq!(flat["smtp.password"], "(set)");
        assert!(!format!("{flat:?}{c:?}").contains("hunter2-secret"));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("hunter2")), "Secret(***)");
    }
}
