//! The voter's pages (`server.pages`): static files under `web/`, embedded in the binary, so
//! a fresh machine needs no build step and what is served is exactly what was reviewed.
//!
//! - `/`        — the election's status: id, window, voters, the current checkpoint
//!   (its signature checked in the browser), the verifier key, links.
//! - `/verify`  — a receipt checker: the same checks as `urna verify-receipt`, in the
//!   browser, against the verifier key the voter trusts.
//! - `/vote`    — a demo voting client (`pages = "demo"` only): signs a ballot with
//!   WebCrypto for a demo voter whose secret key line is pasted in, submits it, keeps the
//!   receipt. A real election ships its own client, which encrypts the ballot.
//!
//! Everything the pages show comes from the public API (`/v1/election`, `/v1/ballots`,
//! `/log/checkpoint`), the same a client on another origin uses (`server.cors_origins`).
//! Every answer carries a Content-Security-Policy that allows scripts and styles from this
//! origin only, no inline script, no third-party resource, no framing.

use bytes::Bytes;
use http::header::{
    CONTENT_SECURITY_POLICY, ETAG, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::reply::{Cache, Reply};

/// Which pages the server serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PagesMode {
    /// None: `/` and the rest are 404, as before the pages existed.
    None,
    /// The status page and the receipt checker (the default).
    #[default]
    Public,
    /// Also `/vote`, the demo voting client. It asks for a voter's secret key and sends the
    /// ballot unencrypted: for demos, never for a real election.
    Demo,
}

/// The policy of every page answer. `script-src 'self'` with no `'unsafe-inline'`: the pages
/// hold no inline script or style, so injected markup cannot run. Trusted Types are
/// required, so no script can pass a string to an HTML sink (`innerHTML`) either.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'; \
     require-trusted-types-for 'script'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    demo_only: bool,
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        asset!($path, $file, $type, false)
    };
    ($path:literal, $file:literal, $type:expr, $demo:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../../web/", $file)),
            demo_only: $demo,
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file served, by path. `tests` checks that each file under `web/` is listed and that
/// every path a page refers to is here.
static ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("/verify", "verify.html", HTML),
    asset!("/vote", "vote.html", HTML, true),
    asset!(
        "/assets/urna.css",
        "assets/urna.css",
        "text/css; charset=utf-8"
    ),
    asset!("/assets/favicon.svg", "assets/favicon.svg", "image/svg+xml"),
    asset!("/assets/b64.js", "assets/b64.js", JS),
    asset!("/assets/ed25519.js", "assets/ed25519.js", JS),
    asset!("/assets/receipt.js", "assets/receipt.js", JS),
    asset!("/assets/page.js", "assets/page.js", JS),
    asset!("/assets/status.js", "assets/status.js", JS),
    asset!("/assets/verify.js", "assets/verify.js", JS),
    asset!("/assets/ballot.js", "assets/ballot.js", JS, true),
    asset!("/assets/vote.js", "assets/vote.js", JS, true),
];

/// The pages one server serves, with their validators.
pub struct Site {
    mode: PagesMode,
    /// `"<16 hex digits of SHA-256>"` per asset, computed once at start: a browser
    /// revalidates (`Cache-Control: no-cache`) and gets a 304 until the binary changes.
    etags: Vec<HeaderValue>,
}

impl Site {
    pub fn new(mode: PagesMode) -> Site {
        let etags = ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                // Hex digits and quotes: always a valid header value.
                HeaderValue::from_str(&format!("\"{hex}\""))
                    .unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect();
        Site { mode, etags }
    }

    /// The asset at `path`, if this server serves it.
    pub fn find(&self, path: &str) -> Option<usize> {
        let i = ASSETS.iter().position(|a| a.path == path)?;
        match self.mode {
            PagesMode::None => None,
            PagesMode::Public if ASSETS[i].demo_only => None,
            _ => Some(i),
        }
    }

    /// The answer for asset `i` (from [`Site::find`]): the file, or 304 if the client's
    /// `If-None-Match` names its current version.
    pub fn serve(&self, i: usize, if_none_match: Option<&HeaderValue>) -> Reply {
        let asset = &ASSETS[i];
        let fresh = if_none_match
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| matches_etag(v, &self.etags[i]));
        let (status, body) = if fresh {
            (StatusCode::NOT_MODIFIED, Bytes::new())
        } else {
            (StatusCode::OK, Bytes::from_static(asset.body))
        };
        Reply::with_type(status, asset.content_type, body).cache(Cache::Revalidate)
    }

    /// Adds the security headers to any answer on a page route (files, 304s, 404s), and the
    /// validator when it is a file.
    pub fn decorate(&self, headers: &mut HeaderMap, asset: Option<usize>) {
        if let Some(etag) = asset.and_then(|i| self.etags.get(i)) {
            headers.insert(ETAG, etag.clone());
        }
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        );
    }
}

