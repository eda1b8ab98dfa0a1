//! End-to-end: media, templates, business profile and phone numbers through the Meta proxy
//! against the embedded sandbox, on SQLite and PostgreSQL.

mod common;

use common::{Backend, Harness, wait_until};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89,
];

async fn upload(h: &Harness, pnid: &str, form: Form) -> (u16, Value) {
    let r = h
        .http
        .post(h.url(&format!("/meta/whatsapp/v24.0/{pnid}/media")))
        .header("x-api-key", &h.key)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn png_form(bytes: Vec<u8>, mime: &str) -> Form {
    // As the kapso SDK sends it: the type field first, the file part untyped.
    Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", mime.to_owned())
        .part(
            "file",
            Part::bytes(bytes)
                .file_name("photo.png")
                .mime_str("application/octet-stream")
                .expect("mime"),
        )
}

async fn media_round_trip(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();

    // Meta's limits are checked before anything reaches Meta.
    let (status, err) = upload(&h, &pnid, png_form(PNG.to_vec(), "image/gif")).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], 100);
    let (status, err) = upload(
        &h,
        &pnid,
        png_form(vec![0u8; 5 * 1024 * 1024 + 1], "image/png"),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["error_data"]["details"]
            .as_str()
            .expect("details")
            .contains("at most")
    );
    let no_product = Form::new()
        .text("type", "image/png")
        .part("file", Part::bytes(PNG.to_vec()));
    let (status, _) = upload(&h, &pnid, no_product).await;
    assert_eq!(status, 400);

    let (status, uploaded) = upload(&h, &pnid, png_form(PNG.to_vec(), "image/png")).await;
    assert_eq!(status, 200, "{uploaded}");
    let media_id = uploaded["id"].as_str().expect("media id").to_owned();

    // Metadata in Meta's shape plus a signed download URL that needs no token.
    let (status, info) = h.get(&format!("/meta/whatsapp/v24.0/{media_id}")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["id"], media_id.as_str());
    assert_eq!(info["mime_type"], "image/png");
    assert_eq!(info["file_size"], PNG.len());
    assert!(info["sha256"].as_str().is_some());
    let url = info["download_url"].as_str().expect("download_url");
    let bytes = reqwest::get(url)
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.as_ref(), PNG);

    // Send it by id; the customer's phone (the sandbox) receives that media.
    h.customer_says(
        "15550001234",
        "Ana",
        json!({"type": "text", "text": {"body": "send the photo"}}),
    )
    .await;
    h.settle().await;
    let body = json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "image",
        "image": {"id": media_id, "caption": "Here it is"}});
    let (status, sent) = h
        .post(&format!("/meta/whatsapp/v24.0/{pnid}/messages"), body)
        .await;
    assert_eq!(status, 200, "{sent}");
    let (_, outbox) = h
        .get(&format!("/sandbox/v1/phone_numbers/{pnid}/outbox"))
        .await;
    assert_eq!(outbox["data"][0]["image"]["id"], media_id.as_str());
    // The stored outbound message links to the file, so its media_url serves it.
    let wamid = sent["messages"][0]["id"].as_str().expect("wamid");
    let (_, m) = h
        .get(&format!("/meta/whatsapp/v24.0/{pnid}/messages/{wamid}"))
        .await;
    let media_url = m["kapso"]["media_url"].as_str().expect("media_url");
    let served = reqwest::get(media_url).await.expect("media_url");
    assert_eq!(served.bytes().await.expect("bytes").as_ref(), PNG);
    let on_phone = h
        .http
        .get(h.url(&format!("/sandbox/graph/download/{media_id}")))
        .send()
        .await
        .expect("phone download");
    assert_eq!(on_phone.bytes().await.expect("bytes").as_ref(), PNG);

    // Another project cannot see it; the wrong id shape is refused.
    let other = chasqui_app::projects::create(h.app(), "Other")
        .await
        .expect("project");
    let (status, _) = h
        .get_with_key(&format!("/meta/whatsapp/v24.0/{media_id}"), &other.api_key)
        .await;
    assert_eq!(status, 404);
    let (status, _) = h.get("/meta/whatsapp/v24.0/not-a-number").await;
    assert_eq!(status, 400);

    // Delete: Meta forgets it and so does Chasqui.
    let (status, deleted) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/meta/whatsapp/v24.0/{media_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["success"], true);
    let (status, _) = h.get(&format!("/meta/whatsapp/v24.0/{media_id}")).await;
    assert_eq!(status, 404);
    let gone = reqwest::get(url).await.expect("download");
    assert_eq!(gone.status(), 404);
}
both_backends!(media_round_trip);

