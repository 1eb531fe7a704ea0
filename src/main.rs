use std::process::ExitCode;

use clap::Parser;
use hourglass::agent::daemon::{self, Options};
use hourglass::cli::{
    AdminCommand, AgentCommand, AgentPlace, AuditCommand, CertCommand, Cli, Command,
};
use hourglass::clock::Clock;
use hourglass::config::Config;
use hourglass::error::Result;
use hourglass::{app, ops, service, telemetry};

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

fn agent_options(p: AgentPlace) -> Options {
    Options {
        state_dir: p.state_dir,
        root: p.root,
        admin_group: p.admin_group,
        backend: p.os_backend,
    }
}

/// What `agent run-elevated` was told besides the program.
struct Elevation {
    user: Option<String>,
    reason: Option<String>,
    minutes: i64,
    ticket: Option<String>,
    wait_minutes: u64,
}

/// The justification to ask with: `--reason`, else typed at a terminal (empty: do not ask).
fn justification(given: Option<String>) -> Option<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if given.is_some() {
        return given;
    }
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("No policy allows this yet. Ask your IT team? Why do you need it (empty: no): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string()).filter(|l| !l.is_empty())
}

/// Runs the program (as this process's user: root under `run-elevated`); its exit code is ours.
fn run_program(path: &std::path::Path, args: &[String]) -> Result<ExitCode> {
    let status = std::process::Command::new(path).args(args).status()?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

/// `agent run-elevated`: the program runs as root only on an `allow`; its exit code is ours.
/// On `ask` it asks for the program through the approval flow, waits, and decides again.
fn run_elevated(e: Elevation, place: AgentPlace, command: Vec<String>) -> Result<ExitCode> {
    use hourglass::agent::{elevate, requests};
    use hourglass::error::Error;
    use hourglass::model::policies::Decision;
    if cfg!(windows) {
        // Starting a program elevated in the user's session without making them an
        // administrator is not built yet on Windows (see the README).
        return Err(Error::startup(
            "run-elevated is not available on Windows yet: ask for a session with request-admin",
        ));
    }
    let user = requests::invoking_user(e.user)?;
    let program = command
        .first()
        .ok_or_else(|| Error::validation("program", "give the program after --"))?;
    let path = elevate::resolve(program)?;
    let dir = &place.state_dir;
    let staged = elevate::stage(&path, dir)?;
    let app = elevate::describe(&path, &staged.bytes, &staged.run)?;
    let wall = Clock::system().now().millis();
    if let Some(session) = elevate::session(dir, &user, wall)? {
        // An administrator for now anyway: no policy needed, the session's trail records it.
        elevate::record_in_session(dir, &user, &app, &session, wall)?;
        eprintln!(
            "hourglass: {} runs in your administrator session",
            path.display()
        );
        return run_program(&staged.run, &command[1..]);
    }
    let mut asked = false;
    loop {
        let now = Clock::system().now().millis();
        let (d, from) = elevate::decide(dir, &user, &app, now)?;
        match &d {
            Decision::Allow { policy, rule, .. } => {
                elevate::record(dir, &user, &app, &d, now)?;
                eprintln!(
                    "hourglass: {} allowed by policy {policy}{} ({from})",
                    path.display(),
                    rule.as_ref()
                        .map(|r| format!(", rule {r}"))
                        .unwrap_or_default()
                );
                return run_program(&staged.run, &command[1..]);
            }
            Decision::Deny { policy, rule } => {
                return Err(Error::Forbidden(format!(
                    "{} is denied by policy {policy}, rule {rule} ({from})",
                    path.display()
                )));
            }
            Decision::Ask if !asked => {
                let none = || {
                    Error::Forbidden(format!(
                        "no application policy lets {user} run {} with administrator rights ({from}); ask for it with --reason",
                        path.display()
                    ))
                };
                let reason = justification(e.reason.clone()).ok_or_else(none)?;
                let v =
                    elevate::request(dir, &user, &app, e.minutes, &reason, e.ticket.as_deref())?;
                eprintln!("hourglass: {}", requests::describe(&v));
                let id = v["id"].as_str().unwrap_or_default().to_string();
                if v["state"] == "pending" {
                    if e.wait_minutes == 0 {
                        return Ok(ExitCode::from(2));
                    }
                    eprintln!(
                        "hourglass: waiting up to {} minute(s) for a decision…",
                        e.wait_minutes
                    );
                    let v = elevate::wait(
                        dir,
                        &id,
                        std::time::Duration::from_secs(e.wait_minutes * 60),
                    )?;
                    eprintln!("hourglass: {}", requests::describe(&v));
                    if v["state"] == "pending" {
                        return Ok(ExitCode::from(2));
                    }
                }
                asked = true;
            }
            Decision::Ask => {
                return Err(Error::Forbidden(format!(
                    "{} may not run with administrator rights ({from})",
                    path.display()
                )));
            }
        }
    }
}

use hourglass::agent::local::Ask;

/// An ordinary user asks the daemon, which tells from the socket (or pipe) who they are; root
/// (which can read the device's credentials) asks the appliance itself.
#[cfg(unix)]
fn via_daemon() -> bool {
    !rustix::process::geteuid().is_root()
}

/// Windows: always through the service's pipe (its state is SYSTEM's alone).
#[cfg(not(unix))]
fn via_daemon() -> bool {
    true
}

#[cfg(unix)]
fn ask_daemon(place: &AgentPlace, a: Ask) -> Result<serde_json::Value> {
    hourglass::agent::local::ask(&hourglass::agent::local::socket_path(&place.state_dir), &a)
}

#[cfg(windows)]
fn ask_daemon(place: &AgentPlace, a: Ask) -> Result<serde_json::Value> {
    hourglass::agent::pipe::ask(&hourglass::agent::pipe::pipe_name(&place.state_dir), &a)
}

#[cfg(windows)]
fn service_command(install: bool, o: &Options) -> Result<()> {
    if install {
        hourglass::agent::service::install(o)
    } else {
        hourglass::agent::service::uninstall(o)
    }
}

#[cfg(not(windows))]
fn service_command(_install: bool, _o: &Options) -> Result<()> {
    Err(hourglass::error::Error::startup(
        "services are a Windows matter: on Linux install appliance/hourglass-agent.service with systemd",
    ))
}

#[cfg(windows)]
fn service_run() -> Result<()> {
    hourglass::agent::service::dispatch()
}

#[cfg(not(windows))]
fn service_run() -> Result<()> {
    service_command(true, &agent_options_default())
}

#[cfg(not(windows))]
fn agent_options_default() -> Options {
    Options {
        state_dir: hourglass::agent::state::DEFAULT_STATE_DIR.into(),
        root: "/".into(),
        admin_group: String::new(),
        backend: daemon::Backend::System,
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    // The agent runs on workstations: it reads no appliance configuration.
    let command = match cli.command {
        Command::Agent { command } => {
            match command {
                AgentCommand::Enroll {
                    server,
                    token,
                    fingerprint,
                    place,
                } => {
                    let s = daemon::enroll(&server, &token, &fingerprint, &agent_options(place))?;
                    println!("Enrolled as device {} in tenant {}.", s.device_id, s.tenant);
                }
                AgentCommand::Run { place } => daemon::run(&agent_options(place))?,
                AgentCommand::Describe { program, place } => {
                    let path = hourglass::agent::elevate::resolve(&program)?;
                    let staged = hourglass::agent::elevate::stage(&path, &place.state_dir)?;
                    let app =
                        hourglass::agent::elevate::describe(&path, &staged.bytes, &staged.run)?;
                    println!("{}", serde_json::to_string_pretty(&app)?);
                }
                AgentCommand::InstallService { place } => {
                    service_command(true, &agent_options(place))?;
                    println!("The Hourglass service is installed and started.");
                }
                AgentCommand::UninstallService { place } => {
                    service_command(false, &agent_options(place))?;
                    println!(
                        "Every right taken back, managed accounts disabled, the service removed."
                    );
                }
                AgentCommand::ServiceRun { place: _ } => service_run()?,
                AgentCommand::RunElevated {
                    user,
                    reason,
                    minutes,
                    ticket,
                    wait_minutes,
                    place,
                    command,
                } => {
                    let e = Elevation {
                        user,
                        reason,
                        minutes,
                        ticket,
                        wait_minutes,
                    };
                    return run_elevated(e, place, command);
                }
                AgentCommand::OfflineLogin {
                    account,
                    code,
                    place,
                } => {
                    let dir = place.state_dir.clone();
                    let g = hourglass::agent::offline::login(
                        &dir,
                        agent_options(place).os()?.as_ref(),
                        &account,
                        &code,
                        hourglass::clock::Clock::system().now().millis(),
                    )?;
                    println!(
                        "Account {} is enabled until {} (UTC); the agent then changes its password and disables it.",
                        g.account,
                        hourglass::clock::Timestamp::from_millis(g.expires_at).rfc3339()
                    );
                    println!("Password (shown once): {}", g.password.as_str());
                }
                AgentCommand::RequestAdmin {
                    minutes,
                    reason,
                    ticket,
                    user,
                    place,
                } => {
                    let v = if via_daemon() {
                        ask_daemon(
                            &place,
                            Ask::RequestAdmin {
                                minutes,
                                reason,
                                ticket,
                                user,
                            },
                        )?
                    } else {
                        let user = hourglass::agent::requests::invoking_user(user)?;
                        // Where the agent can tell, an account this machine does not have is
                        // not asked for (its grant could only fail).
                        let dir = place.state_dir.clone();
                        if agent_options(place).os()?.has_account(&user) == Some(false) {
                            return Err(hourglass::agent::os::no_such_account(&user));
                        }
                        hourglass::agent::requests::request(
                            &dir, user, minutes, reason, ticket, "admin",
                        )?
                    };
                    println!("{}", hourglass::agent::requests::describe(&v));
                }
                AgentCommand::Extend {
                    minutes,
                    reason,
                    user,
                    place,
                } => {
                    let v = if via_daemon() {
                        ask_daemon(
                            &place,
                            Ask::Extend {
                                minutes,
                                reason,
                                user,
                            },
                        )?
                    } else {
                        let user = hourglass::agent::requests::invoking_user(user)?;
                        hourglass::agent::requests::request(
                            &place.state_dir,
                            user,
                            minutes,
                            reason,
                            None,
                            "extension",
                        )?
                    };
                    println!("{}", hourglass::agent::requests::describe(&v));
                }
                AgentCommand::Status { place } => {
                    let v = if via_daemon() {
                        ask_daemon(&place, Ask::Status {})?
                    } else {
                        hourglass::agent::requests::status(&place.state_dir)?
                    };
                    println!("{}", hourglass::agent::requests::describe(&v));
                }
                AgentCommand::EndSession { place } => {
                    let v = if via_daemon() {
                        ask_daemon(&place, Ask::EndSession {})?
                    } else {
                        hourglass::agent::requests::end(&place.state_dir)?
                    };
                    println!("{}", hourglass::agent::requests::describe(&v));
                }
                AgentCommand::Simulate {
                    server,
                    token,
                    fingerprint,
                    count,
                    hold,
                    seconds,
                } => {
                    let o = hourglass::agent::simulate::SimOptions {
                        server,
                        token,
                        fingerprint,
                        count,
                        hold_secs: hold,
                        seconds,
                        per_connection: 50,
                    };
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(hourglass::agent::simulate::run(
                        o,
                        Default::default(),
                        false,
                    ))?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        other => other,
    };
    // This build is a workstation agent: the appliance's commands need its Linux host.
    #[cfg(not(unix))]
    if !matches!(command, Command::Agent { .. }) {
        return Err(hourglass::error::Error::startup(
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
            command:
                AdminCommand::EnrollmentToken {
                    tenant,
                    hours,
                    uses,
                },
        } => {
            let (token, command) = ops::enrollment_token(cfg, clock, &tenant, hours, uses)?;
            println!("Run on each workstation: {command}");
            println!("{token}");
        }
        Command::Admin {
            command:
                AdminCommand::CreateToken {
                    email,
                    name,
                    sensitive,
                    expires_in_days,
                },
        } => {
            let scope = service::tokens::Scope {
                sensitive,
                expires_in_days,
            };
            let token = ops::create_token(cfg, clock, &email, &name, scope)?;
            println!("API token for {email} (shown once; store it now):");
            println!("{token}");
        }
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
            cfg.storage.data_dir = hourglass::demo::data_dir(data_dir_given);
            cfg.server.listen = listen.unwrap_or_else(|| "127.0.0.1:8443".into());
            hourglass::demo::run(cfg)?;
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
        Command::Audit {
            command: AuditCommand::Verify { checkpoint, key },
        } => {
            match ops::audit_verify(&cfg)? {
                Ok(n) => println!("audit chain OK: {n} entries verified"),
                Err((seq, why)) => {
                    println!("audit chain BROKEN at sequence {seq}: {why}");
                    return Ok(ExitCode::from(1));
                }
            }
            if let Some(file) = checkpoint {
                match ops::audit_verify_checkpoint(&cfg, &file, key.as_deref())? {
                    Ok(what) => println!("checkpoint OK: {what}"),
                    Err(why) => {
                        println!("checkpoint FAILED: {why}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
        Command::Audit {
            command:
                AuditCommand::Export {
                    format,
                    tenant,
                    from,
                    to,
                    out,
                },
        } => {
            let a = ops::AuditExport {
                format: &format,
                tenant: tenant.as_deref(),
                from: from.as_deref(),
                to: to.as_deref(),
                out: out.as_deref(),
            };
            let n = ops::audit_export(&cfg, &a)?;
            eprintln!("exported {n} audit entries");
        }
    }
    Ok(ExitCode::SUCCESS)
}
