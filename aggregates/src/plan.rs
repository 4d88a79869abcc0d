//! What we sell: membership plans with a tier, a billing period and a price.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::PlanId;
use crate::money::{Currency, Money};

/// Membership level. The derived order (`Free < Pro < Enterprise`) is what "higher tier"
/// means when a renewal stacks on an existing membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

impl Tier {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }
}

/// How long one purchase lasts, in calendar months, so a monthly plan bought on 31 January
/// ends on the last day of February rather than after a fixed number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Monthly,
    Yearly,
}

impl Period {
    pub const fn as_str(&self) -> &'static str {
        match self {
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    pub const fn months(&self) -> u32 {
        match self {
            Period::Monthly => 1,
            Period::Yearly => 12,
        }
    }

    /// The end of one period starting at `start`; `None` only past chrono's representable range.
    pub fn end_from(&self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        start.checked_add_months(Months::new(self.months()))
    }
}

/// One purchasable (or free) offer. The order copies these facts into its events, so a
/// later price change never rewrites history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: PlanId,
    pub name: String,
    pub tier: Tier,
    pub period: Period,
    pub price: Money,
}

impl Plan {
    /// Only a plan with a price can be paid for; a free plan needs no order.
    pub fn is_purchasable(&self) -> bool {
        !self.price.is_zero()
    }
}

/// The set of plans on sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    plans: Vec<Plan>,
}

impl PlanCatalog {
    /// A catalog of the given plans (a deployment's own, or a test's).
    pub fn new(plans: Vec<Plan>) -> PlanCatalog {
        PlanCatalog { plans }
    }

    /// The plans we sell today, priced in fen.
    pub fn standard() -> PlanCatalog {
        let plan = |id, name: &str, tier, period, price_minor| Plan {
            id: PlanId::known(id),
            name: name.to_owned(),
            tier,
            period,
            price: Money::from_unsigned(price_minor, Currency::Cny),
        };
        PlanCatalog {
            plans: vec![
                plan(
                    "free-monthly",
                    "Free (monthly)",
                    Tier::Free,
                    Period::Monthly,
                    0,
                ),
                plan(
                    "pro-monthly",
                    "Pro (monthly)",
                    Tier::Pro,
                    Period::Monthly,
                    9_900,
                ),
                plan(
                    "pro-yearly",
                    "Pro (yearly)",
                    Tier::Pro,
                    Period::Yearly,
                    99_000,
                ),
                plan(
                    "enterprise-monthly",
                    "Enterprise (monthly)",
                    Tier::Enterprise,
                    Period::Monthly,
                    49_900,
                ),
                plan(
                    "enterprise-yearly",
                    "Enterprise (yearly)",
                    Tier::Enterprise,
                    Period::Yearly,
                    499_000,
                ),
            ],
        }
    }

    pub fn find(&self, id: &PlanId) -> Option<&Plan> {
        self.plans.iter().find(|plan| &plan.id == id)
    }

    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// Whether an order may be placed for `plan`: it must cost something.
    pub fn purchasable(&self, plan: &Plan) -> bool {
        plan.is_purchasable()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, 8, 0, 0).unwrap()
    }

    #[test]
    fn standard_plan_ids_pass_validation() {
        for plan in PlanCatalog::standard().plans() {
            assert_eq!(PlanId::parse(plan.id.as_str()), Ok(plan.id.clone()));
        }
    }

    #[test]
    fn the_standard_catalog_prices_plans_in_fen() {
        let catalog = PlanCatalog::standard();
        let price = |id| {
            catalog
                .find(&PlanId::parse(id).unwrap())
                .map(|plan| plan.price.amount_minor())
        };
        assert_eq!(price("free-monthly"), Some(0));
        assert_eq!(price("pro-monthly"), Some(9_900));
        assert_eq!(price("pro-yearly"), Some(99_000));
        assert_eq!(price("enterprise-monthly"), Some(49_900));
        assert_eq!(price("enterprise-yearly"), Some(499_000));
        assert_eq!(price("gold-forever"), None);
        assert_eq!(catalog.plans().len(), 5);
    }

    #[test]
    fn only_paid_plans_are_purchasable() {
        let catalog = PlanCatalog::standard();
        let purchasable: Vec<&str> = catalog
            .plans()
            .iter()
            .filter(|plan| catalog.purchasable(plan))
            .map(|plan| plan.id.as_str())
            .collect();
        assert_eq!(
            purchasable,
            [
                "pro-monthly",
                "pro-yearly",
                "enterprise-monthly",
                "enterprise-yearly"
            ]
        );
    }

    #[test]
    fn higher_tiers_compare_greater() {
        assert!(Tier::Enterprise > Tier::Pro);
        assert!(Tier::Pro > Tier::Free);
    }

    #[test]
    fn periods_are_calendar_months() {
        assert_eq!(
            Period::Monthly.end_from(at(2024, 1, 31)),
            Some(at(2024, 2, 29))
        );
        assert_eq!(
            Period::Monthly.end_from(at(2024, 3, 15)),
            Some(at(2024, 4, 15))
        );
        assert_eq!(
            Period::Yearly.end_from(at(2024, 2, 29)),
            Some(at(2025, 2, 28))
        );
    }

    #[test]
    fn tiers_and_periods_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_value(Tier::Enterprise).unwrap(),
            serde_json::json!("enterprise")
        );
        assert_eq!(
            serde_json::to_value(Period::Yearly).unwrap(),
            serde_json::json!("yearly")
        );
    }
}
