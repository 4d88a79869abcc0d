//! The OpenAPI document at `/openapi.json` against the real service: every route the router
//! serves is in it (and nothing else), and every answer of a purchase, a refund, the
//! membership, the history, the feed, the merchant endpoints, the audit head, health,
//! metrics, the checkout and the error cases is what the document says for its route and
//! status, on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use payledger::auth::Role;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use gateways::pingpp::signature;

use crate::app::{pingpp_event_body, sandbox_key, App};
use crate::helpers::{on_both_stores, TestDb};
use crate::merchant::{settings, Receiver};
use crate::schema_check::Document;

/// The service and its document; every request goes through [`Checked::send`].
struct Checked<'a> {
    app: &'a App,
    document: Document,
}

impl<'a> Checked<'a> {
    async fn load(app: &'a App) -> Self {
        let response = app
            .client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert!(response.headers()[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("public"));
        let document: Value = response.json().await.unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        Self {
            app,
            document: Document(document),
        }
    }

    /// Sends `request`, made for the route `method template`, and holds the answer against
    /// the document: its status is listed, its content type is the documented one, and a JSON
    /// body fits the documented schema. Answers the status and the JSON body (null when none).
    async fn send(
        &self,
        method: &str,
        template: &str,
        request: RequestBuilder,
    ) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let documented = self.document.response(method, template, status.as_u16());
        // A success carries every header its documentation names.
        if status.is_success() {
            for name in documented["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, _)| name)
            {
                assert!(
                    headers.contains_key(name.as_str()),
                    "{method} {template} {status} lacks the documented {name}"
                );
            }
        }
        let Some(content) = documented.get("content").and_then(Value::as_object) else {
            assert!(
                bytes.is_empty(),
                "{method} {template} {status} is documented without a body but answered {content_type}"
            );
            return (status, Value::Null);
        };
        let media = media_type(&content_type);
        let (_, described) = content
            .iter()
            .find(|(documented, _)| media_type(documented) == media)
            .unwrap_or_else(|| {
                panic!(
                    "{method} {template} {status} answered {content_type}, documented as {:?}",
                    content.keys()
                )
            });
        if media != "application/json" {
            return (status, Value::Null);
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        if let Some(schema) = described.get("schema") {
            let violations = self.document.violations(schema, &body);
            assert!(
                violations.is_empty(),
                "{method} {template} {status} does not fit its schema: {violations:#?}\n{body:#}"
            );
        }
        (status, body)
    }

    async fn get(&self, template: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.app.client.get(self.app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send("get", template, request).await
    }

    async fn post(
        &self,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self.app.client.post(self.app.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send("post", template, request).await
    }

    async fn delete(&self, template: &str, path: &str, token: &str) -> StatusCode {
        let request = self
            .app
            .client
            .delete(self.app.url(path))
            .bearer_auth(token);
        self.send("delete", template, request).await.0
    }
}

/// Who may call `path`: a bearer token on the API but for the public catalog and the
/// gateways' webhooks (signed instead); the metrics take the metrics token too; pages,
/// health, this document and the checkout page's calls (authorised by the link) take none.
fn expected_security(path: &str) -> Value {
    match path {
        "/metrics" => json!([{"bearer": []}, {"metrics_token": []}]),
        "/v1/plans" | "/v1/webhooks/{provider}" => json!([{}]),
        api if api.starts_with("/v1/") => json!([{"bearer": []}]),
        _ => json!([{}]),
    }
}

/// `text/html; charset=utf-8` -> `text/html`.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_document_describes_exactly_the_routes_the_router_serves() {
    let db = TestDb::sqlite().await;
    let app = App::spawn(&db).await;
    let checked = Checked::load(&app).await;
    let paths = checked.document.0["paths"].as_object().unwrap();
    let served: BTreeSet<(String, String)> = payledger::api::served_routes()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_ascii_lowercase(), path.to_owned()))
        .collect();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
    // The table is what the router really answers: each of its routes is routed (a
    // method the table does not give a path would be 405, an unknown path 404
    // `route.not_found`).
    for (method, path) in payledger::api::served_routes() {
        let concrete = path.replace('{', "x").replace('}', "");
        let response = app
            .client
            .request(
                Method::from_bytes(method.as_str().as_bytes()).unwrap(),
                app.url(&concrete),
            )
            .send()
            .await
            .unwrap();
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if response.status() == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_ne!(body["error"]["code"], "route.not_found", "{method} {path}");
        }
    }
    // Every operation names itself uniquely, answers some success, and documents its
    // errors in the error shape.
    let mut operation_ids = BTreeSet::new();
    for (method, path) in &documented {
        let operation = checked.document.operation(method, path);
        let id = operation["operationId"].as_str().unwrap().to_owned();
        assert!(operation_ids.insert(id.clone()), "operationId {id} twice");
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path}"
        );
        assert_eq!(
            operation["security"],
            expected_security(path),
            "{method} {path}"
        );
        // A refusal has a body: the error shape, or a page for a person, or (webhooks) the
        // provider's own format.
        for (status, response) in responses {
            if !status.starts_with('4') {
                continue;
            }
            let content = response["content"].as_object();
            assert!(
                content.is_some_and(|content| !content.is_empty()),
                "{method} {path} {status}"
            );
            if let Some(json) = response["content"].get("application/json") {
                if !path.starts_with("/v1/webhooks/") {
                    assert_eq!(
                        json["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // The sandbox's routes are the sandbox's, and the document says so.
    assert!(paths.keys().all(|path| !path.starts_with("/sandbox")));
    assert!(checked.document.0["info"]["description"]
        .as_str()
        .unwrap()
        .contains("/sandbox"));
    app.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_catches_a_missing_an_undeclared_and_a_mistyped_field() {
    let db = TestDb::sqlite().await;
    let app = App::spawn(&db).await;
    let checked = Checked::load(&app).await;
    let order = app.create_order("carol").await;
    let schema = checked.document.json_schema("get", "/v1/orders/{id}", 200);
    assert!(checked.document.violations(schema, &order).is_empty());

    let mut missing = order.clone();
    missing.as_object_mut().unwrap().remove("refunded_amount");
    assert_eq!(checked.document.violations(schema, &missing).len(), 1);
    // A nullable field is still required: the server always sends it.
    let mut missing = order.clone();
    missing.as_object_mut().unwrap().remove("paid_at");
    assert_eq!(checked.document.violations(schema, &missing).len(), 1);

    let mut extra = order.clone();
    extra["surprise"] = json!(1);
    assert_eq!(checked.document.violations(schema, &extra).len(), 1);

    let mut mistyped = order.clone();
    mistyped["amount"] = json!("99.00");
    assert_eq!(checked.document.violations(schema, &mistyped).len(), 1);
    let mut nested = order.clone();
    nested["membership"] = json!({"tier": "pro", "ends_at": "2030-01-01T00:00:00Z"});
    assert_eq!(
        checked.document.violations(schema, &nested).len(),
        1,
        "oneOf: no variant fits"
    );

    // A feed event's data is an order or a membership, nothing else.
    let feed = checked.document.json_schema("get", "/v1/events", 200);
    let event = |data: Value| json!({"events": [{"id": "evt_1", "type": "order.paid", "created": 1, "position": 1, "data": data}], "next_after": 1});
    assert!(checked
        .document
        .violations(feed, &event(order.clone()))
        .is_empty());
    assert!(checked
        .document
        .violations(feed, &event(Value::Null))
        .is_empty());
    assert_eq!(
        checked
            .document
            .violations(feed, &event(json!({"id": "x"})))
            .len(),
        1
    );
    app.stop().await;
    db.finish().await;
}

on_both_stores! {
    async fn every_answer_fits_the_document(db: &TestDb) {
        let receiver = Receiver::start().await;
        let app = App::spawn_merchant(db, &settings(&receiver.url)).await;
        let api = Checked::load(&app).await;
        let alice = app.token("alice", Role::User);
        let admin = app.token("ops", Role::Admin);

        // Public and operational routes.
        assert_eq!(api.get("/", "/", None).await.0, StatusCode::OK);
        let (status, health) = api.get("/healthz", "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(health["status"], "ok");
        assert_eq!(api.get("/metrics", "/metrics", Some(&admin)).await.0, StatusCode::OK);
        assert_eq!(api.get("/metrics", "/metrics", None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(api.get("/metrics", "/metrics", Some(&alice)).await.0, StatusCode::FORBIDDEN);
        let (status, plans) = api.get("/v1/plans", "/v1/plans", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!plans["plans"].as_array().unwrap().is_empty());
        let (_, nobody) = api.get("/v1/membership", "/v1/membership", Some(&app.token("nobody", Role::User))).await;
        assert!(nobody["ends_at"].is_null());

        // A purchase.
        let (status, order) = api
            .post("/v1/orders", "/v1/orders", Some(&alice), json!({"plan_id": "pro-monthly", "channel": "alipay_qr"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let order_id = order["id"].as_str().unwrap().to_owned();
        let order_path = format!("/v1/orders/{order_id}");
        let keyed = || {
            app.client.post(app.url("/v1/orders")).bearer_auth(&alice).header("idempotency-key", "openapi-1")
                .json(&json!({"plan_id": "pro-monthly", "channel": "wx_pub_qr"}))
        };
        let (status, first) = api.send("post", "/v1/orders", keyed()).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, again) = api.send("post", "/v1/orders", keyed()).await;
        assert_eq!((status, &again["id"]), (StatusCode::CREATED, &first["id"]));
        assert_eq!(api.get("/v1/orders/{id}/qr.svg", &format!("{order_path}/qr.svg"), Some(&alice)).await.0, StatusCode::OK);
        app.confirm_payment(&order, 9900).await;
        app.poll_until(&order_id, "alice", |body| body["status"] == "paid").await;
        let (status, shown) = api.get("/v1/orders/{id}", &order_path, Some(&alice)).await;
        assert_eq!((status, &shown["status"]), (StatusCode::OK, &json!("paid")));
        assert!(shown["membership"].is_object());
        let response = app.client.get(app.url(&order_path)).bearer_auth(&alice).send().await.unwrap();
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let unchanged = app.client.get(app.url(&order_path)).bearer_auth(&alice).header("if-none-match", etag);
        assert_eq!(api.send("get", "/v1/orders/{id}", unchanged).await.0, StatusCode::NOT_MODIFIED);
        assert_eq!(api.get("/v1/orders/{id}/qr.svg", &format!("{order_path}/qr.svg"), Some(&alice)).await.0, StatusCode::CONFLICT);
        let (status, events) = api.get("/v1/orders/{id}/events", &format!("{order_path}/events"), Some(&alice)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(events["events"].as_array().unwrap().len() >= 3);
        let (status, membership) = api.get("/v1/membership", "/v1/membership", Some(&alice)).await;
        assert_eq!((status, &membership["active"]), (StatusCode::OK, &json!(true)));

        // A refund.
        let refunds = format!("{order_path}/refunds");
        let (status, refund) = api
            .post("/v1/orders/{id}/refunds", &refunds, Some(&admin), json!({"amount": 3000, "reason": "goodwill"}))
            .await;
        assert_eq!((status, &refund["status"]), (StatusCode::ACCEPTED, &json!("pending")));
        app.poll_until(&order_id, "alice", |body| body["status"] == "partially_refunded").await;
        let (status, history) = api.get("/v1/transactions", "/v1/transactions?limit=1", Some(&alice)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(history["next_cursor"].is_string());
        let (status, last) = api
            .get("/v1/transactions", &format!("/v1/transactions?cursor={}", history["next_cursor"].as_str().unwrap()), Some(&alice))
            .await;
        assert_eq!((status, last["next_cursor"].is_null()), (StatusCode::OK, true));

        // The merchant's feed, endpoints and deliveries.
        receiver.wait_for(&["order.paid", "membership.activated"]).await;
        let (status, feed) = api.get("/v1/events", "/v1/events?after=0", Some(&admin)).await;
        assert_eq!(status, StatusCode::OK);
        let types: BTreeSet<&str> = feed["events"].as_array().unwrap().iter().map(|event| event["type"].as_str().unwrap()).collect();
        assert!(types.contains("order.paid") && types.contains("membership.activated"), "{types:?}");
        let (status, endpoint) = api
            .post("/v1/webhook-endpoints", "/v1/webhook-endpoints", Some(&admin), json!({"url": receiver.url, "event_types": ["order.paid"]}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, endpoints) = api.get("/v1/webhook-endpoints", "/v1/webhook-endpoints", Some(&admin)).await;
        assert_eq!((status, endpoints["endpoints"].as_array().unwrap().len()), (StatusCode::OK, 2));
        let (status, deliveries) = api.get("/v1/webhook-deliveries", "/v1/webhook-deliveries", Some(&admin)).await;
        assert_eq!(status, StatusCode::OK);
        let delivery = deliveries["deliveries"][0]["id"].as_str().unwrap().to_owned();
        let (status, _) = api
            .post("/v1/webhook-deliveries/{id}/retry", &format!("/v1/webhook-deliveries/{delivery}/retry"), Some(&admin), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let endpoint_path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());
        assert_eq!(api.delete("/v1/webhook-endpoints/{id}", &endpoint_path, &admin).await, StatusCode::NO_CONTENT);
        assert_eq!(api.delete("/v1/webhook-endpoints/{id}", "/v1/webhook-endpoints/we_configured", &admin).await, StatusCode::CONFLICT);
        assert_eq!(api.delete("/v1/webhook-endpoints/{id}", &endpoint_path, &admin).await, StatusCode::NOT_FOUND);

        // The audit head.
        let (status, head) = api.get("/v1/audit/head", "/v1/audit/head", Some(&admin)).await;
        assert_eq!((status, head["signature"].is_string()), (StatusCode::OK, true));

        // The hosted checkout.
        let (status, session) = api
            .post("/v1/checkout/sessions", "/v1/checkout/sessions", Some(&app.token("dave", Role::User)), json!({"plan_id": "pro-monthly"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let secret = session["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        assert_eq!(api.get("/checkout/{secret}", &format!("/checkout/{secret}"), None).await.0, StatusCode::OK);
        assert_eq!(api.get("/checkout/{secret}", "/checkout/not-a-secret", None).await.0, StatusCode::NOT_FOUND);
        let (status, placed) = api
            .post("/checkout/{secret}/orders", &format!("/checkout/{secret}/orders"), None, json!({"channel": "wx_pub_qr"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let placed_path = format!("/checkout/{secret}/orders/{}", placed["id"].as_str().unwrap());
        assert_eq!(api.get("/checkout/{secret}/orders/{order}", &placed_path, None).await.0, StatusCode::OK);
        assert_eq!(api.get("/checkout/{secret}/orders/{order}/qr.svg", &format!("{placed_path}/qr.svg"), None).await.0, StatusCode::OK);
        let (status, _) = api
            .post("/checkout/{secret}/orders", &format!("/checkout/{secret}/orders"), None, json!({}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let result = format!("/checkout/result/{}", placed["id"].as_str().unwrap());
        assert_eq!(api.get("/checkout/result/{order}", &result, None).await.0, StatusCode::OK);
        for asset in ["/checkout/embed.js", "/checkout/assets/checkout.js", "/checkout/assets/checkout.css"] {
            assert_eq!(api.get(asset, asset, None).await.0, StatusCode::OK);
        }

        // Gateway webhooks: a signed one of a type the ledger does not act on, a forged one
        // and a provider nobody uses.
        let body = pingpp_event_body("evt_openapi_summary", "summary.daily.available", json!({"object": "summary"}));
        let signed = app
            .client
            .post(app.url("/v1/webhooks/pingpp"))
            .header("content-type", "application/json")
            .header("x-pingplusplus-signature", signature::sign(sandbox_key(), &body))
            .body(body);
        assert_eq!(api.send("post", "/v1/webhooks/{provider}", signed).await.0, StatusCode::OK);
        let forged = app.client.post(app.url("/v1/webhooks/pingpp")).header("x-pingplusplus-signature", "Zm9yZ2Vk").json(&json!({"id": "evt_forged"}));
        assert_eq!(api.send("post", "/v1/webhooks/{provider}", forged).await.0, StatusCode::UNAUTHORIZED);
        let unknown = app.client.post(app.url("/v1/webhooks/paypal")).json(&json!({}));
        assert_eq!(api.send("post", "/v1/webhooks/{provider}", unknown).await.0, StatusCode::NOT_FOUND);

        // Error cases, each in the error shape its route documents.
        let unknown_order = format!("/v1/orders/{}", uuid::Uuid::new_v4());
        let (status, error) = api.get("/v1/orders/{id}", &unknown_order, Some(&alice)).await;
        assert_eq!((status, &error["error"]["code"]), (StatusCode::NOT_FOUND, &json!("order.not_found")));
        assert_eq!(api.get("/v1/membership", "/v1/membership", None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(api.get("/v1/events", "/v1/events", Some(&alice)).await.0, StatusCode::FORBIDDEN);
        assert_eq!(api.get("/v1/events", "/v1/events?limit=0", Some(&admin)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(api.get("/v1/transactions", "/v1/transactions?limit=0", Some(&alice)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(api.get("/v1/transactions", "/v1/transactions?cursor=x", Some(&alice)).await.0, StatusCode::BAD_REQUEST);
        assert_eq!(api.get("/v1/transactions", "/v1/transactions?user_id=bob", Some(&alice)).await.0, StatusCode::FORBIDDEN);
        assert_eq!(api.get("/v1/webhook-deliveries", "/v1/webhook-deliveries?status=lost", Some(&admin)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = api.post("/v1/orders", "/v1/orders", Some(&alice), json!({"plan_id": "gold-forever", "channel": "alipay_qr"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let malformed = app.client.post(app.url("/v1/orders")).bearer_auth(&alice).header("content-type", "application/json").body("{");
        assert_eq!(api.send("post", "/v1/orders", malformed).await.0, StatusCode::BAD_REQUEST);
        let not_json = app.client.post(app.url("/v1/orders")).bearer_auth(&alice).header("content-type", "text/plain").body("hello");
        assert_eq!(api.send("post", "/v1/orders", not_json).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, _) = api.post("/v1/orders/{id}/refunds", &refunds, Some(&admin), json!({"amount": 0, "reason": "none"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = api.post("/v1/orders/{id}/refunds", &refunds, Some(&alice), json!({"amount": 1, "reason": "mine"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = api.post("/v1/checkout/sessions", "/v1/checkout/sessions", Some(&alice), json!({"success_url": "https://evil.example/"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        app.stop().await;
    }
}
