//! Starting an allowed program elevated in the caller's own session (`run-elevated` on
//! Windows): an S4U token for the caller with the Administrators group added.

use std::ptr::{null, null_mut};

use windows_sys::Win32::Security::{
    CreateWellKnownSid, PSID, SECURITY_MAX_SID_SIZE, WinBuiltinAdministratorsSid,
};

use super::{last_error, wide};
use windows_sys::Win32::Foundation::{LUID, WAIT_OBJECT_0};
use windows_sys::Win32::Security::Authentication::Identity::{
    LsaDeregisterLogonProcess, LsaFreeReturnBuffer, LsaLogonUser, LsaLookupAuthenticationPackage,
    LsaRegisterLogonProcess, MSV1_0_S4U_LOGON, MsV1_0S4ULogon, SECURITY_LOGON_TYPE,
};
use windows_sys::Win32::Security::{
    AllocateLocallyUniqueId, DuplicateTokenEx, QUOTA_LIMITS, SID_AND_ATTRIBUTES,
    SecurityImpersonation, SetTokenInformation, TOKEN_ALL_ACCESS, TOKEN_SOURCE, TokenPrimary,
    TokenSessionId,
};
use windows_sys::Win32::System::Environment::{CreateEnvironmentBlock, DestroyEnvironmentBlock};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::SystemServices::{
    SE_GROUP_ENABLED, SE_GROUP_ENABLED_BY_DEFAULT, SE_GROUP_LOGON_ID, SE_GROUP_MANDATORY,
};
use windows_sys::Win32::System::Threading::{
    CREATE_NEW_CONSOLE, CREATE_UNICODE_ENVIRONMENT, CreateProcessAsUserW, GetExitCodeProcess,
    PROCESS_INFORMATION, STARTUPINFOW, TerminateProcess, WaitForSingleObject,
};

use crate::agent::windows::WinError;

/// A handle closed when dropped.
pub(super) struct Owned(windows_sys::Win32::Foundation::HANDLE);

impl Drop for Owned {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle was opened by us and is closed once.
            unsafe { windows_sys::Win32::Foundation::CloseHandle(self.0) };
        }
    }
}

/// An ANSI LSA_STRING over `s`, which must outlive it.
fn lsa_string(s: &[u8]) -> windows_sys::Win32::Security::Authentication::Identity::LSA_STRING {
    windows_sys::Win32::Security::Authentication::Identity::LSA_STRING {
        Length: s.len() as u16,
        MaximumLength: s.len() as u16,
        Buffer: s.as_ptr() as *mut u8,
    }
}

fn nt(call: &'static str, status: i32) -> Result<(), WinError> {
    use windows_sys::Win32::Security::Authentication::Identity::LsaNtStatusToWinError;
    if status == 0 {
        return Ok(());
    }
    // SAFETY: a plain value.
    let code = unsafe { LsaNtStatusToWinError(status) };
    Err(WinError::from_code(call, code))
}

/// TOKEN_GROUPS with room for the two groups added at logon.
#[repr(C)]
struct TwoGroups {
    count: u32,
    groups: [windows_sys::Win32::Security::SID_AND_ATTRIBUTES; 2],
}

/// Starts `program` for the user behind the pipe client `pid`, in that client's session and
/// on its desktop, and waits for it (ending it if `gone` turns true); returns its exit code.
///
/// The token is the user's own, from an S4U logon (no password needed, LocalSystem holds the
/// TCB privilege it takes) with two groups added: Administrators, and the logon SID of the
/// client's session so the program may use that desktop. The user's standing membership
/// does not change. A network-type logon, so UAC does not filter the added group. Its limits:
/// local accounts only (MSV1_0), no network credentials (shares the program opens see an
/// anonymous user), and the user's profile is not loaded for it.
pub fn launch_elevated(
    pid: u32,
    program: &std::path::Path,
    args: &[String],
    cwd: &std::path::Path,
    gone: &std::sync::atomic::AtomicBool,
) -> Result<i32, WinError> {
    let mut session = 0u32;
    // SAFETY: plain values.
    if unsafe { ProcessIdToSessionId(pid, &mut session) } == 0 {
        return Err(last_error("ProcessIdToSessionId"));
    }
    let client = ClientToken::of(pid)?;
    let (user, domain) = client.account()?;
    let logon_sid = client.logon_sid()?;
    let token = s4u_token(&user, &domain, &logon_sid)?;
    let primary = primary_in_session(&token, session)?;
    let process = start_process(&primary, program, args, cwd)?;
    wait(&process, gone)
}

