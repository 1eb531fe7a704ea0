//! The agent's only raw Win32 calls (Windows builds only): the SAM (NetUser*), the local
//! Administrators group (by its well-known SID, NetLocalGroup*) and terminal-services
//! sessions (WTS*), each behind a safe method of `WinApi`. Strings are passed as
//! NUL-terminated UTF-16 buffers that outlive the call; every buffer Windows allocates is
//! freed with its own free function before the method returns. Password buffers are zeroed
//! after use.
//!
//! This has not run on a real Windows machine yet: it is built and linted for
//! x86_64-pc-windows-gnu, and the logic above it is tested against `FakeSam`.

// The one module allowed to use `unsafe` (CONVENTIONS: FFI lives in one small place).
#![allow(unsafe_code)]

mod launch;

use launch::ClientToken;
pub use launch::launch_elevated;

use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{ERROR_MORE_DATA, GetLastError};
use windows_sys::Win32::NetworkManagement::NetManagement::{
    LOCALGROUP_MEMBERS_INFO_1, LOCALGROUP_MEMBERS_INFO_3, MAX_PREFERRED_LENGTH, NetApiBufferFree,
    NetLocalGroupAddMembers, NetLocalGroupDelMembers, NetLocalGroupGetMembers, NetUserAdd,
    NetUserDel, NetUserGetInfo, NetUserSetInfo, UF_ACCOUNTDISABLE, UF_DONT_EXPIRE_PASSWD,
    UF_NORMAL_ACCOUNT, UF_SCRIPT, USER_INFO_1, USER_INFO_1003, USER_INFO_1008, USER_PRIV_USER,
};
use windows_sys::Win32::Security::{
    CreateWellKnownSid, LookupAccountSidW, PSID, SECURITY_MAX_SID_SIZE, SID_NAME_USE,
    WinBuiltinAdministratorsSid,
};
use windows_sys::Win32::System::RemoteDesktop::{
    WTS_CURRENT_SERVER_HANDLE, WTS_SESSION_INFOW, WTSEnumerateSessionsW, WTSFreeMemory, WTSINFOW,
    WTSLogoffSession, WTSQuerySessionInformationW, WTSSendMessageW, WTSSessionInfo, WTSUserName,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{MB_ICONINFORMATION, MB_OK};
use zeroize::Zeroize;

use super::windows::{NERR_SUCCESS, Session, WinApi, WinError};

/// NUL-terminated UTF-16.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Reads a NUL-terminated UTF-16 string Windows handed out.
///
/// SAFETY (for callers): `p` is null or points to a NUL-terminated UTF-16 string that stays
/// valid for the duration of the call.
unsafe fn from_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut n = 0;
    // SAFETY: the string is NUL-terminated (caller's guarantee), so every read up to and
    // including the terminator is inside it.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` elements were just read.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, n) })
}

fn from_array(a: &[u16]) -> String {
    let end = a.iter().position(|&c| c == 0).unwrap_or(a.len());
    String::from_utf16_lossy(&a[..end])
}

fn status(call: &'static str, rc: u32) -> Result<(), WinError> {
    if rc == NERR_SUCCESS {
        Ok(())
    } else {
        Err(WinError::from_code(call, rc))
    }
}

fn last_error(call: &'static str) -> WinError {
    // SAFETY: no arguments; reads the calling thread's last-error value.
    WinError::from_code(call, unsafe { GetLastError() })
}

