//! The webhook path alone: orders are created and paid in the sandbox beforehand (with the
//! sandbox's own delivery dropped), and one `charge.succeeded` event per order is built and
//! signed in advance, in the shape the sandbox sends. Then client tasks deliver them all to
//! `POST /v1/webhooks/pingpp`, and only the deliveries are timed: neither the sandbox's
//! signing nor order creation is in the figure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use gateways::pingpp::signature;
use payledger::auth::Role;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

use super::hotspot::{deliver, suffix};
use super::payments::short;
use super::{Context, Failures, PgCounters, TRANSPORT_ERRORS_MAX};
use crate::cpu;
use crate::http::{self, Api};
use crate::report::{Figure, Report};
use crate::stats::{rate, ratio, Samples};

/// Preparation stops creating orders after this long, well before the reconciler would
/// look up a pending order at the gateway (60 s) and settle it itself.
const PREPARE_BUDGET: Duration = Duration::from_secs(30);
/// Deliveries not started by then are left out.
const DELIVERY_BUDGET: Duration = Duration::from_secs(120);
/// Tasks that create the orders and sign their events.
const PREPARE_WORKERS_MAX: usize = 8;

/// One event ready to POST.
struct Signed {
    body: Vec<u8>,
    signature: String,
}

#[derive(Default)]
struct TaskResult {
    latency: Samples,
    failures: Failures,
    outcomes: Failures,
}

pub async fn run(context: &Context<'_>, report: &mut Report) -> anyhow::Result<()> {
    let plan = context.plan;
    let prepare_started = Instant::now();
    let events = Arc::new(prepare(context).await?);
    let prepare_seconds = prepare_started.elapsed().as_secs_f64();
    if events.is_empty() {
        bail!("no webhook could be prepared");
    }

    // Nothing but the deliveries between the two readings.
    let pg_before = PgCounters::read_after(context, plan.stats_settle).await;
    let head_before = projections::log::head(&context.read).await?;
    let cpu_before = cpu::snapshot(context.server_pid);
    let started = Instant::now();
    let deadline = started + DELIVERY_BUDGET;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let api = context.api.clone();
        let events = events.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let client = http::client()?;
            let mut result = TaskResult::default();
            let mut transport_errors = 0_usize;
            loop {
                if Instant::now() >= deadline || transport_errors >= TRANSPORT_ERRORS_MAX {
                    break;
                }
                let Some(event) = events.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let start = Instant::now();
                match deliver(&api, &client, &event.body, &event.signature).await {
                    Ok((status, outcome)) => {
                        result.latency.since(start);
                        if !status.is_success() {
                            result.failures.add(format!("status_{}", status.as_u16()));
                        }
                        result.outcomes.add(outcome);
                    }
                    Err(error) => {
                        transport_errors += 1;
                        result.failures.add(format!("transport:{}", short(&error)));
                    }
                }
            }
            anyhow::Ok(result)
        });
    }
    let mut total = TaskResult::default();
    while let Some(result) = tasks.join_next().await {
        let result = result.context("a webhook client task failed")??;
        total.latency.merge(result.latency);
        total.failures.merge(result.failures);
        total.outcomes.merge(result.outcomes);
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu::snapshot(context.server_pid);
    let pg_after = PgCounters::read_after(context, plan.stats_settle).await;

    // Every prepared order must now be paid, once: nothing else pays orders meanwhile.
    let row = sqlx::query(
        "SELECT CAST(count(*) AS BIGINT) AS confirmations, \
                CAST(count(DISTINCT aggregate_id) AS BIGINT) AS orders \
         FROM events WHERE position > $1 AND event_type = 'PaymentConfirmed'",
    )
    .bind(head_before)
    .fetch_one(&context.read)
    .await?;
    let confirmations: i64 = row.try_get("confirmations")?;
    let orders_paid: i64 = row.try_get("orders")?;
    let all_paid =
        usize::try_from(orders_paid).ok() == Some(events.len()) && confirmations == orders_paid;

    let delivered = total.latency.len();
    let per_second = rate(delivered, elapsed);
    report.add(
        Figure::new(format!("webhooks_presigned.{}", context.store))
            .value("webhooks/s", format!("{per_second:.1}"))
            .value("clients", plan.clients)
            .value("webhooks", events.len())
            .value("delivered", delivered)
            .text(total.latency.summary(""))
            .value("non_2xx", total.failures.summary())
            .value("outcomes", total.outcomes.summary())
            .value("orders_paid", format!("{orders_paid}/{}", events.len()))
            .value("payments_recorded", confirmations)
            .value("all_paid_once", if all_paid { "yes" } else { "no" })
            .text(cpu::usage(&cpu_before, &cpu_after))
            .text(PgCounters::per_operation(
                pg_before, pg_after, delivered, "webhook",
            ))
            .value("prepare_s", format!("{prepare_seconds:.1}"))
            .value(
                "settle_s",
                format!("{:.1}", plan.stats_settle.as_secs_f64()),
            )
            .ratio(
                "ratio_vs_append_baseline",
                ratio(per_second, context.baselines.append),
            ),
    );
    Ok(())
}

/// Creates the orders, pays each in the sandbox without its delivery, and signs one
/// `charge.succeeded` event per order over the paid charge as the sandbox reports it.
async fn prepare(context: &Context<'_>) -> anyhow::Result<Vec<Signed>> {
    let count = context.plan.presigned_webhooks;
    let workers = context.plan.clients.clamp(1, PREPARE_WORKERS_MAX);
    let deadline = Instant::now() + PREPARE_BUDGET;
    let key = Arc::new(context.signing_key.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let api = context.api.clone();
        let tag = context.tag.clone();
        let key = key.clone();
        tasks.spawn(async move {
            let client = http::client()?;
            let mut made = Vec::new();
            for number in (worker..count).step_by(workers) {
                if Instant::now() >= deadline {
                    break;
                }
                let user = format!("webhook-{tag}-{number}");
                let body = paid_charge_event(&api, &client, &user).await?;
                let key = key.clone();
                let signed = tokio::task::spawn_blocking(move || {
                    let signature = signature::sign(&key, &body);
                    Signed { body, signature }
                })
                .await?;
                made.push(signed);
            }
            anyhow::Ok(made)
        });
    }
    let mut events = Vec::with_capacity(count);
    while let Some(made) = tasks.join_next().await {
        events.extend(made.context("a webhook preparation task failed")??);
    }
    Ok(events)
}

/// A new order of `user`, paid in the sandbox with the delivery dropped; the body of its
/// `charge.succeeded` event, with an event id of its own.
async fn paid_charge_event(
    api: &Api,
    client: &reqwest::Client,
    user: &str,
) -> anyhow::Result<Vec<u8>> {
    let token = api.token(user, Role::User)?;
    let order = api
        .create_order(client, &token, "pro-monthly")
        .await?
        .map_err(|status| anyhow::anyhow!("creating an order to pay by webhook: {status}"))?;
    let status = api.pay(client, &order.charge_id, "drop=1").await?;
    if status != StatusCode::OK {
        bail!("paying an order in the sandbox answered {status}");
    }
    let charge = api.sandbox_charge(client, &order.charge_id).await?;
    Ok(serde_json::to_vec(&json!({
        "id": format!("evt_{}", suffix()),
        "object": "event",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "type": "charge.succeeded",
        "data": { "object": charge },
        "pending_webhooks": 0,
        "request": format!("iar_{}", suffix()),
    }))?)
}
