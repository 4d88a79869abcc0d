//! Finding one of our refunds among a charge's refunds at Ping++. Ping++ names refunds by its
//! own `re_...` ids, so a refund whose id we never recorded (the process stopped before the
//! gateway's answer was written down) can only be found by walking the charge's refund list
//! and matching the refund id we put in each refund's metadata.

use aggregates::{ChargeId, RefundId};

use super::webhook::REFUND_ID_METADATA_KEY;
use super::wire;

/// Refunds asked for per page: Ping++'s largest page.
pub const PAGE_LIMIT: u32 = 100;
/// Pages read at most before giving up. A charge is refunded a handful of times; a list
/// that never ends is a gateway fault, not something to follow forever.
pub const PAGES_MAX: u32 = 20;

/// What one page says about the refund we look for.
#[derive(Debug, Clone, PartialEq)]
pub enum PageStep {
    /// This refund carries our refund id.
    Found(Box<wire::Refund>),
    /// Not on this page; the next page starts after this refund id.
    Next(String),
    /// The list ended without it.
    Exhausted,
}

/// The path (below the API base) of the page of `charge_id`'s refunds that starts after
/// `starting_after` (the first page without it).
pub fn page_path(charge_id: &ChargeId, starting_after: Option<&str>) -> Result<String, String> {
    let mut path = format!("/charges/{}/refunds?limit={PAGE_LIMIT}", charge_id.as_str());
    if let Some(cursor) = starting_after {
        // Ids are letters, digits and underscores; anything else would need escaping and is
        // not an id Ping++ gave out.
        if cursor.is_empty()
            || !cursor
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
        {
            return Err(format!(
                "the refund list's cursor `{cursor}` is not a refund id"
            ));
        }
        path.push_str("&starting_after=");
        path.push_str(cursor);
    }
    Ok(path)
}

/// Looks for `refund_id` on one page of `charge_id`'s refunds.
pub fn step(
    page: &wire::RefundList,
    charge_id: &ChargeId,
    refund_id: &RefundId,
) -> Result<PageStep, String> {
    let ours = page.data.iter().find(|refund| {
        refund.charge == charge_id.as_str()
            && refund
                .metadata
                .get(REFUND_ID_METADATA_KEY)
                .and_then(serde_json::Value::as_str)
                .and_then(|text| text.parse::<RefundId>().ok())
                .is_some_and(|found| &found == refund_id)
    });
    if let Some(refund) = ours {
        return Ok(PageStep::Found(Box::new(refund.clone())));
    }
    if !page.has_more {
        return Ok(PageStep::Exhausted);
    }
    // More pages but nothing on this one to continue from would ask for this page again.
    page.data
        .last()
        .map(|last| PageStep::Next(last.id.clone()))
        .ok_or_else(|| "the refund list says more follow but its page is empty".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    fn charge() -> ChargeId {
        ChargeId::parse("ch_L8qn10mLmr1GS8e5OODmHaL4").unwrap()
    }

    fn page(value: serde_json::Value) -> wire::RefundList {
        serde_json::from_value(value).unwrap()
    }

    fn refund(id: &str, ours: Option<&RefundId>) -> serde_json::Value {
        let metadata = ours.map_or(json!({}), |ours| json!({"refund_id": ours.to_string()}));
        json!({
            "id": id, "object": "refund", "amount": 100, "status": "succeeded",
            "charge": "ch_L8qn10mLmr1GS8e5OODmHaL4", "metadata": metadata,
        })
    }

    #[test]
    fn the_first_page_asks_for_the_largest_page_and_later_ones_start_after_the_cursor() {
        assert_eq!(
            page_path(&charge(), None).unwrap(),
            "/charges/ch_L8qn10mLmr1GS8e5OODmHaL4/refunds?limit=100"
        );
        assert_eq!(
            page_path(&charge(), Some("re_abc_1")).unwrap(),
            "/charges/ch_L8qn10mLmr1GS8e5OODmHaL4/refunds?limit=100&starting_after=re_abc_1"
        );
        assert!(page_path(&charge(), Some("re_x&limit=1")).is_err());
        assert!(page_path(&charge(), Some("")).is_err());
    }

    #[test]
    fn our_refund_is_found_by_the_refund_id_in_its_metadata() {
        let ours = RefundId::from_uuid(uuid::Uuid::new_v4());
        let other = RefundId::from_uuid(uuid::Uuid::new_v4());
        let list = page(json!({
            "object": "list", "url": "/v1/charges/ch_L8qn10mLmr1GS8e5OODmHaL4/refunds",
            "has_more": true,
            "data": [refund("re_newest", Some(&other)), refund("re_ours", Some(&ours)), refund("re_theirs", None)],
        }));
        let PageStep::Found(found) = step(&list, &charge(), &ours).unwrap() else {
            panic!("not found");
        };
        assert_eq!(found.id, "re_ours");
    }

    #[test]
    fn a_page_without_it_continues_after_its_last_refund_or_ends_the_list() {
        let ours = RefundId::from_uuid(uuid::Uuid::new_v4());
        let more = page(json!({
            "object": "list", "has_more": true,
            "data": [refund("re_1", None), refund("re_2", None)],
        }));
        assert_eq!(
            step(&more, &charge(), &ours).unwrap(),
            PageStep::Next("re_2".to_owned())
        );
        let last =
            page(json!({"object": "list", "has_more": false, "data": [refund("re_3", None)]}));
        assert_eq!(step(&last, &charge(), &ours).unwrap(), PageStep::Exhausted);
        let empty = page(json!({"object": "list", "has_more": false, "data": []}));
        assert_eq!(step(&empty, &charge(), &ours).unwrap(), PageStep::Exhausted);
    }

    #[test]
    fn a_list_that_promises_more_with_an_empty_page_is_refused() {
        let ours = RefundId::from_uuid(uuid::Uuid::new_v4());
        let broken = page(json!({"object": "list", "has_more": true, "data": []}));
        assert!(step(&broken, &charge(), &ours).is_err());
    }

    #[test]
    fn a_refund_of_another_charge_carrying_our_id_is_not_ours() {
        let ours = RefundId::from_uuid(uuid::Uuid::new_v4());
        let mut stray = refund("re_stray", Some(&ours));
        stray["charge"] = json!("ch_other");
        let list = page(json!({"object": "list", "has_more": false, "data": [stray]}));
        assert_eq!(step(&list, &charge(), &ours).unwrap(), PageStep::Exhausted);
    }
}
