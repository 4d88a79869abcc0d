//! A long log, then `payledger replay` timed on it. The log is grown with real order
//! histories (created, charge requested, payment confirmed) appended through the library's
//! `CommandBus` by parallel tasks; when that would take longer than the plan allows, the rest
//! (PostgreSQL only) is bulk-copied in SQL from those orders under fresh ids. The live views
//! are brought up to the head of the log first, because replay rebuilds and compares up to
//! their checkpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::{
    ChargeId, GatewayEventId, Order, OrderCommand, OrderId, PlanCatalog, PlanId, UserId,
};
use anyhow::{bail, Context as _};
use harness::ChildRun;
use payledger::store::{Actor, CommandBus, EventMetadata, Source, Store};
use projections::{Projector, Tables};
use sqlx::Row;

use crate::args::Plan;
use crate::baseline::Baselines;
use crate::report::{Figure, Report};
use crate::server::ServerEnv;
use crate::stats::{rate, ratio};

/// Parallel appenders (appends are serialised by the store anyway; more only queue).
const APPENDERS: usize = 8;
/// Events each seeded order contributes.
const EVENTS_PER_ORDER: usize = 3;
/// Orders copied per SQL statement when topping up.
const COPY_BATCH_ORDERS: usize = 20_000;
/// The longest `payledger replay` or `payledger verify` may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(1800);

pub struct Setup<'a> {
    pub store: &'a Store,
    pub store_name: &'static str,
    pub is_postgres: bool,
    pub plan: &'a Plan,
    pub baselines: Baselines,
    pub env: &'a ServerEnv,
    pub tag: &'a str,
}