async fn waba_of(h: &Harness) -> String {
    let (_, numbers) = h.get("/platform/v1/whatsapp/phone_numbers").await;
    numbers["data"]
        .as_array()
        .expect("numbers")
        .iter()
        .find(|n| n["phone_number_id"] == h.sandbox_pnid.as_str())
        .and_then(|n| n["business_account_id"].as_str())
        .expect("waba")
        .to_owned()
}

async fn templates_lifecycle(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let waba = waba_of(&h).await;
    let base = format!("/meta/whatsapp/v24.0/{waba}/message_templates");

    // Meta's rules are checked before the Graph call.
    let bad = json!({"name": "login_code", "language": "en_US", "category": "authentication",
        "components": [{"type": "body", "add_security_recommendation": true},
            {"type": "buttons", "buttons": [{"type": "otp", "otp_type": "one_tap"}]}]});
    let (status, err) = h.post(&base, bad).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], 100);
    assert!(
        err["error"]["error_user_msg"]
            .as_str()
            .expect("msg")
            .contains("supported_apps")
    );

    let named = json!({"name": "order_ready", "language": "en_US", "category": "utility",
        "parameter_format": "named",
        "components": [{"type": "body", "text": "Hi {{first_name}}, order {{order_id}} is ready.",
            "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"},
                {"param_name": "order_id", "example": "A-17"}]}}]});
    let (status, created) = h.post(&base, named.clone()).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["category"], "UTILITY");
    let template_id = created["id"].as_str().expect("id").to_owned();
    let (status, dup) = h.post(&base, named).await;
    assert_eq!(status, 400, "{dup}");
    assert_eq!(dup["error"]["error_subcode"], 2388024);

    // The review approves it and the status webhook updates Chasqui's cache.
    wait_until("template approved", || async {
        chasqui_store::templates::find(h.app().db(), &h.project_id, &template_id)
            .await
            .expect("cache")
            .is_some_and(|t| t.status == "APPROVED")
    })
    .await;
    let (status, one) = h.get(&format!("/meta/whatsapp/v24.0/{template_id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["status"], "APPROVED");
    assert_eq!(one["parameter_format"], "NAMED");
    let (status, same) = h.get(&format!("{base}/{template_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(same["name"], "order_ready");
    let (status, _) = h.get(&format!("{base}/abc")).await;
    assert_eq!(status, 400);

    // Listing: filters, summary, parameter_format per item, and paging through the proxy.
    let (status, page) = h
        .get(&format!(
            "{base}?limit=1&summary=total_count,message_template_count"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().expect("data").len(), 1);
    assert!(page["data"][0]["parameter_format"].is_string());
    assert_eq!(
        page["summary"]["total_count"], 2,
        "hello_world and order_ready"
    );
    let next = page["paging"]["next"].as_str().expect("next");
    assert!(next.starts_with(&h.base), "{next}");
    let second: Value = h
        .http
        .get(next)
        .header("x-api-key", &h.key)
        .send()
        .await
        .expect("next")
        .json()
        .await
        .expect("json");
    assert_eq!(second["data"].as_array().expect("data").len(), 1);
    assert_ne!(second["data"][0]["id"], page["data"][0]["id"]);
    let (_, approved) = h.get(&format!("{base}?status=approved&name=order")).await;
    assert_eq!(approved["data"].as_array().expect("data").len(), 1);

    // Send with named parameters; the customer's phone receives it and statuses reach read.
    let send = |params: Value| {
        json!({"messaging_product": "whatsapp", "to": "15550001234", "type": "template",
        "template": {"name": "order_ready", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": params}]}})
    };
    let (status, err) = h
        .post(
            &format!("/meta/whatsapp/v24.0/{pnid}/messages"),
            send(json!([{"type": "text", "parameter_name": "first_name", "text": "Ana"}])),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], 132000);
    let (status, sent) = h
        .post(
            &format!("/meta/whatsapp/v24.0/{pnid}/messages"),
            send(
                json!([{"type": "text", "parameter_name": "first_name", "text": "Ana"},
                {"type": "text", "parameter_name": "order_id", "text": "B-9"}]),
            ),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let wamid = sent["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    wait_until("template read", || async {
        let (_, m) = h
            .get(&format!("/meta/whatsapp/v24.0/{pnid}/messages/{wamid}"))
            .await;
        m["kapso"]["status"] == "read"
    })
    .await;

    // Edit: back to review, then approved again.
    let edit = json!({"components": [{"type": "BODY", "text": "Hello {{first_name}}, order {{order_id}} is ready!",
        "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"},
            {"param_name": "order_id", "example": "A-17"}]}}]});
    let (status, edited) = h
        .post(&format!("/meta/whatsapp/v24.0/{template_id}"), edit)
        .await;
    assert_eq!(status, 200, "{edited}");
    wait_until("edit approved", || async {
        let (_, t) = h.get(&format!("/meta/whatsapp/v24.0/{template_id}")).await;
        t["status"] == "APPROVED"
            && t["components"][0]["text"]
                .as_str()
                .is_some_and(|s| s.starts_with("Hello"))
    })
    .await;

    // A sync follows Meta's paging and sees both templates.
    let (status, report) = h
        .post(
            "/platform/v1/whatsapp/templates/sync",
            json!({"phone_number_id": pnid}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["data"][0]["synced"], 2, "{report}");
    let (status, _) = h
        .post(
            "/platform/v1/whatsapp/templates/sync",
            json!({"phone_number_id": "404"}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, cached) = h
        .get("/platform/v1/whatsapp/templates?status=APPROVED")
        .await;
    assert_eq!(cached["data"].as_array().expect("data").len(), 2);

    // Delete by name and language (as the kapso SDK does).
    let (status, deleted) = h
        .send(
            reqwest::Method::DELETE,
            &format!("{base}?name=order_ready&language=en_US"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    let (_, left) = h.get(&base).await;
    assert_eq!(left["data"].as_array().expect("data").len(), 1);
    let (_, cached) = h.get("/platform/v1/whatsapp/templates").await;
    assert_eq!(cached["data"].as_array().expect("data").len(), 1);
}
both_backends!(templates_lifecycle);

async fn profile_and_numbers(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let waba = waba_of(&h).await;
    let path = format!("/meta/whatsapp/v24.0/{pnid}/whatsapp_business_profile");
    let (status, err) = h
        .post(
            &path,
            json!({"messaging_product": "whatsapp", "vertical": "SPACESHIPS"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = h
        .post(
            &path,
            json!({"messaging_product": "whatsapp", "about": "x".repeat(140)}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, ok) = h
        .post(
            &path,
            json!({"messaging_product": "whatsapp", "about": "Fresh bread daily",
            "websites": ["https://bakery.example"], "vertical": "RESTAURANT"}),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
    let (status, profile) = h.get(&path).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["data"][0]["about"], "Fresh bread daily");
    assert_eq!(profile["data"][0]["vertical"], "RESTAURANT");
    let (_, only) = h.get(&format!("{path}?fields=about")).await;
    assert_eq!(
        only["data"][0]["vertical"], "RESTAURANT",
        "vertical is always present"
    );

    // A profile photo in a multipart update: Chasqui runs Meta's resumable upload for it.
    let photo = |bytes: Vec<u8>| {
        Form::new()
            .text("messaging_product", "whatsapp")
            .text("description", "Since 1990")
            .part("file", Part::bytes(bytes).file_name("logo.png"))
    };
    let post_photo = |form: Form| {
        h.http
            .post(h.url(&path))
            .header("x-api-key", &h.key)
            .multipart(form)
            .send()
    };
    let r = post_photo(photo(b"GIF89a not a photo".to_vec()))
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    let r = post_photo(photo(big)).await.expect("post");
    assert_eq!(r.status(), 400);
    let r = post_photo(photo(PNG.to_vec())).await.expect("post");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (_, profile) = h.get(&path).await;
    assert_eq!(profile["data"][0]["description"], "Since 1990");
    let picture = profile["data"][0]["profile_picture_url"]
        .as_str()
        .expect("profile_picture_url");
    let served = reqwest::get(picture).await.expect("picture");
    assert_eq!(served.bytes().await.expect("bytes").as_ref(), PNG);

    let (status, number) = h.get(&format!("/meta/whatsapp/v24.0/{pnid}")).await;
    assert_eq!(status, 200, "{number}");
    assert_eq!(number["id"], pnid.as_str());
    assert!(
        number["display_phone_number"]
            .as_str()
            .expect("display")
            .starts_with('+')
    );
    // Registration edges pass through; unknown edges are refused by the proxy itself.
    let (status, registered) = h
        .post(
            &format!("/meta/whatsapp/v24.0/{pnid}/register"),
            json!({"messaging_product": "whatsapp", "pin": "123456"}),
        )
        .await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["success"], true);
    let (status, settings) = h
        .get(&format!("/meta/whatsapp/v24.0/{pnid}/settings"))
        .await;
    assert_eq!(status, 200, "{settings}");
    let (status, err) = h
        .post(&format!("/meta/whatsapp/v24.0/{pnid}/calls"), json!({}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], 100);
    let (status, list) = h
        .get(&format!("/meta/whatsapp/v24.0/{waba}/phone_numbers"))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"][0]["id"], pnid.as_str());

    // The number's own Meta token works as a Bearer credential; a wrong one is 401.
    let number = chasqui_store::numbers::find(h.app().db(), &h.project_id, &pnid)
        .await
        .expect("find")
        .expect("number");
    let token = chasqui_app::numbers::credentials(h.app(), &number).expect("creds");
    let r = h
        .http
        .get(h.url(&path))
        .bearer_auth(token.access_token.expose())
        .send()
        .await
        .expect("bearer");
    assert_eq!(r.status(), 200);
    let r = h
        .http
        .get(h.url(&path))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("bearer");
    assert_eq!(r.status(), 401);
    let r = h
        .http
        .post(h.url(&format!("/meta/whatsapp/v24.0/{pnid}/messages")))
        .bearer_auth(token.access_token.expose())
        .json(
            &json!({"messaging_product": "whatsapp", "to": "15550009999", "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}
both_backends!(profile_and_numbers);

async fn injected_send_errors(backend: Backend) {
    let h = Harness::start(backend).await;
    let pnid = h.sandbox_pnid.clone();
    let (status, err) = h
        .send(
            reqwest::Method::PUT,
            &format!("/sandbox/v1/phone_numbers/{pnid}/faults"),
            json!({"send_errors": [42]}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = h
        .send(
            reqwest::Method::PUT,
            &format!("/sandbox/v1/phone_numbers/{pnid}/faults"),
            json!({"send_errors": [130429, 131056, 131026]}),
        )
        .await;
    assert_eq!(status, 200);
    let hello = json!({"messaging_product": "whatsapp", "to": "15550004444", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let path = format!("/meta/whatsapp/v24.0/{pnid}/messages");
    for code in [130429, 131056] {
        let (status, err) = h.post(&path, hello.clone()).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], code);
    }
    let (status, sent) = h.post(&path, hello).await;
    assert_eq!(status, 200, "{sent}");
    let wamid = sent["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    wait_until("undeliverable", || async {
        let (_, m) = h.get(&format!("{path}/{wamid}")).await;
        m["kapso"]["status"] == "failed" && m["kapso"]["statuses"][0]["errors"][0]["code"] == 131026
    })
    .await;
    let (_, failed) = h.get(&format!("{path}?status=failed")).await;
    assert_eq!(
        failed["data"].as_array().expect("data").len(),
        3,
        "two refused, one undeliverable"
    );

    // Status delays are configurable.
    let (status, settings) = h
        .send(
            reqwest::Method::PUT,
            "/sandbox/v1/settings",
            json!({"status_delay_ms": 5, "template_review_ms": 10}),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    let (_, read) = h.get("/sandbox/v1/settings").await;
    assert_eq!(read["data"]["status_delay_ms"], 5);
    assert_eq!(read["data"]["template_review_outcome"], "APPROVED");
}
both_backends!(injected_send_errors);
