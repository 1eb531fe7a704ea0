//! The agent as a Windows service: `agent install-service` registers `hourglass.exe agent
//! service-run` with the service manager (automatic start, LocalSystem, restart on failure)
//! and closes the state folder to everyone but SYSTEM and Administrators; the service manager
//! then runs the same daemon as `agent run`. `agent uninstall-service` first takes back every
//! grant and disables every account the appliance created, then removes the service.
//! Windows only; not yet run on a real Windows machine (see the README).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::daemon::Options;
use crate::error::{Error, Result};

pub const SERVICE_NAME: &str = "Hourglass";

fn scm_error(what: &str) -> impl Fn(windows_service::Error) -> Error + '_ {
    move |e| Error::startup(format!("the service manager refused to {what}: {e}"))
}

/// Only SYSTEM (S-1-5-18) and the Administrators group (S-1-5-32-544) may open the state
/// folder; inheritance from ProgramData (where Users may read) is cut.
fn close_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let out = std::process::Command::new("icacls")
        .arg(dir)
        .args([
            "/inheritance:r",
            "/grant:r",
            "*S-1-5-18:(OI)(CI)F",
            "*S-1-5-32-544:(OI)(CI)F",
        ])
        .output()
        .map_err(|e| Error::startup(format!("icacls: {e}")))?;
    if !out.status.success() {
        return Err(Error::startup(format!(
            "cannot restrict {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(())
}

pub fn install(o: &Options) -> Result<()> {
    close_folder(&o.state_dir)?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(scm_error("connect"))?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: "Hourglass agent".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe()?,
        launch_arguments: vec![
            "agent".into(),
            "service-run".into(),
            "--state-dir".into(),
            o.state_dir.clone().into_os_string(),
        ],
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .map_err(scm_error("create the service"))?;
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(5), restart(30), restart(60)]),
        })
        .map_err(scm_error("set restart on failure"))?;
    service
        .set_description("Just-in-time administrator rights, managed by your Hourglass appliance")
        .map_err(scm_error("describe the service"))?;
    service
        .start::<&str>(&[])
        .map_err(scm_error("start the service"))?;
    Ok(())
}

pub fn uninstall(o: &Options) -> Result<()> {
    // Nothing the appliance granted outlives the agent.
    super::daemon::release_everything(o)?;
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm_error("connect"))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(scm_error("open the service"))?;
    if service
        .query_status()
        .is_ok_and(|s| s.current_state != ServiceState::Stopped)
    {
        let _ = service.stop();
    }
    service.delete().map_err(scm_error("delete the service"))
}

fn status(state: ServiceState, accept: ServiceControlAccept, code: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(code),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

/// Called by the service manager (through `win32::ffi_service_main`) on its own thread.
pub fn service_main(arguments: Vec<OsString>) {
    let o = options_from(&arguments);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = std::sync::Mutex::new(Some(stop_tx));
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(tx) = stop_tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(SERVICE_NAME, handler) else {
        return;
    };
    let accept = ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN;
    let _ = handle.set_service_status(status(ServiceState::Running, accept, 0));
    let result = super::daemon::run_until(&o, async {
        let _ = stop_rx.await;
    });
    if let Err(e) = &result {
        tracing::error!("agent stopped: {e}");
    }
    let code = u32::from(result.is_err());
    let _ = handle.set_service_status(status(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        code,
    ));
}

/// The service's launch arguments carry `--state-dir`; everything else is the default.
fn options_from(args: &[OsString]) -> Options {
    let dir = std::env::args_os()
        .chain(args.iter().cloned())
        .skip_while(|a| a != "--state-dir")
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::agent::state::DEFAULT_STATE_DIR.into());
    Options {
        state_dir: dir,
        root: "/".into(),
        admin_group: String::new(),
        backend: super::daemon::Backend::System,
    }
}

/// `agent service-run`: hands the thread to the service manager's dispatcher.
pub fn dispatch() -> Result<()> {
    super::win32::dispatch(SERVICE_NAME).map_err(|e| {
        Error::startup(format!(
            "not started by the service manager ({e}): use `hourglass agent run` in a console"
        ))
    })
}
