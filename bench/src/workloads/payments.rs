//! The main path: client tasks each loop create order -> pay in the sandbox -> wait until the
//! order shows `paid`. Most orders wait with the long poll; every n-th is polled every 2 ms
//! instead, which measures the projection lag (from the pay button's answer to the view).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use payledger::auth::Role;
use reqwest::StatusCode;
use sqlx::Row;

use super::{Context, Failures, PgCounters, TRANSPORT_ERRORS_MAX};
use crate::cpu;
use crate::http::{self, Api};
use crate::report::{Figure, Report};
use crate::stats::{rate, ratio, Samples};

/// Upper bound on orders per client task, whatever the window.
const ORDERS_PER_CLIENT_MAX: usize = 100_000;
/// How long an order may take to show `paid` before it is counted as unconfirmed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);
/// The projection-lag sample polls this often.
const LAG_POLL_INTERVAL: Duration = Duration::from_millis(2);

#[derive(Default)]
struct TaskResult {
    create: Samples,
    pay: Samples,
    confirm: Samples,
    lag: Samples,
    confirmed: usize,
    failures: Failures,
}

pub async fn run(context: &Context<'_>, report: &mut Report) -> anyhow::Result<()> {
    let plan = context.plan;
    let control = http::client()?;
    let delivered_before = context.api.delivered_webhooks(&control).await?;
    let head_before = projections::log::head(&context.read).await?;
    let pg_before = PgCounters::read(context).await;
    let cpu_before = cpu::snapshot(context.server_pid);
    let started = Instant::now();
    let deadline = started + plan.window;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..plan.clients {
        let api = context.api.clone();
        let user_prefix = format!("pay-{}-{index}", context.tag);
        let sample_every = plan.sample_every.max(1);
        tasks.spawn(client_task(api, user_prefix, deadline, sample_every));
    }
    let mut total = TaskResult::default();
    while let Some(result) = tasks.join_next().await {
        let result = result.context("a payments client task failed")??;
        total.create.merge(result.create);
        total.pay.merge(result.pay);
        total.confirm.merge(result.confirm);
        total.lag.merge(result.lag);
        total.confirmed += result.confirmed;
        total.failures.merge(result.failures);
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu::snapshot(context.server_pid);
    let delivered_after = context.api.delivered_webhooks(&control).await?;
    let pg_after = PgCounters::read(context).await;
    let delivered = usize::try_from(delivered_after.saturating_sub(delivered_before))?;
    let appended: i64 =
        sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM events WHERE position > $1")
            .bind(head_before)
            .fetch_one(&context.read)
            .await?
            .try_get("n")?;
    let appended = usize::try_from(appended)?;

    let orders_per_second = rate(total.confirmed, elapsed);
    let append = context.baselines.append;
    report.add(
        Figure::new(format!("payments.{}", context.store))
            .value("orders/s", format!("{orders_per_second:.1}"))
            .value("webhooks/s", format!("{:.1}", rate(delivered, elapsed)))
            .value("log_events/s", format!("{:.1}", rate(appended, elapsed)))
            .value("clients", plan.clients)
            .value("orders", total.confirmed)
            .text(total.create.summary("create"))
            .text(total.pay.summary("pay"))
            .text(total.confirm.summary("confirm_longpoll"))
            .value("errors", total.failures.summary())
            .text(cpu::usage(&cpu_before, &cpu_after))
            .text(PgCounters::per_operation(
                pg_before,
                pg_after,
                total.confirmed,
                "order",
            ))
            .ratio("ratio_vs_append_baseline", ratio(orders_per_second, append)),
    );
    report.add(
        Figure::new(format!("projection_lag.{}", context.store))
            .value("sampled_orders", total.lag.len())
            .text(total.lag.summary("pay_200_to_paid_visible(2ms_polls)"))
            .ratio("ratio_p50_vs_confirm_longpoll_p50", {
                let lag = total.lag.percentile(500).map(f64::from);
                let confirm = total.confirm.percentile(500).map(f64::from);
                match lag {
                    Some(lag) => ratio(lag, confirm),
                    None => "n/a".to_owned(),
                }
            }),
    );
    Ok(())
}

async fn client_task(
    api: Api,
    user_prefix: String,
    deadline: Instant,
    sample_every: usize,
) -> anyhow::Result<TaskResult> {
    let client = http::client()?;
    let mut result = TaskResult::default();
    let mut transport_errors = 0_usize;
    for number in 1..=ORDERS_PER_CLIENT_MAX {
        if Instant::now() >= deadline || transport_errors >= TRANSPORT_ERRORS_MAX {
            break;
        }
        let sampled = number % sample_every == 0;
        match one_order(
            &api,
            &client,
            &format!("{user_prefix}-{number}"),
            sampled,
            &mut result,
        )
        .await
        {
            Ok(()) => {}
            Err(error) => {
                transport_errors += 1;
                result.failures.add(format!("transport:{}", short(&error)));
            }
        }
    }
    Ok(result)
}

async fn one_order(
    api: &Api,
    client: &reqwest::Client,
    user: &str,
    sampled: bool,
    result: &mut TaskResult,
) -> anyhow::Result<()> {
    let token = api.token(user, Role::User)?;
    let start = Instant::now();
    let order = match api.create_order(client, &token, "pro-monthly").await? {
        Ok(order) => order,
        Err(status) => {
            result.failures.add(format!("create_{}", status.as_u16()));
            return Ok(());
        }
    };
    result.create.since(start);

    let start = Instant::now();
    let status = api.pay(client, &order.charge_id, "").await?;
    if status != StatusCode::OK {
        result.failures.add(format!("pay_{}", status.as_u16()));
        return Ok(());
    }
    result.pay.since(start);

    let paid = Instant::now();
    let visible = if sampled {
        poll_until_paid(api, client, &token, &order.id).await?
    } else {
        long_poll_until_paid(api, client, &token, &order.id, order.position).await?
    };
    match visible {
        Some(()) => {
            if sampled {
                result.lag.since(paid);
            } else {
                result.confirm.since(paid);
            }
            result.confirmed += 1;
        }
        None => result.failures.add("unconfirmed"),
    }
    Ok(())
}

/// `GET /v1/orders/{id}?after=<position>&wait=5` until it shows `paid`.
pub(super) async fn long_poll_until_paid(
    api: &Api,
    client: &reqwest::Client,
    token: &str,
    order_id: &str,
    mut after: i64,
) -> anyhow::Result<Option<()>> {
    let start = Instant::now();
    while start.elapsed() < CONFIRM_TIMEOUT {
        let poll = api
            .poll(
                client,
                token,
                order_id,
                &format!("after={after}&wait=5"),
                None,
            )
            .await?;
        match poll.status {
            StatusCode::OK => {
                if poll.order_status.as_deref() == Some("paid") {
                    return Ok(Some(()));
                }
                match poll.position {
                    Some(position) if position > after => after = position,
                    _ => tokio::time::sleep(LAG_POLL_INTERVAL).await,
                }
            }
            StatusCode::NOT_MODIFIED => {}
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Plain `GET /v1/orders/{id}` every 2 ms until it shows `paid`.
async fn poll_until_paid(
    api: &Api,
    client: &reqwest::Client,
    token: &str,
    order_id: &str,
) -> anyhow::Result<Option<()>> {
    let start = Instant::now();
    while start.elapsed() < CONFIRM_TIMEOUT {
        let poll = api.poll(client, token, order_id, "", None).await?;
        if poll.status != StatusCode::OK {
            return Ok(None);
        }
        if poll.order_status.as_deref() == Some("paid") {
            return Ok(Some(()));
        }
        tokio::time::sleep(LAG_POLL_INTERVAL).await;
    }
    Ok(None)
}

/// The kind of a transport error, short enough for a figure line.
pub fn short(error: &anyhow::Error) -> String {
    match error.downcast_ref::<reqwest::Error>() {
        Some(error) if error.is_timeout() => "timeout".to_owned(),
        Some(error) if error.is_connect() => "connect".to_owned(),
        Some(_) => "http".to_owned(),
        None => "other".to_owned(),
    }
}
