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
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: SubscriptionEvent) {
        Subscription::apply(self, &event);
    }
}
