//! What the server answers: a status, a content type, a body, cache headers, and whether
//! the source should be penalised. Built by the backend (ballots, reads) and by the edge
//! itself (its own refusals), always JSON for errors:
//! `{"error": "<stable code>", "message": "..."}`.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

/// The stable error codes the edge itself produces (the ballot layer adds its own; all are
/// listed in docs/PROTOCOL.md). Clients branch on these: never rename one.
pub mod code {
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const TOO_LARGE: &str = "too_large";
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const OVERLOADED: &str = "overloaded";
    pub const NOT_READY: &str = "not_ready";
    pub const MALFORMED: &str = "malformed";
    pub const INTERNAL: &str = "internal";
    /// A CORS preflight from an origin not in `server.cors_origins`.
    pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
    /// Plain HTTP sent to the TLS port (answered by `edge::plaintext`).
    pub const HTTPS_REQUIRED: &str = "https_required";
}

/// How long a client or a CDN may keep an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// `no-store`: answers that change (errors, receipts, health).
    NoStore,
    /// `public, max-age=N`: the checkpoint and partial tiles, which grow.
    MaxAge(u32),
    /// `public, max-age=31536000, immutable`: full tiles and entry bundles never change.
    Immutable,
    /// `no-cache`: the pages, kept by the browser but revalidated (ETag) on each use, so a
    /// new binary's pages are never mixed with an old one's scripts.
    Revalidate,
}

impl Cache {
    pub fn header_value(self) -> HeaderValue {
        match self {
            Cache::NoStore => HeaderValue::from_static("no-store"),
            // Digits and ASCII only: always a valid header value.
            Cache::MaxAge(s) => HeaderValue::from_str(&format!("public, max-age={s}"))
                .unwrap_or(HeaderValue::from_static("no-store")),
            Cache::Immutable => HeaderValue::from_static("public, max-age=31536000, immutable"),
            Cache::Revalidate => HeaderValue::from_static("no-cache"),
        }
    }

    /// The policy for a tlog-tiles path under `/log/` (C2SP tlog-tiles): the checkpoint and
    /// partial tiles (`.p/<W>`) change as the log grows; full tiles never do.
    pub fn for_log_path(path: &str) -> Cache {
        if path == "checkpoint" || path.contains(".p/") {
            Cache::MaxAge(1)
        } else {
            Cache::Immutable
        }
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    /// `None`: the edge picks (no-store, or by path under `/log/`).
    pub cache: Option<Cache>,
    /// `Retry-After` seconds (429, 503).
    pub retry_after_s: Option<u64>,
    /// The request proved hostile (e.g. a bad signature): the edge takes extra tokens from
    /// the source's ballot budget (`Admission::penalize`).
    pub penalize: bool,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply::with_type(status, "application/json", body)
    }

    /// Any content type (tiles are `application/octet-stream`, checkpoints `text/plain`).
    pub fn with_type(
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            cache: None,
            retry_after_s: None,
            penalize: false,
        }
    }

    /// The contract's error body: `{"error": code, "message": message}`.
    pub fn error(status: StatusCode, code: &str, message: &str) -> Reply {
        let body = serde_json::json!({ "error": code, "message": message }).to_string();
        Reply::json(status, body).cache(Cache::NoStore)
    }

    pub fn cache(mut self, cache: Cache) -> Reply {
        self.cache = Some(cache);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Reply {
        self.retry_after_s = Some(seconds);
        self
    }

    /// Marks the source for a penalty (see [`Reply::penalize`]).
    pub fn penalized(mut self) -> Reply {
        self.penalize = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_the_contracts_json() {
        let r = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            code::RATE_LIMITED,
            "slow \"down\"",
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "rate_limited");
        assert_eq!(v["message"], "slow \"down\"");
        assert_eq!(r.content_type, "application/json");
    }

    #[test]
    fn full_tiles_are_immutable_and_partial_ones_are_not() {
        assert_eq!(Cache::for_log_path("tile/0/x001/234"), Cache::Immutable);
        assert_eq!(Cache::for_log_path("tile/entries/000"), Cache::Immutable);
        assert_eq!(Cache::for_log_path("tile/0/000.p/17"), Cache::MaxAge(1));
        assert_eq!(
            Cache::for_log_path("tile/entries/000.p/3"),
            Cache::MaxAge(1)
        );
        assert_eq!(Cache::for_log_path("checkpoint"), Cache::MaxAge(1));
    }
}
