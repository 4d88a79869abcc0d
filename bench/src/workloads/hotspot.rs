//! Contention on one key. Two cases: many clients delivering the same signed
//! `charge.succeeded` event for one order (the first applies it, the rest must be answered
//! 2xx as duplicates), and many orders created at once by one user.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use gateways::pingpp::signature;
use payledger::auth::Role;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

use super::payments::short;
use super::{Context, Failures, PgCounters, TRANSPORT_ERRORS_MAX};
use crate::cpu;
use crate::http::{self, Api};
use crate::report::{Figure, Report};
use crate::stats::{rate, ratio, Samples};

const REQUESTS_PER_CLIENT_MAX: usize = 10_000_000;

pub async fn run(context: &Context<'_>, report: &mut Report) -> anyhow::Result<()> {
    duplicate_webhooks(context, report).await?;
    one_user_orders(context, report).await
}

/// A fresh 24-character suffix for gateway-style ids.
pub(super) fn suffix() -> String {
    let text = uuid::Uuid::new_v4().simple().to_string();
    text.chars().take(24).collect()
}

async fn duplicate_webhooks(context: &Context<'_>, report: &mut Report) -> anyhow::Result<()> {
    let api = &context.api;
    let client = http::client()?;
    let user = format!("hot-webhook-{}", context.tag);
    let token = api.token(&user, Role::User)?;
    let order = api
        .create_order(&client, &token, "pro-monthly")
        .await?
        .map_err(|status| anyhow::anyhow!("creating the hot order: {status}"))?;
    // The customer pays, but the sandbox's own delivery is dropped: the bench delivers.
    let status = api.pay(&client, &order.charge_id, "drop=1").await?;
    if status != StatusCode::OK {
        bail!("paying the hot order answered {status}");
    }
    let charge = api.sandbox_charge(&client, &order.charge_id).await?;
    let body = serde_json::to_vec(&json!({
        "id": format!("evt_{}", suffix()),
        "object": "event",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "type": "charge.succeeded",
        "data": { "object": charge },
        "pending_webhooks": 0,
        "request": format!("iar_{}", suffix()),
    }))?;
    let signature = signature::sign(context.signing_key, &body);
    let body = Arc::new(body);
    let signature = Arc::new(signature);

    // The first delivery applies the payment.
    let first = deliver(api, &client, &body, &signature).await?;
    let outcome = first.1;
    if !first.0.is_success() {
        bail!("the first delivery of the hot webhook answered {}", first.0);
    }

    let plan = context.plan;
    let pg_before = PgCounters::read(context).await;
    let cpu_before = cpu::snapshot(context.server_pid);
    let started = Instant::now();
    let deadline = started + plan.window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let api = api.clone();
        let body = body.clone();
        let signature = signature.clone();
        tasks.spawn(async move {
            let client = http::client()?;
            let mut latency = Samples::new();
            let mut failures = Failures::default();
            let mut transport_errors = 0_usize;
            for _ in 0..REQUESTS_PER_CLIENT_MAX {
                if Instant::now() >= deadline || transport_errors >= TRANSPORT_ERRORS_MAX {
                    break;
                }
                let start = Instant::now();
                match deliver(&api, &client, &body, &signature).await {
                    Ok((status, _)) => {
                        latency.since(start);
                        if !status.is_success() {
                            failures.add(format!("status_{}", status.as_u16()));
                        }
                    }
                    Err(error) => {
                        transport_errors += 1;
                        failures.add(format!("transport:{}", short(&error)));
                    }
                }
            }
            anyhow::Ok((latency, failures))
        });
    }
    let (mut latency, failures) = collect(&mut tasks).await?;
    let elapsed = started.elapsed();
    let cpu_after = cpu::snapshot(context.server_pid);
    let pg_after = PgCounters::read(context).await;
    let confirmations: i64 = sqlx::query(
        "SELECT CAST(count(*) AS BIGINT) AS n FROM events \
         WHERE aggregate_id = $1 AND event_type = 'PaymentConfirmed'",
    )
    .bind(&order.id)
    .fetch_one(&context.read)
    .await?
    .try_get("n")?;
    let per_second = rate(latency.len(), elapsed);
    let hot_baseline = baseline_for(context);
    report.add(
        Figure::new(format!("hotspot.duplicate_webhooks.{}", context.store))
            .value("req/s", format!("{per_second:.1}"))
            .value("clients", plan.clients)
            .value("deliveries", latency.len())
            .text(latency.summary(""))
            .value("non_2xx", failures.summary())
            .value("first_outcome", outcome)
            .value("payments_recorded", confirmations)
            .text(cpu::usage(&cpu_before, &cpu_after))
            .text(PgCounters::per_operation(
                pg_before,
                pg_after,
                latency.len(),
                "request",
            ))
            .ratio(hot_baseline.0, ratio(per_second, hot_baseline.1)),
    );
    Ok(())
}

