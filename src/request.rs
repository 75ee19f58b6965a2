//! What the HTTP edge knows about a request before any handler runs: its id and the address of
//! the client behind it. `ops::observe` works both out once per request and stores them as a
//! [`RequestMeta`] extension; extractors, the SCIM error log and the audit log read it from
//! there, so there is one answer per request.
//!
//! The pure parts live here too: which incoming request ids are accepted, CIDR lists, and
//! walking `X-Forwarded-For` / `Forwarded` (RFC 7239) chains.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, HeaderValue};
use uuid::Uuid;

use crate::domain::audit::Actor;
use crate::store::Ctx;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest caller-supplied request id kept. Ours are 36 characters; tracing systems use up to
/// 64 (W3C trace ids are 32).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Set on every request by `ops::observe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    pub request_id: String,
    /// The TCP peer, or behind a trusted proxy the client it forwarded for.
    pub client_addr: IpAddr,
}

impl RequestMeta {
    pub fn of(extensions: &Extensions) -> Option<&RequestMeta> {
        extensions.get::<RequestMeta>()
    }
}

/// The request's id (absent only for a request that bypassed the edge, e.g. in a unit test).
pub fn request_id(extensions: &Extensions) -> Option<String> {
    RequestMeta::of(extensions).map(|m| m.request_id.clone())
}

/// The client's address. Without the edge's answer, the TCP peer; without that, "unspecified"
/// (one shared bucket for anything that reached us without a connection, i.e. tests).
pub fn client_addr(extensions: &Extensions) -> IpAddr {
    RequestMeta::of(extensions).map_or_else(
        || {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| {
                    a.ip().to_canonical()
                })
        },
        |m| m.client_addr,
    )
}

/// The write context of a change made by `actor` in this request: audited with the request id
/// and the client address.
pub fn audit_ctx(extensions: &Extensions, actor: Actor) -> Ctx {
    Ctx::new(actor)
        .with_request_id(request_id(extensions))
        .with_client_addr(Some(client_addr(extensions).to_string()))
}

/// The caller's `x-request-id` if it is one we can safely echo, log and store: 1 to
/// [`MAX_REQUEST_ID_LEN`] bytes of printable ASCII without spaces. Anything else is replaced by
/// a fresh id, so no control character, log-forging newline or megabyte string gets in.
pub fn accept_request_id(incoming: Option<&HeaderValue>) -> String {
    incoming
        .map(HeaderValue::as_bytes)
        .filter(|b| {
            !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(|c| c.is_ascii_graphic())
        })
        .and_then(|b| std::str::from_utf8(b).ok())
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned)
}

/// An IPv4 or IPv6 network: `10.0.0.0/8`, `2001:db8::/32`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        // A v4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d; compare it as v4.
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("\"{s}\" is not an IP address or CIDR (e.g. 10.0.0.0/8)"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("\"{s}\": the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `ROLEGATE_TRUSTED_PROXIES`: the peers whose forwarding headers are believed. Empty (the
/// default): none, and the client address is always the TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(addr))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list; blanks around entries are ignored, an empty list is none. One
    /// bad entry refuses the whole list: a typo must stop the start, not silently trust less
    /// (or more) than meant.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Cidr>, String>>()
            .map(TrustedProxies)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

/// The client behind a request from `peer`. Only when the peer is a trusted proxy are the
/// forwarding headers read: the chain of hops is walked from the right (the hop the trusted
/// peer itself saw) past every trusted proxy, and the first untrusted hop is the client —
/// anything left of it was written by that client and proves nothing. Headers that cannot be
/// read, a hop that is not an address (`unknown`, an obfuscated name), or `Forwarded` and
/// `X-Forwarded-For` naming different clients all leave the peer as the answer: a proxy
/// appends to one of the two, so a disagreement means the other came from the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let walk = |chain: Chain| match chain {
        Chain::Absent => None,
        Chain::Unreadable => Some(None),
        Chain::Hops(hops) => Some(first_untrusted(&hops, trusted)),
    };
    match (
        walk(forwarded_chain(headers)),
        walk(x_forwarded_for_chain(headers)),
    ) {
        (Some(Some(a)), None) | (None, Some(Some(a))) => a,
        (Some(Some(a)), Some(Some(b))) if a == b => a,
        _ => peer,
    }
}

/// One forwarding header's hops, oldest first; `None` for a hop that is not an address.
enum Chain {
    Absent,
    /// Present but not readable as a list of hops: no client can be named from it.
    Unreadable,
    Hops(Vec<Option<IpAddr>>),
}

/// Right to left: past trusted proxies to the first untrusted hop. `None` for a hop we cannot
/// read before that point. When every hop is a trusted proxy, the leftmost is the client.
fn first_untrusted(chain: &[Option<IpAddr>], trusted: &TrustedProxies) -> Option<IpAddr> {
    let mut last = None;
    for hop in chain.iter().rev() {
        let ip = (*hop)?;
        if !trusted.contains(ip) {
            return Some(ip);
        }
        last = Some(ip);
    }
    last
}

/// Every `X-Forwarded-For` header, in order, as one list (RFC 9110 §5.3 lets a list be split
/// over several lines).
fn x_forwarded_for_chain(headers: &HeaderMap) -> Chain {
    let mut chain = Vec::new();
    let mut present = false;
    for value in headers.get_all("x-forwarded-for") {
        present = true;
        let Ok(value) = value.to_str() else {
            return Chain::Unreadable;
        };
        chain.extend(value.split(',').map(|hop| parse_node(hop.trim())));
    }
    if present {
        Chain::Hops(chain)
    } else {
        Chain::Absent
    }
}

