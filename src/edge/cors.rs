//! CORS for the election's own web clients on other origins (`server.cors_origins`): a
//! voting client served from `https://vote.example.org` may submit ballots to and read the
//! log of `https://urna.example.org`, and no other origin may.
//!
//! What a browser does (Fetch standard, "CORS protocol"): a ballot is `POST` with
//! `Content-Type: application/json`, which is not a "simple" request, so the browser first
//! sends a preflight `OPTIONS` naming the origin, the method and the headers, and sends the
//! ballot only if the answer allows all three. Reads (`GET`) go out at once and the browser
//! hides the answer from the page unless it carries `Access-Control-Allow-Origin`.
//!
//! CORS is the browser's rule, not access control: a program that is not a browser can send
//! anything, and every ballot is judged by its signature alone. What the list stops is a
//! page on another site that a voter happens to visit using their browser to talk to the
//! server. Origins are compared byte for byte with the `Origin` header, which browsers send
//! in one canonical, lower-case form; the config parser refuses any other spelling, so a
//! listed origin can always match.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use http::{HeaderMap, HeaderValue, Method};
use serde::Deserialize;

/// Most origins in `server.cors_origins`: each request with an `Origin` header scans the
/// list, so it stays short (an election has a handful of sites).
pub const MAX_CORS_ORIGINS: usize = 64;

/// Longest origin accepted in the config (a DNS name is at most 253 bytes, plus scheme and
/// port).
const MAX_ORIGIN_BYTES: usize = 300;

/// How long a browser may reuse a preflight answer, in seconds: Chromium's cap (2 h; Firefox
/// allows 24 h). A voter's browser then preflights once per session, not once per ballot.
pub const PREFLIGHT_MAX_AGE_S: u32 = 7200;

/// One origin of `server.cors_origins`, as browsers serialise it: `https://host[:port]`,
/// lower case, no path, no default port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CorsOrigin(String);

impl CorsOrigin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CorsOrigin {
    type Error = String;

    fn try_from(s: String) -> Result<CorsOrigin, String> {
        check_origin(&s).map(|()| CorsOrigin(s.clone())).map_err(|why| {
            format!("{s:?} is not an origin as a browser sends it ({why}), e.g. \"https://vote.example.org\"")
        })
    }
}

fn check_origin(s: &str) -> Result<(), &'static str> {
    if s == "*" || s == "null" {
        return Err("list each origin; wildcards and \"null\" are refused");
    }
    if s.len() > MAX_ORIGIN_BYTES || !s.is_ascii() {
        return Err("too long or not ASCII");
    }
    let (rest, default_port) = if let Some(r) = s.strip_prefix("https://") {
        (r, "443")
    } else if let Some(r) = s.strip_prefix("http://") {
        (r, "80")
    } else {
        return Err("the scheme must be https:// or http://");
    };
    if rest.contains(['/', '?', '#', '@']) {
        return Err("no path, no trailing slash, no query, no user");
    }
    if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("browsers send it in lower case");
    }
    // An IPv6 literal is bracketed; its colons are not the port's.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed [")?;
        // Browsers write the compressed form (RFC 5952), as Rust's Display does.
        match addr.parse::<std::net::Ipv6Addr>() {
            Ok(a) if a.to_string() == addr => {}
            Ok(_) => return Err("browsers write the IPv6 address in its compressed form"),
            Err(_) => return Err("not an IPv6 address in brackets"),
        }
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !rest.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("the host has characters a browser would have encoded");
    }
    if let Some(port) = port {
        if port == default_port {
            return Err("browsers leave the scheme's default port out");
        }
        let canonical = !port.is_empty()
            && !port.starts_with('0')
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok();
        if !canonical {
            return Err("the port must be 1-65535 without leading zeros");
        }
    }
    Ok(())
}

/// The allowed origins, ready to be compared with and copied into headers.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<HeaderValue>,
}

/// What the CORS layer makes of one request to a CORS route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsRequest {
    /// No `Origin` header, or CORS not configured: no CORS headers are added (but `Vary`).
    Plain,
    /// An `OPTIONS` preflight; `Some` if its origin is allowed.
    Preflight(Option<HeaderValue>),
    /// An actual request from another origin; `Some` if that origin is allowed.
    Actual(Option<HeaderValue>),
}

