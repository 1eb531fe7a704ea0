//! What ended with an offboarding, said as the portal shows it.

/// What ended with an offboarding, as counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub sessions: u64,
    pub tokens: usize,
    pub logins: usize,
    /// Their own requests and sessions, from workstation accounts linked to them.
    pub requests: usize,
    pub offline_secrets: usize,
    /// Workstations told to act that are offline now: their orders wait until they are back.
    pub offline_workstations: usize,
}

impl Ended {
    /// "Ended 2 portal sessions, 1 API token and 1 technician login; replaced 1 offline
    /// secret." — only what there was; "Nothing else was open." when there was nothing.
    pub fn sentence(&self) -> String {
        let n = |k: u64, one: &str, many: &str| {
            (k > 0).then(|| format!("{k} {}", if k == 1 { one } else { many }))
        };
        let ended: Vec<String> = [
            n(self.sessions, "portal session", "portal sessions"),
            n(self.tokens as u64, "API token", "API tokens"),
            n(self.logins as u64, "technician login", "technician logins"),
            n(
                self.requests as u64,
                "own admin request or session",
                "own admin requests or sessions",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let replaced = n(
            self.offline_secrets as u64,
            "offline secret",
            "offline secrets",
        );
        let ended = match ended.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            [rest @ .., last] => Some(format!("{} and {last}", rest.join(", "))),
        };
        let said = match (ended, replaced) {
            (None, None) => "Nothing else was open.".into(),
            (Some(e), None) => format!("Ended {e}."),
            (None, Some(r)) => format!("Replaced {r}."),
            (Some(e), Some(r)) => format!("Ended {e}; replaced {r}."),
        };
        match self.offline_workstations {
            0 => said,
            1 => {
                format!("{said} 1 workstation is offline: it acts on this when it next checks in.")
            }
            k => format!(
                "{said} {k} workstations are offline: they act on this when they next check in."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ended;

    #[test]
    fn what_ended_reads_as_a_sentence_of_only_what_there_was() {
        let all = Ended {
            sessions: 2,
            tokens: 1,
            logins: 1,
            offline_secrets: 1,
            ..Ended::default()
        };
        assert_eq!(
            all.sentence(),
            "Ended 2 portal sessions, 1 API token and 1 technician login; replaced 1 offline secret."
        );
        let login = Ended {
            logins: 1,
            ..Ended::default()
        };
        assert_eq!(login.sentence(), "Ended 1 technician login.");
        let waiting = Ended {
            logins: 2,
            offline_workstations: 2,
            ..Ended::default()
        };
        assert_eq!(
            waiting.sentence(),
            "Ended 2 technician logins. 2 workstations are offline: they act on this when they next check in."
        );
        assert_eq!(Ended::default().sentence(), "Nothing else was open.");
    }
}
