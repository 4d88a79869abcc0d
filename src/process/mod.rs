//! Background work of the service: keeping the views up to date with the log.

pub mod membership;
pub mod order_cache;
pub mod projection;
pub mod reconcile_schedule;
pub mod reconciler;
