//! Bearer-token authentication: who is calling, and with which role.
//!
//! Tokens are HS256 JSON Web Tokens signed with one shared secret. This module issues and verifies
//! them and reads them from the `Authorization` header; the server decides where to ask for them
//! and how to answer a failure. Nothing here ever echoes a token or the secret, because error
//! text ends up in logs and in responses.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated when checking `exp`, so that a token does not flap between valid and
/// expired across hosts whose clocks differ slightly.
const EXPIRY_LEEWAY_SECONDS: u64 = 30;

/// Longest token we attempt to decode. Ours are a few hundred bytes; anything far larger is not
/// one of ours and is refused before any parsing work.
const TOKEN_LENGTH_MAX: usize = 4096;

/// Longest user id a token may carry as its subject.
const SUBJECT_LENGTH_MAX: usize = 64;

/// Longest lifetime a token may be issued with from the CLI.
const TTL_DAYS_MAX: i64 = 365;

/// Longest lifetime (`exp - iat`) a token may have when none is configured.
pub const TOKEN_LIFETIME_SECONDS_MAX_DEFAULT: u64 = 24 * 60 * 60;

/// Shortest secret accepted from the development secret file: HS256 wants at least 256 bits.
const DEV_SECRET_LENGTH_MIN: usize = 32;

/// Name of the development secret file inside the data directory.
const DEV_SECRET_FILE_NAME: &str = "jwt_secret";

/// What a caller may do. Serialized in tokens as `"user"` or `"admin"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// The claims inside a token. `exp`, `iat` and `nbf` are seconds since the Unix epoch.
///
/// `iat` is required: without it a token's lifetime cannot be bounded, so such a token is
/// refused rather than judged by its expiry alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A string or a list of strings, as RFC 7519 allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// What a token must satisfy beyond its signature, set from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The longest `exp - iat` accepted, and the longest lifetime `issue` grants.
    pub lifetime_max: Duration,
    /// When set, tokens must carry this `iss`, and issued tokens carry it.
    pub issuer: Option<String>,
    /// When set, tokens must name this audience in `aud`, and issued tokens carry it. When
    /// unset, a token that names any audience is refused: it was meant for someone else.
    pub audience: Option<String>,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            lifetime_max: Duration::seconds(
                i64::try_from(TOKEN_LIFETIME_SECONDS_MAX_DEFAULT).unwrap_or(i64::MAX),
            ),
            issuer: None,
            audience: None,
        }
    }
}

/// The authenticated caller. Only `TokenKeys::verify` builds one from a request, so holding a
/// `Principal` means the token was signed by us, is unexpired and names a well-formed user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The HS256 keys derived from the shared secret, plus the validation rules every token must
/// pass. Cloning is cheap enough to keep one copy in the application state.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    policy: TokenPolicy,
    /// A static bearer token that may read the metrics, besides admin tokens.
    metrics_token: Option<gateways::Secret>,
}

impl fmt::Debug for TokenKeys {
    // Hand-written so that the key material never reaches a log line.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TokenKeys")
            .field("algorithm", &Algorithm::HS256)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys with the default policy: lifetimes up to 24 hours, no issuer or audience.
    pub fn from_secret(secret: &[u8]) -> TokenKeys {
        Self::with_policy(secret, TokenPolicy::default())
    }

