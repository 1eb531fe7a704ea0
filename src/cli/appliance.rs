//! The appliance's own commands (`serve`, `cert`, `admin`, `demo`, `backup`, `restore`,
//! `audit`): they need its Linux host and read its configuration.

use std::process::ExitCode;

use super::{AdminCommand, AuditCommand, CertCommand, Cli, Command};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Result;
use crate::{app, ops, service, telemetry};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let command = cli.command;
    // This build is a workstation agent: the appliance's commands need its Linux host.
    #[cfg(not(unix))]
    if !matches!(command, Command::Agent { .. }) {
        return Err(crate::error::Error::startup(
            "the Hourglass appliance runs on Linux; on Windows this program is the workstation agent (hourglass agent …)",
        ));
    }
    let mut cfg = Config::load(cli.config.as_deref(), std::env::vars())?;
    let data_dir_given = cli.data_dir.clone();
    if let Some(d) = cli.data_dir {
        cfg.storage.data_dir = d;
    }
    let clock = Clock::system();
    match command {
        Command::Serve {
            listen,
            agent_listen,
        } => {
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(l) = agent_listen {
                cfg.server.agent_listen = l;
            }
            telemetry::init(&cfg.log, app::QUIET_LOGS);
            app::serve_blocking(cfg, clock)?;
        }
        Command::Cert {
            command: CertCommand::Fingerprint,
        } => println!("{}", ops::cert_fingerprint(cfg, clock)?),
        Command::Cert {
            command: CertCommand::Import { cert, key },
        } => {
            let fp = ops::cert_import(cfg, clock, &cert, &key)?;
            println!("Certificate installed; a running appliance serves it within seconds.");
            println!("New fingerprint (re-enroll or re-pin agents): {fp}");
        }
        Command::Admin { command } => admin(command, cfg, clock)?,
        Command::Agent { .. } => {}
        Command::Demo { listen } => {
            // Quiet by default: the demo's own lines are what matter on its console.
            if std::env::var_os("HOURGLASS__LOG__LEVEL").is_none() {
                cfg.log.level = "warn".into();
            }
            telemetry::init(&cfg.log, app::QUIET_LOGS);
            // Its own simulated agents hold long polls: Ctrl-C should not wait them out.
            if std::env::var_os("HOURGLASS__SERVER__SHUTDOWN_TIMEOUT_SECS").is_none() {
                cfg.server.shutdown_timeout_secs = 2;
            }
            cfg.storage.data_dir = crate::demo::data_dir(data_dir_given);
            cfg.server.listen = listen.unwrap_or_else(|| "127.0.0.1:8443".into());
            crate::demo::run(cfg)?;
        }
        Command::Backup { out } => {
            let m = ops::backup(cfg, clock, &out)?;
            println!(
                "Backup written to {} ({} audit entries, sha256 {}), manifest beside it.",
                out.display(),
                m.audit_entries,
                m.sha256
            );
            println!("master.key is not in it: keep a copy of the key file separately.");
        }
        Command::Restore { from } => {
            let (kept, rotated) = ops::restore(cfg, clock, &from)?;
            println!("Restored from {}.", from.display());
            if let Some(k) = kept {
                println!("The replaced database was kept as {}.", k.display());
            }
            println!(
                "{rotated} escrowed password(s) will be rotated as workstations check in; start the appliance now."
            );
        }
        Command::Audit { command } => return audit(command, &cfg),
    }
    Ok(ExitCode::SUCCESS)
}

/// `hourglass admin …`: first-run setup, enrollment tokens, API tokens.
fn admin(command: AdminCommand, cfg: Config, clock: Clock) -> Result<()> {
    match command {
        AdminCommand::Setup {
            email,
            first_name,
            last_name,
            msp_name,
        } => {
            let link = ops::admin_setup(cfg, clock, &msp_name, &first_name, &last_name, &email)?;
            println!(
                "MSP tenant created. Send this one-time enrollment link (valid 72 hours) to {email}:"
            );
            println!("{link}");
        }
        AdminCommand::EnrollmentToken {
            tenant,
            hours,
            uses,
        } => {
            let (token, command) = ops::enrollment_token(cfg, clock, &tenant, hours, uses)?;
            println!("Run on each workstation: {command}");
            println!("{token}");
        }
        AdminCommand::CreateToken {
            email,
            name,
            sensitive,
            expires_in_days,
        } => {
            let scope = service::tokens::Scope {
                sensitive,
                expires_in_days,
            };
            let token = ops::create_token(cfg, clock, &email, &name, scope)?;
            println!("API token for {email} (shown once; store it now):");
            println!("{token}");
        }
    }
    Ok(())
}

/// `hourglass audit …`: verify the chain (exit 1 when broken) or export it.
fn audit(command: AuditCommand, cfg: &Config) -> Result<ExitCode> {
    match command {
        AuditCommand::Verify { checkpoint, key } => {
            match ops::audit_verify(cfg)? {
                Ok(n) => println!("audit chain OK: {n} entries verified"),
                Err((seq, why)) => {
                    println!("audit chain BROKEN at sequence {seq}: {why}");
                    return Ok(ExitCode::from(1));
                }
            }
            if let Some(file) = checkpoint {
                match ops::audit_verify_checkpoint(cfg, &file, key.as_deref())? {
                    Ok(what) => println!("checkpoint OK: {what}"),
                    Err(why) => {
                        println!("checkpoint FAILED: {why}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
        AuditCommand::Export {
            format,
            tenant,
            from,
            to,
            out,
        } => {
            let a = ops::AuditExport {
                format: &format,
                tenant: tenant.as_deref(),
                from: from.as_deref(),
                to: to.as_deref(),
                out: out.as_deref(),
            };
            let n = ops::audit_export(cfg, &a)?;
            eprintln!("exported {n} audit entries");
        }
    }
    Ok(ExitCode::SUCCESS)
}
