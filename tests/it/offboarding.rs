//! Offboarding ends what the person asked for too: a waiting request and a running session
//! from workstation accounts linked to them are denied and revoked in the transaction that
//! disables them, the workstation told, each audited as the offboarding's doing.

use hourglass::model::requests::Grant;
use hourglass::service;

use crate::fixture::{Fleet, fresh_admin};
use crate::support::*;

async fn state_of(s: &TestServer, t: &hourglass::model::tenants::Tenant, id: &str) -> String {
    let (scope, id) = (
        hourglass::authz::system_scope(t.id),
        hourglass::ids::RequestId::parse(id).unwrap(),
    );
    let r = s
        .ctx()
        .db
        .read(move |r| hourglass::store::requests::get(r, &scope, id))
        .await
        .unwrap();
    r.state.as_str().to_string()
}

#[actix_web::test]
async fn disabling_a_person_ends_their_own_requests_and_sessions() {
    let s = TestServer::start().await;
    let f = Fleet::seed(&s).await;
    let p = fresh_admin(&s).await;
    // April asks from her own account on the workstation twice: one approved, one waiting
    // (a second workstation, the first holding her session).
    let (st, running) = f
        .acme_ws
        .ask("april", 30, "install the plotter driver")
        .await;
    assert_eq!(st, 201, "{running}");
    let running = running["id"].as_str().unwrap().to_string();
    let rid = hourglass::ids::RequestId::parse(&running).unwrap();
    service::requests::approve(
        s.ctx(),
        &p,
        &f.acme,
        rid,
        None,
        Grant::Once,
        &Default::default(),
    )
    .await
    .unwrap();
    let (_, token, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &f.acme,
        service::devices::NewToken { hours: 1, uses: 1 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    let second = crate::requests::Device::enroll_as(&s, &token, "ACME-LT-002").await;
    let (st, waiting) = second.ask("april", 30, "update the VPN client").await;
    assert_eq!(st, 201, "{waiting}");
    let waiting = waiting["id"].as_str().unwrap().to_string();
    // Someone else's request stays.
    let (_, other) = second.ask("bob", 30, "not april's").await;
    let other = other["id"].as_str().unwrap().to_string();
    for eu in service::requests::endpoint_users(s.ctx(), &p, &f.acme)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.account == "april")
    {
        let april = f.approver.id.to_string();
        service::requests::link_endpoint_user(
            s.ctx(),
            &p,
            &f.acme,
            &eu.id,
            Some(&april),
            &Default::default(),
        )
        .await
        .unwrap();
    }

    let acted = service::users::act_reporting(
        s.ctx(),
        &p,
        &f.acme,
        f.approver.id,
        service::users::Action::Disable,
        &Default::default(),
    )
    .await
    .unwrap();
    let said = acted.ended.unwrap().sentence();
    assert!(said.contains("2 own admin requests or sessions"), "{said}");
    assert_eq!(state_of(&s, &f.acme, &running).await, "revoked");
    assert_eq!(state_of(&s, &f.acme, &waiting).await, "denied");
    assert_eq!(state_of(&s, &f.acme, &other).await, "pending");
    let revoked = audit_entries(&s, "request_revoked").await;
    let denied = audit_entries(&s, "request_denied").await;
    for e in [&revoked[0], &denied[0]] {
        assert_eq!(
            e.actor_kind,
            hourglass::model::audit::ActorKind::System,
            "{e:?}"
        );
        assert!(e.details.contains("the person was disabled"), "{e:?}");
    }
    let disabled = audit_details(&s, "user_disabled").await;
    assert_eq!(disabled[0]["requests_ended"], 2, "{disabled:?}");
}
