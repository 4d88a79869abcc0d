//! Alipay's synchronous answers: `{"<method>_response": {...}, "sign": "..."}`. The signature
//! covers the exact text of the `*_response` value as it arrived, so that text is cut out of
//! the answer byte for byte (never re-serialised) and checked before anything in it is read.

use rsa::RsaPublicKey;
use serde::Deserialize;

use crate::signature::{self, SignatureError};

/// The key of a method's answer: `alipay.trade.query` -> `alipay_trade_query_response`.
pub fn response_key(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// What a verified answer holds: the raw text of the response object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer is not a JSON object with a `{0}` member")]
    Unreadable(String),
    /// Alipay answered `error_response` (bad app id, bad signature of ours...): unsigned, so
    /// only ever an error.
    #[error("Alipay refused the call: {code} {message}")]
    Refused { code: String, message: String },
    #[error("the answer's signature: {0}")]
    Signature(SignatureError),
}

/// The status fields every answer has.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub code: String,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub sub_code: Option<String>,
    #[serde(default)]
    pub sub_msg: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    sign: Option<String>,
}

/// Verifies an answer to `method` and returns the exact text of its response object.
pub fn verify<'a>(
    public_key: &RsaPublicKey,
    method: &str,
    text: &'a str,
) -> Result<&'a str, ResponseError> {
    let key = response_key(method);
    let Some(raw) = top_level_value(text, &key) else {
        if let Some(error) = top_level_value(text, "error_response") {
            let status: Status = serde_json::from_str(error)
                .map_err(|_| ResponseError::Unreadable("error_response".to_owned()))?;
            return Err(ResponseError::Refused {
                code: status.sub_code.unwrap_or(status.code),
                message: status.sub_msg.unwrap_or(status.msg),
            });
        }
        return Err(ResponseError::Unreadable(key));
    };
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|_| ResponseError::Unreadable(key.clone()))?;
    let sign = envelope
        .sign
        .ok_or(ResponseError::Signature(SignatureError::Missing))?;
    signature::verify(public_key, raw.as_bytes(), &sign).map_err(ResponseError::Signature)?;
    Ok(raw)
}

/// The exact text of member `wanted` of the top-level object, if it has one.
pub fn top_level_value<'a>(text: &'a str, wanted: &str) -> Option<&'a str> {
    let bytes = text.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_whitespace(bytes, at);
        match bytes.get(at)? {
            b'}' => return None,
            b',' => {
                at += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = string_end(bytes, at)?;
        let key = text.get(at + 1..key_end - 1)?;
        at = skip_whitespace(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(bytes, at + 1);
        let value_end = value_end(bytes, value_start)?;
        if key == wanted {
            return text.get(value_start..value_end);
        }
        at = value_end;
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The index just past the string starting at `start` (its opening quote).
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match bytes.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// The index just past the value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => {
            let mut depth: usize = 0;
            let mut at = start;
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = string_end(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let mut at = start;
            while bytes.get(at).is_some_and(|byte| {
                !matches!(byte, b',' | b'}' | b']') && !byte.is_ascii_whitespace()
            }) {
                at += 1;
            }
            Some(at)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys;

    const ANSWER: &str =
        include_str!("../../tests/fixtures/alipay/response_offline_material_image_upload.json");
    const KEY: &str = include_str!("../../tests/fixtures/alipay/response_public_key.pem");
    const METHOD: &str = "alipay.offline.material.image.upload";

    fn key() -> RsaPublicKey {
        keys::public_key_from_text(KEY).unwrap()
    }

    #[test]
    fn the_published_answer_verifies_over_its_exact_text() {
        let raw = verify(&key(), METHOD, ANSWER).unwrap();
        assert!(raw.starts_with("{\"code\":\"10000\""));
        assert!(raw.contains("https:\\/\\/"), "escapes are kept as sent");
        let status: Status = serde_json::from_str(raw).unwrap();
        assert_eq!(status.code, "10000");
    }

    #[test]
    fn a_one_byte_tampered_answer_does_not_verify() {
        let tampered = ANSWER.replacen("Success", "Sucdess", 1);
        assert_eq!(
            verify(&key(), METHOD, &tampered),
            Err(ResponseError::Signature(SignatureError::Mismatch))
        );
        let unsigned = r#"{"alipay_trade_query_response":{"code":"10000"}}"#;
        assert_eq!(
            verify(&key(), "alipay.trade.query", unsigned),
            Err(ResponseError::Signature(SignatureError::Missing))
        );
    }

    #[test]
    fn an_error_response_is_a_refusal() {
        let text = r#"{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}}"#;
        assert_eq!(
            verify(&key(), "alipay.trade.query", text),
            Err(ResponseError::Refused {
                code: "isv.invalid-app-id".to_owned(),
                message: "无效的AppID参数".to_owned()
            })
        );
    }

    #[test]
    fn members_are_cut_out_exactly() {
        let text = r#" { "a" : [1, {"}": "]"}], "b":"x\"}", "c": 12 , "d":{"e":{}} } "#;
        assert_eq!(top_level_value(text, "a"), Some(r#"[1, {"}": "]"}]"#));
        assert_eq!(top_level_value(text, "b"), Some(r#""x\"}""#));
        assert_eq!(top_level_value(text, "c"), Some("12"));
        assert_eq!(top_level_value(text, "d"), Some(r#"{"e":{}}"#));
        assert_eq!(top_level_value(text, "e"), None);
        assert_eq!(top_level_value("[1]", "a"), None);
        assert_eq!(top_level_value(r#"{"a":{"#, "a"), None);
    }
}
