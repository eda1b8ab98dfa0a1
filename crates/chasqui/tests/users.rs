//! End-to-end: dashboard users (login, session cookie, CSRF, roles, members API) and
//! conversation assignments with the list filters, on SQLite and PostgreSQL.

mod common;

use common::{Backend, CLOUD_PNID, Harness, login};
use reqwest::Method;
use serde_json::{Value, json};

async fn sessions_roles_and_members(backend: Backend) {
    let h = Harness::start(backend).await;

    // Wrong password and unknown address get the same 401.
    let (status, wrong) = login(&h, &h.owner_email, "not-the-password")
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 401);
    let (status, unknown) = login(&h, "nobody@example.com", "whatever-password")
        .await
        .err()
        .expect("refused");
    assert_eq!((status, &unknown), (401, &wrong));

    let owner = login(&h, &h.owner_email.to_uppercase(), &h.owner_password)
        .await
        .expect("owner logs in");
    let (status, session) = owner.get(&h, "/auth/session").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        session["data"]["projects"][0]["project_id"],
        h.project_id.as_str()
    );
    assert_eq!(session["data"]["projects"][0]["role"], "owner");

    // The session reads the Platform API of its project.
    let (status, members) = owner.get(&h, "/platform/v1/users").await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["meta"]["total_count"], 1);
    assert_eq!(members["data"][0]["email"], h.owner_email.as_str());
    assert_eq!(members["data"][0]["user_id"], owner.user_id.as_str());

    // Writes need the CSRF token.
    let invite = json!({"user": {"email": "agent@example.com", "name": "Agent", "role": "member"}});
    let (status, body) = owner
        .call(
            &h,
            Method::POST,
            "/platform/v1/users",
            Some(invite.clone()),
            false,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().expect("error").contains("CSRF"));
    let (status, wrong_token) = h
        .http
        .post(h.url("/platform/v1/users"))
        .header("cookie", &owner.cookie)
        .header("x-csrf-token", "0".repeat(owner.csrf.len()))
        .json(&invite)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("post");
    assert_eq!((status, wrong_token), (403, ()));
    let (_, still) = owner.get(&h, "/platform/v1/users").await;
    assert_eq!(still["meta"]["total_count"], 1, "nothing was added");

    let (status, agent) = owner.post(&h, "/platform/v1/users", invite.clone()).await;
    assert_eq!(status, 201, "{agent}");
    let agent_password = agent["data"]["password"].as_str().expect("generated");
    let agent_membership = agent["data"]["id"].as_str().expect("id").to_owned();
    let (status, dup) = owner.post(&h, "/platform/v1/users", invite).await;
    assert_eq!(status, 409, "{dup}");
    let (status, bad) = owner
        .post(
            &h,
            "/platform/v1/users",
            json!({"user": {"email": "x", "role": "boss"}}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");

    // A member cannot manage members; an admin cannot make owners.
    let agent_session = login(&h, "agent@example.com", agent_password)
        .await
        .expect("agent logs in");
    let (status, body) = agent_session
        .post(&h, "/platform/v1/users", json!({"email": "z@example.com"}))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, admin) = h
        .post(
            "/platform/v1/users",
            json!({"user": {"email": "admin@example.com", "role": "admin", "password": "correct horse battery"}}),
        )
        .await;
    assert_eq!(status, 201, "{admin}");
    assert!(
        admin["data"].get("password").is_none(),
        "given, not generated"
    );
    let admin_session = login(&h, "admin@example.com", "correct horse battery")
        .await
        .expect("admin logs in");
    let (status, body) = admin_session
        .post(
            &h,
            "/platform/v1/users",
            json!({"email": "boss@example.com", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // The last owner stays an owner.
    let (_, members) = owner.get(&h, "/platform/v1/users").await;
    let owner_membership = members["data"][0]["id"].as_str().expect("id").to_owned();
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("/platform/v1/users/{owner_membership}"),
            json!({"user": {"role": "member"}}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // A session cannot pick a project it does not belong to.
    let (status, body) = h
        .http
        .get(h.url("/platform/v1/users"))
        .header("cookie", &agent_session.cookie)
        .header("x-chasqui-project", "another-project")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|s| (s, ()))
        .expect("get");
    assert_eq!((status, body), (403, ()));

    // Removing a member ends its sessions' access to the project.
    let (status, _) = h
        .send(
            Method::DELETE,
            &format!("/platform/v1/users/{agent_membership}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = agent_session.get(&h, "/platform/v1/users").await;
    assert_eq!(status, 403);

    // Logout ends the session; the cookie no longer works.
    let (status, _) = owner
        .call(&h, Method::POST, "/auth/logout", None, false)
        .await;
    assert_eq!(status, 403, "logout needs the CSRF token too");
    let (status, _) = owner
        .call(&h, Method::POST, "/auth/logout", None, true)
        .await;
    assert_eq!(status, 204);
    let (status, body) = owner.get(&h, "/platform/v1/users").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = owner.get(&h, "/auth/session").await;
    assert_eq!(status, 401);

    // Ten failures in a row brake one address (429 with Retry-After), not others.
    for _ in 0..10 {
        let (status, _) = login(&h, "admin@example.com", "wrong-password-x")
            .await
            .err()
            .expect("refused");
        assert_eq!(status, 401);
    }
    let r = h
        .http
        .post(h.url("/auth/login"))
        .json(&json!({"email": "admin@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    login(&h, &h.owner_email, &h.owner_password)
        .await
        .expect("another address still logs in");

    // A form post (not JSON) cannot log a browser in.
    let r = h
        .http
        .post(h.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=owner%40chasqui.local&password=x")
        .send()
        .await
        .expect("form");
    assert_eq!(r.status().as_u16(), 400);
}
both_backends!(sessions_roles_and_members);

async fn assignments_and_filters(backend: Backend) {
    let h = Harness::start(backend).await;
    let owner = login(&h, &h.owner_email, &h.owner_password)
        .await
        .expect("owner");
    let (_, agent) = h
        .post(
            "/platform/v1/users",
            json!({"user": {"email": "agent@example.com", "role": "member"}}),
        )
        .await;
    let agent_id = agent["data"]["user_id"]
        .as_str()
        .expect("user id")
        .to_owned();

    h.customer_says(
        "5491100000001",
        "Ana",
        json!({"type": "text", "text": {"body": "hola"}}),
    )
    .await;
    h.customer_says(
        "5491100000002",
        "Beto",
        json!({"type": "text", "text": {"body": "hi"}}),
    )
    .await;
    h.settle().await;
    let (_, list) = h.get("/platform/v1/whatsapp/conversations").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2), "{list}");
    // By number, not by list order: the sandbox's default workflow answers each customer,
    // and whichever greeting goes out last puts that conversation first.
    let id_of = |number: &str| {
        list["data"]
            .as_array()
            .expect("list")
            .iter()
            .find(|c| c["phone_number"] == number)
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no conversation with {number}: {list}"))
    };
    let (ana, beto) = (&id_of("+5491100000001"), &id_of("+5491100000002"));

    // Unread counts are the session user's: one customer message each until read.
    let unread = |list: &Value, id: &str| {
        list["data"]
            .as_array()
            .expect("list")
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["unread_count"].clone())
            .unwrap_or(Value::Null)
    };
    let (_, mine) = owner.get(&h, "/platform/v1/whatsapp/conversations").await;
    assert_eq!(unread(&mine, ana), json!(1), "{mine}");
    assert!(unread(&list, ana).is_null(), "an API key has no read state");
    let (status, _) = owner
        .post(
            &h,
            &format!("/platform/v1/whatsapp/conversations/{ana}/read"),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = h
        .post(
            &format!("/platform/v1/whatsapp/conversations/{ana}/read"),
            json!({}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, mine) = owner.get(&h, "/platform/v1/whatsapp/conversations").await;
    assert_eq!(unread(&mine, ana), json!(0));
    assert_eq!(unread(&mine, beto), json!(1));
    // Usually within the second of the read: Meta's second-stamped message still counts.
    h.customer_says(
        "5491100000001",
        "Ana",
        json!({"type": "text", "text": {"body": "still there?"}}),
    )
    .await;
    h.settle().await;
    let (_, mine) = owner.get(&h, "/platform/v1/whatsapp/conversations").await;
    assert_eq!(unread(&mine, ana), json!(1));
    // Search by name (any case) or by digits of the number.
    for (q, want) in [
        ("ana", ana),
        ("BET", beto),
        ("000002", beto),
        ("+54 9 11 0000 0001", ana),
    ] {
        let (status, found) = h
            .get(&format!(
                "/platform/v1/whatsapp/conversations?search={}",
                q.replace(' ', "%20").replace('+', "%2B")
            ))
            .await;
        assert_eq!(status, 200, "{found}");
        let got: Vec<&str> = found["data"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["id"].as_str().expect("id"))
            .collect();
        assert_eq!(got, vec![want.as_str()], "{q}");
    }
    let base = format!("/platform/v1/whatsapp/conversations/{ana}/assignments");

    // Precise errors: unknown user, not a member, unknown conversation, bad field.
    let (status, body) = owner
        .post(
            &h,
            &base,
            json!({"conversation_assignment": {"user_id": "nobody"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = owner
        .post(
            &h,
            "/platform/v1/whatsapp/conversations/missing/assignments",
            json!({"conversation_assignment": {"user_id": agent_id}}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = owner
        .post(
            &h,
            &base,
            json!({"conversation_assignment": {"user_id": agent_id, "color": "red"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // The owner assigns Ana's conversation to the agent, then to themself.
    let (status, first) = owner
        .post(
            &h,
            &base,
            json!({"conversation_assignment": {"user_id": agent_id, "notes": "VIP"}}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["data"]["created_by_user_id"], owner.user_id.as_str());
    assert_eq!(first["data"]["active"], true);
    let first_id = first["data"]["id"].as_str().expect("id").to_owned();
    let (_, conversation) = h
        .get(&format!("/platform/v1/whatsapp/conversations/{ana}"))
        .await;
    assert_eq!(conversation["data"]["assigned_user_id"], agent_id.as_str());

    let filtered = |q: String| {
        let h = &h;
        async move {
            let (status, body) = h
                .get(&format!("/platform/v1/whatsapp/conversations?{q}"))
                .await;
            assert_eq!(status, 200, "{body}");
            body["data"]
                .as_array()
                .expect("list")
                .iter()
                .map(|c| c["id"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filtered(format!("assigned_user_id={agent_id}")).await,
        vec![ana.clone()]
    );
    assert_eq!(filtered("unassigned=true".into()).await, vec![beto.clone()]);
    let (status, body) = h
        .get(&format!(
            "/platform/v1/whatsapp/conversations?assigned_user_id={agent_id}&unassigned=true"
        ))
        .await;
    assert_eq!(status, 422, "{body}");
    // The proxy's stored-conversation list filters the same way (Ana wrote to the sandbox number).
    let (status, body) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{}/conversations?assigned_user_id={agent_id}",
            h.sandbox_pnid
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().expect("list").len(), 1, "{body}");
    let (status, body) = h
        .get(&format!(
            "/meta/whatsapp/v24.0/{CLOUD_PNID}/conversations?assigned_user_id={agent_id}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().expect("list").len(), 0, "{body}");

    let (status, second) = owner
        .post(
            &h,
            &base,
            json!({"conversation_assignment": {"user_id": owner.user_id}}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let second_id = second["data"]["id"].as_str().expect("id").to_owned();
    let (_, all) = h.get(&base).await;
    assert_eq!(all["meta"]["total_count"], 2, "{all}");
    let (_, active) = h.get(&format!("{base}?active=true")).await;
    assert_eq!(active["meta"]["total_count"], 1);
    assert_eq!(active["data"][0]["id"], second_id.as_str());
    let (_, old) = h.get(&format!("{base}/{first_id}")).await;
    assert_eq!(old["data"]["active"], false);
    assert_eq!(old["data"]["notes"], "VIP");
    assert!(
        filtered(format!("assigned_user_id={agent_id}"))
            .await
            .is_empty()
    );

    // Reassign by PATCH, clear the notes, then unassign.
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("{base}/{second_id}"),
            json!({"conversation_assignment": {"user_id": agent_id, "notes": "call back"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user_id"], agent_id.as_str());
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("{base}/{second_id}"),
            json!({"conversation_assignment": {"active": false, "notes": null}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["active"], false);
    assert!(body["data"]["notes"].is_null());
    let mut unassigned = filtered("unassigned=true".into()).await;
    unassigned.sort();
    let mut both = vec![ana.clone(), beto.clone()];
    both.sort();
    assert_eq!(unassigned, both);
    let (status, body) = h
        .send(
            Method::PATCH,
            &format!("{base}/{second_id}"),
            json!({"conversation_assignment": {"user_id": "stranger"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // Concurrent assigners leave exactly one active assignment.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (http, url, key) = (h.http.clone(), h.url(&base), h.key.clone());
            let user = if i % 2 == 0 {
                agent_id.clone()
            } else {
                owner.user_id.clone()
            };
            tokio::spawn(async move {
                http.post(url)
                    .header("x-api-key", key)
                    .json(&json!({"user_id": user}))
                    .send()
                    .await
                    .expect("post")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let status = t.await.expect("task");
        assert!(status == 201 || status == 409, "{status}");
        created += usize::from(status == 201);
    }
    assert!(created >= 1);
    let (_, active) = h.get(&format!("{base}?active=true")).await;
    assert_eq!(active["meta"]["total_count"], 1, "{active}");
    let (_, all) = h.get(&format!("{base}?per_page=100")).await;
    assert_eq!(all["meta"]["total_count"], 2 + created, "{all}");

    // Another project sees none of it.
    let other = chasqui_app::projects::create(h.app(), "Other")
        .await
        .expect("project");
    let (status, _) = h.get_with_key(&base, &other.api_key).await;
    assert_eq!(status, 404);
    let (status, _) = h
        .get_with_key(&format!("{base}/{first_id}"), &other.api_key)
        .await;
    assert_eq!(status, 404);
}
both_backends!(assignments_and_filters);

async fn failure_notices_are_emailed_to_members(backend: Backend) {
    use chasqui::config::ConfigArgs;
    use chasqui_core::{Clock, ManualClock, SystemClock};
    use common::{SmtpSink, wait_until};
    use std::sync::atomic::Ordering;

    let smtp = SmtpSink::start().await;
    smtp.refuse_next.store(1, Ordering::SeqCst);
    let clock = ManualClock::new(SystemClock.now());
    let h = Harness::start_with_clock(
        backend,
        ConfigArgs {
            smtp_url: Some(smtp.url()),
            smtp_from: Some("Chasqui Alerts <alerts@example.com>".into()),
            ..Default::default()
        },
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    let (status, body) = h
        .post(
            "/platform/v1/users",
            json!({"user": {"email": "agent@example.com", "role": "member"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // A workflow whose webhook step cannot connect fails every run.
    let (status, created) = h
        .post(
            "/platform/v1/workflows",
            json!({"workflow": {"name": "Broken CRM", "status": "active", "definition": {
                "nodes": [
                    {"id": "start", "position": {"x": 0, "y": 0}, "data": {"node_type": "start", "config": {}}},
                    {"id": "crm", "position": {"x": 0, "y": 100}, "data": {"node_type": "webhook", "config": {"url": "http://127.0.0.1:1/crm", "method": "GET"}}}
                ],
                "edges": [{"source": "start", "target": "crm", "label": "next"}]
            }}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let wid = created["data"]["id"].as_str().expect("id").to_owned();
    let (status, body) = h
        .post(
            &format!("/platform/v1/workflows/{wid}/triggers"),
            json!({"trigger": {"trigger_type": "api_call"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let start_and_fail = |n: usize| {
        let (h, wid) = (&h, &wid);
        async move {
            let (status, body) = h
                .post(
                    &format!("/platform/v1/workflows/{wid}/executions"),
                    json!({}),
                )
                .await;
            assert_eq!(status, 202, "{body}");
            wait_until("the runs fail", || async {
                let (_, list) = h
                    .get(&format!(
                        "/platform/v1/workflows/{wid}/executions?status=failed"
                    ))
                    .await;
                list["meta"]["total_count"] == n
            })
            .await;
        }
    };
    start_and_fail(1).await;
    start_and_fail(2).await;

    let notices = || async {
        let (status, body) = h.get("/platform/v1/notifications").await;
        assert_eq!(status, 200, "{body}");
        body["data"]
            .as_array()
            .expect("list")
            .iter()
            .filter(|n| n["kind"] == "workflow.execution.failed")
            .cloned()
            .collect::<Vec<_>>()
    };
    // Two failures within 15 minutes make one notice.
    let list = notices().await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["details"]["workflow_id"], wid.as_str());

    // The SMTP server refuses the first attempt: the error is recorded, nothing is lost.
    wait_until("the refused attempt is recorded", || async {
        notices().await[0]["email_error"]
            .as_str()
            .is_some_and(|e| e.contains("451") || e.to_lowercase().contains("try again"))
    })
    .await;
    assert!(smtp.mails().is_empty());
    assert!(notices().await[0]["emailed_at"].is_null());

    // After the retry delay the notice is emailed once to every member.
    clock.advance_millis(61_000);
    wait_until("the notice is emailed", || async {
        !notices().await[0]["emailed_at"].is_null()
    })
    .await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mut to = mails[0].to.clone();
    to.sort();
    assert_eq!(
        to,
        vec![
            "<agent@example.com>".to_owned(),
            format!("<{}>", h.owner_email)
        ]
    );
    assert!(
        mails[0].from.contains("alerts@example.com"),
        "{:?}",
        mails[0]
    );
    assert!(mails[0].data.contains("[Chasqui]"), "{}", mails[0].data);
    assert!(mails[0].data.contains(&wid), "{}", mails[0].data);
    assert!(notices().await[0]["email_error"].is_null());

    // A failure after the window makes a new notice and a new email.
    clock.advance_millis(15 * 60_000);
    start_and_fail(3).await;
    wait_until("the second notice is emailed", || async {
        smtp.mails().len() == 2
    })
    .await;
    assert_eq!(notices().await.len(), 2);
}
both_backends!(failure_notices_are_emailed_to_members);
