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

/// How long one purchase lasts: calendar months, so a monthly plan bought on 31 January ends
/// on the last day of February rather than after a fixed number of days, or whole days. A
/// merchant's catalog may name any number of either; one or twelve months are stored as
/// `monthly` and `yearly`, as they always were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Monthly,
    Yearly,
    /// Whole calendar months other than 1 and 12 (`{"months": 3}`).
    Months(u32),
    /// Whole days (`{"days": 7}`).
    Days(u32),
}

impl Period {
    /// The period of `count` whole months: `Monthly` and `Yearly` where they fit.
    pub const fn of_months(count: u32) -> Period {
        match count {
            1 => Period::Monthly,
            12 => Period::Yearly,
            other => Period::Months(other),
        }
    }

    /// Its kind: `monthly`, `yearly`, `months` or `days` (the count is in the serde form).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
            Period::Months(_) => "months",
            Period::Days(_) => "days",
        }
    }

    /// Whole months it lasts; 0 for a period counted in days.
    pub const fn months(&self) -> u32 {
        match self {
            Period::Monthly => 1,
            Period::Yearly => 12,
            Period::Months(count) => *count,
            Period::Days(_) => 0,
        }
    }

    /// True for a period of no time at all, which no plan may have.
    pub const fn is_empty(&self) -> bool {
        matches!(self, Period::Months(0) | Period::Days(0))
    }

    /// The end of one period starting at `start`; `None` only past chrono's representable range.
    pub fn end_from(&self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Period::Days(count) => {
                start.checked_add_signed(chrono::Duration::days(i64::from(*count)))
            }
            Period::Monthly | Period::Yearly | Period::Months(_) => {
                start.checked_add_months(Months::new(self.months()))
            }
        }
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
    /// False for a plan listed but no longer (or not yet) sold.
    #[serde(default = "on_sale")]
    pub on_sale: bool,
}

const fn on_sale() -> bool {
    true
}

impl Plan {
    /// Only a plan on sale with a price can be paid for; a free plan needs no order.
    pub fn is_purchasable(&self) -> bool {
        self.on_sale && !self.price.is_zero()
    }
}

/// Why a list of plans is not a catalog; `index` is the plan's place in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("a catalog needs at least one plan")]
    Empty,
    #[error("at most {max} plans")]
    TooMany { max: usize },
    #[error("plan {index}: the id `{id}` is used twice")]
    DuplicateId { index: usize, id: PlanId },
    #[error("plan {index}: a period of no time")]
    EmptyPeriod { index: usize },
    #[error("plan {index}: a name of 1 to {max} characters")]
    BadName { index: usize, max: usize },
}

impl CatalogError {
    /// The plan it is about, when it is about one.
    pub fn index(&self) -> Option<usize> {
        match self {
            CatalogError::Empty | CatalogError::TooMany { .. } => None,
            CatalogError::DuplicateId { index, .. }
            | CatalogError::EmptyPeriod { index }
            | CatalogError::BadName { index, .. } => Some(*index),
        }
    }
}

/// The most plans a catalog may hold.
pub const CATALOG_PLANS_MAX: usize = 100;
/// The longest plan name.
pub const PLAN_NAME_CHARS_MAX: usize = 100;

/// The set of plans on sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    plans: Vec<Plan>,
}

impl PlanCatalog {
    /// The plans we sell today, priced in fen.
    pub fn standard() -> PlanCatalog {
        let plan = |id, name: &str, tier, period, price_minor| Plan {
            id: PlanId::known(id),
            name: name.to_owned(),
            tier,
            period,
            price: Money::from_unsigned(price_minor, Currency::Cny),
            on_sale: true,
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

    /// A merchant's own catalog, checked: ids unique, periods of some time, names present.
    pub fn from_plans(plans: Vec<Plan>) -> Result<PlanCatalog, CatalogError> {
        if plans.is_empty() {
            return Err(CatalogError::Empty);
        }
        if plans.len() > CATALOG_PLANS_MAX {
            return Err(CatalogError::TooMany {
                max: CATALOG_PLANS_MAX,
            });
        }
        for (index, plan) in plans.iter().enumerate() {
            if plans[..index].iter().any(|earlier| earlier.id == plan.id) {
                return Err(CatalogError::DuplicateId {
                    index,
                    id: plan.id.clone(),
                });
            }
            if plan.period.is_empty() {
                return Err(CatalogError::EmptyPeriod { index });
            }
            let length = plan.name.trim().chars().count();
            if length == 0 || length > PLAN_NAME_CHARS_MAX {
                return Err(CatalogError::BadName {
                    index,
                    max: PLAN_NAME_CHARS_MAX,
                });
            }
        }
        Ok(PlanCatalog { plans })
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
    fn periods_in_days_and_months_end_where_they_say() {
        assert_eq!(
            Period::Days(7).end_from(at(2024, 2, 26)),
            Some(at(2024, 3, 4))
        );
        assert_eq!(
            Period::of_months(3).end_from(at(2024, 1, 31)),
            Some(at(2024, 4, 30))
        );
        assert_eq!(Period::of_months(1), Period::Monthly);
        assert_eq!(Period::of_months(12), Period::Yearly);
        assert!(Period::Days(0).is_empty());
        assert!(!Period::Monthly.is_empty());
        assert_eq!(
            serde_json::to_value(Period::Days(7)).unwrap(),
            serde_json::json!({"days": 7})
        );
        assert_eq!(
            serde_json::from_value::<Period>(serde_json::json!("monthly")).unwrap(),
            Period::Monthly
        );
    }

    #[test]
    fn a_merchant_catalog_is_checked() {
        let standard = PlanCatalog::standard().plans().to_vec();
        assert_eq!(
            PlanCatalog::from_plans(standard.clone()).unwrap(),
            PlanCatalog::standard()
        );
        assert_eq!(
            PlanCatalog::from_plans(Vec::new()),
            Err(CatalogError::Empty)
        );
        let mut twice = standard.clone();
        twice.push(standard[1].clone());
        assert_eq!(
            PlanCatalog::from_plans(twice).unwrap_err().index(),
            Some(standard.len())
        );
        let mut empty = standard.clone();
        empty[2].period = Period::Days(0);
        assert_eq!(
            PlanCatalog::from_plans(empty),
            Err(CatalogError::EmptyPeriod { index: 2 })
        );
        let mut unnamed = standard.clone();
        unnamed[0].name = "  ".to_owned();
        assert_eq!(
            PlanCatalog::from_plans(unnamed).unwrap_err().index(),
            Some(0)
        );
        let mut withdrawn = standard;
        withdrawn[1].on_sale = false;
        let catalog = PlanCatalog::from_plans(withdrawn).unwrap();
        assert!(!catalog.purchasable(&catalog.plans()[1]));
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
