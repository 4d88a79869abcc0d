//! One client pays one order at a time: create (`POST /v1/orders`), press *Pay* in the
//! sandbox, wait with the long poll until the order shows `paid`. With nothing else running,
//! PostgreSQL's counters over the run, less the idle server's rate, are the work one paid
//! order costs the write path.

use std::time::Instant;

use payledger::auth::Role;
use reqwest::StatusCode;
use sqlx::Row;

use super::idle::{self, IdleReading};
use super::payments::{long_poll_until_paid, short};
use super::{Context, Failures, PgCounters, TRANSPORT_ERRORS_MAX};
use crate::cpu;
use crate::http::{self, Api};
use crate::report::{Figure, Report};
use crate::stats::{rate, Samples};

/// `idle` is the reading the idle workload just took; without it (`--only sequential`) the
/// idle rate is measured here first (PostgreSQL only: SQLite has no such counters).
pub async fn run(
    context: &Context<'_>,
    idle: Option<IdleReading>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let plan = context.plan;
    let idle = match idle {
        Some(reading) => Some(reading),
        None if context.store == "postgres" => idle::measure(context).await.0,
        None => None,
    };
    let pg_before = idle.map(|reading| reading.end);
    let head_before = projections::log::head(&context.read).await?;
    let client = http::client()?;
    let cpu_before = cpu::snapshot(context.server_pid);
    let started = Instant::now();
    let mut latency = Samples::new();
    let mut lag = Samples::new();
    let mut failures = Failures::default();
    let mut transport_errors = 0_usize;
    let mut paid = 0_usize;
    for number in 1..=plan.sequential_orders {
        if transport_errors >= TRANSPORT_ERRORS_MAX {
            break;
        }
        let user = format!("seq-{}-{number}", context.tag);
        let start = Instant::now();
        match one_order(&context.api, &client, &user, &mut failures).await {
            Ok(Some(paid_at)) => {
                latency.since(start);
                lag.since(paid_at);
                paid += 1;
            }
            Ok(None) => {}
            Err(error) => {
                transport_errors += 1;
                failures.add(format!("transport:{}", short(&error)));
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu::snapshot(context.server_pid);
    // Taken once the server is quiet again and every backend has published its counts.
    let pg_after = PgCounters::read_after(context, plan.stats_settle).await;
    let appended: i64 =
        sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM events WHERE position > $1")
            .bind(head_before)
            .fetch_one(&context.read)
            .await?
            .try_get("n")?;
    let appended = usize::try_from(appended)?;
    let events_per_order = if paid > 0 {
        crate::stats::count_f64(appended) / crate::stats::count_f64(paid)
    } else {
        0.0
    };
    let idle_rates = idle.map(|reading| reading.rates);
    let corrected = PgCounters::per_operation_values(pg_before, pg_after, idle_rates, paid);
    // The append baseline commits one transaction per event appended.
    let per_event = match corrected {
        Some(per) if events_per_order > 0.0 => {
            format!("{:.3}", per.transactions / events_per_order)
        }
        _ => "n/a".to_owned(),
    };
    report.add(
        Figure::new(format!("sequential.{}", context.store))
            .value("orders", plan.sequential_orders)
            .value("paid", paid)
            .value("orders/s", format!("{:.1}", rate(paid, elapsed)))
            .text(latency.summary("create_to_paid"))
            .text(lag.summary("pay_200_to_paid_visible(long_poll)"))
            .value("log_events/order", format!("{events_per_order:.2}"))
            .value("errors", failures.summary())
            .text(cpu::usage(&cpu_before, &cpu_after))
            .text(PgCounters::per_operation(
                pg_before, pg_after, paid, "order",
            ))
            .text(PgCounters::per_operation_less_idle(
                pg_before,
                pg_after,
                idle_rates,
                paid,
                "order_less_idle",
            ))
            .value(
                "settle_s",
                format!("{:.1}", plan.stats_settle.as_secs_f64()),
            )
            .ratio("ratio_xacts_per_event_vs_append_baseline", per_event),
    );
    Ok(())
}

/// Creates, pays and waits for one order; the instant the sandbox answered *Pay*, or
/// `Ok(None)` when the order did not end `paid`. From that instant to the long poll's answer
/// is the projection lag of an unloaded server: the sandbox's delivery, the settlement and
/// the view.
async fn one_order(
    api: &Api,
    client: &reqwest::Client,
    user: &str,
    failures: &mut Failures,
) -> anyhow::Result<Option<Instant>> {
    let token = api.token(user, Role::User)?;
    let order = match api.create_order(client, &token, "pro-monthly").await? {
        Ok(order) => order,
        Err(status) => {
            failures.add(format!("create_{}", status.as_u16()));
            return Ok(None);
        }
    };
    let status = api.pay(client, &order.charge_id, "").await?;
    if status != StatusCode::OK {
        failures.add(format!("pay_{}", status.as_u16()));
        return Ok(None);
    }
    let paid_at = Instant::now();
    match long_poll_until_paid(api, client, &token, &order.id, order.position).await? {
        Some(()) => Ok(Some(paid_at)),
        None => {
            failures.add("unconfirmed");
            Ok(None)
        }
    }
}