// Long on purpose: one sequence of Win32 calls whose buffers must outlive the call; split, their lifetimes would be harder to see.
/// The S4U logon: the user's own token, with Administrators and the session's logon SID added.
fn s4u_token(user: &str, domain: &str, logon_sid: &[u8]) -> Result<Owned, WinError> {
    let mut admins = [0u8; SECURITY_MAX_SID_SIZE as usize];
    let mut size = SECURITY_MAX_SID_SIZE;
    // SAFETY: `admins` has room for any SID.
    if unsafe {
        CreateWellKnownSid(
            WinBuiltinAdministratorsSid,
            null_mut(),
            admins.as_mut_ptr() as PSID,
            &mut size,
        )
    } == 0
    {
        return Err(last_error("CreateWellKnownSid"));
    }

    let name = b"Hourglass";
    let mut lsa = null_mut();
    let mut mode = 0u32;
    // SAFETY: the name outlives the call; `lsa` receives a handle deregistered below.
    nt("LsaRegisterLogonProcess", unsafe {
        LsaRegisterLogonProcess(&lsa_string(name), &mut lsa, &mut mode)
    })?;
    let logged_on = (|| {
        let package_name = b"MICROSOFT_AUTHENTICATION_PACKAGE_V1_0";
        let mut package = 0u32;
        // SAFETY: the name outlives the call.
        nt("LsaLookupAuthenticationPackage", unsafe {
            LsaLookupAuthenticationPackage(lsa, &lsa_string(package_name), &mut package)
        })?;
        let (buf, bytes) = s4u_logon(user, domain);
        let attrs = (SE_GROUP_ENABLED | SE_GROUP_ENABLED_BY_DEFAULT | SE_GROUP_MANDATORY) as u32;
        let groups = TwoGroups {
            count: 2,
            groups: [
                SID_AND_ATTRIBUTES {
                    Sid: admins.as_mut_ptr() as PSID,
                    Attributes: attrs,
                },
                SID_AND_ATTRIBUTES {
                    Sid: logon_sid.as_ptr() as PSID,
                    Attributes: attrs | SE_GROUP_LOGON_ID as u32,
                },
            ],
        };
        let mut source = TOKEN_SOURCE {
            SourceName: b"Hourglas".map(|b| b as i8),
            SourceIdentifier: LUID {
                LowPart: 0,
                HighPart: 0,
            },
        };
        // SAFETY: writes one LUID.
        unsafe { AllocateLocallyUniqueId(&mut source.SourceIdentifier) };
        let (mut profile, mut profile_len) = (null_mut(), 0u32);
        let mut logon_id = LUID {
            LowPart: 0,
            HighPart: 0,
        };
        let mut token = null_mut();
        // SAFETY: QUOTA_LIMITS is plain data Windows fills.
        let mut quotas: QUOTA_LIMITS = unsafe { std::mem::zeroed() };
        let mut sub = 0i32;
        // SAFETY: every pointer is to a live local above; `buf` is `bytes` long.
        let status = unsafe {
            LsaLogonUser(
                lsa,
                &lsa_string(name),
                SECURITY_LOGON_TYPE(3), // Network: not filtered by UAC
                package,
                buf.as_ptr() as *const _,
                bytes as u32,
                &groups as *const TwoGroups as *const _,
                &source,
                &mut profile,
                &mut profile_len,
                &mut logon_id,
                &mut token,
                &mut quotas,
                &mut sub,
            )
        };
        if !profile.is_null() {
            // SAFETY: allocated by LSA for us.
            unsafe { LsaFreeReturnBuffer(profile) };
        }
        nt("LsaLogonUser", status)?;
        Ok(Owned(token))
    })();
    // SAFETY: registered above.
    unsafe { LsaDeregisterLogonProcess(lsa) };
    logged_on
}

