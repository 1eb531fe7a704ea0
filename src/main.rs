use std::process::ExitCode;

use clap::Parser;
use hourglass::cli::{AdminCommand, AuditCommand, CertCommand, Cli, Command};
use hourglass::clock::Clock;
use hourglass::config::Config;
use hourglass::error::Result;
use hourglass::{app, ops, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hourglass: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut cfg = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(d) = cli.data_dir {
        cfg.storage.data_dir = d;
    }
    let clock = Clock::system();
    match cli.command {
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
            telemetry::init(&cfg.log);
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
        Command::Admin {
            command:
                AdminCommand::Setup {
                    email,
                    first_name,
                    last_name,
                    msp_name,
                },
        } => {
            let link = ops::admin_setup(cfg, clock, &msp_name, &first_name, &last_name, &email)?;
            println!(
                "MSP tenant created. Send this one-time enrollment link (valid 72 hours) to {email}:"
            );
            println!("{link}");
        }
        Command::Admin {
            command: AdminCommand::CreateToken { email, name },
        } => {
            let token = ops::create_token(cfg, clock, &email, &name)?;
            println!("API token for {email} (shown once; store it now):");
            println!("{token}");
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => match ops::audit_verify(&cfg)? {
            Ok(n) => println!("audit chain OK: {n} entries verified"),
            Err((seq, why)) => {
                println!("audit chain BROKEN at sequence {seq}: {why}");
                return Ok(ExitCode::from(1));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