    pub fn with_policy(secret: &[u8], policy: TokenPolicy) -> TokenKeys {
        // Only HS256 is listed, so a token whose header names any other algorithm (or "none",
        // which the library cannot even parse) is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = EXPIRY_LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &policy.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &policy.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            policy,
            metrics_token: None,
        }
    }

    /// Also accept `token` (compared in constant time) on the metrics endpoint.
    pub fn with_metrics_token(mut self, token: Option<gateways::Secret>) -> TokenKeys {
        self.metrics_token = token;
        self
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// Issue a token for `user_id` with `role`, valid from `now` for `ttl`.
    ///
    /// Refuses a user id that `verify` would reject, and a `ttl` that is not positive or is
    /// longer than the policy allows, so that every token we hand out can actually be used.
    pub fn issue(
        &self,
        user_id: &str,
        role: Role,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        if !is_valid_subject(user_id) {
            return Err(AuthError::InvalidSubject);
        }
        let ttl_seconds = ttl.num_seconds();
        if ttl_seconds <= 0 || ttl > self.policy.lifetime_max {
            return Err(AuthError::InvalidTtl(format!("{ttl_seconds}s")));
        }
        let iat = now.timestamp();
        let exp = iat
            .checked_add(ttl_seconds)
            .ok_or_else(|| AuthError::Issue("expiry is out of range".to_owned()))?;
        let claims = Claims {
            sub: user_id.to_owned(),
            role,
            exp,
            iat,
            nbf: None,
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone().map(serde_json::Value::String),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| AuthError::Issue(error.to_string()))
    }

    /// Check the signature, the algorithm, the header, the validity window (`nbf`, `iat`,
    /// `exp`), the lifetime, the issuer and audience when configured, and the subject, and name
    /// the caller.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_at(token, Utc::now())
    }

    /// `verify` with the clock passed in for the checks this module makes itself (`iat` and
    /// the lifetime); the library checks `exp` and `nbf` against the system clock.
    pub fn verify_at(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, AuthError> {
        if token.is_empty() || token.len() > TOKEN_LENGTH_MAX {
            return Err(AuthError::InvalidToken);
        }
        refuse_critical_extensions(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                // The library's detail can quote parts of the token; keep it out of our error.
                _ => AuthError::InvalidToken,
            })?;
        let claims = data.claims;
        let leeway = i64::try_from(EXPIRY_LEEWAY_SECONDS).unwrap_or(0);
        // Issued in the future: the lifetime bound below would mean nothing.
        if claims.iat > now.timestamp().saturating_add(leeway) {
            return Err(AuthError::NotYetValid);
        }
        if claims.exp.saturating_sub(claims.iat) > self.policy.lifetime_max.num_seconds() {
            return Err(AuthError::LifetimeTooLong);
        }
        if !is_valid_subject(&claims.sub) {
            return Err(AuthError::InvalidSubject);
        }
        Ok(Principal {
            user_id: claims.sub,
            role: claims.role,
        })
    }
}

/// Refuses a token whose header lists critical extensions (`crit`, RFC 7515 section 4.1.11):
/// we understand none, and a recipient that does not understand one must refuse the token. The
/// library would silently ignore the field.
fn refuse_critical_extensions(token: &str) -> Result<(), AuthError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    let header_b64 = token.split('.').next().ok_or(AuthError::InvalidToken)?;
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| AuthError::InvalidToken)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header_json).map_err(|_| AuthError::InvalidToken)?;
    if header.contains_key("crit") {
        return Err(AuthError::CriticalExtension);
    }
    Ok(())
}

/// A user id is 1 to 64 characters of ASCII letters, digits and `_ . @ -`: enough for ids and
/// e-mail-like names, and nothing that needs escaping in logs, paths or queries.
fn is_valid_subject(subject: &str) -> bool {
    (1..=SUBJECT_LENGTH_MAX).contains(&subject.len())
        && subject
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'@' | b'-'))
}

/// Why a caller could not be authenticated or authorized, or a token could not be made.
///
/// No variant carries a token or the secret.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("the request carries no bearer token")]
    MissingToken,
    #[error("the Authorization header is not of the form `Bearer <token>`")]
    MalformedHeader,
    #[error("the bearer token is not valid")]
    InvalidToken,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    #[error("the bearer token's lifetime is longer than this service accepts")]
    LifetimeTooLong,
    #[error("the bearer token's header lists critical extensions this service does not support")]
    CriticalExtension,
    #[error("the bearer token was not issued by the expected issuer")]
    WrongIssuer,
    #[error("the bearer token is not meant for this service")]
    WrongAudience,
    #[error("the token subject is not a valid user id")]
    InvalidSubject,
    #[error("the caller's role does not allow this action")]
    Forbidden,
    #[error("could not issue a token: {0}")]
    Issue(String),
    #[error("invalid ttl {0:?}: expected a positive whole number followed by s, m, h or d, at most 365d and at most the token lifetime allowed (PAYLEDGER_JWT_MAX_TTL_SECS)")]
    InvalidTtl(String),
}