/// MSV1_0_S4U_LOGON followed by the two strings it points to, and its length in bytes. The
/// pointers point into the vector's heap buffer, which stays put when the vector is moved.
fn s4u_logon(user: &str, domain: &str) -> (Vec<u64>, usize) {
    // u64s keep the header aligned.
    let (u, d): (Vec<u16>, Vec<u16>) = (
        user.encode_utf16().collect(),
        domain.encode_utf16().collect(),
    );
    let head = std::mem::size_of::<MSV1_0_S4U_LOGON>();
    let bytes = head + 2 * (u.len() + d.len());
    let mut buf = vec![0u64; bytes.div_ceil(8)];
    let base = buf.as_mut_ptr() as *mut u8;
    // SAFETY: the buffer holds the header and both strings; the pointers written into the
    // header point inside the same buffer, which outlives LsaLogonUser.
    unsafe {
        let us = base.add(head) as *mut u16;
        let ds = us.add(u.len());
        std::ptr::copy_nonoverlapping(u.as_ptr(), us, u.len());
        std::ptr::copy_nonoverlapping(d.as_ptr(), ds, d.len());
        let logon = base as *mut MSV1_0_S4U_LOGON;
        (*logon).MessageType = MsV1_0S4ULogon;
        (*logon).Flags = 0;
        (*logon).UserPrincipalName.Length = (u.len() * 2) as u16;
        (*logon).UserPrincipalName.MaximumLength = (u.len() * 2) as u16;
        (*logon).UserPrincipalName.Buffer = us;
        (*logon).DomainName.Length = (d.len() * 2) as u16;
        (*logon).DomainName.MaximumLength = (d.len() * 2) as u16;
        (*logon).DomainName.Buffer = ds;
    }
    (buf, bytes)
}

/// A primary token for the session the program is to appear in.
fn primary_in_session(token: &Owned, session: u32) -> Result<Owned, WinError> {
    let mut primary = Owned(null_mut());
    // SAFETY: `token` is valid; `primary` receives a new handle.
    if unsafe {
        DuplicateTokenEx(
            token.0,
            TOKEN_ALL_ACCESS,
            null(),
            SecurityImpersonation,
            TokenPrimary,
            &mut primary.0,
        )
    } == 0
    {
        return Err(last_error("DuplicateTokenEx"));
    }
    // SAFETY: a u32 session id, as TokenSessionId expects.
    if unsafe {
        SetTokenInformation(
            primary.0,
            TokenSessionId,
            &session as *const u32 as *const _,
            4,
        )
    } == 0
    {
        return Err(last_error("SetTokenInformation"));
    }
    Ok(primary)
}

/// Starts the program on the session's desktop with a console of its own; its handle.
fn start_process(
    primary: &Owned,
    program: &std::path::Path,
    args: &[String],
    cwd: &std::path::Path,
) -> Result<Owned, WinError> {
    let mut env = null_mut();
    // SAFETY: `env` receives a block destroyed below.
    if unsafe { CreateEnvironmentBlock(&mut env, primary.0, 0) } == 0 {
        return Err(last_error("CreateEnvironmentBlock"));
    }
    let app = wide(&program.display().to_string());
    let mut line = wide(&crate::agent::windows::command_line(
        &program.display().to_string(),
        args,
    ));
    let dir = wide(&cwd.display().to_string());
    let mut desktop = wide(r"winsta0\default");
    // SAFETY: STARTUPINFOW is plain data; zero is "nothing set".
    let mut si: STARTUPINFOW = unsafe { std::mem::zeroed() };
    si.cb = std::mem::size_of::<STARTUPINFOW>() as u32;
    si.lpDesktop = desktop.as_mut_ptr();
    // SAFETY: as above.
    let mut pi: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: every buffer is NUL-terminated and outlives the call; `line` is writable.
    let ok = unsafe {
        CreateProcessAsUserW(
            primary.0,
            app.as_ptr(),
            line.as_mut_ptr(),
            null(),
            null(),
            0,
            CREATE_UNICODE_ENVIRONMENT | CREATE_NEW_CONSOLE,
            env,
            dir.as_ptr(),
            &si,
            &mut pi,
        )
    };
    // SAFETY: created above.
    unsafe { DestroyEnvironmentBlock(env) };
    if ok == 0 {
        return Err(last_error("CreateProcessAsUserW"));
    }
    let (process, _thread) = (Owned(pi.hProcess), Owned(pi.hThread));
    Ok(process)
}

