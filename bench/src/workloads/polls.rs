//! The frontend's polling: client tasks GET random pending orders by their owners, once
//! plainly (200 with the order) and once with `If-None-Match` carrying the ETag of a first GET
//! (304, nothing changed).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use payledger::auth::Role;
use reqwest::StatusCode;

use super::payments::short;
use super::{Context, Failures, PgCounters, TRANSPORT_ERRORS_MAX};
use crate::cpu;
use crate::http::{self, Api};
use crate::report::{Figure, Report};
use crate::stats::{rate, ratio, Rng, Samples};

/// Users the polled orders belong to.
const OWNERS: usize = 20;
/// Upper bound on requests per client task, whatever the window.
const REQUESTS_PER_CLIENT_MAX: usize = 10_000_000;

struct Target {
    order_id: String,
    token: String,
    etag: String,
}

pub async fn run(context: &Context<'_>, report: &mut Report) -> anyhow::Result<()> {
    let targets = Arc::new(prepare(context).await?);
    for conditional in [false, true] {
        phase(context, &targets, conditional, report).await?;
    }
    Ok(())
}

/// Creates the orders and reads each once for its ETag.
async fn prepare(context: &Context<'_>) -> anyhow::Result<Vec<Target>> {
    let count = context.plan.poll_orders;
    let workers = context.plan.clients.clamp(1, 8);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let api = context.api.clone();
        let tag = context.tag.clone();
        tasks.spawn(async move {
            let client = http::client()?;
            let mut made = Vec::new();
            for number in (worker..count).step_by(workers) {
                let user = format!("poll-{tag}-{}", number % OWNERS);
                let token = api.token(&user, Role::User)?;
                let order = api
                    .create_order(&client, &token, "pro-monthly")
                    .await?
                    .map_err(|status| anyhow::anyhow!("creating a polled order: {status}"))?;
                let first = api.poll(&client, &token, &order.id, "", None).await?;
                let etag = first.etag.context("an order poll had no ETag")?;
                made.push(Target {
                    order_id: order.id,
                    token,
                    etag,
                });
            }
            anyhow::Ok(made)
        });
    }
    let mut targets = Vec::with_capacity(count);
    while let Some(made) = tasks.join_next().await {
        targets.extend(made??);
    }
    anyhow::ensure!(!targets.is_empty(), "no orders to poll");
    Ok(targets)
}

async fn phase(
    context: &Context<'_>,
    targets: &Arc<Vec<Target>>,
    conditional: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let plan = context.plan;
    let pg_before = PgCounters::read(context).await;
    let cpu_before = cpu::snapshot(context.server_pid);
    let started = Instant::now();
    let deadline = started + plan.window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let api: Api = context.api.clone();
        let targets = targets.clone();
        tasks.spawn(async move {
            let client = http::client()?;
            let mut rng = Rng::from_entropy();
            let mut latency = Samples::new();
            let mut failures = Failures::default();
            let mut transport_errors = 0_usize;
            let expected = if conditional {
                StatusCode::NOT_MODIFIED
            } else {
                StatusCode::OK
            };
            for _ in 0..REQUESTS_PER_CLIENT_MAX {
                if Instant::now() >= deadline || transport_errors >= TRANSPORT_ERRORS_MAX {
                    break;
                }
                let Some(target) = targets.get(rng.below(targets.len())) else {
                    break;
                };
                let etag = conditional.then_some(target.etag.as_str());
                let start = Instant::now();
                match api
                    .poll(&client, &target.token, &target.order_id, "", etag)
                    .await
                {
                    Ok(poll) if poll.status == expected => {
                        latency.since(start);
                    }
                    Ok(poll) => {
                        latency.since(start);
                        failures.add(format!("status_{}", poll.status.as_u16()));
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
    let mut latency = Samples::new();
    let mut failures = Failures::default();
    while let Some(result) = tasks.join_next().await {
        let (samples, failed) = result??;
        latency.merge(samples);
        failures.merge(failed);
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu::snapshot(context.server_pid);
    let pg_after = PgCounters::read(context).await;
    let requests = latency.len();
    let per_second = rate(requests, elapsed);
    let (name, expected) = if conditional {
        ("if_none_match", "304")
    } else {
        ("plain", "200")
    };
    report.add(
        Figure::new(format!("polls.{name}.{}", context.store))
            .value("req/s", format!("{per_second:.1}"))
            .value("clients", plan.clients)
            .value("orders", targets.len())
            .text(latency.summary(""))
            .value(format!("not_{expected}"), failures.summary())
            .text(cpu::usage(&cpu_before, &cpu_after))
            .text(PgCounters::per_operation(
                pg_before,
                pg_after,
                latency.len(),
                "request",
            ))
            .ratio(
                "ratio_vs_select_only_baseline",
                ratio(per_second, context.baselines.select_only),
            ),
    );
    Ok(())
}
