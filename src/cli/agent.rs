//! `hourglass agent …`: the workstation's commands. They read no appliance configuration.

use std::process::ExitCode;

use super::{AgentCommand, AgentPlace};
use crate::agent::daemon::{self, Options};
use crate::agent::local::Ask;
use crate::error::Result;

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
    mut e: crate::agent::runas::Elevation,
    user: Option<String>,
    place: AgentPlace,
    command: Vec<String>,
) -> Result<ExitCode> {
    use crate::agent::runas::Outcome;
    use crate::error::Error;
    let program = command
        .first()
        .ok_or_else(|| Error::validation("program", "give the program after --"))?;
    let path = crate::agent::elevate::resolve(program)?;
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
    e: &crate::agent::runas::Elevation,
) -> Result<crate::agent::runas::Outcome> {
    use crate::agent::{elevate, requests, runas};
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
    e: &crate::agent::runas::Elevation,
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

fn outcome_of(v: serde_json::Value) -> Result<crate::agent::runas::Outcome> {
    serde_json::from_value(v).map_err(|e| {
        crate::error::Error::startup(format!("the agent answered something unreadable: {e}"))
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
    e: &crate::agent::runas::Elevation,
) -> Result<crate::agent::runas::Outcome> {
    use std::os::fd::AsFd;
    let file = std::fs::File::open(path).map_err(|err| {
        crate::error::Error::validation("program", format!("{}: {err}", path.display()))
    })?;
    let (i, o, er) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let fds = [file.as_fd(), i.as_fd(), o.as_fd(), er.as_fd()];
    let v = crate::agent::local::ask_with(
        &crate::agent::local::socket_path(&place.state_dir),
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
    e: &crate::agent::runas::Elevation,
) -> Result<crate::agent::runas::Outcome> {
    let v = crate::agent::pipe::ask_with(
        &crate::agent::pipe::pipe_name(&place.state_dir),
        &run_elevated_ask(user, path, args, e)?,
        None,
        &mut |m| eprintln!("hourglass: {m}"),
    )?;
    outcome_of(v)
}

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

/// Whose request root's console means: the user who ran sudo (never another), the one named
/// with `--user`, or — root itself naming nobody — the machine's last request.
fn whose(explicit: Option<String>) -> Result<Option<String>> {
    match crate::agent::requests::invoking_user(explicit) {
        Ok(u) => Ok(Some(u)),
        Err(e @ crate::error::Error::Forbidden(_)) => Err(e),
        Err(_) => Ok(None),
    }
}

/// Through the daemon the caller is who the socket says: `--user` may only name them.
fn only_yourself(explicit: Option<String>) -> Result<()> {
    let me = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    match explicit {
        Some(u) if u != me => Err(crate::error::Error::Forbidden(format!(
            "--user {u}: you are {me}; you see and end only your own requests"
        ))),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn ask_daemon(place: &AgentPlace, a: Ask) -> Result<serde_json::Value> {
    crate::agent::local::ask(&crate::agent::local::socket_path(&place.state_dir), &a)
}

#[cfg(windows)]
fn ask_daemon(place: &AgentPlace, a: Ask) -> Result<serde_json::Value> {
    crate::agent::pipe::ask(&crate::agent::pipe::pipe_name(&place.state_dir), &a)
}

#[cfg(windows)]
fn service_command(install: bool, o: &Options) -> Result<()> {
    if install {
        crate::agent::service::install(o)
    } else {
        crate::agent::service::uninstall(o)
    }
}

#[cfg(not(windows))]
fn service_command(_install: bool, _o: &Options) -> Result<()> {
    Err(crate::error::Error::startup(
        "services are a Windows matter: on Linux install appliance/hourglass-agent.service with systemd",
    ))
}

#[cfg(windows)]
fn service_run() -> Result<()> {
    crate::agent::service::dispatch()
}

#[cfg(not(windows))]
fn service_run() -> Result<()> {
    service_command(true, &agent_options_default())
}

#[cfg(not(windows))]
fn agent_options_default() -> Options {
    Options {
        state_dir: crate::agent::state::DEFAULT_STATE_DIR.into(),
        root: "/".into(),
        admin_group: String::new(),
        backend: daemon::Backend::System,
    }
}

// Long on purpose: one arm per agent subcommand, each a call into `agent::`.
pub fn run(command: AgentCommand) -> Result<ExitCode> {
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
            let path = crate::agent::elevate::resolve(&program)?;
            let staged = crate::agent::elevate::stage(&path, &place.state_dir)?;
            let app = crate::agent::elevate::describe(&path, &staged.bytes, &staged.run)?;
            println!("{}", serde_json::to_string_pretty(&app)?);
        }
        AgentCommand::InstallService { place } => {
            service_command(true, &agent_options(place))?;
            println!("The Hourglass service is installed and started.");
        }
        AgentCommand::UninstallService { place } => {
            service_command(false, &agent_options(place))?;
            println!("Every right taken back, managed accounts disabled, the service removed.");
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
            let e = crate::agent::runas::Elevation {
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
            let g = crate::agent::offline::login(
                &dir,
                agent_options(place).os()?.as_ref(),
                (&account, &code),
                crate::agent::offline::Via::Command,
                crate::clock::Clock::system().now().millis(),
            )?;
            println!(
                "Account {} is enabled until {} (UTC); the agent then changes its password and disables it.",
                g.account,
                crate::clock::Timestamp::from_millis(g.expires_at).rfc3339()
            );
            println!("Password (shown once): {}", g.password.as_str());
        }
        AgentCommand::PamAuth { place } => return pam_auth(place),
        c @ (AgentCommand::RequestAdmin { .. }
        | AgentCommand::Extend { .. }
        | AgentCommand::Status { .. }
        | AgentCommand::EndSession { .. }) => {
            println!("{}", crate::agent::requests::describe(&user_request(c)?));
        }
        AgentCommand::Simulate {
            server,
            token,
            fingerprint,
            count,
            hold,
            seconds,
            share_connection,
            server_pid,
        } => {
            let o = crate::agent::simulate::SimOptions {
                server,
                token,
                fingerprint,
                count,
                hold_secs: hold,
                seconds,
                per_connection: share_connection as usize,
                server_pid,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::agent::simulate::run(o, Default::default(), false))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An end user's request (ask, extend, status, end): through the daemon unless we are root
/// on Linux, who may call the appliance with the device's credentials itself.
fn user_request(command: AgentCommand) -> Result<serde_json::Value> {
    Ok(match command {
        AgentCommand::RequestAdmin {
            minutes,
            reason,
            ticket,
            user,
            place,
        } => {
            if via_daemon() {
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
                let user = crate::agent::requests::invoking_user(user)?;
                // Where the agent can tell, an account this machine does not have is
                // not asked for (its grant could only fail).
                let dir = place.state_dir.clone();
                if agent_options(place).os()?.has_account(&user) == Some(false) {
                    return Err(crate::agent::os::no_such_account(&user));
                }
                crate::agent::requests::request(&dir, user, minutes, reason, ticket, "admin")?
            }
        }
        AgentCommand::Extend {
            minutes,
            reason,
            user,
            place,
        } => {
            if via_daemon() {
                ask_daemon(
                    &place,
                    Ask::Extend {
                        minutes,
                        reason,
                        user,
                    },
                )?
            } else {
                let user = crate::agent::requests::invoking_user(user)?;
                crate::agent::requests::request(
                    &place.state_dir,
                    user,
                    minutes,
                    reason,
                    None,
                    "extension",
                )?
            }
        }
        AgentCommand::Status { user, place } => {
            if via_daemon() {
                only_yourself(user)?;
                ask_daemon(&place, Ask::Status {})?
            } else {
                crate::agent::requests::status_of(&place.state_dir, &whose(user)?)?
            }
        }
        AgentCommand::EndSession { user, place } => {
            if via_daemon() {
                only_yourself(user)?;
                ask_daemon(&place, Ask::EndSession {})?
            } else {
                crate::agent::requests::end_of(&place.state_dir, &whose(user)?)?
            }
        }
        _ => return Err(crate::error::Error::internal("not an end user's request")),
    })
}

/// `pam-auth`: what pam_exec shows comes from stdout; the exit status is the PAM answer.
fn pam_auth(place: AgentPlace) -> Result<ExitCode> {
    use crate::agent::pam::{Answer, auth};
    use std::io::Read;
    let var = |k| std::env::var(k).unwrap_or_default();
    let mut typed = String::new();
    // A code is six digits: more than a line is not one (and is not read on).
    std::io::stdin().take(512).read_to_string(&mut typed).ok();
    let dir = place.state_dir.clone();
    let os = agent_options(place).os()?;
    let now = crate::clock::Clock::system().now().millis();
    let typed = zeroize::Zeroizing::new(typed);
    match auth(
        &dir,
        os.as_ref(),
        (&var("PAM_USER"), &var("PAM_TYPE")),
        &typed,
        now,
    ) {
        Answer::NotOurs => Ok(ExitCode::from(1)),
        Answer::Granted(m) => {
            println!("{m}");
            Ok(ExitCode::SUCCESS)
        }
        Answer::Refused(m) => {
            println!("{m}");
            Ok(ExitCode::from(1))
        }
    }
}
