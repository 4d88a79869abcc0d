//! One order as the polling endpoint shows it: its status row and, while the order's
//! membership grant counts, the membership it bought.

use sqlx::AnyConnection;

use crate::membership::{self, MembershipRow};
use crate::order_status::{self, OrderStatusRow};
use crate::schema::Tables;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub row: OrderStatusRow,
    /// The buyer's membership, when this order bought a grant that was not taken back.
    pub membership: Option<MembershipRow>,
}

/// Reads one order's view through `connection` (a pool connection, or a writer's transaction
/// right after it applied the views).
pub async fn load(
    connection: &mut AnyConnection,
    tables: &Tables,
    order_id: &str,
) -> Result<Option<OrderView>, sqlx::Error> {
    let Some(row) = order_status::find(&mut *connection, tables, order_id).await? else {
        return Ok(None);
    };
    // Only a paid order can have bought a grant: the others need no more reads.
    let may_have_bought = row.paid_minor > 0;
    let bought = may_have_bought
        && membership::orders(&mut *connection, tables, &row.user_id)
            .await?
            .into_iter()
            .any(|grant| grant.order_id == row.order_id && !grant.revoked);
    let membership = if bought {
        membership::find(&mut *connection, tables, &row.user_id).await?
    } else {
        None
    };
    Ok(Some(OrderView { row, membership }))
}