/// Waits for the program, ending it if the person who asked has gone away; its exit code.
fn wait(process: &Owned, gone: &std::sync::atomic::AtomicBool) -> Result<i32, WinError> {
    // SAFETY: `process` is a live process handle in every call below.
    while unsafe { WaitForSingleObject(process.0, 200) } != WAIT_OBJECT_0 {
        if gone.load(std::sync::atomic::Ordering::Relaxed) {
            unsafe { TerminateProcess(process.0, 1) };
        }
    }
    let mut code = 0u32;
    // SAFETY: as above.
    if unsafe { GetExitCodeProcess(process.0, &mut code) } == 0 {
        return Err(last_error("GetExitCodeProcess"));
    }
    Ok(code as i32)
}

/// The token of a pipe client's process, for its account and its session's logon SID.
pub(super) struct ClientToken(Owned);

impl ClientToken {
    pub(super) fn of(pid: u32) -> Result<Self, WinError> {
        use windows_sys::Win32::Security::TOKEN_QUERY;
        use windows_sys::Win32::System::Threading::{
            OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
        };
        // SAFETY: plain values; the handle is owned below.
        let process = Owned(unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) });
        if process.0.is_null() {
            return Err(last_error("OpenProcess"));
        }
        let mut token = null_mut();
        // SAFETY: `process` is valid; `token` receives a handle owned below.
        if unsafe { OpenProcessToken(process.0, TOKEN_QUERY, &mut token) } == 0 {
            return Err(last_error("OpenProcessToken"));
        }
        Ok(ClientToken(Owned(token)))
    }

    /// GetTokenInformation into a buffer of u64s (aligned for the structures it holds).
    fn info(
        &self,
        class: windows_sys::Win32::Security::TOKEN_INFORMATION_CLASS,
    ) -> Result<Vec<u64>, WinError> {
        use windows_sys::Win32::Security::GetTokenInformation;
        let mut buf = vec![0u64; 512];
        let mut len = 0u32;
        // SAFETY: the buffer's size in bytes is passed; the token is valid.
        let ok = unsafe {
            GetTokenInformation(
                self.0.0,
                class,
                buf.as_mut_ptr() as *mut _,
                (buf.len() * 8) as u32,
                &mut len,
            )
        };
        if ok == 0 {
            return Err(last_error("GetTokenInformation"));
        }
        Ok(buf)
    }

    /// The account's name and domain (the computer's name for a local account).
    pub(super) fn account(&self) -> Result<(String, String), WinError> {
        use windows_sys::Win32::Security::{TOKEN_USER, TokenUser};
        let buf = self.info(TokenUser)?;
        // SAFETY: GetTokenInformation(TokenUser) put a TOKEN_USER at the buffer's start.
        let sid = unsafe { (*(buf.as_ptr() as *const TOKEN_USER)).User.Sid };
        // SAFETY: `sid` points into `buf`, alive for the call.
        unsafe { super::account_of(sid) }
    }

    /// A copy of the logon SID of the session the client runs in.
    fn logon_sid(&self) -> Result<Vec<u8>, WinError> {
        use windows_sys::Win32::Security::{
            GetLengthSid, SID_AND_ATTRIBUTES, TOKEN_GROUPS, TokenGroups,
        };
        use windows_sys::Win32::System::SystemServices::SE_GROUP_LOGON_ID;
        let buf = self.info(TokenGroups)?;
        let groups = buf.as_ptr() as *const TOKEN_GROUPS;
        // SAFETY: GetTokenInformation(TokenGroups) put a TOKEN_GROUPS with GroupCount
        // entries at the buffer's start; each SID points into the same buffer.
        unsafe {
            let first = std::ptr::addr_of!((*groups).Groups) as *const SID_AND_ATTRIBUTES;
            for i in 0..(*groups).GroupCount as usize {
                let g = &*first.add(i);
                if g.Attributes & SE_GROUP_LOGON_ID as u32 == SE_GROUP_LOGON_ID as u32 {
                    let len = GetLengthSid(g.Sid) as usize;
                    return Ok(std::slice::from_raw_parts(g.Sid as *const u8, len).to_vec());
                }
            }
        }
        // ERROR_NO_SUCH_LOGON_SESSION
        Err(WinError::from_code("GetTokenInformation(logon SID)", 1312))
    }
}
