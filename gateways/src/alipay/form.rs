//! Reading `application/x-www-form-urlencoded` bodies strictly: every value URL-decoded once
//! (`+` is a space, `%XX` a byte), the bytes required to be UTF-8, and a name given twice
//! refused, because a signature over one of two values proves nothing about the other.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form has a malformed %-escape")]
    BadEscape,
    #[error("the form is not UTF-8 once decoded")]
    NotUtf8,
    #[error("the form names `{0}` twice")]
    Duplicate(String),
}

/// Decodes a whole form into name -> value.
pub fn parse(body: &[u8]) -> Result<BTreeMap<String, String>, FormError> {
    let mut params = BTreeMap::new();
    for pair in body
        .split(|byte| *byte == b'&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = match pair.iter().position(|byte| *byte == b'=') {
            Some(at) => (&pair[..at], &pair[at.saturating_add(1)..]),
            None => (pair, &[][..]),
        };
        let name = decoded(name)?;
        let value = decoded(value)?;
        if params.contains_key(&name) {
            return Err(FormError::Duplicate(name));
        }
        params.insert(name, value);
    }
    Ok(params)
}

fn decoded(raw: &[u8]) -> Result<String, FormError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.iter();
    while let Some(&byte) = rest.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = rest.next().and_then(|digit| hex_value(*digit));
                let low = rest.next().and_then(|digit| hex_value(*digit));
                match (high, low) {
                    (Some(high), Some(low)) => bytes.push(high << 4 | low),
                    _ => return Err(FormError::BadEscape),
                }
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Encodes name -> value as a form body (what the sandbox sends, what the client posts).
pub fn encode(params: &BTreeMap<String, String>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn values_are_decoded_once() {
        let params = parse(b"a=1+2&b=%E8%AF%AD%25&c=&d").unwrap();
        assert_eq!(params["a"], "1 2");
        assert_eq!(params["b"], "语%");
        assert_eq!(params["c"], "");
        assert_eq!(params["d"], "");
    }

    #[test]
    fn bad_forms_are_refused() {
        assert_eq!(parse(b"a=%2"), Err(FormError::BadEscape));
        assert_eq!(parse(b"a=%zz"), Err(FormError::BadEscape));
        assert_eq!(parse(b"a=%D3%EF"), Err(FormError::NotUtf8));
        assert_eq!(parse(b"a=1&a=2"), Err(FormError::Duplicate("a".to_owned())));
    }

    #[test]
    fn encoding_round_trips() {
        let params = parse(b"subject=%E8%AF%AD+x&amount=0.10").unwrap();
        assert_eq!(parse(encode(&params).as_bytes()).unwrap(), params);
    }
}
