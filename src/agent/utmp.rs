//! Who is logged on, from the utmp file (glibc's `struct utmpx`, 384 bytes a record on
//! Linux): the agent reports log-ons of managed accounts so the appliance can rotate an
//! account used outside any session (CRED-03).

use std::path::Path;

const RECORD: usize = 384;
const USER_PROCESS: i16 = 7;

/// One log-on: the account, the terminal, the remote host, and when (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedOn {
    pub user: String,
    pub line: String,
    pub host: String,
    pub at: i64,
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The user processes in a utmp image; partial trailing bytes are ignored.
pub fn parse(data: &[u8]) -> Vec<LoggedOn> {
    data.chunks_exact(RECORD)
        .filter(|r| i16::from_ne_bytes([r[0], r[1]]) == USER_PROCESS)
        .map(|r| LoggedOn {
            line: text(&r[8..40]),
            user: text(&r[44..76]),
            host: text(&r[76..332]),
            at: i64::from(i32::from_ne_bytes([r[340], r[341], r[342], r[343]])),
        })
        .filter(|l| !l.user.is_empty())
        .collect()
}

/// `run/utmp` (or `var/run/utmp`) under the root the agent manages; none when absent.
pub fn read(root: &Path) -> Vec<LoggedOn> {
    ["run/utmp", "var/run/utmp"]
        .iter()
        .find_map(|p| std::fs::read(root.join(p)).ok())
        .map(|d| parse(&d))
        .unwrap_or_default()
}

/// A utmp record, as login(1) writes one (tests and the simulator).
pub fn record(l: &LoggedOn) -> Vec<u8> {
    let mut r = vec![0u8; RECORD];
    r[0..2].copy_from_slice(&USER_PROCESS.to_ne_bytes());
    let put = |r: &mut [u8], at: usize, len: usize, s: &str| {
        let b = s.as_bytes();
        let n = b.len().min(len);
        r[at..at + n].copy_from_slice(&b[..n]);
    };
    put(&mut r, 8, 32, &l.line);
    put(&mut r, 44, 32, &l.user);
    put(&mut r, 76, 256, &l.host);
    r[340..344].copy_from_slice(&(l.at as i32).to_ne_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_processes_are_read_and_the_rest_skipped() {
        let a = LoggedOn {
            user: "msp-nik".into(),
            line: "pts/3".into(),
            host: "203.0.113.9".into(),
            at: 1_795_392_000,
        };
        let mut data = record(&a);
        let mut boot = record(&a);
        boot[0..2].copy_from_slice(&2i16.to_ne_bytes()); // BOOT_TIME
        data.extend(boot);
        data.extend([0u8; 100]); // a torn write at the end
        assert_eq!(parse(&data), vec![a]);
    }
}
