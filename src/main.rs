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

/// The justification to ask with: typed at a terminal (empty: do not ask).
fn justification() -> Option<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("No policy allows this yet. Ask your IT team? Why do you need it (empty: no): ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string()).filter(|l| !l.is_empty())
}

/// `agent run-elevated`: the program runs with administrator rights only on an `allow`; its
/// exit code is ours (2 while a request waits). Ordinary users go through the daemon, which
/// runs the program for them; root on Linux runs the same steps itself.
fn run_elevated(
    mut e: hourglass::agent::runas::Elevation,
    user: Option<String>,
    place: AgentPlace,
    command: Vec<String>,
) -> Result<ExitCode> {
    use hourglass::agent::runas::Outcome;
    use hourglass::error::Error;
    let program = command
        .first()
        .ok_or_else(|| Error::validation("program", "give the program after --"))?;
    let path = hourglass::agent::elevate::resolve(program)?;
    let args = command[1..].to_vec();
    loop {
        let outcome = if via_daemon() {
            elevated_by_daemon(&place, user.clone(), &path, &args, &e)?
        } else {
            elevated_here(&place, user.clone(), &path, &args, &e)?
        };
        match outcome {
            Outcome::Ran { code } => {
                return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            Outcome::Pending { .. } => return Ok(ExitCode::from(2)),
            Outcome::NeedsReason { message } => {
                match justification().filter(|_| e.reason.is_none()) {
                    Some(r) => e.reason = Some(r),
                    None => return Err(Error::Forbidden(message)),
                }
            }
        }
    }
}

/// Root on Linux: the same steps in this process, the program run with our own terminal.
fn elevated_here(
    place: &AgentPlace,
    user: Option<String>,
    path: &std::path::Path,
    args: &[String],
    e: &hourglass::agent::runas::Elevation,
) -> Result<hourglass::agent::runas::Outcome> {
    use hourglass::agent::{elevate, requests, runas};
    let user = requests::invoking_user(user)?;
    let staged = elevate::stage(path, &place.state_dir)?;
    runas::run(
        &place.state_dir,
        &user,
        path,
        &staged,
        e,
        &mut |m| eprintln!("hourglass: {m}"),
        &mut |p| {
            Ok(runas::code_of(
                std::process::Command::new(p).args(args).status()?,
            ))
        },
    )
}

fn run_elevated_ask(
    user: Option<String>,
    path: &std::path::Path,
    args: &[String],
    e: &hourglass::agent::runas::Elevation,
) -> Result<Ask> {
    Ok(Ask::RunElevated {
        program: path.display().to_string(),
        args: args.to_vec(),
        cwd: std::env::current_dir()?.display().to_string(),
        term: std::env::var("TERM").ok(),
        lang: std::env::var("LANG").ok(),
        user,
        elevation: e.clone(),
    })
}

fn outcome_of(v: serde_json::Value) -> Result<hourglass::agent::runas::Outcome> {
    serde_json::from_value(v).map_err(|e| {
        hourglass::error::Error::startup(format!("the agent answered something unreadable: {e}"))
    })
}

/// Linux: the program (opened here, so only what we may read can be elevated) and our
/// terminal go to the daemon with the request; it runs the program as root with them.
#[cfg(unix)]
fn elevated_by_daemon(
    place: &AgentPlace,
    user: Option<String>,
    path: &std::path::Path,
    args: &[String],
    e: &hourglass::agent::runas::Elevation,
) -> Result<hourglass::agent::runas::Outcome> {
    use std::os::fd::AsFd;
    let file = std::fs::File::open(path).map_err(|err| {
        hourglass::error::Error::validation("program", format!("{}: {err}", path.display()))
    })?;
    let (i, o, er) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let fds = [file.as_fd(), i.as_fd(), o.as_fd(), er.as_fd()];
    let v = hourglass::agent::local::ask_with(
        &hourglass::agent::local::socket_path(&place.state_dir),
        &run_elevated_ask(user, path, args, e)?,
        &fds,
        None,
        &mut |m| eprintln!("hourglass: {m}"),
    )?;
    outcome_of(v)
}

/// Windows: the service starts the program in our session (see `win32::launch_elevated`).
#[cfg(windows)]
fn elevated_by_daemon(
    place: &AgentPlace,
    user: Option<String>,
    path: &std::path::Path,
    args: &[String],
    e: &hourglass::agent::runas::Elevation,
) -> Result<hourglass::agent::runas::Outcome> {
    let v = hourglass::agent::pipe::ask_with(
        &hourglass::agent::pipe::pipe_name(&place.state_dir),
        &run_elevated_ask(user, path, args, e)?,
        None,
        &mut |m| eprintln!("hourglass: {m}"),
    )?;
    outcome_of(v)
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
                    let e = hourglass::agent::runas::Elevation {
                        reason,
                        minutes,
                        ticket,
                        wait_minutes,
                    };
                    return run_elevated(e, user, place, command);
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