pub async fn run(setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<()> {
    let existing = count_events(setup.store).await?;
    let target = setup.plan.replay_events;
    let to_append = target.saturating_sub(existing);
    if to_append > 0 {
        append(setup, to_append, report).await?;
    }
    let after_append = count_events(setup.store).await?;
    if after_append < target {
        if setup.is_postgres {
            copy(setup, target - after_append, report).await?;
        } else {
            println!(
                "replay.{}: the log has {after_append} events, fewer than {target}: \
                 bulk copies are only made on PostgreSQL",
                setup.store_name
            );
        }
    }
    catch_up(setup, report).await?;
    replay(setup, report).await?;
    verify(setup, report).await
}

async fn count_events(store: &Store) -> anyhow::Result<usize> {
    let count: i64 = sqlx::query("SELECT CAST(count(*) AS BIGINT) AS n FROM events")
        .fetch_one(&store.read)
        .await?
        .try_get("n")?;
    Ok(usize::try_from(count)?)
}

/// The gateway-style charge id of a seeded order: derived from the order id so that the
/// bulk copy can derive the copy's charge id the same way.
fn charge_for(order: uuid::Uuid) -> String {
    let simple = order.simple().to_string();
    format!("ch_{}", simple.get(..24).unwrap_or(&simple))
}

fn metadata(tag: &str, actor: Actor, source: Source, event: Option<&str>) -> EventMetadata {
    EventMetadata {
        request_id: format!("bench-replay-{tag}"),
        actor,
        source,
        gateway_event_id: event.map(str::to_owned),
        recorded_at: chrono::Utc::now(),
    }
}

async fn append(setup: &Setup<'_>, to_append: usize, report: &mut Report) -> anyhow::Result<()> {
    let bus = Arc::new(CommandBus::<Order>::new(setup.store));
    let plan = PlanCatalog::standard()
        .find(&PlanId::parse("pro-monthly")?)
        .cloned()
        .context("the catalog has no pro-monthly plan")?;
    let channel: aggregates::Channel = "alipay_qr"
        .parse()
        .map_err(|_| anyhow::anyhow!("alipay_qr is not a channel"))?;
    let appended = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + setup.plan.replay_append_budget;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..APPENDERS {
        let bus = bus.clone();
        let plan = plan.clone();
        let appended = appended.clone();
        let tag = setup.tag.to_owned();
        tasks.spawn(async move {
            let mut number = 0_usize;
            while appended.load(Ordering::Relaxed) < to_append && Instant::now() < deadline {
                number += 1;
                let uuid = uuid::Uuid::new_v4();
                let order_id = OrderId::from_uuid(uuid);
                let id = order_id.to_string();
                let user =
                    UserId::parse(&format!("replay-{tag}-{}", (worker * 7919 + number) % 1000))?;
                let charge = ChargeId::parse(&charge_for(uuid))?;
                let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
                let now = chrono::Utc::now();
                let commands = [
                    (
                        OrderCommand::Create {
                            order_id,
                            user_id: user.clone(),
                            plan: plan.clone(),
                            channel,
                            at: now,
                        },
                        metadata(&tag, Actor::User(user.to_string()), Source::Api, None),
                    ),
                    (
                        OrderCommand::RequestCharge {
                            charge_id: charge.clone(),
                            qr_code: format!("http://127.0.0.1:8080/sandbox/charges/{charge}"),
                            expires_at: now + chrono::Duration::minutes(15),
                            at: now,
                        },
                        metadata(&tag, Actor::User(user.to_string()), Source::Api, None),
                    ),
                    (
                        OrderCommand::ConfirmPayment {
                            charge_id: charge.clone(),
                            gateway_event_id: Some(GatewayEventId::parse(&event_id)?),
                            amount: plan.price,
                            transaction_no: Some(format!("2026{:024}", number)),
                            paid_at: now,
                            at: now,
                            membership: None,
                        },
                        metadata(&tag, Actor::Gateway, Source::Webhook, Some(&event_id)),
                    ),
                ];
                for (command, metadata) in commands {
                    bus.execute(&id, command, &metadata)
                        .await
                        .context("appending a replay order")?;
                }
                appended.fetch_add(EVENTS_PER_ORDER, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let elapsed = started.elapsed();
    let events = appended.load(Ordering::Relaxed);
    let per_second = rate(events, elapsed);
    report.add(
        Figure::new(format!("append.{}", setup.store_name))
            .value("events/s", format!("{per_second:.1}"))
            .value("events", events)
            .value("tasks", APPENDERS)
            .value("seconds", format!("{:.1}", elapsed.as_secs_f64()))
            .value(
                "via",
                "in-process_CommandBus::execute(Create,RequestCharge,ConfirmPayment)",
            )
            .value(
                "ratio_vs_append_serialized_baseline",
                ratio(per_second, setup.baselines.append_serialized),
            )
            .ratio(
                "ratio_vs_append_baseline",
                ratio(per_second, setup.baselines.append),
            ),
    );
    Ok(())
}

/// Copies complete seeded orders under fresh order and charge ids until `missing` more
/// events are in the log. Positions come from the log's own trigger, in insertion order.
async fn copy(setup: &Setup<'_>, missing: usize, report: &mut Report) -> anyhow::Result<()> {
    let pattern = format!("bench-replay-{}", setup.tag);
    let seeds: i64 = sqlx::query(
        "SELECT CAST(count(*) AS BIGINT) AS n FROM (SELECT aggregate_id FROM events \
         WHERE aggregate_type = 'order' AND metadata->>'request_id' = $1 \
         GROUP BY aggregate_id HAVING count(*) = 3) AS complete",
    )
    .bind(&pattern)
    .fetch_one(&setup.store.read)
    .await?
    .try_get("n")?;
    let seeds = usize::try_from(seeds)?;
    if seeds == 0 {
        bail!("no seeded orders to copy");
    }
    let started = Instant::now();
    let mut copied = 0_usize;
    while copied < missing {
        let orders = (missing - copied)
            .div_ceil(EVENTS_PER_ORDER)
            .min(COPY_BATCH_ORDERS);
        let per_seed = orders.div_ceil(seeds).max(1);
        let limit = orders.min(seeds);
        let inserted = sqlx::query(
            "INSERT INTO events \
                 (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT e.aggregate_type, c.new_id, e.sequence, e.event_type, e.event_version, \
                    replace(replace(e.payload::text, c.old_id, c.new_id), \
                            'ch_' || substr(replace(c.old_id, '-', ''), 1, 24), \
                            'ch_' || substr(replace(c.new_id, '-', ''), 1, 24))::jsonb, \
                    e.metadata \
             FROM (SELECT s.aggregate_id AS old_id, gen_random_uuid()::text AS new_id \
                   FROM (SELECT aggregate_id FROM events \
                         WHERE aggregate_type = 'order' AND metadata->>'request_id' = $1 \
                         GROUP BY aggregate_id HAVING count(*) = 3 LIMIT $2) AS s \
                   CROSS JOIN generate_series(1, $3) AS copy_number) AS c \
             JOIN events e ON e.aggregate_type = 'order' AND e.aggregate_id = c.old_id \
             ORDER BY c.new_id, e.sequence",
        )
        .bind(&pattern)
        .bind(i64::try_from(limit)?)
        .bind(i32::try_from(per_seed)?)
        .execute(&setup.store.read)
        .await
        .context("bulk-copying orders")?
        .rows_affected();
        let inserted = usize::try_from(inserted)?;
        if inserted == 0 {
            bail!("the bulk copy inserted nothing");
        }
        copied += inserted;
    }
    let elapsed = started.elapsed();
    // The copies are stored without their hash-chain links, which the next `payledger`
    // command to start would add first; linking them here keeps that out of replay's and
    // verify's times.
    let linked = run_child(setup, "migrate").await?.succeeded()?;
    report.add(
        Figure::new(format!("bulk_copy.{}", setup.store_name))
            .value("events", copied)
            .value("seeds", seeds)
            .value("seconds", format!("{:.1}", elapsed.as_secs_f64()))
            .value("rows/s", format!("{:.1}", rate(copied, elapsed)))
            .value(
                "link_seconds",
                format!("{:.1}", linked.elapsed.as_secs_f64()),
            )
            .value(
                "via",
                "INSERT..SELECT_of_seeded_orders_under_fresh_ids(position_by_trigger)",
            ),
    );
    Ok(())
}

/// Brings the live views to the head of the log in this process, timed.
async fn catch_up(setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<()> {
    let projector = Projector::new(setup.store.read.clone(), Tables::live());
    projector.prepare().await?;
    let before = projector.checkpoint().await?;
    let started = Instant::now();
    let after = projector.catch_up(None, None).await?;
    let elapsed = started.elapsed();
    let projected: i64 = sqlx::query(
        "SELECT CAST(count(*) AS BIGINT) AS n FROM events WHERE position > $1 AND position <= $2",
    )
    .bind(before)
    .bind(after)
    .fetch_one(&setup.store.read)
    .await?
    .try_get("n")?;
    let projected = usize::try_from(projected)?;
    report.add(
        Figure::new(format!("projector_catch_up.{}", setup.store_name))
            .value("events/s", format!("{:.1}", rate(projected, elapsed)))
            .value("events", projected)
            .value("seconds", format!("{:.1}", elapsed.as_secs_f64()))
            .value("via", "in-process_Projector::catch_up(live_views)"),
    );
    Ok(())
}

/// A `payledger` subcommand run to its end on the bench's database: its output, wall time and
/// peak RSS. It blocks a thread of its own while it runs.
async fn run_child(setup: &Setup<'_>, subcommand: &str) -> anyhow::Result<ChildRun> {
    let launch = setup.env.launch().arg(subcommand);
    let run =
        tokio::task::spawn_blocking(move || harness::run_within(&launch, CHILD_TIMEOUT)).await??;
    Ok(run)
}

/// `payledger replay` on the same database, timed.
async fn replay(setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<()> {
    let events = count_events(setup.store).await?;
    let run = run_child(setup, "replay").await?;
    let (stdout, elapsed, peak_kib) = (&run.stdout, run.elapsed, run.peak_rss_kib);
    let clean = run.status.success() && stdout.contains("views equal the log");
    if !run.status.success() && !stdout.contains("DIFFERENCE") {
        return Err(run.failure().into());
    }
    let per_second = rate(events, elapsed);
    report.add(
        Figure::new(format!("replay.{}", setup.store_name))
            .value("events/s", format!("{per_second:.1}"))
            .value("events_in_log", events)
            .value("seconds", format!("{:.2}", elapsed.as_secs_f64()))
            .value("views_equal", if clean { "yes" } else { "NO" })
            .value(
                "replay_peak_rss_mib",
                format!("{:.1}", crate::server::kib_to_mib(peak_kib)),
            )
            .value("via", "payledger_replay_(child_process)"),
    );
    Ok(())
}

/// `payledger verify` on the same log, timed: the hash chain, positions, streams and every
/// gateway money event's evidence. The log's payments were appended in this process, not
/// settled from gateway events, so verify reports each as lacking evidence (`problems=`); the
/// walk does the same work for them as for any other event.
async fn verify(setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<()> {
    let events = count_events(setup.store).await?;
    let run = run_child(setup, "verify").await?;
    let (stdout, elapsed, peak_kib) = (&run.stdout, run.elapsed, run.peak_rss_kib);
    // Exit 0: intact; 1: problems listed; anything else is a failure to run.
    let verified = stdout
        .lines()
        .find_map(|line| line.strip_prefix("verified "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse::<usize>().ok());
    let (Some(verified), Some(0 | 1)) = (verified, run.status.code()) else {
        return Err(run.failure().into());
    };
    let problems = stdout
        .lines()
        .find_map(|line| line.strip_suffix(" listed)"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or("0");
    report.add(
        Figure::new(format!("verify.{}", setup.store_name))
            .value("events/s", format!("{:.1}", rate(verified, elapsed)))
            .value("events_in_log", events)
            .value("events_verified", verified)
            .value("seconds", format!("{:.2}", elapsed.as_secs_f64()))
            .value("problems", problems)
            .value(
                "verify_peak_rss_mib",
                format!("{:.1}", crate::server::kib_to_mib(peak_kib)),
            )
            .value("via", "payledger_verify_(child_process)"),
    );
    Ok(())
}