impl AuthError {
    /// A stable code clients and dashboards can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "auth.missing_token",
            Self::MalformedHeader => "auth.malformed_header",
            Self::InvalidToken => "auth.invalid_token",
            Self::Expired => "auth.expired",
            Self::NotYetValid => "auth.not_yet_valid",
            Self::LifetimeTooLong => "auth.lifetime_too_long",
            Self::CriticalExtension => "auth.critical_extension",
            Self::WrongIssuer => "auth.wrong_issuer",
            Self::WrongAudience => "auth.wrong_audience",
            Self::InvalidSubject => "auth.invalid_subject",
            Self::Forbidden => "auth.forbidden",
            Self::Issue(_) => "auth.issue_failed",
            Self::InvalidTtl(_) => "auth.invalid_ttl",
        }
    }
}

/// Parse a token lifetime such as `90s`, `15m`, `1h` or `7d`.
///
/// The number is a plain run of ASCII digits (no sign, no spaces, no fractions); the result is
/// positive and at most 365 days.
pub fn parse_ttl(text: &str) -> Result<Duration, AuthError> {
    let invalid = || AuthError::InvalidTtl(text.to_owned());
    let unit_index = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = text.split_at_checked(unit_index).ok_or_else(invalid)?;
    let unit_seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(invalid()),
    };
    if number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: i64 = number.parse().map_err(|_| invalid())?;
    let seconds = count.checked_mul(unit_seconds).ok_or_else(invalid)?;
    if seconds <= 0 || seconds > TTL_DAYS_MAX * 24 * 60 * 60 {
        return Err(invalid());
    }
    Duration::try_seconds(seconds).ok_or_else(invalid)
}

/// Read the bearer token from the `Authorization` header and verify it.
///
/// The scheme name is matched case-insensitively, as HTTP requires. More than one
/// `Authorization` header is refused rather than guessing which one counts.
pub fn authenticate(headers: &HeaderMap, keys: &TokenKeys) -> Result<Principal, AuthError> {
    keys.verify(bearer_token(headers)?)
}

/// May this request read the metrics? Yes with the configured metrics token, or with an admin
/// token. Without a bearer token at all it is `MissingToken`; with a user token, `Forbidden`.
pub fn authorize_metrics(headers: &HeaderMap, keys: &TokenKeys) -> Result<(), AuthError> {
    if let Some(expected) = &keys.metrics_token {
        let presented = bearer_token(headers)?;
        if constant_time_equal(presented.as_bytes(), expected.expose().as_bytes()) {
            return Ok(());
        }
    }
    let principal = authenticate(headers, keys)?;
    if principal.is_admin() {
        Ok(())
    } else {
        Err(AuthError::Forbidden)
    }
}

/// The token of a single `Authorization: Bearer <token>` header, unverified.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthError::MalformedHeader);
    }
    let text = value
        .to_str()
        .map_err(|_| AuthError::MalformedHeader)?
        .trim();
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::MalformedHeader)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MalformedHeader);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token)
}

/// Compares without stopping at the first difference, so the time taken does not tell an
/// attacker how much of a guess was right. (The length is not hidden; it is no secret.)
fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// Where the development secret is kept in `data_dir`.
pub fn dev_secret_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join(DEV_SECRET_FILE_NAME)
}

/// The development secret if one was already created in `data_dir`; never creates one.
pub fn load_dev_secret(data_dir: &Path) -> io::Result<Vec<u8>> {
    read_dev_secret(&dev_secret_path(data_dir))
}

/// The development secret: used when no secret is configured, and kept in `data_dir` so that
/// tokens survive restarts.
///
/// Reads `<data_dir>/jwt_secret` when it exists (surrounding whitespace is ignored, and at least
/// 32 bytes must remain). Otherwise creates `data_dir` if needed and writes 32 fresh random bytes,
/// hex-encoded, to a new file readable only by its owner. Returns the secret as stored in the file.
pub fn load_or_create_dev_secret(data_dir: &Path) -> io::Result<Vec<u8>> {
    load_or_create_secret_file(data_dir, DEV_SECRET_FILE_NAME)
}

/// A secret kept in the file `name` of `data_dir`, created as `load_or_create_dev_secret`
/// describes: 64 random hexadecimal digits, readable only by the owner.
pub fn load_or_create_secret_file(data_dir: &Path, name: &str) -> io::Result<Vec<u8>> {
    load_or_create_private_file(data_dir, name, || {
        Ok(hex_encode(&random_bytes()).into_bytes())
    })
}

