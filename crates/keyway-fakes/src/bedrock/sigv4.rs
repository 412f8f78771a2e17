//! A SigV4 verifier written from AWS's specification, apart from the `aws-sigv4` signer that
//! Keyway uses, so that a passing test means two independent implementations agree. It is
//! checked against AWS's published signing test suite (see `keyway-providers/tests/bedrock.rs`).
//!
//! Like AWS for every service but S3, the canonical URI is the path *as sent*, URI-encoded once
//! more (so a model id's `%3A` is signed as `%253A`).

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far `x-amz-date` may be from the server's clock.
pub const MAX_SKEW_SECS: i64 = 5 * 60;

/// SigV4's URI encoding: only RFC 3986 unreserved characters stay.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The parts of a request that SigV4 covers, as they arrived.
#[derive(Debug, Clone)]
pub struct RawRequest<'a> {
    pub method: &'a str,
    /// The path exactly as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Header names in lower case; repeated names appear repeatedly.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a signature was refused. Messages follow AWS's where AWS has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")]
    Malformed,
    #[error("Missing Authentication Token")]
    Missing,
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("Credential should be scoped to a valid region.")]
    WrongRegion,
    #[error("Credential should be scoped to correct service: 'bedrock'.")]
    WrongService,
    #[error("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")]
    WrongDate,
    #[error("Signature expired or not yet current: {0} is more than 5 min. away from the server's time")]
    Skew(String),
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    Mismatch,
}

impl SigError {
    /// The `x-amzn-ErrorType` AWS sends with this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            SigError::UnknownKey => "UnrecognizedClientException",
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::Malformed => "IncompleteSignatureException",
            _ => "InvalidSignatureException",
        }
    }
}

pub fn parse_authorization(v: &str) -> Result<AuthHeader, SigError> {
    let rest = v.strip_prefix(ALGORITHM).ok_or(SigError::Malformed)?.trim();
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SigError::Malformed)?;
        fields.insert(k, v);
    }
    let cred = fields.get("Credential").ok_or(SigError::Malformed)?;
    let mut scope = cred.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some("aws4_request"), None) =
        (scope.next(), scope.next(), scope.next(), scope.next(), scope.next(), scope.next())
    else {
        return Err(SigError::Malformed);
    };
    let signed_headers = fields.get("SignedHeaders").ok_or(SigError::Malformed)?.split(';').map(str::to_owned).collect();
    let signature = fields.get("Signature").ok_or(SigError::Malformed)?.to_string();
    Ok(AuthHeader {
        access_key_id: akid.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature,
    })
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// How a service builds the canonical URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriRules {
    /// Remove `.`/`..` segments and empty segments (RFC 3986 5.2.4) first.
    pub normalize: bool,
    /// Encode the path as sent once more (`%3A` -> `%253A`); else decode it and encode it once
    /// (S3's single encoding).
    pub double_encode: bool,
}

impl UriRules {
    /// Every service but S3, Bedrock included.
    pub const DEFAULT: UriRules = UriRules { normalize: true, double_encode: true };
}

/// RFC 3986 remove-dot-segments, also dropping empty segments, as AWS does; a trailing slash stays.
fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut r = format!("/{}", out.join("/"));
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if trailing && !r.ends_with('/') {
        r.push('/');
    }
    r
}

/// The canonical URI under [`UriRules::DEFAULT`]: the path as sent, each segment encoded again.
pub fn canonical_uri(path: &str) -> String {
    canonical_uri_with(path, UriRules::DEFAULT)
}

pub fn canonical_uri_with(path: &str, rules: UriRules) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let path = if rules.normalize { normalize_path(path) } else { path.to_owned() };
    let enc = |seg: &str| {
        if rules.double_encode {
            encode(seg)
        } else {
            encode(&percent_decode_str(seg).decode_utf8_lossy())
        }
    };
    path.split('/').map(enc).collect::<Vec<_>>().join("/")
}

/// Parameters decoded, re-encoded the SigV4 way, and sorted by name then value.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (encode(&dec(k)), encode(&dec(v)))
        })
        .collect();
    pairs.sort();
    pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// `name:value\n` for each signed header: values trimmed, inner runs of spaces collapsed,
/// repeated headers joined with `,`. A signed header the request lacks is an error.
pub fn canonical_headers(headers: &[(String, String)], signed: &[String]) -> Result<String, SigError> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigError::Mismatch);
        }
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(out)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn canonical_request(req: &RawRequest<'_>, signed: &[String]) -> Result<String, SigError> {
    canonical_request_with(req, signed, UriRules::DEFAULT)
}

pub fn canonical_request_with(req: &RawRequest<'_>, signed: &[String], rules: UriRules) -> Result<String, SigError> {
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri_with(req.path, rules),
        canonical_query(req.query),
        canonical_headers(req.headers, signed)?,
        signed.join(";"),
        sha256_hex(req.body)
    ))
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this never fails.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`, then the
/// string to sign under that key, in hex.
pub fn signature(secret: &str, date: &str, region: &str, service: &str, string_to_sign: &str) -> String {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    hex::encode(hmac(&k, string_to_sign.as_bytes()))
}

/// An IAM key the fake knows.
#[derive(Debug, Clone)]
pub struct IamKey {
    pub secret_access_key: String,
    /// When set, the request must carry it as `x-amz-security-token`.
    pub session_token: Option<String>,
}

/// What a verified request was signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub region: String,
}

/// A header's value without the optional whitespace HTTP allows around it.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// Checks a request's SigV4 signature for `service` in `region` at `now`, with the canonical URI
/// rules of every service but S3 (Bedrock's).
pub fn verify(
    req: &RawRequest<'_>,
    keys: &HashMap<String, IamKey>,
    service: &str,
    region: &str,
    now: DateTime<Utc>,
) -> Result<Verified, SigError> {
    verify_with(req, keys, service, region, now, UriRules::DEFAULT)
}

pub fn verify_with(
    req: &RawRequest<'_>,
    keys: &HashMap<String, IamKey>,
    service: &str,
    region: &str,
    now: DateTime<Utc>,
    rules: UriRules,
) -> Result<Verified, SigError> {
    let auth = parse_authorization(header(req.headers, "authorization").ok_or(SigError::Missing)?)?;
    let key = keys.get(&auth.access_key_id).ok_or(SigError::UnknownKey)?;
    if let Some(token) = &key.session_token {
        if header(req.headers, "x-amz-security-token") != Some(token.as_str()) {
            return Err(SigError::UnknownKey);
        }
    }
    if auth.region != region {
        return Err(SigError::WrongRegion);
    }
    if auth.service != service {
        return Err(SigError::WrongService);
    }
    let amz_date = header(req.headers, "x-amz-date").ok_or(SigError::Malformed)?;
    let when = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").map_err(|_| SigError::Malformed)?.and_utc();
    if (now - when).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(SigError::Skew(amz_date.to_owned()));
    }
    if !amz_date.starts_with(&auth.date) {
        return Err(SigError::WrongDate);
    }
    // Host and the date must be covered by the signature.
    if !auth.signed_headers.iter().any(|h| h == "host") || !auth.signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(SigError::Mismatch);
    }
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let creq = canonical_request_with(req, &auth.signed_headers, rules)?;
    let expected = signature(&key.secret_access_key, &auth.date, &auth.region, &auth.service, &string_to_sign(amz_date, &scope, &creq));
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(SigError::Mismatch);
    }
    Ok(Verified { access_key_id: auth.access_key_id, region: auth.region })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