/// RFC 9110 §13.1.2: `*`, or a list of entity tags, weak or strong (weak comparison).
fn matches_etag(if_none_match: &str, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    if_none_match.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_web_is_served_and_every_reference_resolves() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut files = Vec::new();
        for sub in ["/", "/assets/"] {
            for e in std::fs::read_dir(dir.join(&sub[1..])).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    files.push(format!("{sub}{}", e.file_name().to_string_lossy()));
                }
            }
        }
        for f in &files {
            let listed = ASSETS.iter().any(|a| {
                let from_path = match a.path {
                    "/" => "/index.html".to_owned(),
                    p if p.starts_with("/assets/") => p.to_owned(),
                    p => format!("{p}.html"),
                };
                from_path == *f
            });
            assert!(listed, "web{f} is not served: list it in ASSETS");
        }
        // src="/…", href="/…" and `from "./…"` imports must all name served paths.
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for (open, prefix) in [("src=\"", ""), ("href=\"", ""), ("from \"./", "/assets/")] {
                for part in text.split(open).skip(1) {
                    let target = part.split('"').next().unwrap();
                    if target.starts_with('#') {
                        continue;
                    }
                    let path = format!("{prefix}{target}");
                    assert!(
                        ASSETS.iter().any(|b| b.path == path)
                            || ["/v1/election", "/log/checkpoint"].contains(&path.as_str()),
                        "{} refers to {path}, which is not served",
                        a.path
                    );
                }
            }
        }
    }

    #[test]
    fn pages_hold_no_inline_script_or_style_and_no_third_party_resource() {
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap().to_ascii_lowercase();
            if a.content_type == HTML {
                // Every <script> has a src; no <style>, no style="", no on…= handlers.
                for part in text.split("<script").skip(1) {
                    let tag = part.split('>').next().unwrap();
                    assert!(tag.contains("src="), "{}: inline <script>", a.path);
                }
                assert!(!text.contains("<style"), "{}: <style>", a.path);
                assert!(!text.contains(" style="), "{}: style attribute", a.path);
                for handler in [
                    " onclick=",
                    " onload=",
                    " onerror=",
                    " onsubmit=",
                    " oninput=",
                ] {
                    assert!(!text.contains(handler), "{}: {handler}", a.path);
                }
            }
            for third_party in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "from \"http",
                "import(\"http",
                "//cdn",
            ] {
                assert!(!text.contains(third_party), "{}: {third_party}", a.path);
            }
            assert!(!text.contains("innerhtml"), "{}: innerHTML", a.path);
            assert!(!text.contains("eval("), "{}: eval", a.path);
        }
    }

    #[test]
    fn modes_serve_what_they_say() {
        let none = Site::new(PagesMode::None);
        let public = Site::new(PagesMode::Public);
        let demo = Site::new(PagesMode::Demo);
        assert_eq!(none.find("/"), None);
        assert!(public.find("/").is_some());
        assert!(public.find("/verify").is_some());
        assert_eq!(public.find("/vote"), None);
        assert_eq!(public.find("/assets/vote.js"), None);
        assert!(demo.find("/vote").is_some());
        assert_eq!(demo.find("/index.html"), None);
        assert_eq!(demo.find("/assets/../index.html"), None);
    }

    #[test]
    fn a_current_etag_gets_304_and_any_other_the_file() {
        let site = Site::new(PagesMode::Public);
        let i = site.find("/").unwrap();
        let etag = site.etags[i].clone();
        assert_eq!(site.serve(i, None).status, StatusCode::OK);
        assert_eq!(site.serve(i, Some(&etag)).status, StatusCode::NOT_MODIFIED);
        let weak_list =
            HeaderValue::from_str(&format!("\"x\", W/{}", etag.to_str().unwrap())).unwrap();
        assert_eq!(
            site.serve(i, Some(&weak_list)).status,
            StatusCode::NOT_MODIFIED
        );
        let old = HeaderValue::from_static("\"0000000000000000\"");
        let r = site.serve(i, Some(&old));
        assert_eq!(r.status, StatusCode::OK);
        assert!(!r.body.is_empty());
    }
}
