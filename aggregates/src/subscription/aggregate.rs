//! The cqrs-es adapter: a thin shell over `decide` and `apply`, so a framework upgrade touches only this file.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use super::{Subscription, SubscriptionCommand, SubscriptionError, SubscriptionEvent};

impl Aggregate for Subscription {
    const TYPE: &'static str = "subscription";
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    type Error = SubscriptionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: SubscriptionCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        let events = self.decide(command)?;
        // `EventSink::write` applies each event to the aggregate it is given, and cqrs-es's
        // snapshot store applies the committed events to the loaded aggregate again when it
        // takes a snapshot. Writing through a copy keeps the loaded state untouched, so every
        // event is applied exactly once whichever store is used.
        let mut scratch = self.clone();
        for event in events {
            sink.write(event, &mut scratch).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: SubscriptionEvent) {
        Subscription::apply(self, &event);
    }
}
