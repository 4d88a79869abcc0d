//! The cqrs-es adapter: a thin shell over `decide` and `apply`, so a framework upgrade touches only this file.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use super::{Order, OrderCommand, OrderError, OrderEvent};

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(
        &mut self,
        command: OrderCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), OrderError> {
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

    fn apply(&mut self, event: OrderEvent) {
        Order::apply(self, &event);
    }
}
