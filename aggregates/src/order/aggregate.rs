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
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: OrderEvent) {
        Order::apply(self, &event);
    }
}
