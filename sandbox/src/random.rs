//! The identifiers and numbers the sandbox makes up. They come from the operating system's
//! generator so two sandboxes, or two test runs, never hand out the same charge id.

use rsa::rand_core::{OsRng, RngCore};

const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";

/// Characters after the prefix of every id, as in Ping++'s `ch_` / `re_` / `evt_` ids.
pub(super) const ID_SUFFIX_CHARS: usize = 24;
/// Channel transaction numbers are long digit strings (Alipay and WeChat Pay both use 28).
const TRANSACTION_NO_DIGITS: usize = 28;

/// `count` characters drawn uniformly from `alphabet` (at most 256 symbols). Bytes at or
/// above the largest multiple of the alphabet's size are drawn again, so no symbol is more
/// likely than another.
fn draw(alphabet: &[u8], count: usize) -> String {
    let size = alphabet.len();
    let limit = 256 - 256 % size;
    let mut text = String::with_capacity(count);
    let mut buffer = [0_u8; 32];
    while text.len() < count {
        OsRng.fill_bytes(&mut buffer);
        for byte in buffer.iter().map(|byte| usize::from(*byte)) {
            if byte >= limit || text.len() >= count {
                continue;
            }
            if let Some(symbol) = alphabet.get(byte % size) {
                text.push(char::from(*symbol));
            }
        }
    }
    text
}

fn prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", draw(ALPHANUMERIC, ID_SUFFIX_CHARS))
}

/// `count` random decimal digits (Alipay's notify ids).
pub(super) fn digits(count: usize) -> String {
    draw(DIGITS, count)
}

/// `count` random letters and digits (WeChat Pay's resource nonces).
pub(super) fn alphanumeric(count: usize) -> String {
    draw(ALPHANUMERIC, count)
}

pub(super) fn charge_id() -> String {
    prefixed("ch")
}

pub(super) fn refund_id() -> String {
    prefixed("re")
}

pub(super) fn event_id() -> String {
    prefixed("evt")
}

/// The id of the API request that caused an event (Ping++'s `request` field).
pub(super) fn request_id() -> String {
    prefixed("iar")
}

pub(super) fn transaction_no() -> String {
    draw(DIGITS, TRANSACTION_NO_DIGITS)
}
