//! Upcasters turn an event stored under an older version into the current shape, so the
//! domain code only ever sees current events. Both the command side (loading aggregates)
//! and the projectors (reading the log) use this one list.
//!
//! When an event's shape changes: bump its version in the domain, and add here a
//! `SemanticVersionEventUpcaster` for the event type whose function rewrites the old JSON
//! payload into the new one. Fields that only an event's history could fill in (such as what
//! a refund left of its order) cannot be upcast: they stay optional, empty in old events.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};

/// The upcasters for every aggregate, oldest first.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

/// Applies every upcaster that claims the event, in order (what cqrs-es does on load).
pub fn upcast(event: SerializedEvent, upcasters: &[Box<dyn EventUpcaster>]) -> SerializedEvent {
    upcasters.iter().fold(event, |event, upcaster| {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            upcaster.upcast(event)
        } else {
            event
        }
    })
}
