//! QR codes drawn by the server as SVG, so a page needs no script library (and no CDN) to
//! show the code a wallet scans.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// Pixels per module in the drawing; the image scales, this only sets its natural size.
const MODULE_PIXELS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payment credential cannot be drawn as a QR code: {0}")]
pub struct QrError(String);

/// `text` as an SVG QR code (error correction M: a phone reads it from a screen), with its
/// quiet zone, without the XML declaration so it can also be inlined.
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|error| QrError(error.to_string()))?;
    let drawing = code
        .render::<svg::Color<'_>>()
        .module_dimensions(MODULE_PIXELS, MODULE_PIXELS)
        .quiet_zone(true)
        .build();
    Ok(match drawing.find("<svg") {
        Some(start) => drawing[start..].to_owned(),
        None => drawing,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_credential_becomes_an_svg_image() {
        let drawing = svg("https://pay.example/charges/ch_1").unwrap();
        assert!(drawing.starts_with("<svg"));
        assert!(drawing.contains("<path"));
        assert!(drawing.ends_with("</svg>"));
    }

    #[test]
    fn text_too_long_for_any_qr_code_is_refused() {
        assert!(svg(&"x".repeat(5000)).is_err());
    }
}