impl Cors {
    pub fn new(origins: &[CorsOrigin]) -> Cors {
        Cors {
            origins: origins
                .iter()
                // Checked at parse: visible ASCII only, so always a valid header value.
                .filter_map(|o| HeaderValue::from_str(o.as_str()).ok())
                .collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn allowed(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        self.origins.iter().find(|o| *o == origin).cloned()
    }

    /// Classifies a request to a CORS route. A preflight is `OPTIONS` with both `Origin`
    /// and `Access-Control-Request-Method` (without them, `OPTIONS` is just a method the
    /// route does not take).
    pub fn classify(&self, method: &Method, headers: &HeaderMap) -> CorsRequest {
        let Some(origin) = headers.get(ORIGIN) else {
            return CorsRequest::Plain;
        };
        if method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return CorsRequest::Preflight(self.allowed(origin));
        }
        if !self.enabled() {
            return CorsRequest::Plain;
        }
        CorsRequest::Actual(self.allowed(origin))
    }

    /// Adds the CORS headers to an answer of a CORS route. `methods` is what the route takes
    /// (`POST`, or `GET, HEAD`).
    pub fn decorate(&self, headers: &mut HeaderMap, request: CorsRequest, methods: &'static str) {
        if self.enabled() {
            // The answer depends on the Origin: a shared cache must not hand one origin's
            // answer (with its Allow-Origin) to another.
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
        match request {
            CorsRequest::Plain | CorsRequest::Preflight(None) | CorsRequest::Actual(None) => {}
            CorsRequest::Preflight(Some(origin)) => {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(
                    ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(methods),
                );
                // The only header a client needs to set; a preflight asking for others
                // fails in the browser, which compares the lists.
                headers.insert(
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("content-type"),
                );
                headers.insert(
                    ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from(PREFLIGHT_MAX_AGE_S),
                );
            }
            CorsRequest::Actual(Some(origin)) => {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                // Content-Type and Cache-Control are readable anyway; a client that backs
                // off on 429 and 503 needs Retry-After too.
                headers.insert(
                    ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static("retry-after"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Result<CorsOrigin, String> {
        CorsOrigin::try_from(s.to_owned())
    }

    #[test]
    fn origins_as_browsers_send_them_are_accepted() {
        for ok in [
            "https://vote.example.org",
            "https://vote.example.org:8443",
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:8443",
            "https://xn--bcher-kva.example",
        ] {
            assert!(origin(ok).is_ok(), "{ok}: {:?}", origin(ok));
        }
    }

    #[test]
    fn anything_a_browser_would_never_send_is_refused_with_a_reason() {
        for (bad, why) in [
            ("*", "wildcard"),
            ("null", "wildcard"),
            ("https://vote.example.org/", "trailing slash"),
            ("https://vote.example.org/vote", "path"),
            ("https://Vote.example.org", "lower case"),
            ("vote.example.org", "scheme"),
            ("ftp://vote.example.org", "scheme"),
            ("https://vote.example.org:443", "default port"),
            ("http://vote.example.org:80", "default port"),
            ("https://vote.example.org:0443", "port"),
            ("https://vote.example.org:70000", "port"),
            ("https://vote.example.org:", "port"),
            ("https://", "no host"),
            ("https://user@vote.example.org", "user"),
            ("https://bücher.example", "ASCII"),
            ("https://vote example.org", "encoded"),
            ("https://[::1", "unclosed"),
            ("https://[zz]:1", "IPv6"),
            ("https://[0:0::1]", "compressed"),
        ] {
            let err = origin(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_listed_origins_are_allowed_byte_for_byte() {
        let cors = Cors::new(&[origin("https://vote.example.org").unwrap()]);
        let pre = |o: &'static str| {
            cors.classify(
                &Method::OPTIONS,
                &headers(&[("origin", o), ("access-control-request-method", "POST")]),
            )
        };
        assert_eq!(
            pre("https://vote.example.org"),
            CorsRequest::Preflight(Some(HeaderValue::from_static("https://vote.example.org")))
        );
        assert_eq!(
            pre("https://vote.example.org:443"),
            CorsRequest::Preflight(None)
        );
        assert_eq!(
            pre("https://evil.example.org"),
            CorsRequest::Preflight(None)
        );
        assert_eq!(pre("null"), CorsRequest::Preflight(None));
        // OPTIONS without Access-Control-Request-Method is not a preflight.
        assert!(matches!(
            cors.classify(
                &Method::OPTIONS,
                &headers(&[("origin", "https://vote.example.org")])
            ),
            CorsRequest::Actual(Some(_))
        ));
        assert_eq!(
            cors.classify(&Method::POST, &headers(&[])),
            CorsRequest::Plain
        );
    }

    #[test]
    fn without_origins_nothing_is_allowed_and_no_header_is_added() {
        let cors = Cors::new(&[]);
        let req = headers(&[
            ("origin", "https://vote.example.org"),
            ("access-control-request-method", "POST"),
        ]);
        assert_eq!(
            cors.classify(&Method::OPTIONS, &req),
            CorsRequest::Preflight(None)
        );
        assert_eq!(cors.classify(&Method::POST, &req), CorsRequest::Plain);
        let mut out = HeaderMap::new();
        cors.decorate(&mut out, CorsRequest::Plain, "POST");
        assert!(out.is_empty());
    }

    #[test]
    fn preflight_answer_names_origin_method_header_and_lifetime() {
        let cors = Cors::new(&[origin("https://vote.example.org").unwrap()]);
        let mut out = HeaderMap::new();
        let o = HeaderValue::from_static("https://vote.example.org");
        cors.decorate(&mut out, CorsRequest::Preflight(Some(o)), "POST");
        assert_eq!(
            out["access-control-allow-origin"],
            "https://vote.example.org"
        );
        assert_eq!(out["access-control-allow-methods"], "POST");
        assert_eq!(out["access-control-allow-headers"], "content-type");
        assert_eq!(out["access-control-max-age"], "7200");
        assert_eq!(out["vary"], "origin");
        let mut out = HeaderMap::new();
        cors.decorate(&mut out, CorsRequest::Actual(None), "POST");
        assert!(out.get("access-control-allow-origin").is_none());
        assert_eq!(out["vary"], "origin");
    }
}
