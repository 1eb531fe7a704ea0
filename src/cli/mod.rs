//! Command line: `hourglass serve | cert … | audit …`.

pub mod agent;
pub mod appliance;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hourglass",
    version,
    about = "Just-in-time privileged access appliance for MSPs"
)]
pub struct Cli {
    /// Data directory holding hourglass.db and master.key (default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML); HOURGLASS__SECTION__KEY variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance: portal, agent API and scheduler over HTTPS.
    Serve {
        /// Portal address (default 0.0.0.0:8443).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Separate address for the agent API.
        #[arg(long, value_name = "ADDR")]
        agent_listen: Option<String>,
    },
    /// TLS certificate: show the fingerprint agents pin, or install your own certificate.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Bootstrap people and API tokens from the appliance's console.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The workstation agent.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Write a checked online backup of the database and its manifest (the appliance may run).
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Replace the database with a backup (the appliance must be stopped; master.key in place).
    Restore {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Try it: the appliance on a fresh temporary data directory with a demo MSP, two customer
    /// tenants, simulated workstations and requests waiting for approval (127.0.0.1:8443).
    Demo {
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Print `sha256:<hex>` of the active certificate (creating the data directory if new).
    Fingerprint,
    /// Install a PEM certificate chain and its private key.
    Import {
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 naming the first bad sequence number.
    Verify {
        /// A signed checkpoint kept outside the database: also prove the log still extends it
        /// (not truncated, not rewritten).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The verifier key (`name+id+key`) to check the checkpoint with, instead of the one
        /// recorded in the database; a file holding it is accepted too.
        #[arg(long, value_name = "KEY", requires = "checkpoint")]
        key: Option<String>,
    },
    /// Write the log (oldest first) as CSV or NDJSON, with control characters escaped and
    /// spreadsheet formulas neutralised.
    Export {
        #[arg(long, value_parser = ["csv", "ndjson"])]
        format: String,
        /// Only this tenant's entries (its slug); every tenant's by default.
        #[arg(long, value_name = "SLUG")]
        tenant: Option<String>,
        /// First day (YYYY-MM-DD, UTC) to include.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day (YYYY-MM-DD, UTC) to include.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// Write to this file (created, mode 0600) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the MSP tenant and its first admin without a browser; prints their enrollment link.
    Setup {
        #[arg(long)]
        email: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        #[arg(long)]
        msp_name: String,
    },
    /// Create a tenant enrollment token for scripted installs; printed alone on the last line.
    EnrollmentToken {
        #[arg(long, value_name = "SLUG")]
        tenant: String,
        #[arg(long, default_value_t = 24)]
        hours: u32,
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    /// Create an API token for a user; the token alone is printed on the last line.
    CreateToken {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Allow sensitive actions (reveal passwords, approve, change roles); needs --expires-in-days.
        #[arg(long)]
        sensitive: bool,
        /// Days until the token stops working (at most 30 with --sensitive, else 365).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
}

/// Where the agent keeps its state and which machine it manages.
#[derive(Debug, clap::Args)]
pub struct AgentPlace {
    /// Agent state directory (device id, secret, event queue; files 0600).
    #[arg(long, value_name = "DIR", default_value = crate::agent::state::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// File-system root whose accounts the shadow tools manage.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The local administrators group (`sudo` on Debian, `wheel` elsewhere).
    #[arg(long, value_name = "GROUP", default_value = "sudo")]
    pub admin_group: String,
    /// Which machine the agent changes (`fake-sam`: an in-memory Windows SAM, for tests).
    #[arg(long, value_enum, default_value = "system", hide = true)]
    pub os_backend: crate::agent::daemon::Backend,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Enroll this workstation with an appliance (pins its certificate fingerprint).
    Enroll {
        #[arg(long, value_name = "URL")]
        server: String,
        #[arg(long, value_name = "TOKEN")]
        token: String,
        #[arg(long, value_name = "sha256:HEX")]
        fingerprint: String,
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Run the agent daemon.
    Run {
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Windows: register the agent as a service (automatic start, restart on failure).
    InstallService {
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Windows: take back every right and disable managed accounts, then remove the service.
    UninstallService {
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Windows: the entry point the service manager starts.
    #[command(hide = true)]
    ServiceRun {
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Ask for a just-in-time administrator session on this workstation.
    RequestAdmin {
        #[arg(long)]
        minutes: i64,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
        /// The local user asking (default: the user who ran sudo, or the current user).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Show the state of your last request (root: the named user's, or the machine's last).
    Status {
        /// Whose request (root only; under sudo it is always the user who ran sudo).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        place: AgentPlace,
    },
    /// End your running session early.
    EndSession {
        /// Whose session (root only; under sudo it is always the user who ran sudo).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Ask for more time in the running session.
    Extend {
        #[arg(long)]
        minutes: i64,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Log in with a technician account while the appliance cannot be reached: checks the
    /// offline code here, enables the account and prints a fresh password once.
    OfflineLogin {
        #[arg(long)]
        account: String,
        /// The 6-digit offline code the portal shows for this workstation.
        #[arg(long)]
        code: String,
        #[command(flatten)]
        place: AgentPlace,
    },
    /// For `pam_exec` (with `expose_authtok`): an offline code typed at the login prompt for
    /// the account in `PAM_USER` logs in as `offline-login` would (see appliance/pam/).
    PamAuth {
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Print what application policies see of a program: path, SHA-256, vendor, product,
    /// signer and whether its signature verified (to write a rule that matches it).
    Describe {
        program: String,
        #[command(flatten)]
        place: AgentPlace,
    },
    /// Run one program with administrator rights when an application policy allows it;
    /// otherwise ask for it (with `--reason`, or at the prompt) and wait for the decision.
    RunElevated {
        /// The local user asking (default: the user who ran sudo, or the current user).
        #[arg(long)]
        user: Option<String>,
        /// Why you need it: asks for the program when no policy allows it yet.
        #[arg(long)]
        reason: Option<String>,
        /// How long to ask for, in minutes (5–1440).
        #[arg(long, default_value_t = 30)]
        minutes: i64,
        #[arg(long)]
        ticket: Option<String>,
        /// How long to wait for a decision, in minutes (0: ask and return).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1440))]
        wait_minutes: u64,
        #[command(flatten)]
        place: AgentPlace,
        /// The program and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "PROGRAM")]
        command: Vec<String>,
    },
    /// Run N virtual agents in this process (demo and load generator).
    Simulate {
        #[arg(long, value_name = "URL")]
        server: String,
        #[arg(long, value_name = "TOKEN")]
        token: String,
        #[arg(long, value_name = "sha256:HEX")]
        fingerprint: String,
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Long-poll hold in seconds (0 = short polls, for throughput).
        #[arg(long, default_value_t = 25)]
        hold: u64,
        /// Stop after this many seconds (0 = until interrupted).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
        /// Virtual agents sharing one HTTP/2 connection (1 = each its own TLS connection,
        /// spread over loopback source addresses, as a real fleet connects).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
        share_connection: u64,
        /// The appliance's process id, to report its resident memory each second.
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
    },
}
