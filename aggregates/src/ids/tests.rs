//! Examples of accepted and refused ids, and the promise that serde applies the same rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;

fn invalid(kind: &'static str, problem: IdProblem) -> IdError {
    IdError::Invalid { kind, problem }
}

#[test]
fn order_ids_parse_from_and_print_as_hyphenated_uuids() {
    let text = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let id: OrderId = text.parse().unwrap();
    assert_eq!(id.to_string(), text);
    assert_eq!(OrderId::from_uuid(id.as_uuid()), id);
}

#[test]
fn a_malformed_order_id_names_its_kind() {
    assert_eq!(
        "not-a-uuid".parse::<OrderId>(),
        Err(invalid("order_id", IdProblem::NotUuid))
    );
    assert_eq!(
        "nope".parse::<RefundId>(),
        Err(invalid("refund_id", IdProblem::NotUuid))
    );
}

#[test]
fn uuid_ids_serialize_as_plain_strings() {
    let id: RefundId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
    assert_eq!(
        serde_json::to_value(id).unwrap(),
        serde_json::json!("67e55044-10b1-426f-9247-bb680e5fe0c8")
    );
}

#[test]
fn user_ids_accept_emails_and_usernames() {
    for text in ["alice", "alice.smith@example.com", "user_42-x", "A"] {
        assert_eq!(UserId::parse(text).unwrap().as_str(), text);
    }
}

#[test]
fn user_ids_refuse_empty_long_and_odd_text() {
    assert_eq!(UserId::parse(""), Err(invalid("user_id", IdProblem::Empty)));
    assert_eq!(
        UserId::parse(&"a".repeat(65)),
        Err(invalid("user_id", IdProblem::TooLong { max_chars: 64 }))
    );
    assert!(UserId::parse(&"a".repeat(64)).is_ok());
    assert_eq!(
        UserId::parse("al ice"),
        Err(invalid(
            "user_id",
            IdProblem::ForbiddenCharacter { character: ' ' }
        ))
    );
}

#[test]
fn gateway_ids_need_their_prefix_and_something_after_it() {
    assert!(ChargeId::parse("ch_a").is_ok());
    assert_eq!(
        ChargeId::parse("ch_"),
        Err(invalid(
            "charge_id",
            IdProblem::TooShort {
                min_chars: 4,
                actual_chars: 3
            }
        ))
    );
    assert_eq!(
        ChargeId::parse("re_abc"),
        Err(invalid(
            "charge_id",
            IdProblem::MissingPrefix { prefix: "ch_" }
        ))
    );
    assert_eq!(
        ChargeId::parse("ch-abc"),
        Err(invalid(
            "charge_id",
            IdProblem::ForbiddenCharacter { character: '-' }
        ))
    );
    assert!(GatewayRefundId::parse("re_L8qn5C").is_ok());
    assert!(GatewayRefundId::parse("ch_L8qn5C").is_err());
    assert!(GatewayEventId::parse("evt_401160225165").is_ok());
    assert!(GatewayEventId::parse("evt_").is_err());
}

#[test]
fn plan_ids_are_lowercase_slugs() {
    assert!(PlanId::parse("pro-monthly").is_ok());
    assert!(PlanId::parse("Pro-Monthly").is_err());
    assert!(PlanId::parse("pro_monthly").is_err());
}

#[test]
fn deserializing_an_invalid_text_id_fails() {
    let bad: Result<ChargeId, _> = serde_json::from_str(r#""evt_123""#);
    assert!(bad.is_err());
    let good: ChargeId = serde_json::from_str(r#""ch_123""#).unwrap();
    assert_eq!(good.as_str(), "ch_123");
}

#[test]
fn id_errors_share_one_code_and_name_their_kind() {
    let error = UserId::parse("").unwrap_err();
    assert_eq!(error.code(), "id.invalid");
    assert_eq!(error.kind(), "user_id");
    assert_eq!(error.to_string(), "invalid user_id: it is empty");
}

proptest! {
    #[test]
    fn valid_user_ids_round_trip_through_text_and_json(text in "[A-Za-z0-9_.@-]{1,64}") {
        let id = UserId::parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text.clone());
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
    }

    #[test]
    fn parse_and_deserialize_always_agree(text in "\\PC{0,70}") {
        let parsed = ChargeId::parse(&text).is_ok();
        let json = serde_json::to_string(&text).unwrap();
        let deserialized = serde_json::from_str::<ChargeId>(&json).is_ok();
        prop_assert_eq!(parsed, deserialized);
    }

    #[test]
    fn any_uuid_round_trips(bytes in any::<[u8; 16]>()) {
        let id = OrderId::from_uuid(Uuid::from_bytes(bytes));
        prop_assert_eq!(id.to_string().parse::<OrderId>().unwrap(), id);
    }
}
