//! Gateway events this process has seen settled, remembered so a redelivery (gateways resend
//! until they see a 2xx, and some resend regardless) is answered without touching the
//! database. An event is remembered only once its final outcome is durable, so a hit is
//! always a true duplicate; a miss falls back to the inbox row.

use std::collections::HashMap;
use std::sync::Mutex;

/// Events remembered at most; past this the memory starts over (a redelivery then costs one
/// read of the inbox).
pub const REMEMBERED_MAX: usize = 50_000;

/// Where a settled event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub order_id: Option<String>,
    pub position: i64,
}

#[derive(Debug, Default)]
pub struct SettledEvents {
    events: Mutex<HashMap<(String, String), Landed>>,
}

impl SettledEvents {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Landed>> {
        match self.events.lock() {
            Ok(events) => events,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn get(&self, provider: &str, event_id: &str) -> Option<Landed> {
        self.lock()
            .get(&(provider.to_owned(), event_id.to_owned()))
            .cloned()
    }

    /// Remembers an event whose final outcome is committed.
    pub fn remember(&self, provider: &str, event_id: &str, landed: Landed) {
        let mut events = self.lock();
        if events.len() >= REMEMBERED_MAX {
            events.clear();
        }
        events.insert((provider.to_owned(), event_id.to_owned()), landed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_provider_and_event_and_starts_over_when_full() {
        let settled = SettledEvents::default();
        let landed = Landed {
            order_id: Some("o1".to_owned()),
            position: 7,
        };
        settled.remember("pingpp", "evt_1", landed.clone());
        assert_eq!(settled.get("pingpp", "evt_1"), Some(landed.clone()));
        assert_eq!(settled.get("alipay", "evt_1"), None);
        for n in 0..REMEMBERED_MAX {
            settled.remember("pingpp", &format!("evt_fill_{n}"), landed.clone());
        }
        assert!(settled.lock().len() <= REMEMBERED_MAX);
    }
}
