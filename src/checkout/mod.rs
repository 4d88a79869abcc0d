//! Hosted checkout: a link a merchant's backend opens for one of its users, which lets a
//! browser see and pay only the orders placed through it, until it expires. The use cases
//! here know nothing of HTTP; the page and its JSON live in `crate::api::checkout`.

mod error;
pub mod origin;
pub mod qr;
pub mod secret;
mod session;
mod settings;
pub mod store;

pub use error::CheckoutError;
pub use session::{
    open, open_session, order_through, visible_order, Choice, OpenSession, Opened,
    SESSION_ORDERS_MAX,
};
pub use settings::{CheckoutSettings, SESSION_TTL_DEFAULT, SESSION_TTL_MAX};
pub use store::Session;

/// Where the page of the checkout whose link carries `secret` is served, under the public
/// URL. The page's own calls live under it.
pub fn page_path(secret: &str) -> String {
    format!("/checkout/{secret}")
}
