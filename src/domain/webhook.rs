//! Webhooks' rules, written once for both stores: what an endpoint's URL, secret and filter may
//! be, how a message is signed (Standard Webhooks), which addresses are never dialled, and when a
//! failed attempt is tried again.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::{Invalid, Timestamp, is_metadata_key};

/// The most endpoints a deployment holds: each change is matched against every one.
pub const MAX_ENDPOINTS: usize = 100;
/// The longest URL and description accepted.
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// The most `metadata` pairs a filter names.
pub const MAX_FILTER_KEYS: usize = 16;
/// Bodies larger than this are sent without the event's payload (`"truncated": true`).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// A secret's random bytes (the spec allows 24 to 64).
const SECRET_BYTES: usize = 32;
const SECRET_PREFIX: &str = "whsec_";

/// An endpoint's id: `ep_` and 32 hex digits, made by the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointId(String);

impl EndpointId {
    pub fn generate() -> Self {
        Self(format!("ep_{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let hex = raw
            .strip_prefix("ep_")
            .filter(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        match hex {
            Some(_) => Ok(Self(raw.to_owned())),
            None => Err(Invalid::new(
                "is not a webhook endpoint id (ep_ and 32 hex digits)",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EndpointId {
    type Error = Invalid;
    fn try_from(raw: String) -> Result<Self, Invalid> {
        Self::parse(&raw)
    }
}

impl From<EndpointId> for String {
    fn from(id: EndpointId) -> String {
        id.0
    }
}

/// Where messages are sent: an absolute `http` or `https` URL with a host, no credentials and
/// no fragment. Whether its host may be dialled is [`forbidden_address`]'s, checked at create
/// and again at every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.len() > MAX_URL_BYTES {
            return Err(Invalid(format!("must be at most {MAX_URL_BYTES} bytes")));
        }
        let url = url::Url::parse(raw).map_err(|e| Invalid(format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Invalid::new("must be an http or https URL"));
        }
        if url.host().is_none() {
            return Err(Invalid::new("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new("must not carry credentials"));
        }
        if url.fragment().is_some() {
            return Err(Invalid::new("must not have a fragment"));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as written (a name, or an IP literal without brackets).
    pub fn host(&self) -> Option<url::Host<&str>> {
        self.0.host()
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(80)
    }
}

/// Whether an address must never be dialled (unless private networks are allowed): loopback,
/// private, carrier-grade NAT, benchmarking (198.18.0.0/15), link-local, unspecified, multicast
/// and broadcast, in IPv4, IPv6 and IPv4 written inside IPv6 (mapped, compatible, translated,
/// NAT64 and 6to4 forms, which some stacks route to the IPv4 address they carry).
pub fn forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return forbidden_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The IPv4 address an IPv6 address carries: `::ffff:a.b.c.d` (mapped), `::a.b.c.d`
/// (compatible, but not `::` or `::1`), `::ffff:0:a.b.c.d` (translated), `64:ff9b::a.b.c.d` and
/// `64:ff9b:1::/48` (NAT64), `2002:AABB:CCDD::/16` (6to4).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let last = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        std::net::Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(last(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(last(hi, lo)),
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(last(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(last(hi, lo)),
        [0x64, 0xff9b, 1, _, _, _, hi, lo] => Some(last(hi, lo)),
        [0x2002, hi, lo, ..] => Some(last(hi, lo)),
        _ => None,
    }
}

/// An endpoint's signing secret: `whsec_` and the base64 of its random bytes.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))))
    }

    /// The text a receiver configures.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn key(&self) -> Vec<u8> {
        let encoded = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        STANDARD.decode(encoded).unwrap_or_default()
    }

    /// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` with this secret's bytes.
    pub fn sign(&self, message_id: &str, unix_seconds: i64, body: &[u8]) -> String {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key()) {
            Ok(mac) => mac,
            // HMAC takes a key of any length.
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(unix_seconds.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret in force, space-separated.
pub fn signature_header(
    secrets: &[&Secret],
    message_id: &str,
    unix_seconds: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(message_id, unix_seconds, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message's id: the same for one change on every endpoint and every attempt, made from the
/// change's position in the feed.
pub fn message_id(position: &str) -> String {
    use sha2::Digest;
    let digest = Sha256::digest(position.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// An endpoint's `filter.metadata`: top-level metadata keys and the scalar each must equal.
pub fn parse_metadata_filter(value: &Value) -> Result<Map<String, Value>, Invalid> {
    let Value::Object(map) = value else {
        return Err(Invalid::new(
            "must be an object of metadata keys and values",
        ));
    };
    if map.len() > MAX_FILTER_KEYS {
        return Err(Invalid(format!("must name at most {MAX_FILTER_KEYS} keys")));
    }
    for (key, value) in map {
        if !is_metadata_key(key) {
            return Err(Invalid(format!(
                "key {key:?} must be 1 to 64 characters of A-Z a-z 0-9 _ -"
            )));
        }
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(Invalid(format!(
                "value of {key:?} must be a string, number or boolean"
            )));
        }
    }
    Ok(map.clone())
}

/// Whether a session's metadata has every pair of `filter`.
pub fn filter_matches(filter: &Map<String, Value>, metadata: &Map<String, Value>) -> bool {
    filter.iter().all(|(k, v)| metadata.get(k) == Some(v))
}

/// The delays before each attempt after a failure: `WEBHOOK_RETRY_SCHEDULE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// Comma-separated whole seconds; the first is the delay of the first attempt (usually 0).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let delays = raw
            .split(',')
            .map(|s| s.trim().parse::<u64>().map(Duration::from_secs))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Invalid::new("must be comma-separated whole seconds, e.g. 0,5,300"))?;
        if delays.is_empty() || delays.len() > 20 {
            return Err(Invalid::new("must list 1 to 20 delays"));
        }
        if delays.iter().any(|d| d.as_secs() > 7 * 24 * 3600) {
            return Err(Invalid::new("delays must be at most 7 days"));
        }
        Ok(Self(delays))
    }

    /// How many attempts a message gets.
    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// When attempt number `next` (0-based) is due after a failure at `now`, with `jitter` in
    /// `[-1, 1]` scaling ±10 %, or `None` when the schedule is spent.
    pub fn next_at(&self, next: usize, now: Timestamp, jitter: f64) -> Option<Timestamp> {
        let delay = self.0.get(next)?.as_millis() as f64 * (1.0 + 0.1 * jitter.clamp(-1.0, 1.0));
        Timestamp::from_millis(now.millis().saturating_add(delay as i64)).ok()
    }
}

/// What a receiver's answer (or its absence) means for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 410 Gone: the endpoint is disabled.
    Gone,
    /// Try again, not before `not_before` if the receiver said so (`Retry-After`).
    Retry {
        not_before: Option<Duration>,
    },
}

/// The verdict of an attempt that got `status` (none: timeout, refused, or not dialled), with
/// the `Retry-After` seconds it named.
pub fn verdict(status: Option<u16>, retry_after: Option<Duration>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        Some(429 | 502 | 503 | 504) => Verdict::Retry {
            not_before: retry_after,
        },
        _ => Verdict::Retry { not_before: None },
    }
}

/// `Retry-After` as seconds or an HTTP date (any of RFC 9110's three forms), as a delay from
/// `now`, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(raw: &str, now: Timestamp) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    let millis = i64::try_from(since_epoch.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_sub(now.millis())
        .max(0);
    Some(Duration::from_millis(millis as u64).min(MAX_RETRY_AFTER))
}

/// The longest `Retry-After` honoured: a receiver's later date holds its message back a day,
/// then the schedule goes on (so a mistaken date far ahead does not park messages for years).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests;
