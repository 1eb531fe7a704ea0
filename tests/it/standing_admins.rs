//! No standing administrators: the administrators an agent found at enrollment are shown per
//! workstation and per tenant, and a tenant's "remove standing administrators" setting has the
//! agent take them out — except the named break-glass account — keep them out, and report
//! each removal, audited per device.

use crate::agent::{eventually, sudoers, tenant_and_admin, throwaway_root};
use crate::support::*;

#[actix_web::test]
async fn standing_administrators_are_shown_and_removed_except_the_break_glass_account() {
    let s = TestServer::start().await;
    let (_, token, mut admin) = tenant_and_admin(&s).await;
    // The workstation has two administrators before the agent arrives: alice and breakglass.
    let root = throwaway_root();
    crate::journeys::add_local_user(root.path(), "breakglass", 1005);
    for (file, from, to) in [
        ("etc/group", "sudo:x:27:alice", "sudo:x:27:alice,breakglass"),
        ("etc/gshadow", "sudo:*::alice", "sudo:*::alice,breakglass"),
    ] {
        let p = root.path().join(file);
        let t = std::fs::read_to_string(&p).unwrap().replace(from, to);
        std::fs::write(&p, t).unwrap();
    }
    let mut ws = crate::agent::enroll_in(&s, &token, root);
    ws.start();
    let r = ws.root.path().to_path_buf();
    let mut page = String::new();
    for _ in 0..100 {
        service_sweep(&s).await;
        page = admin.get("/t/acme/devices").await.text().await.unwrap();
        if page.contains("2 standing administrators") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        page.contains("2 standing administrators on 1 workstation"),
        "{page}"
    );

    // The tenant turns removal on, keeping the break-glass account.
    let r2 = admin
        .post(
            "/t/acme/settings",
            &[
                ("jit_enabled", "true"),
                ("jit_justification_required", "true"),
                ("remove_standing_admins", "true"),
                ("standing_admin_exceptions", "breakglass"),
            ],
        )
        .await;
    assert!(
        r2.status().is_success() || r2.status().is_redirection(),
        "{}",
        r2.status()
    );
    assert!(
        eventually(20, || !sudoers(&r).contains(&"alice".to_string())).await,
        "alice lost her standing rights"
    );
    assert!(
        sudoers(&r).contains(&"breakglass".to_string()),
        "the exception stays"
    );
    let mut removed = Vec::new();
    for _ in 0..100 {
        removed = audit_details(&s, "standing_admin_removed").await;
        if !removed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["data"]["account"], "alice");

    // Kept out: alice added back behind the agent's back is removed again.
    for file in ["etc/group", "etc/gshadow"] {
        let p = r.join(file);
        let t = std::fs::read_to_string(&p)
            .unwrap()
            .replace("sudo:x:27:breakglass", "sudo:x:27:breakglass,alice")
            .replace("sudo:*::breakglass", "sudo:*::breakglass,alice");
        std::fs::write(&p, t).unwrap();
    }
    assert!(sudoers(&r).contains(&"alice".to_string()));
    assert!(
        eventually(20, || !sudoers(&r).contains(&"alice".to_string())).await,
        "alice is kept out"
    );
    ws.kill();
}

async fn service_sweep(s: &TestServer) {
    hourglass::service::jobs::sweep(s.ctx(), s.clock.now())
        .await
        .unwrap();
}