/// Reads `<data_dir>/<name>` when it exists, else creates it readable by its owner alone,
/// holding what `make` gives (a generated secret or key), and returns that.
pub fn load_or_create_private_file(
    data_dir: &Path,
    name: &str,
    make: impl FnOnce() -> io::Result<Vec<u8>>,
) -> io::Result<Vec<u8>> {
    let path = data_dir.join(name);
    match read_dev_secret(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    fs::create_dir_all(data_dir)?;
    let secret = make()?;
    // `create_new` so that two processes starting together cannot overwrite each other's secret:
    // the loser reads what the winner wrote.
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            return read_dev_secret(&path)
        }
        Err(error) => return Err(error),
    };
    if let Err(error) = file.write_all(&secret).and_then(|()| file.sync_all()) {
        // A half-written file would fail every later start as "too short"; remove it so the next
        // start simply tries again. The write error is the one worth reporting.
        let _ = fs::remove_file(&path);
        return Err(error);
    }
    Ok(secret)
}

fn read_dev_secret(path: &Path) -> io::Result<Vec<u8>> {
    let contents = fs::read(path)?;
    let secret = contents.trim_ascii();
    if secret.len() < DEV_SECRET_LENGTH_MIN {
        // Say how short, never what it contains.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the development secret file holds {} bytes; at least {DEV_SECRET_LENGTH_MIN} are required",
                secret.len()
            ),
        ));
    }
    Ok(secret.to_vec())
}

/// A fresh random secret, as 64 hex digits.
pub fn random_hex_secret() -> String {
    hex_encode(&random_bytes())
}

