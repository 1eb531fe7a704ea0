//! Logs to stdout (text or JSON). Secrets never reach a log: they are wrapped in `Secret`
//! and functions that touch them use `skip_all`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Libraries whose start/stop chatter ("Job creator created", "starting 2 workers") is not
/// news for an operator: warnings only, unless a filter names them.
const QUIET: &[&str] = &[
    "tokio_cron_scheduler=warn",
    "actix_server=warn",
    "actix_web::middleware=warn",
];

/// The filter for `level`, with the quiet libraries added unless `level` names them itself.
pub fn filter(level: &str) -> String {
    let mut f = level.trim().to_string();
    for q in QUIET {
        let name = q.split('=').next().unwrap_or(q);
        if !f.contains(name) {
            f = format!("{f},{q}");
        }
    }
    f
}

pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter(&cfg.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        // Colour codes only for a person at a terminal, never in journald or a file.
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false);
    let _ = if cfg.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn library_chatter_is_quiet_unless_asked_for() {
        let f = super::filter("info");
        assert!(f.starts_with("info,") && f.contains("tokio_cron_scheduler=warn"));
        let own = super::filter("info,actix_server=debug");
        assert!(own.contains("actix_server=debug") && !own.contains("actix_server=warn"));
    }
}
