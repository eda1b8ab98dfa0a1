//! End-to-end: the Workflows API (definitions validated, versioned, optimistically locked),
//! on SQLite and PostgreSQL.

mod common;

use common::{Backend, Harness};
use serde_json::{Value, json};

fn definition(message: &str) -> Value {
    json!({
        "nodes": [
            {"id": "start", "position": {"x": 0, "y": 0}, "data": {"node_type": "start", "config": {}}},
            {"id": "greet", "position": {"x": 0, "y": 150}, "data": {"node_type": "send_text", "config": {"message": message}}},
            {"id": "wait", "position": {"x": 0, "y": 300}, "data": {"node_type": "wait_for_response", "config": {"timeout_seconds": 600}}},
            {"id": "route", "position": {"x": 0, "y": 450}, "data": {"node_type": "decide", "config": {"conditions": [
                {"label": "timeout", "expression": "system.last_resume.reason === \"timeout\""},
                {"label": "answered", "expression": "true"}]}}},
            {"id": "human", "position": {"x": -100, "y": 600}, "data": {"node_type": "handoff", "config": {}}},
            {"id": "bye", "position": {"x": 100, "y": 600}, "data": {"node_type": "send_text", "config": {"message": "Thanks!"}}}
        ],
        "edges": [
            {"source": "start", "target": "greet", "label": "next"},
            {"source": "greet", "target": "wait", "label": "next"},
            {"source": "wait", "target": "route", "label": "next"},
            {"source": "route", "target": "human", "label": "timeout"},
            {"source": "route", "target": "bye", "label": "answered"}
        ]
    })
}