/// 32 bytes from two version 4 UUIDs. Their randomness comes from the operating system, and the
/// few fixed version bits still leave 244 random bits, well above what HS256 needs.
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0_u8; 32];
    let (first, second) = bytes.split_at_mut(16);
    first.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    second.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            if let Some(digit) = DIGITS.get(usize::from(nibble)) {
                text.push(char::from(*digit));
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::as_conversions
    )]

    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(SECRET)
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    fn fresh_claims(sub: &str) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            sub: sub.to_owned(),
            role: Role::User,
            exp: now + 3600,
            iat: now,
            nbf: None,
            iss: None,
            aud: None,
        }
    }

    /// Signs claims directly with the library, bypassing the checks in `issue`.
    fn sign(claims: &Claims, algorithm: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    /// Unpadded base64url, written out here so tests can hand-build tokens.
    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let padded = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let group =
                (u32::from(padded[0]) << 16) | (u32::from(padded[1]) << 8) | u32::from(padded[2]);
            for index in 0..=chunk.len() {
                let sextet = (group >> (18 - 6 * index)) & 0x3f;
                out.push(char::from(ALPHABET[sextet as usize]));
            }
        }
        out
    }

    fn temp_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("payledger-auth-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn an_issued_token_verifies_with_its_role_and_subject() {
        let keys = keys();
        for role in [Role::User, Role::Admin] {
            let token = keys
                .issue("alice@example.com", role, Duration::hours(1), Utc::now())
                .unwrap();
            let principal = keys.verify(&token).unwrap();
            assert_eq!(principal.user_id, "alice@example.com");
            assert_eq!(principal.role, role);
            assert_eq!(principal.is_admin(), role == Role::Admin);
        }
    }

    #[test]
    fn issued_claims_carry_issue_time_and_expiry_from_the_given_clock() {
        let now = Utc::now();
        let token = keys()
            .issue("bob", Role::Admin, Duration::minutes(15), now)
            .unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.insecure_disable_signature_validation();
        let claims = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"ignored"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims.iat, now.timestamp());
        assert_eq!(claims.exp, now.timestamp() + 15 * 60);
        assert_eq!(claims.sub, "bob");
        assert_eq!(claims.role, Role::Admin);
        // The hand-rolled encoder used to forge tokens below agrees with the library's.
        let payload = token.split('.').nth(1).unwrap();
        assert_eq!(base64_url(&serde_json::to_vec(&claims).unwrap()), payload);
    }

    #[test]
    fn roles_are_serialized_in_lowercase() {
        assert_eq!(serde_json::to_string(&Role::User).unwrap(), "\"user\"");
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let other = TokenKeys::from_secret(b"some-other-secret-that-is-also-long-enough");
        let token = other
            .issue("alice", Role::Admin, Duration::hours(1), Utc::now())
            .unwrap();
        assert_eq!(keys().verify(&token), Err(AuthError::InvalidToken));
    }

    #[test]
    fn an_expired_token_is_rejected_as_expired() {
        let keys = keys();
        let issued_at = Utc::now() - Duration::hours(2);
        let token = keys
            .issue("alice", Role::User, Duration::hours(1), issued_at)
            .unwrap();
        assert_eq!(keys.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn expiry_is_only_forgiven_within_thirty_seconds_of_clock_skew() {
        let keys = keys();
        let ttl = Duration::minutes(1);
        let just_expired = keys
            .issue(
                "alice",
                Role::User,
                ttl,
                Utc::now() - ttl - Duration::seconds(10),
            )
            .unwrap();
        assert!(keys.verify(&just_expired).is_ok());
        let long_expired = keys
            .issue(
                "alice",
                Role::User,
                ttl,
                Utc::now() - ttl - Duration::seconds(45),
            )
            .unwrap();
        assert_eq!(keys.verify(&long_expired), Err(AuthError::Expired));
    }

    #[test]
    fn an_unsigned_token_with_alg_none_is_rejected() {
        let header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = base64_url(&serde_json::to_vec(&fresh_claims("alice")).unwrap());
        let token = format!("{header}.{payload}.");
        assert_eq!(keys().verify(&token), Err(AuthError::InvalidToken));
        assert_eq!(
            authenticate(&bearer(&token), &keys()),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn a_token_signed_with_another_hmac_algorithm_is_rejected() {
        let token = sign(&fresh_claims("alice"), Algorithm::HS384, SECRET);
        assert_eq!(keys().verify(&token), Err(AuthError::InvalidToken));
    }

    #[test]
    fn a_tampered_payload_is_rejected() {
        let keys = keys();
        let token = keys
            .issue("alice", Role::User, Duration::hours(1), Utc::now())
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = fresh_claims("alice");
        claims.role = Role::Admin;
        let forged_payload = base64_url(&serde_json::to_vec(&claims).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(keys.verify(&forged), Err(AuthError::InvalidToken));
    }

    #[test]
    fn garbage_and_oversized_tokens_are_invalid() {
        let keys = keys();
        for token in ["", "abc", "a.b.c", "...", &"a".repeat(TOKEN_LENGTH_MAX + 1)] {
            assert_eq!(
                keys.verify(token),
                Err(AuthError::InvalidToken),
                "{token:.20}"
            );
        }
    }

    #[test]
    fn a_token_with_an_unknown_role_is_invalid() {
        let now = Utc::now().timestamp();
        let claims =
            serde_json::json!({ "sub": "alice", "role": "root", "exp": now + 60, "iat": now });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(keys().verify(&token), Err(AuthError::InvalidToken));
    }

    #[test]
    fn a_request_without_an_authorization_header_has_a_missing_token() {
        assert_eq!(
            authenticate(&HeaderMap::new(), &keys()),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn a_non_bearer_or_empty_authorization_header_is_malformed() {
        let keys = keys();
        for value in [
            "Basic xyz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "",
            "Token abc",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            assert_eq!(
                authenticate(&headers, &keys),
                Err(AuthError::MalformedHeader),
                "{value:?}"
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_malformed() {
        let keys = keys();
        let token = keys
            .issue("alice", Role::User, Duration::hours(1), Utc::now())
            .unwrap();
        let mut headers = bearer(&token);
        headers.append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert_eq!(
            authenticate(&headers, &keys),
            Err(AuthError::MalformedHeader)
        );
    }

    #[test]
    fn a_valid_bearer_header_authenticates_the_caller() {
        let keys = keys();
        let token = keys
            .issue("carol_1", Role::Admin, Duration::hours(1), Utc::now())
            .unwrap();
        let expected = Principal {
            user_id: "carol_1".to_owned(),
            role: Role::Admin,
        };
        assert_eq!(authenticate(&bearer(&token), &keys), Ok(expected.clone()));
        let mut lowercase = HeaderMap::new();
        lowercase.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer {token}")).unwrap(),
        );
        assert_eq!(authenticate(&lowercase, &keys), Ok(expected));
    }

    #[test]
    fn a_token_with_a_bad_subject_is_rejected() {
        let keys = keys();
        let too_long = "a".repeat(SUBJECT_LENGTH_MAX + 1);
        for subject in [
            "",
            "alice smith",
            "alice/../root",
            "ålice",
            "a\"b",
            &too_long,
        ] {
            let token = sign(&fresh_claims(subject), Algorithm::HS256, SECRET);
            assert_eq!(
                keys.verify(&token),
                Err(AuthError::InvalidSubject),
                "{subject:?}"
            );
        }
        let longest = "a".repeat(SUBJECT_LENGTH_MAX);
        let token = sign(&fresh_claims(&longest), Algorithm::HS256, SECRET);
        assert_eq!(keys.verify(&token).unwrap().user_id, longest);
    }

    #[test]
    fn issuing_for_a_bad_user_id_or_a_non_positive_ttl_is_refused() {
        let keys = keys();
        assert_eq!(
            keys.issue("no spaces", Role::User, Duration::hours(1), Utc::now()),
            Err(AuthError::InvalidSubject)
        );
        assert_eq!(
            keys.issue("alice", Role::User, Duration::zero(), Utc::now())
                .map_err(|error| error.code()),
            Err("auth.invalid_ttl")
        );
    }

    #[test]
    fn parse_ttl_accepts_seconds_minutes_hours_and_days() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::minutes(15)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::hours(1)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::days(7)));
        assert_eq!(parse_ttl("365d"), Ok(Duration::days(365)));
        assert_eq!(parse_ttl("8760h"), Ok(Duration::days(365)));
    }

    #[test]
    fn parse_ttl_rejects_zero_signs_unknown_units_and_more_than_a_year() {
        for text in [
            "",
            "s",
            "0s",
            "-5m",
            "+5m",
            "1.5h",
            "10",
            "10w",
            "1 h",
            " 1h",
            "1H",
            "366d",
            "8761h",
            "99999999999999999999d",
            "1hh",
            "1é",
        ] {
            assert_eq!(
                parse_ttl(text),
                Err(AuthError::InvalidTtl(text.to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_dev_secret_is_created_once_with_owner_only_permissions_and_read_back_identically() {
        use std::os::unix::fs::PermissionsExt;

        let root = temp_dir();
        let data_dir = root.join("nested").join("data");
        let first = load_or_create_dev_secret(&data_dir).unwrap();
        let path = data_dir.join(DEV_SECRET_FILE_NAME);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let second = load_or_create_dev_secret(&data_dir).unwrap();
        let on_disk = fs::read(&path).unwrap();
        fs::remove_dir_all(&root).unwrap();

        assert_eq!(mode, 0o600);
        assert_eq!(first.len(), 64);
        assert!(first.iter().all(u8::is_ascii_hexdigit));
        assert_eq!(first, second);
        assert_eq!(first, on_disk);
    }

    #[test]
    fn two_data_directories_get_different_dev_secrets() {
        let first_dir = temp_dir();
        let second_dir = temp_dir();
        let first = load_or_create_dev_secret(&first_dir).unwrap();
        let second = load_or_create_dev_secret(&second_dir).unwrap();
        fs::remove_dir_all(&first_dir).unwrap();
        fs::remove_dir_all(&second_dir).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn an_existing_dev_secret_is_trimmed_and_a_short_one_refused() {
        let data_dir = temp_dir();
        fs::create_dir_all(&data_dir).unwrap();
        let path = data_dir.join(DEV_SECRET_FILE_NAME);
        let configured = "k".repeat(DEV_SECRET_LENGTH_MIN);
        fs::write(&path, format!("  {configured}\n")).unwrap();
        let loaded = load_or_create_dev_secret(&data_dir);
        fs::write(&path, "too-short-secret\n").unwrap();
        let short = load_or_create_dev_secret(&data_dir);
        fs::remove_dir_all(&data_dir).unwrap();

        assert_eq!(loaded.unwrap(), configured.into_bytes());
        let error = short.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(!error.to_string().contains("too-short-secret"));
    }

    #[test]
    fn token_keys_debug_output_never_shows_the_secret() {
        let secret = "distinctive-signing-secret-0123456789";
        let rendered = format!("{:?}", TokenKeys::from_secret(secret.as_bytes()));
        assert!(!rendered.contains(secret), "{rendered}");
        assert!(!rendered.contains("distinctive"), "{rendered}");
        // Nor the secret as a list of byte values.
        let first_bytes = format!("{}, {}", secret.as_bytes()[0], secret.as_bytes()[1]);
        assert!(!rendered.contains(&first_bytes), "{rendered}");
    }

    #[test]
    fn every_error_has_a_unique_stable_code() {
        let all = [
            (AuthError::MissingToken, "auth.missing_token"),
            (AuthError::MalformedHeader, "auth.malformed_header"),
            (AuthError::InvalidToken, "auth.invalid_token"),
            (AuthError::Expired, "auth.expired"),
            (AuthError::NotYetValid, "auth.not_yet_valid"),
            (AuthError::LifetimeTooLong, "auth.lifetime_too_long"),
            (AuthError::CriticalExtension, "auth.critical_extension"),
            (AuthError::WrongIssuer, "auth.wrong_issuer"),
            (AuthError::WrongAudience, "auth.wrong_audience"),
            (AuthError::InvalidSubject, "auth.invalid_subject"),
            (AuthError::Forbidden, "auth.forbidden"),
            (AuthError::Issue(String::new()), "auth.issue_failed"),
            (AuthError::InvalidTtl(String::new()), "auth.invalid_ttl"),
        ];
        let mut codes = std::collections::HashSet::new();
        for (error, code) in &all {
            assert_eq!(error.code(), *code);
            assert!(codes.insert(error.code()), "duplicate code {code}");
            // Match exhaustively so a new variant must be added to this list.
            match error {
                AuthError::MissingToken
                | AuthError::MalformedHeader
                | AuthError::InvalidToken
                | AuthError::Expired
                | AuthError::NotYetValid
                | AuthError::LifetimeTooLong
                | AuthError::CriticalExtension
                | AuthError::WrongIssuer
                | AuthError::WrongAudience
                | AuthError::InvalidSubject
                | AuthError::Forbidden
                | AuthError::Issue(_)
                | AuthError::InvalidTtl(_) => {}
            }
        }
    }

    #[test]
    fn verification_errors_never_quote_the_token() {
        let keys = keys();
        let expired = keys
            .issue(
                "alice",
                Role::User,
                Duration::hours(1),
                Utc::now() - Duration::hours(3),
            )
            .unwrap();
        let forged = sign(&fresh_claims("alice"), Algorithm::HS256, b"wrong-secret");
        for token in [expired, forged, "not.a.token".to_owned()] {
            let error = authenticate(&bearer(&token), &keys).unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(!text.contains(&token));
            for part in token.split('.').filter(|part| part.len() > 8) {
                assert!(!text.contains(part), "{text}");
            }
        }
    }

    /// Signs `claims` under a hand-written header, so tests can put in it what the library's
    /// `Header` cannot express.
    fn sign_with_header(header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let message = format!(
            "{}.{}",
            base64_url(&serde_json::to_vec(header).unwrap()),
            base64_url(&serde_json::to_vec(claims).unwrap())
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    }

    fn claims_json(extra: serde_json::Value) -> serde_json::Value {
        let now = Utc::now().timestamp();
        let mut claims =
            serde_json::json!({ "sub": "alice", "role": "user", "exp": now + 600, "iat": now });
        for (key, value) in extra.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    }

    fn signed(extra: serde_json::Value) -> String {
        sign_with_header(
            &serde_json::json!({ "alg": "HS256", "typ": "JWT" }),
            &claims_json(extra),
        )
    }

    #[test]
    fn a_token_not_valid_before_a_future_time_is_refused_until_then() {
        let now = Utc::now().timestamp();
        let keys = keys();
        assert_eq!(
            keys.verify(&signed(serde_json::json!({ "nbf": now + 600 }))),
            Err(AuthError::NotYetValid)
        );
        assert!(keys
            .verify(&signed(serde_json::json!({ "nbf": now - 5 })))
            .is_ok());
        assert_eq!(AuthError::NotYetValid.code(), "auth.not_yet_valid");
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        let now = Utc::now().timestamp();
        let token = signed(serde_json::json!({ "iat": now + 3600, "exp": now + 7200 }));
        assert_eq!(keys().verify(&token), Err(AuthError::NotYetValid));
    }

    #[test]
    fn a_token_with_critical_header_extensions_is_refused() {
        for crit in [
            serde_json::json!(["exp"]),
            serde_json::json!(["b64"]),
            serde_json::json!([]),
        ] {
            let token = sign_with_header(
                &serde_json::json!({ "alg": "HS256", "typ": "JWT", "crit": crit, "b64": true }),
                &claims_json(serde_json::json!({})),
            );
            assert_eq!(
                keys().verify(&token),
                Err(AuthError::CriticalExtension),
                "{crit}"
            );
        }
        // The same claims under a plain header are fine: the refusal is for `crit` alone.
        assert!(keys().verify(&signed(serde_json::json!({}))).is_ok());
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let now = Utc::now().timestamp();
        let keys = keys();
        let day = 24 * 60 * 60;
        assert_eq!(
            keys.verify(&signed(serde_json::json!({ "exp": now + day + 60 }))),
            Err(AuthError::LifetimeTooLong)
        );
        assert!(keys
            .verify(&signed(serde_json::json!({ "exp": now + day })))
            .is_ok());
        // Ten years, issued an hour ago: still refused.
        let token = signed(serde_json::json!({ "iat": now - 3600, "exp": now + 10 * 365 * day }));
        assert_eq!(keys.verify(&token), Err(AuthError::LifetimeTooLong));

        let short = TokenKeys::with_policy(
            SECRET,
            TokenPolicy {
                lifetime_max: Duration::minutes(5),
                ..TokenPolicy::default()
            },
        );
        assert_eq!(
            short.verify(&signed(serde_json::json!({}))),
            Err(AuthError::LifetimeTooLong)
        );
        assert_eq!(
            short
                .issue("alice", Role::User, Duration::minutes(6), Utc::now())
                .map_err(|error| error.code()),
            Err("auth.invalid_ttl")
        );
        let token = short
            .issue("alice", Role::User, Duration::minutes(5), Utc::now())
            .unwrap();
        assert!(short.verify(&token).is_ok());
    }

    #[test]
    fn a_token_without_an_issue_time_is_refused() {
        let token = signed(serde_json::json!({ "iat": null }));
        assert_eq!(keys().verify(&token), Err(AuthError::InvalidToken));
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let keys = TokenKeys::with_policy(
            SECRET,
            TokenPolicy {
                issuer: Some("https://id.example.com".to_owned()),
                audience: Some("payledger".to_owned()),
                ..TokenPolicy::default()
            },
        );
        let issued = keys
            .issue("alice", Role::User, Duration::hours(1), Utc::now())
            .unwrap();
        assert_eq!(keys.verify(&issued).unwrap().user_id, "alice");

        let good =
            serde_json::json!({ "iss": "https://id.example.com", "aud": ["other", "payledger"] });
        assert!(keys.verify(&signed(good)).is_ok());
        for (extra, expected) in [
            (
                serde_json::json!({ "aud": "payledger" }),
                AuthError::InvalidToken,
            ),
            (
                serde_json::json!({ "iss": "https://id.example.com" }),
                AuthError::InvalidToken,
            ),
            (
                serde_json::json!({ "iss": "https://evil.example.com", "aud": "payledger" }),
                AuthError::WrongIssuer,
            ),
            (
                serde_json::json!({ "iss": "https://id.example.com", "aud": "billing" }),
                AuthError::WrongAudience,
            ),
        ] {
            assert_eq!(
                keys.verify(&signed(extra.clone())),
                Err(expected),
                "{extra}"
            );
        }
        // Without a configured audience, a token meant for another audience is not ours.
        assert_eq!(
            TokenKeys::from_secret(SECRET).verify(&signed(serde_json::json!({ "aud": "billing" }))),
            Err(AuthError::WrongAudience)
        );
        // Without a configured issuer, any issuer (or none) is accepted.
        assert!(TokenKeys::from_secret(SECRET)
            .verify(&signed(serde_json::json!({ "iss": "anyone" })))
            .is_ok());
    }
}