/// POSTs the signed event; returns the status and the outcome the server named.
pub(super) async fn deliver(
    api: &Api,
    client: &reqwest::Client,
    body: &[u8],
    signature: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let response = client
        .post(api.url("/v1/webhooks/pingpp"))
        .header("content-type", "application/json")
        .header("x-pingplusplus-signature", signature)
        .body(body.to_vec())
        .send()
        .await?;
    let status = response.status();
    // The body is the provider's own reply; the ledger names its outcome in a header.
    let outcome = response
        .headers()
        .get("x-webhook-outcome")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    Ok((status, outcome))
}

async fn one_user_orders(context: &Context<'_>, report: &mut Report) -> anyhow::Result<()> {
    let plan = context.plan;
    let user = format!("hot-buyer-{}", context.tag);
    let token = Arc::new(context.api.token(&user, Role::User)?);
    let pg_before = PgCounters::read(context).await;
    let cpu_before = cpu::snapshot(context.server_pid);
    let started = Instant::now();
    let deadline = started + plan.window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let api = context.api.clone();
        let token = token.clone();
        tasks.spawn(async move {
            let client = http::client()?;
            let mut latency = Samples::new();
            let mut failures = Failures::default();
            let mut transport_errors = 0_usize;
            for _ in 0..REQUESTS_PER_CLIENT_MAX {
                if Instant::now() >= deadline || transport_errors >= TRANSPORT_ERRORS_MAX {
                    break;
                }
                let start = Instant::now();
                match api.create_order(&client, &token, "pro-monthly").await {
                    Ok(Ok(_)) => {
                        latency.since(start);
                    }
                    Ok(Err(status)) => {
                        latency.since(start);
                        failures.add(format!("status_{}", status.as_u16()));
                    }
                    Err(error) => {
                        transport_errors += 1;
                        failures.add(format!("transport:{}", short(&error)));
                    }
                }
            }
            anyhow::Ok((latency, failures))
        });
    }
    let (mut latency, failures) = collect(&mut tasks).await?;
    let elapsed = started.elapsed();
    let cpu_after = cpu::snapshot(context.server_pid);
    let pg_after = PgCounters::read(context).await;
    let per_second = rate(latency.len(), elapsed);
    let hot_baseline = baseline_for(context);
    report.add(
        Figure::new(format!("hotspot.one_user_orders.{}", context.store))
            .value("req/s", format!("{per_second:.1}"))
            .value("clients", plan.clients)
            .value("requests", latency.len())
            .text(latency.summary("create"))
            .value("non_2xx", failures.summary())
            .text(cpu::usage(&cpu_before, &cpu_after))
            .text(PgCounters::per_operation(
                pg_before,
                pg_after,
                latency.len(),
                "request",
            ))
            .ratio(hot_baseline.0, ratio(per_second, hot_baseline.1)),
    );
    Ok(())
}

/// TPC-B where pgbench ran; on SQLite (no TPC-B) the append baseline.
fn baseline_for(context: &Context<'_>) -> (&'static str, Option<f64>) {
    match context.baselines.tpcb {
        Some(tpcb) => ("ratio_vs_tpcb_baseline", Some(tpcb)),
        None if context.store == "sqlite" => ("ratio_vs_append_baseline", context.baselines.append),
        None => ("ratio_vs_tpcb_baseline", None),
    }
}

async fn collect(
    tasks: &mut tokio::task::JoinSet<anyhow::Result<(Samples, Failures)>>,
) -> anyhow::Result<(Samples, Failures)> {
    let mut latency = Samples::new();
    let mut failures = Failures::default();
    while let Some(result) = tasks.join_next().await {
        let (samples, failed) = result.context("a hot-spot client task failed")??;
        latency.merge(samples);
        failures.merge(failed);
    }
    Ok((latency, failures))
}
