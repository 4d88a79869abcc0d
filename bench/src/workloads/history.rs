//! Command latency against an aggregate's history length. The Subscription aggregate (one per
//! user) gains one event per paid order; the API has no command that touches it directly, so
//! both the history and the timed commands go through the library's `CommandBus` in this
//! process, against the same database the server uses (before the server starts).

use std::sync::Arc;
use std::time::Instant;

use aggregates::{OrderId, PlanCatalog, PlanId, Subscription, SubscriptionCommand, UserId};
use anyhow::Context as _;
use payledger::store::{Actor, CommandBus, EventMetadata, Source, Store, SNAPSHOT_EVERY};
use sqlx::Row;

use crate::args::Plan;
use crate::report::{Figure, Report};
use crate::stats::{millis, rate, ratio, Samples};

/// One activation of `user`'s membership by a new order.
fn activation(user: &UserId, plan: &aggregates::Plan) -> SubscriptionCommand {
    SubscriptionCommand::ActivateMembership {
        user_id: user.clone(),
        order_id: OrderId::from_uuid(uuid::Uuid::new_v4()),
        plan_id: plan.id.clone(),
        tier: plan.tier,
        period: plan.period,
        at: chrono::Utc::now(),
    }
}

fn metadata(request_id: String) -> EventMetadata {
    EventMetadata {
        request_id,
        actor: Actor::System,
        source: Source::Cli,
        gateway_event_id: None,
        recorded_at: chrono::Utc::now(),
    }
}

/// Builds one history per length, then times commands on each.
pub async fn run(
    store: &Store,
    store_name: &str,
    plan: &Plan,
    tag: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let bus = Arc::new(CommandBus::<Subscription>::new(store));
    let catalog = PlanCatalog::standard();
    let membership_plan = catalog
        .find(&PlanId::parse("pro-monthly")?)
        .cloned()
        .context("the catalog has no pro-monthly plan")?;

    // The histories, one task per aggregate (appends to one aggregate are sequential).
    let started = Instant::now();
    let mut builders = tokio::task::JoinSet::new();
    for &length in &plan.history_lengths {
        let bus = bus.clone();
        let user = UserId::parse(&format!("hist-{tag}-{length}"))?;
        let membership_plan = membership_plan.clone();
        builders.spawn(async move {
            for number in 0..length {
                bus.execute(
                    user.as_ref(),
                    activation(&user, &membership_plan),
                    &metadata(format!("bench-history-{number}")),
                )
                .await
                .with_context(|| format!("building a history of {length}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = builders.join_next().await {
        result??;
    }
    let built: usize = plan.history_lengths.iter().sum();
    let build_time = started.elapsed();
    report.add(
        Figure::new(format!("history_build.{store_name}"))
            .value("events", built)
            .value("aggregates", plan.history_lengths.len())
            .value("seconds", format!("{:.1}", build_time.as_secs_f64()))
            .value("events/s", format!("{:.1}", rate(built, build_time)))
            .value(
                "via",
                "in-process_CommandBus::execute,one_task_per_aggregate",
            ),
    );

    // The timed commands, one aggregate at a time so they do not compete.
    let mut medians = Vec::new();
    for &length in &plan.history_lengths {
        let user = UserId::parse(&format!("hist-{tag}-{length}"))?;
        let mut latency = Samples::new();
        for number in 0..plan.history_samples {
            let command = activation(&user, &membership_plan);
            let start = Instant::now();
            bus.execute(
                user.as_ref(),
                command,
                &metadata(format!("bench-history-timed-{number}")),
            )
            .await
            .context("a timed subscription command failed")?;
            latency.since(start);
        }
        let median = latency.percentile(500);
        medians.push((length, median));
        let snapshot_bytes: i64 = sqlx::query(
            "SELECT CAST(coalesce(max(length(CAST(payload AS TEXT))), 0) AS BIGINT) AS n \
             FROM snapshots WHERE aggregate_id = $1",
        )
        .bind(user.as_ref())
        .fetch_one(&store.read)
        .await?
        .try_get("n")?;
        report.add(
            Figure::new(format!("history.events_{length}.{store_name}"))
                .value("prior_events", length)
                .value("commands", plan.history_samples)
                .text(latency.summary("execute"))
                .value("snapshot_bytes", snapshot_bytes)
                .value(
                    "via",
                    format!(
                        "in-process_CommandBus::execute(ActivateMembership),snapshot_every_{SNAPSHOT_EVERY}"
                    ),
                ),
        );
    }
    if let (Some((short, Some(short_p50))), Some((long, Some(long_p50)))) =
        (medians.first().copied(), medians.last().copied())
    {
        report.add(
            Figure::new(format!("history.{store_name}"))
                .value(format!("p50_{short}"), millis(Some(short_p50)))
                .value(format!("p50_{long}"), millis(Some(long_p50)))
                .ratio(
                    format!("ratio_{long}_vs_{short}"),
                    ratio(f64::from(long_p50), Some(f64::from(short_p50))),
                ),
        );
    }
    Ok(())
}
