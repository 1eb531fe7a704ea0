//! How many agents one appliance can hold: each workstation waiting in a long-poll keeps one
//! TLS connection, so one open file. At start the soft open-file limit is raised to the hard
//! one (the packaged unit sets `LimitNOFILE`), and the start-up output says what it allows.

/// Connections a web-server worker accepts (its default, 25,000, would cap a 2-core VM at 50,000).
pub const MAX_CONNECTIONS_PER_WORKER: usize = 100_000;

/// Descriptors kept for everything but agent connections: the database and its WAL, the
/// listeners, logs, backups, outgoing webhooks and mail.
const RESERVED_FILES: u64 = 256;

/// Raises the soft open-file limit as far as allowed; returns the limit now in force (None
/// where there is no such limit or it cannot be read).
#[cfg(unix)]
pub fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        // Refused (a container, a hard limit of "unlimited" the kernel caps): keep the soft one.
        let _ = setrlimit(Resource::Nofile, l);
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(unix))]
pub fn raise_open_files() -> Option<u64> {
    None
}

/// Agent connections the appliance can hold with `open_files` descriptors and `workers`.
pub fn agent_capacity(open_files: Option<u64>, workers: usize) -> u64 {
    let accepted = (workers * MAX_CONNECTIONS_PER_WORKER) as u64;
    match open_files {
        Some(n) => n.saturating_sub(RESERVED_FILES).min(accepted),
        None => accepted,
    }
}

/// The start-up line: "Agent connections: up to 1,048,320 (open-file limit 1,048,576)".
pub fn capacity_line(open_files: Option<u64>, workers: usize) -> String {
    let cap = group(agent_capacity(open_files, workers));
    match open_files {
        Some(n) if n.saturating_sub(RESERVED_FILES) < 10_000 => format!(
            "Agent connections: up to {cap} (open-file limit {}; raise LimitNOFILE or `ulimit -n` for a larger fleet)",
            group(n)
        ),
        Some(n) => format!(
            "Agent connections: up to {cap} (open-file limit {})",
            group(n)
        ),
        None => format!("Agent connections: up to {cap}"),
    }
}

/// A count with thousands separators: 100000 → "100,000".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_the_files_left_or_what_the_workers_accept() {
        assert_eq!(agent_capacity(Some(1024), 2), 768);
        assert_eq!(agent_capacity(Some(1 << 20), 2), 200_000);
        assert_eq!(agent_capacity(None, 1), 100_000);
        assert_eq!(
            capacity_line(Some(1_048_576), 2),
            "Agent connections: up to 200,000 (open-file limit 1,048,576)"
        );
        assert!(capacity_line(Some(1024), 2).contains("raise LimitNOFILE"));
    }
}