/// The `for=` of every element of every `Forwarded` header (RFC 7239 §4), in order. An
/// element without `for=` is a hop we cannot name.
fn forwarded_chain(headers: &HeaderMap) -> Chain {
    let mut chain = Vec::new();
    let mut present = false;
    for value in headers.get_all("forwarded") {
        present = true;
        let Ok(value) = value.to_str() else {
            return Chain::Unreadable;
        };
        for element in split_unquoted(value, ',') {
            let mut node = None;
            for pair in split_unquoted(element, ';') {
                if pair.trim().is_empty() {
                    continue;
                }
                let Some((name, v)) = pair.split_once('=') else {
                    return Chain::Unreadable;
                };
                if name.trim().eq_ignore_ascii_case("for") {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    node = parse_node(v);
                }
            }
            chain.push(node);
        }
    }
    if present {
        Chain::Hops(chain)
    } else {
        Chain::Absent
    }
}

/// Splits on `sep` outside double quotes (a quoted `for="[2001:db8::1]:80"` may hold anything).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, _port) = rest.split_once(']')?;
        return addr.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Some(addr.to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ipv4_cidrs_match_their_network_only() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.0.1")));
        assert!(net.contains(ip("10.1.255.255")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::1")));
        assert!(
            net.contains(ip("::ffff:10.1.2.3")),
            "v4-mapped peers count as v4"
        );
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let odd: Cidr = "10.1.2.3/8".parse().unwrap();
        assert!(odd.contains(ip("10.200.0.1")), "host bits are ignored");
    }

    #[test]
    fn ipv6_cidrs_match_their_network_only() {
        let net: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(!net.contains(ip("10.0.0.1")));
        let host: Cidr = "::1".parse().unwrap();
        assert!(host.contains(ip("::1")));
        assert!(!host.contains(ip("::2")));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(ip("fe80::1")));
        let bits: Cidr = "fd00::/7".parse().unwrap();
        assert!(bits.contains(ip("fdff::1")) && bits.contains(ip("fc00::1")));
        assert!(!bits.contains(ip("fe00::1")));
    }

    #[test]
    fn proxy_lists_parse_or_are_refused_whole() {
        let list: TrustedProxies = " 10.0.0.0/8, 192.168.1.1 ,2001:db8::/48,".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,192.168.1.1/32,2001:db8::/48");
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "proxy.internal",
            "10.0.0.0/8,nope",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_chains_are_walked_from_the_right_past_trusted_proxies() {
        let trusted: TrustedProxies = "10.0.0.0/8, 2001:db8::/32".parse().unwrap();
        let proxy = ip("10.0.0.1");
        // The client wrote the leftmost entry itself; the trusted proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.7")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("203.0.113.5"));
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.5:51000, [2001:db8::9]:443"),
        ]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("203.0.113.5"));
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=198.51.100.2;by=10.0.0.1, for=10.9.9.9",
        )]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("198.51.100.2"));
        let h = headers(&[("forwarded", "for=\"[2001:db9::5]\"")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("2001:db9::5"));
        // Both headers agreeing is fine.
        let h = headers(&[
            ("forwarded", "for=203.0.113.5"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("203.0.113.5"));
        // Nothing but trusted hops: the leftmost is the client (an internal caller).
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.7")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("10.1.1.1"));
        // No forwarding header: the proxy itself.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn forwarding_headers_from_untrusted_peers_are_ignored() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &TrustedProxies::default()),
            ip("10.0.0.1"),
            "no proxies configured: never believed"
        );
    }

    #[test]
    fn unreadable_or_conflicting_chains_fall_back_to_the_peer() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let proxy = ip("10.0.0.1");
        for pairs in [
            &[("x-forwarded-for", "not-an-ip")][..],
            &[("x-forwarded-for", "203.0.113.5, unknown")],
            &[("x-forwarded-for", "")],
            &[("forwarded", "for=unknown")],
            &[("forwarded", "for=_hidden, for=10.0.0.3")],
            &[("forwarded", "proto=https")],
            &[("forwarded", "garbage")],
            // A proxy appends to one header; a second, different one was written by the client.
            &[
                ("forwarded", "for=1.2.3.4"),
                ("x-forwarded-for", "203.0.113.5"),
            ],
        ] {
            assert_eq!(
                client_ip(proxy, &headers(pairs), &trusted),
                proxy,
                "{pairs:?}"
            );
        }
        // A client cannot hide the proxy's header to get its own believed.
        let mut h = headers(&[("forwarded", "for=1.2.3.4")]);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 203.0.113.5").unwrap(),
        );
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
        // An unreadable hop left of the client does not matter: it is never reached.
        let h = headers(&[("x-forwarded-for", "garbage, 203.0.113.5")]);
        assert_eq!(client_ip(proxy, &h, &trusted), ip("203.0.113.5"));
    }

    #[test]
    fn request_ids_are_kept_only_when_short_and_printable() {
        let keep = |s: &str| accept_request_id(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(keep("trace-me-123"), "trace-me-123");
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(keep(&longest), longest);
        for bad in [
            "a".repeat(MAX_REQUEST_ID_LEN + 1),
            "has space".into(),
            "tab\there".into(),
            String::new(),
        ] {
            let got = keep(&bad);
            assert_ne!(got, bad);
            assert!(Uuid::parse_str(&got).is_ok(), "a fresh id: {got}");
        }
        let binary = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert_ne!(accept_request_id(Some(&binary)).as_bytes(), b"caf\xc3\xa9");
        assert!(Uuid::parse_str(&accept_request_id(None)).is_ok());
    }
}