async fn workflows_are_validated_versioned_and_locked(backend: Backend) {
    let h = Harness::start(backend).await;

    // Precise 422s for broken graphs.
    let mut broken = definition("Hi");
    broken["edges"][4]["label"] = json!("whatever");
    broken["nodes"][1]["data"]["node_type"] = json!("teleport");
    let (status, err) = h
        .post(
            "/platform/v1/workflows",
            json!({"workflow": {"name": "Broken", "definition": broken}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    let errors = err["errors"].to_string();
    assert!(
        errors.contains("unknown node_type \\\"teleport\\\""),
        "{errors}"
    );
    assert!(
        errors.contains("edge labels must equal the condition labels"),
        "{errors}"
    );
    let (status, err) = h
        .post(
            "/platform/v1/workflows",
            json!({"workflow": {"name": "No graph"}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");

    let (status, created) = h
        .post("/platform/v1/workflows", json!({"workflow": {"name": "Order follow-up", "definition": definition("Hi {{context.contact.profile_name}}")}}))
        .await;
    assert_eq!(status, 201, "{created}");
    let w = created["data"].clone();
    let id = w["id"].as_str().expect("id").to_owned();
    assert_eq!(w["status"], "draft");
    assert_eq!(w["slug"], "order-follow-up");
    assert_eq!(w["lock_version"], 1);
    assert!(
        w.get("definition").is_none(),
        "GET /workflows/{{id}} has no definition"
    );

    let (_, def) = h
        .get(&format!("/platform/v1/workflows/{id}/definition"))
        .await;
    assert_eq!(def["data"]["lock_version"], 1);
    assert_eq!(
        def["data"]["definition"]["nodes"][1]["data"]["config"]["message"],
        "Hi {{context.contact.profile_name}}"
    );

    // An edit based on the current version goes through and makes version 2.
    let (status, updated) = h
        .send(reqwest::Method::PATCH, &format!("/platform/v1/workflows/{id}"),
            json!({"workflow": {"lock_version": 1, "definition": definition("Hello again"), "status": "active"}}))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["lock_version"], 2);
    assert_eq!(updated["data"]["status"], "active");
    // A stale one is refused and changes nothing.
    let (status, stale) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/workflows/{id}"),
            json!({"workflow": {"lock_version": 1, "definition": definition("Lost update")}}),
        )
        .await;
    assert_eq!(status, 409, "{stale}");
    let (_, def) = h
        .get(&format!("/platform/v1/workflows/{id}/definition"))
        .await;
    assert_eq!(def["data"]["lock_version"], 2);
    assert_eq!(
        def["data"]["definition"]["nodes"][1]["data"]["config"]["message"],
        "Hello again"
    );
    // The first version is kept for executions that started on it.
    let v1 = chasqui_store::workflows::definition(h.app().db(), &id, 1)
        .await
        .expect("read")
        .expect("version 1 kept");
    assert!(v1.contains("profile_name"));
    // Renaming does not need a new version.
    let (status, renamed) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/workflows/{id}"),
            json!({"workflow": {"name": "Follow-up"}}),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["data"]["lock_version"], 2);
    let (status, _) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/workflows/{id}"),
            json!({"workflow": {"status": "paused"}}),
        )
        .await;
    assert_eq!(status, 422);

    // Duplicate, list with filters, archive, tenancy.
    let (status, copy) = h
        .post(&format!("/platform/v1/workflows/{id}/duplicate"), json!({}))
        .await;
    assert_eq!(status, 201, "{copy}");
    assert_eq!(copy["data"]["status"], "draft");
    assert_eq!(copy["data"]["name"], "Follow-up (copy)");
    let (_, active) = h.get("/platform/v1/workflows?status=active").await;
    assert_eq!(active["data"].as_array().expect("data").len(), 1);
    assert_eq!(active["meta"]["total_count"], 1);
    let (_, named) = h.get("/platform/v1/workflows?name_contains=COPY").await;
    assert_eq!(named["data"].as_array().expect("data").len(), 1);
    let (status, archived) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/platform/v1/workflows/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{archived}");
    assert_eq!(archived["data"]["status"], "archived");
    let other = chasqui_app::projects::create(h.app(), "Other")
        .await
        .expect("project");
    let (status, _) = h
        .get_with_key(&format!("/platform/v1/workflows/{id}"), &other.api_key)
        .await;
    assert_eq!(status, 404);
}
both_backends!(workflows_are_validated_versioned_and_locked);

async fn triggers_and_environment(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let mut ids = Vec::new();
    for name in ["Sales", "Support"] {
        let (status, w) = h
            .post(
                "/platform/v1/workflows",
                json!({"workflow": {"name": name, "definition": definition("Hi")}}),
            )
            .await;
        assert_eq!(status, 201, "{w}");
        ids.push(w["data"]["id"].as_str().expect("id").to_owned());
    }
    let path = |id: &str| format!("/platform/v1/workflows/{id}/triggers");

    // One active inbound trigger per number.
    let (status, t) = h
        .post(
            &path(&ids[0]),
            json!({"trigger": {"trigger_type": "inbound_message", "phone_number_id": pnid}}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let first = t["data"]["id"].as_str().expect("id").to_owned();
    let (status, clash) = h
        .post(
            &path(&ids[1]),
            json!({"trigger": {"trigger_type": "inbound_message", "phone_number_id": pnid}}),
        )
        .await;
    assert_eq!(status, 409, "{clash}");
    // Inactive, the number is free for another workflow; re-activating the first clashes.
    let (status, off) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/triggers/{first}"),
            json!({"trigger": {"active": false}}),
        )
        .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["data"]["active"], false);
    let (status, _) = h
        .post(
            &path(&ids[1]),
            json!({"trigger": {"trigger_type": "inbound_message", "phone_number_id": pnid}}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/platform/v1/triggers/{first}"),
            json!({"trigger": {"active": true}}),
        )
        .await;
    assert_eq!(status, 409);

    // Validation.
    for (body, why) in [
        (
            json!({"trigger": {"trigger_type": "inbound_message"}}),
            "needs a number",
        ),
        (
            json!({"trigger": {"trigger_type": "inbound_message", "phone_number_id": "999"}}),
            "foreign number",
        ),
        (
            json!({"trigger": {"trigger_type": "api_call", "phone_number_id": pnid}}),
            "api_call takes no number",
        ),
        (json!({"trigger": {"trigger_type": "cron"}}), "unknown type"),
    ] {
        let (status, err) = h.post(&path(&ids[0]), body).await;
        assert_eq!(status, 422, "{why}: {err}");
    }
    let (status, _) = h
        .post(
            &path(&ids[0]),
            json!({"trigger": {"trigger_type": "api_call"}}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = h
        .post(
            &path(&ids[0]),
            json!({"trigger": {"trigger_type": "api_call"}}),
        )
        .await;
    assert_eq!(status, 409);
    let (_, list) = h.get(&path(&ids[0])).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 2);
    let (status, _) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/platform/v1/triggers/{first}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);

    // Environment variables: write-only values, encrypted at rest.
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            "/platform/v1/env_vars/CRM_TOKEN",
            json!({"value": "s3cr3t-value"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            "/platform/v1/env_vars/CRM_TOKEN",
            json!({"value": "rotated-value"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            "/platform/v1/env_vars/crm-token",
            json!({"value": "x"}),
        )
        .await;
    assert_eq!(status, 422);
    let (_, env) = h.get("/platform/v1/env_vars").await;
    assert_eq!(env["data"][0]["name"], "CRM_TOKEN");
    assert!(
        !env.to_string().contains("rotated-value"),
        "values are never returned"
    );
    let stored = chasqui_store::env_vars::list(h.app().db(), &h.project_id)
        .await
        .expect("list");
    assert!(
        !stored[0].value_enc.contains("rotated"),
        "encrypted at rest"
    );
    let resolved = chasqui_app::env_vars::resolve(h.app(), &h.project_id)
        .await
        .expect("resolve");
    assert_eq!(resolved["CRM_TOKEN"], "rotated-value");
    let (status, _) = h
        .send(
            reqwest::Method::DELETE,
            "/platform/v1/env_vars/CRM_TOKEN",
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
}
both_backends!(triggers_and_environment);
