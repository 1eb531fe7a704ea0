//! Logs to stdout (text or JSON). Secrets never reach a log: they are wrapped in `Secret`
//! and functions that touch them use `skip_all`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// The filter for `level`, with `quiet` (libraries whose start/stop chatter is not news for
/// an operator, `target=warn`) added unless `level` names them itself.
pub fn filter(level: &str, quiet: &[&str]) -> String {
    let mut f = level.trim().to_string();
    for q in quiet {
        let name = q.split('=').next().unwrap_or(q);
        if !f.contains(name) {
            f = format!("{f},{q}");
        }
    }
    f
}

pub fn init(cfg: &LogConfig, quiet: &[&str]) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter(&cfg.level, quiet)))
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
        let quiet = ["tokio_cron_scheduler=warn", "noisy=warn"];
        let f = super::filter("info", &quiet);
        assert_eq!(f, "info,tokio_cron_scheduler=warn,noisy=warn");
        let own = super::filter("info,noisy=debug", &quiet);
        assert!(own.contains("noisy=debug") && !own.contains("noisy=warn"));
    }
}
