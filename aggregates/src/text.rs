//! Bounds on free text carried by commands, so an event never stores an unbounded string.

/// Longest human-written reason (cancellation, refund) we keep, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 500;

/// Longest QR code payload we keep; gateway QR payloads are short URLs, far below this.
pub(crate) const MAX_QR_CODE_CHARS: usize = 2048;

/// Longest gateway-supplied text (failure codes and messages, transaction numbers) we keep.
pub(crate) const MAX_GATEWAY_TEXT_CHARS: usize = 500;

/// Returns whether `text` fits in `max_chars` characters (not bytes: reasons may be Chinese).
pub(crate) fn fits(text: &str, max_chars: usize) -> bool {
    text.chars().nth(max_chars).is_none()
}

/// Cuts gateway text to the bound instead of rejecting it: the gateway cannot fix its message,
/// and rejecting the webhook would lose the payment fact it carries.
pub(crate) fn clip(text: Option<String>) -> Option<String> {
    text.map(|value| {
        if fits(&value, MAX_GATEWAY_TEXT_CHARS) {
            value
        } else {
            value.chars().take(MAX_GATEWAY_TEXT_CHARS).collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_counts_characters_not_bytes() {
        assert!(fits("退款", 2));
        assert!(!fits("退款了", 2));
        assert!(fits("", 0));
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text() {
        assert_eq!(clip(Some("short".to_owned())), Some("short".to_owned()));
        assert_eq!(clip(None), None);
        let long = "x".repeat(MAX_GATEWAY_TEXT_CHARS + 10);
        let clipped = clip(Some(long)).map(|text| text.chars().count());
        assert_eq!(clipped, Some(MAX_GATEWAY_TEXT_CHARS));
    }
}