/// The name and domain (the computer's name for a local account) of a SID.
///
/// SAFETY (for callers): `sid` points to a valid SID for the duration of the call.
unsafe fn account_of(sid: PSID) -> Result<(String, String), WinError> {
    let mut name = [0u16; 257];
    let mut domain = [0u16; 257];
    let (mut name_len, mut domain_len) = (name.len() as u32, domain.len() as u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: both buffers are as long as their lengths say; the caller vouches for `sid`.
    let ok = unsafe {
        LookupAccountSidW(
            null(),
            sid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok == 0 {
        return Err(last_error("LookupAccountSidW"));
    }
    Ok((from_array(&name), from_array(&domain)))
}

/// FILETIME ticks (100 ns since 1601) → Unix seconds.
fn unix_seconds(filetime: i64) -> i64 {
    filetime / 10_000_000 - 11_644_473_600
}

type MembersCall = unsafe extern "system" fn(*const u16, *const u16, u32, *const u8, u32) -> u32;

/// Adds `name` to or removes it from `group` (NetLocalGroupAdd/DelMembers, level 3: one entry
/// by "DOMAIN\\name" or plain name).
fn membership(call: &'static str, f: MembersCall, group: &str, name: &str) -> Result<(), WinError> {
    let g = wide(group);
    let mut n = wide(name);
    let info = LOCALGROUP_MEMBERS_INFO_3 {
        lgrmi3_domainandname: n.as_mut_ptr(),
    };
    // SAFETY: `g`, `n` and `info` outlive the call; one entry.
    let rc = unsafe {
        f(
            null(),
            g.as_ptr(),
            3,
            &info as *const LOCALGROUP_MEMBERS_INFO_3 as *const u8,
            1,
        )
    };
    status(call, rc)
}

/// The real Windows calls.
pub struct Win32Api;

impl Win32Api {
    /// UF_* flags of a user (NetUserGetInfo level 1).
    fn flags(&self, name: &str) -> Result<u32, WinError> {
        let n = wide(name);
        let mut buf: *mut u8 = null_mut();
        // SAFETY: `n` is NUL-terminated and outlives the call; `buf` receives a buffer that
        // Windows allocated, freed below.
        let rc = unsafe { NetUserGetInfo(null(), n.as_ptr(), 1, &mut buf) };
        let flags = if rc == NERR_SUCCESS && !buf.is_null() {
            // SAFETY: level 1 returns one USER_INFO_1.
            Ok(unsafe { (*(buf as *const USER_INFO_1)).usri1_flags })
        } else {
            Err(WinError::from_code("NetUserGetInfo", rc))
        };
        if !buf.is_null() {
            // SAFETY: allocated by NetUserGetInfo.
            unsafe { NetApiBufferFree(buf as *const _) };
        }
        flags
    }

    fn session_user(&self, id: u32) -> String {
        let mut p: *mut u16 = null_mut();
        let mut bytes = 0u32;
        // SAFETY: out-pointers are valid; the buffer is freed with WTSFreeMemory.
        let ok = unsafe {
            WTSQuerySessionInformationW(
                WTS_CURRENT_SERVER_HANDLE,
                id,
                WTSUserName,
                &mut p,
                &mut bytes,
            )
        };
        if ok == 0 || p.is_null() {
            return String::new();
        }
        // SAFETY: WTSUserName is a NUL-terminated string in the returned buffer.
        let user = unsafe { from_wide(p) };
        // SAFETY: allocated by WTSQuerySessionInformationW.
        unsafe { WTSFreeMemory(p as *mut _) };
        user
    }

    fn session_logon(&self, id: u32) -> i64 {
        let mut p: *mut u16 = null_mut();
        let mut bytes = 0u32;
        // SAFETY: as in `session_user`.
        let ok = unsafe {
            WTSQuerySessionInformationW(
                WTS_CURRENT_SERVER_HANDLE,
                id,
                WTSSessionInfo,
                &mut p,
                &mut bytes,
            )
        };
        if ok == 0 || p.is_null() {
            return 0;
        }
        let at = if bytes as usize >= std::mem::size_of::<WTSINFOW>() {
            // SAFETY: WTSSessionInfo returns one WTSINFOW, size checked above.
            unix_seconds(unsafe { (*(p as *const WTSINFOW)).LogonTime })
        } else {
            0
        };
        // SAFETY: allocated by WTSQuerySessionInformationW.
        unsafe { WTSFreeMemory(p as *mut _) };
        at
    }
}

impl WinApi for Win32Api {
    fn user_exists(&self, name: &str) -> Result<bool, WinError> {
        match self.flags(name) {
            Ok(_) => Ok(true),
            Err(WinError::UserNotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn add_user(&self, name: &str, password: &str) -> Result<(), WinError> {
        let mut n = wide(name);
        let mut p = wide(password);
        let info = USER_INFO_1 {
            usri1_name: n.as_mut_ptr(),
            usri1_password: p.as_mut_ptr(),
            usri1_password_age: 0,
            usri1_priv: USER_PRIV_USER,
            usri1_home_dir: null_mut(),
            usri1_comment: null_mut(),
            usri1_flags: UF_SCRIPT | UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD,
            usri1_script_path: null_mut(),
        };
        let mut parm = 0u32;
        // SAFETY: `info` points into `n` and `p`, both alive until after the call.
        let rc = unsafe {
            NetUserAdd(
                null(),
                1,
                &info as *const USER_INFO_1 as *const u8,
                &mut parm,
            )
        };
        p.zeroize();
        status("NetUserAdd", rc)
    }

    fn set_password(&self, name: &str, password: &str) -> Result<(), WinError> {
        let n = wide(name);
        let mut p = wide(password);
        let info = USER_INFO_1003 {
            usri1003_password: p.as_mut_ptr(),
        };
        let mut parm = 0u32;
        // SAFETY: `info` points into `p`, alive until after the call.
        let rc = unsafe {
            NetUserSetInfo(
                null(),
                n.as_ptr(),
                1003,
                &info as *const USER_INFO_1003 as *const u8,
                &mut parm,
            )
        };
        p.zeroize();
        status("NetUserSetInfo", rc)
    }

    fn delete_user(&self, name: &str) -> Result<(), WinError> {
        let n = wide(name);
        // SAFETY: `n` outlives the call.
        let rc = unsafe { NetUserDel(null(), n.as_ptr()) };
        status("NetUserDel", rc)
    }

    fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), WinError> {
        let flags = self.flags(name)?;
        let info = USER_INFO_1008 {
            usri1008_flags: if enabled {
                flags & !UF_ACCOUNTDISABLE
            } else {
                flags | UF_ACCOUNTDISABLE
            },
        };
        let n = wide(name);
        let mut parm = 0u32;
        // SAFETY: `n` and `info` outlive the call.
        let rc = unsafe {
            NetUserSetInfo(
                null(),
                n.as_ptr(),
                1008,
                &info as *const USER_INFO_1008 as *const u8,
                &mut parm,
            )
        };
        status("NetUserSetInfo", rc)
    }

    fn administrators_group(&self) -> Result<String, WinError> {
        let mut sid = [0u8; SECURITY_MAX_SID_SIZE as usize];
        let mut size = SECURITY_MAX_SID_SIZE;
        // SAFETY: `sid` has room for any SID (`size` says how much).
        let ok = unsafe {
            CreateWellKnownSid(
                WinBuiltinAdministratorsSid,
                null_mut(),
                sid.as_mut_ptr() as PSID,
                &mut size,
            )
        };
        if ok == 0 {
            return Err(last_error("CreateWellKnownSid"));
        }
        // SAFETY: the SID was built above in `sid`.
        Ok(unsafe { account_of(sid.as_mut_ptr() as PSID) }?.0)
    }

    fn group_members(&self, group: &str) -> Result<Vec<String>, WinError> {
        let g = wide(group);
        let mut out = Vec::new();
        let mut resume: usize = 0;
        loop {
            let mut buf: *mut u8 = null_mut();
            let (mut read, mut total) = (0u32, 0u32);
            // SAFETY: out-pointers are valid; the buffer is freed below.
            let rc = unsafe {
                NetLocalGroupGetMembers(
                    null(),
                    g.as_ptr(),
                    1,
                    &mut buf,
                    MAX_PREFERRED_LENGTH,
                    &mut read,
                    &mut total,
                    &mut resume,
                )
            };
            if (rc == NERR_SUCCESS || rc == ERROR_MORE_DATA) && !buf.is_null() {
                // SAFETY: level 1 returns `read` LOCALGROUP_MEMBERS_INFO_1 records.
                let items = unsafe {
                    std::slice::from_raw_parts(
                        buf as *const LOCALGROUP_MEMBERS_INFO_1,
                        read as usize,
                    )
                };
                for m in items {
                    // SAFETY: each name is a NUL-terminated string inside the buffer.
                    out.push(unsafe { from_wide(m.lgrmi1_name) });
                }
            }
            if !buf.is_null() {
                // SAFETY: allocated by NetLocalGroupGetMembers.
                unsafe { NetApiBufferFree(buf as *const _) };
            }
            match rc {
                NERR_SUCCESS => return Ok(out),
                ERROR_MORE_DATA => continue,
                rc => return Err(WinError::from_code("NetLocalGroupGetMembers", rc)),
            }
        }
    }

    fn add_to_group(&self, group: &str, name: &str) -> Result<(), WinError> {
        membership(
            "NetLocalGroupAddMembers",
            NetLocalGroupAddMembers,
            group,
            name,
        )
    }

    fn remove_from_group(&self, group: &str, name: &str) -> Result<(), WinError> {
        membership(
            "NetLocalGroupDelMembers",
            NetLocalGroupDelMembers,
            group,
            name,
        )
    }

    fn sessions(&self) -> Result<Vec<Session>, WinError> {
        let mut p: *mut WTS_SESSION_INFOW = null_mut();
        let mut count = 0u32;
        // SAFETY: out-pointers are valid; the array is freed with WTSFreeMemory.
        let ok =
            unsafe { WTSEnumerateSessionsW(WTS_CURRENT_SERVER_HANDLE, 0, 1, &mut p, &mut count) };
        if ok == 0 {
            return Err(last_error("WTSEnumerateSessionsW"));
        }
        let mut out = Vec::new();
        if !p.is_null() {
            // SAFETY: `count` records were returned.
            let items = unsafe { std::slice::from_raw_parts(p, count as usize) };
            for s in items {
                let user = self.session_user(s.SessionId);
                if user.is_empty() {
                    continue;
                }
                out.push(Session {
                    id: s.SessionId,
                    user,
                    // SAFETY: the station name is a NUL-terminated string in the array.
                    station: unsafe { from_wide(s.pWinStationName) },
                    logon_at: self.session_logon(s.SessionId),
                });
            }
            // SAFETY: allocated by WTSEnumerateSessionsW.
            unsafe { WTSFreeMemory(p as *mut _) };
        }
        Ok(out)
    }

    fn logoff_session(&self, id: u32) -> Result<(), WinError> {
        // SAFETY: plain values; not waiting for the log-off to finish.
        let ok = unsafe { WTSLogoffSession(WTS_CURRENT_SERVER_HANDLE, id, 0) };
        if ok == 0 {
            return Err(last_error("WTSLogoffSession"));
        }
        Ok(())
    }

    fn send_message(&self, id: u32, title: &str, text: &str) -> Result<(), WinError> {
        let t: Vec<u16> = title.encode_utf16().collect();
        let m: Vec<u16> = text.encode_utf16().collect();
        let mut response = 0i32;
        // SAFETY: lengths are in bytes of the buffers passed; not waiting for an answer.
        let ok = unsafe {
            WTSSendMessageW(
                WTS_CURRENT_SERVER_HANDLE,
                id,
                t.as_ptr(),
                (t.len() * 2) as u32,
                m.as_ptr(),
                (m.len() * 2) as u32,
                MB_OK | MB_ICONINFORMATION,
                60,
                &mut response,
                0,
            )
        };
        if ok == 0 {
            return Err(last_error("WTSSendMessageW"));
        }
        Ok(())
    }
}

// The service manager's entry point: the macro defines an `extern "system"` function that
// turns the raw argument vector into OsStrings and calls `service::service_main`.
windows_service::define_windows_service!(ffi_service_main, service_main_entry);

fn service_main_entry(arguments: Vec<std::ffi::OsString>) {
    super::service::service_main(arguments);
}

/// Blocks this thread in the service control dispatcher until the service stops.
pub fn dispatch(name: &str) -> windows_service::Result<()> {
    windows_service::service_dispatcher::start(name, ffi_service_main)
}

/// The local pipe end users ask through: Authenticated Users may read and write it, SYSTEM
/// and Administrators have full control (the default DACL gives others read only).
pub fn create_pipe(
    name: &str,
    first: bool,
) -> std::io::Result<tokio::net::windows::named_pipe::NamedPipeServer> {
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
    let sddl = wide("D:(A;;GRGW;;;AU)(A;;GA;;;SY)(A;;GA;;;BA)");
    let mut sd: *mut core::ffi::c_void = null_mut();
    // SAFETY: `sddl` is NUL-terminated; `sd` receives a LocalAlloc'd descriptor freed below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut attrs = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: sd,
        bInheritHandle: 0,
    };
    let mut options = tokio::net::windows::named_pipe::ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true);
    // SAFETY: `attrs` and the descriptor it points to live until after the call, which
    // copies what it needs into the new pipe's security.
    let server = unsafe {
        options.create_with_security_attributes_raw(
            name,
            &mut attrs as *mut SECURITY_ATTRIBUTES as *mut _,
        )
    };
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe { LocalFree(sd) };
    server
}

/// Who is at the other end of a connected server pipe: the client process's account name
/// and its process id (the session to start an elevated program in).
pub fn pipe_client(pipe: std::os::windows::io::RawHandle) -> Result<(String, u32), WinError> {
    use windows_sys::Win32::System::Pipes::GetNamedPipeClientProcessId;
    let mut pid = 0u32;
    // SAFETY: `pipe` is a connected server pipe handle owned by the caller.
    if unsafe { GetNamedPipeClientProcessId(pipe as _, &mut pid) } == 0 {
        return Err(last_error("GetNamedPipeClientProcessId"));
    }
    let (name, _domain) = ClientToken::of(pid)?.account()?;
    Ok((name, pid))
}

/// Whether the file's Authenticode signature verifies (WinVerifyTrust, no UI, no revocation
/// round trip) and the signer's display name; (false, "") for an unsigned or tampered file.
pub fn authenticode(path: &std::path::Path) -> (bool, String) {
    use windows_sys::Win32::Security::Cryptography::{
        CERT_NAME_SIMPLE_DISPLAY_TYPE, CertGetNameStringW,
    };
    use windows_sys::Win32::Security::WinTrust::{
        WINTRUST_ACTION_GENERIC_VERIFY_V2, WINTRUST_DATA, WINTRUST_DATA_0, WINTRUST_FILE_INFO,
        WTD_CHOICE_FILE, WTD_REVOKE_NONE, WTD_STATEACTION_CLOSE, WTD_STATEACTION_VERIFY,
        WTD_UI_NONE, WTHelperGetProvSignerFromChain, WTHelperProvDataFromStateData, WinVerifyTrust,
    };
    let p = wide(&path.to_string_lossy());
    let mut file = WINTRUST_FILE_INFO {
        cbStruct: std::mem::size_of::<WINTRUST_FILE_INFO>() as u32,
        pcwszFilePath: p.as_ptr(),
        hFile: null_mut(),
        pgKnownSubject: null_mut(),
    };
    let mut data = WINTRUST_DATA {
        cbStruct: std::mem::size_of::<WINTRUST_DATA>() as u32,
        dwUIChoice: WTD_UI_NONE,
        fdwRevocationChecks: WTD_REVOKE_NONE,
        dwUnionChoice: WTD_CHOICE_FILE,
        Anonymous: WINTRUST_DATA_0 { pFile: &mut file },
        dwStateAction: WTD_STATEACTION_VERIFY,
        ..Default::default()
    };
    let mut action = WINTRUST_ACTION_GENERIC_VERIFY_V2;
    // SAFETY: `data` points at `file`, which points at `p`; all outlive both calls.
    let verified = unsafe {
        WinVerifyTrust(
            null_mut(),
            &mut action,
            &mut data as *mut WINTRUST_DATA as *mut _,
        )
    } == 0;
    let mut signer = String::new();
    if verified {
        // SAFETY: the state handle comes from the successful verify above and is closed
        // below; each pointer is checked before it is followed.
        unsafe {
            let prov = WTHelperProvDataFromStateData(data.hWVTStateData);
            let sgnr = if prov.is_null() {
                null_mut()
            } else {
                WTHelperGetProvSignerFromChain(prov, 0, 0, 0)
            };
            if !sgnr.is_null() && (*sgnr).csCertChain > 0 && !(*sgnr).pasCertChain.is_null() {
                let cert = (*(*sgnr).pasCertChain).pCert;
                let mut name = [0u16; 256];
                let n = CertGetNameStringW(
                    cert,
                    CERT_NAME_SIMPLE_DISPLAY_TYPE,
                    0,
                    null(),
                    name.as_mut_ptr(),
                    name.len() as u32,
                );
                if n > 1 {
                    signer = from_array(&name);
                }
            }
        }
    }
    data.dwStateAction = WTD_STATEACTION_CLOSE;
    // SAFETY: releases the state the verify call allocated.
    unsafe {
        WinVerifyTrust(
            null_mut(),
            &mut action,
            &mut data as *mut WINTRUST_DATA as *mut _,
        )
    };
    (verified, signer)
}
