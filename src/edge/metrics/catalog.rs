//! Every series the server exports, in one table: its name, type, help text, buckets, and the
//! label values that exist from the start.
//!
//! Three promises rest on this table (docs/OPERATIONS.md, "Reading the metrics"):
//! - every series has a `# HELP` line ([`describe`]);
//! - every histogram has fixed buckets, so it renders as a Prometheus histogram that
//!   `histogram_quantile` can read and that sums across servers, never as a client-side
//!   summary (whose quantiles cannot be aggregated);
//! - every counter an operator alerts on exists at 0 from the first scrape ([`register`]):
//!   `increase()` and `rate()` miss the first event of a series that appears with it, and
//!   an alert on a series that does not exist yet can never fire.

use metrics::Unit;

/// What kind of series, and for a histogram its bucket bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// Which label values exist from the start (the rest appear with their first event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Preset {
    /// Appears when first recorded or set (gauges set on a tick, lazily made answers).
    None,
    /// No labels: registered at 0.
    Bare,
    /// Each of these label sets registered at 0 (labels in the order the code records them:
    /// the exporter keys a series by its labels in order).
    Each(&'static [&'static [(&'static str, &'static str)]]),
    /// `urna_rejections_total`: every (layer, reason) of [`REJECTIONS`].
    Rejections,
}

/// One exported series.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
    pub preset: Preset,
}

/// `urna_request_duration_seconds`, head to answer: a refusal takes tens of microseconds, a
/// read a fraction of a millisecond, a ballot milliseconds (batched verification, group
/// commit with two fdatasyncs), and `request_timeout_ms` (15 s) bounds the slowest.
pub const REQUEST_BUCKETS_S: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 15.0,
];

/// `urna_handshake_duration_seconds`: ~0.5 ms of crypto, plus the wait for a handshake slot
/// under a flood, bounded by `handshake_timeout_ms` (5 s).
pub const HANDSHAKE_BUCKETS_S: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A ballot's stages and the log's group commit: a batch verification takes a few
/// milliseconds, a commit one or two fdatasyncs (sub-millisecond on NVMe, tens of
/// milliseconds on a network disk), and the request timeout (15 s) bounds both.
pub const BALLOT_BUCKETS_S: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0,
];

/// Signatures per verification batch: powers of two up to past `signatures.max_batch`
/// (default 256).
pub const VERIFY_BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Entries per group commit: up to `log.batch_max_entries` (default 1,024; at most 10^6).
pub const LOG_BATCH_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// Every `(layer, reason)` of `urna_rejections_total`, registered at 0 at start. L1 and L2
/// close the connection; L3 closes it or answers 408/431; L4 answers before the body is
/// read; L5 and L6 are the ballot's own refusals (docs/PROTOCOL.md's error codes); L6 and L7
/// `overloaded` are the signature and log queues being full (503).
pub const REJECTIONS: &[(&str, &[&str])] = &[
    (
        "l1",
        &[
            // accept::Refusal
            "penalty_box",
            "denied",
            "not_allowed",
            "max_connections",
            "waster_table_full",
            "max_connections_per_source",
            "new_connection_rate",
            "source_table_full",
            "max_connections_per_prefix",
            "new_connection_rate_prefix",
            "prefix_table_full",
            // PROXY v2 and the first byte
            "proxy_header_missing",
            "proxy_header_bad",
            "proxy_header_untrusted",
            "proxy_header_timeout",
            "first_byte_timeout",
        ],
    ),
    (
        "l2",
        &[
            "handshake_timeout",
            "handshake_error",
            "handshake_queue_full",
            "io_error",
            // plain HTTP on the TLS port, answered 400 (edge::plaintext)
            "plain_http",
        ],
    ),
    (
        "l3",
        &[
            "header_timeout",
            "header_too_large",
            "malformed_request",
            "incomplete_message",
            "protocol_error",
            "keep_alive_idle",
            "request_timeout",
            "close_grace_exceeded",
            "h2_control_flood",
        ],
    ),
    (
        "l4",
        &[
            "path",
            "method",
            "rate_limited_source",
            "rate_limited_prefix",
            "in_flight",
            "reads_in_flight",
            "bodies_in_flight",
            "queue_depth",
            "content_type",
            "too_large",
            "body_timeout",
            "body_error",
            "malformed_index",
            "metrics_forbidden",
            "cors_origin",
            "refusals_per_connection",
        ],
    ),
    (
        "l5",
        &[
            "malformed",
            "too_large",
            "wrong_election",
            "not_eligible",
            "election_not_open",
            "election_closed",
            "stale_seq",
            "conflict",
            "already_voted",
            "too_many_ballots",
        ],
    ),
    ("l6", &["bad_signature", "overloaded"]),
    ("l7", &["overloaded"]),
];

/// Whether `(layer, reason)` is one of [`REJECTIONS`].
pub fn known_rejection(layer: &str, reason: &str) -> bool {
    REJECTIONS
        .iter()
        .any(|(l, reasons)| *l == layer && reasons.contains(&reason))
}

/// The ballot answers an alert divides by (refused and shed against accepted): present from
/// the start, so the first 503 of a server's life is seen by `rate()`.
const BALLOT_ANSWERS: &[&[(&str, &str)]] = &[
    &[("route", "ballots"), ("status", "200")],
    &[("route", "ballots"), ("status", "201")],
    &[("route", "ballots"), ("status", "429")],
    &[("route", "ballots"), ("status", "500")],
    &[("route", "ballots"), ("status", "503")],
];

use Kind::{Counter, Gauge, Histogram};

/// Every series of the server, by layer as a ballot meets them. Process metrics
/// (`process_*`) are described by the `metrics-process` collector itself.
pub const SERIES: &[Series] = &[
    Series {
        name: "urna_build_info",
        kind: Gauge,
        unit: None,
        help: "Always 1; the labels say which build runs: version, revision (git commit, \
               unknown when built outside a checkout), rustc and target.",
        preset: Preset::None,
    },
    // L1-L4: the edge.
    Series {
        name: "urna_rejections_total",
        kind: Counter,
        unit: None,
        help: "Refusals by layer (l1 accept .. l7 log) and reason; every pair exists from \
               the start.",
        preset: Preset::Rejections,
    },
    Series {
        name: "urna_responses_total",
        kind: Counter,
        unit: None,
        help: "HTTP answers by route and status (the status codes the server uses, else \
               2xx/4xx/5xx).",
        preset: Preset::Each(BALLOT_ANSWERS),
    },
    Series {
        name: "urna_request_duration_seconds",
        kind: Histogram(REQUEST_BUCKETS_S),
        unit: Some(Unit::Seconds),
        help: "Request head to answer, by route and result (ok, refused, rate_limited, \
               overloaded, error); route=ballots,result=ok is a voter's wait for a receipt.",
        preset: Preset::None,
    },
    Series {
        name: "urna_handshake_duration_seconds",
        kind: Histogram(HANDSHAKE_BUCKETS_S),
        unit: Some(Unit::Seconds),
        help: "Finished TLS handshakes, first byte to done (including the wait for a \
               handshake slot).",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_connections_open",
        kind: Gauge,
        unit: None,
        help: "Connections in the table, against limits.max_connections.",
        preset: Preset::None,
    },
    Series {
        name: "urna_connections_reclaimed_total",
        kind: Counter,
        unit: None,
        help: "Connections given up for newcomers while the table was full, by the class \
               reclaimed (idle, silent, handshake, stalled).",
        preset: Preset::Each(&[
            &[("reason", "idle")],
            &[("reason", "silent")],
            &[("reason", "handshake")],
            &[("reason", "stalled")],
        ]),
    },
    Series {
        name: "urna_l1_wasted_connections_total",
        kind: Counter,
        unit: None,
        help: "Connections the server ended for holding their slot without using it (silent, \
               stalled or idle until timed out); a source that does it often has its \
               handshakes served after everyone else's.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_handshakes_total",
        kind: Counter,
        unit: None,
        help: "TLS handshakes started (whole ClientHello in), by source: waster (a source \
               that lately wasted connections, served last) or other.",
        preset: Preset::Each(&[&[("source", "waster")], &[("source", "other")]]),
    },
    Series {
        name: "urna_handshakes_waiting",
        kind: Gauge,
        unit: None,
        help: "Handshakes waiting for a handshake slot now (served round-robin between \
               prefixes, wasters last).",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_overload_pressure",
        kind: Gauge,
        unit: None,
        help: "0-1: the fill of the connection table (connections) and of the handshake \
               slots (handshakes).",
        preset: Preset::None,
    },
    Series {
        name: "urna_overload_timeout_scale",
        kind: Gauge,
        unit: None,
        help: "0 (every phase timeout at its full value) to 1 (every table-bound timeout at \
               its minimum).",
        preset: Preset::None,
    },
    Series {
        name: "urna_timeout_seconds",
        kind: Gauge,
        unit: Some(Unit::Seconds),
        help: "Each phase timeout in force now (first_byte, handshake, header_read, body, \
               keep_alive_idle).",
        preset: Preset::None,
    },
    Series {
        name: "urna_penalty_box_sources",
        kind: Gauge,
        unit: None,
        help: "Sources refused at accept now because they kept sending after 429s.",
        preset: Preset::None,
    },
    Series {
        name: "urna_penalty_box_tracked",
        kind: Gauge,
        unit: None,
        help: "Sources the penalty box remembers (boxed or counting strikes), against \
               limits.max_penalized_sources.",
        preset: Preset::None,
    },
    Series {
        name: "urna_penalty_box_kernel_sources",
        kind: Gauge,
        unit: None,
        help: "Boxed sources whose SYNs the listening socket's kernel filter drops now \
               (at most limits.penalty_box_kernel_sources; the rest are refused at accept).",
        preset: Preset::None,
    },
    Series {
        name: "urna_penalty_box_kernel_updates_total",
        kind: Counter,
        unit: None,
        help: "Times a listening socket's kernel filter was rewritten to follow the penalty box.",
        preset: Preset::None,
    },
    Series {
        name: "urna_penalty_box_entered_total",
        kind: Counter,
        unit: None,
        help: "Sources put in the penalty box.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_handshakes_in_flight",
        kind: Gauge,
        unit: None,
        help: "TLS handshakes doing crypto now, against limits.max_handshakes_in_flight.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_requests_in_flight",
        kind: Gauge,
        unit: None,
        help: "Requests being handled now, against limits.max_in_flight.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_backend_queue_depth",
        kind: Gauge,
        unit: None,
        help: "Ballots between the edge and their answer, against limits.shed_queue_depth.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_l4_tracked_keys",
        kind: Gauge,
        unit: None,
        help: "Keys held by each L4 rate limiter, against limits.max_tracked_keys.",
        preset: Preset::None,
    },
    Series {
        name: "urna_l1_sources_evicted_total",
        kind: Counter,
        unit: None,
        help: "Idle sources evicted from the full L1 source table.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_penalties_total",
        kind: Counter,
        unit: None,
        help: "Bad-signature penalties taken from a source's ballot budget.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_tls_reloads_total",
        kind: Counter,
        unit: None,
        help: "Certificate reloads on SIGHUP, by result (ok, error).",
        preset: Preset::Each(&[&[("result", "ok")], &[("result", "error")]]),
    },
    // L5-L6: the ballot.
    Series {
        name: "urna_ballot_stage_seconds",
        kind: Histogram(BALLOT_BUCKETS_S),
        unit: Some(Unit::Seconds),
        help: "A ballot's time in verify (signature queue and batch) and log (log queue, \
               group commit, receipt).",
        preset: Preset::Each(&[&[("stage", "verify")], &[("stage", "log")]]),
    },
    Series {
        name: "urna_verify_batch_size",
        kind: Histogram(VERIFY_BATCH_BUCKETS),
        unit: None,
        help: "Signatures per verification batch.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_ballot_verify_batch_fallback_total",
        kind: Counter,
        unit: None,
        help: "Verification batches with a bad signature in them, re-checked one by one.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_ed25519_backend",
        kind: Gauge,
        unit: None,
        help: "1 for the curve backend verifying Ed25519 (avx512ifma, avx2, serial).",
        preset: Preset::None,
    },
    // L7: the log.
    Series {
        name: "urna_log_commit_seconds",
        kind: Histogram(BALLOT_BUCKETS_S),
        unit: Some(Unit::Seconds),
        help: "One group commit: write, fdatasync, sign, checkpoint fdatasync.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_log_batch_entries",
        kind: Histogram(LOG_BATCH_BUCKETS),
        unit: None,
        help: "Entries per group commit.",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_log_entries_appended_total",
        kind: Counter,
        unit: None,
        help: "Entries appended to the log (durable and signed).",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_log_size",
        kind: Gauge,
        unit: None,
        help: "Tree size of the last signed checkpoint.",
        preset: Preset::None,
    },
    Series {
        name: "urna_log_queue_full_total",
        kind: Counter,
        unit: None,
        help: "Ballots answered 503 because the log writer's queue was full (the disk is \
               not keeping up).",
        preset: Preset::Bare,
    },
    Series {
        name: "urna_log_poisoned_total",
        kind: Counter,
        unit: None,
        help: "The log store refused all further writes (a write or fsync failed, or an \
               invariant broke); the process exits with status 70 to recover.",
        preset: Preset::Bare,
    },
];

/// The series named `name`.
pub fn series(name: &str) -> Option<&'static Series> {
    SERIES.iter().find(|s| s.name == name)
}

/// Gives every series its `# HELP` line (descriptions go to the installed recorder: call
/// after installing it).
pub fn describe() {
    for s in SERIES {
        match (s.kind, s.unit) {
            (Counter, Some(u)) => metrics::describe_counter!(s.name, u, s.help),
            (Counter, None) => metrics::describe_counter!(s.name, s.help),
            (Gauge, Some(u)) => metrics::describe_gauge!(s.name, u, s.help),
            (Gauge, None) => metrics::describe_gauge!(s.name, s.help),
            (Histogram(_), Some(u)) => metrics::describe_histogram!(s.name, u, s.help),
            (Histogram(_), None) => metrics::describe_histogram!(s.name, s.help),
        }
    }
}

/// Registers every preset series at 0 with the installed recorder. Registering makes the
/// series exist; it records nothing (a registered histogram renders with empty buckets).
pub fn register() {
    for s in SERIES {
        let one = |labels: &[(&'static str, &'static str)]| {
            let labels: Vec<metrics::Label> = labels
                .iter()
                .map(|(k, v)| metrics::Label::from_static_parts(k, v))
                .collect();
            match s.kind {
                Counter => drop(metrics::counter!(s.name, labels)),
                Gauge => drop(metrics::gauge!(s.name, labels)),
                Histogram(_) => drop(metrics::histogram!(s.name, labels)),
            }
        };
        match s.preset {
            Preset::None => {}
            Preset::Bare => one(&[]),
            Preset::Each(sets) => {
                for labels in sets {
                    one(labels);
                }
            }
            Preset::Rejections => {
                for (layer, reasons) in REJECTIONS {
                    for reason in *reasons {
                        one(&[("layer", layer), ("reason", reason)]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::BallotError;
    use crate::edge::accept::Refusal;
    use crate::edge::metrics::L4Reason;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn reasons(layer: &str) -> BTreeSet<&'static str> {
        REJECTIONS
            .iter()
            .filter(|(l, _)| *l == layer)
            .flat_map(|(_, r)| r.iter().copied())
            .collect()
    }

    /// Every `.rs` file under `src/`, with its path.
    fn sources() -> Vec<(String, String)> {
        fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    out.push((path.display().to_string(), text));
                }
            }
        }
        let mut out = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
        assert!(out.len() > 20, "found only {} source files", out.len());
        out
    }

    /// The `count` string literals that open `rest` (whitespace and newlines skipped,
    /// separated by commas): `"l1", "x")` gives ["l1", "x"].
    fn literals_at(mut rest: &str, count: usize) -> Option<Vec<String>> {
        let mut found = Vec::new();
        while found.len() < count {
            let r = rest.trim_start().strip_prefix('"')?;
            let end = r.find('"')?;
            found.push(r[..end].to_owned());
            rest = r[end + 1..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        Some(found)
    }

    /// The literals right after each `needle`: `reject("l1", "x")` gives ["l1", "x"].
    fn literals_after(text: &str, needle: &str, count: usize) -> Vec<Vec<String>> {
        text.match_indices(needle)
            .filter_map(|(at, _)| literals_at(&text[at + needle.len()..], count))
            .collect()
    }

    #[test]
    fn every_metric_recorded_in_the_source_is_in_the_catalog() {
        let mut seen = 0;
        for (path, text) in sources() {
            if path.ends_with("catalog.rs") {
                continue;
            }
            for macro_ in ["counter!(", "gauge!(", "histogram!("] {
                for name in literals_after(&text, macro_, 1) {
                    let s = series(&name[0])
                        .unwrap_or_else(|| panic!("{path}: {} is not in SERIES", name[0]));
                    let kind_matches = matches!(
                        (macro_, s.kind),
                        ("counter!(", Kind::Counter)
                            | ("gauge!(", Kind::Gauge)
                            | ("histogram!(", Kind::Histogram(_))
                    );
                    assert!(kind_matches, "{path}: {} recorded as {macro_}", s.name);
                    seen += 1;
                }
            }
        }
        // The scan itself works: the tree records dozens of series this way.
        assert!(seen > 25, "found only {seen} metric macro calls");
    }

    #[test]
    fn every_literal_refusal_in_the_source_is_registered() {
        let layer = |l: &str| {
            l.len() == 2 && l.starts_with('l') && (b'1'..=b'7').contains(&l.as_bytes()[1])
        };
        let mut seen = 0;
        for (path, text) in sources() {
            if path.ends_with("catalog.rs") {
                continue;
            }
            // `reject("l3", "x")`, and `("l1", "x")` tuples (not calls) chosen in a match,
            // then passed to reject().
            let calls = literals_after(&text, "reject(", 2);
            let tuples = text
                .match_indices('(')
                .filter(|(at, _)| {
                    let before = text[..*at].chars().next_back().unwrap_or(' ');
                    !(before.is_alphanumeric() || before == '_' || before == '!')
                })
                .filter_map(|(at, _)| literals_at(&text[at + 1..], 2))
                .filter(|p| layer(&p[0]));
            for pair in calls.into_iter().chain(tuples) {
                assert!(
                    known_rejection(&pair[0], &pair[1]),
                    "{path}: ({}, {}) is not in REJECTIONS",
                    pair[0],
                    pair[1]
                );
                seen += 1;
            }
        }
        assert!(seen >= 10, "found only {seen} literal refusals");
    }

    /// The L1 refusals, walked with an exhaustive match: a new variant stops this test from
    /// compiling until it is placed in the walk (and so checked against the table).
    #[test]
    fn every_l1_refusal_is_registered() {
        fn next(r: Option<Refusal>) -> Option<Refusal> {
            use Refusal::*;
            match r {
                None => Some(PenaltyBox),
                Some(PenaltyBox) => Some(Denied),
                Some(Denied) => Some(NotAllowed),
                Some(NotAllowed) => Some(TooManyConnections),
                Some(TooManyConnections) => Some(WasterWhileFull),
                Some(WasterWhileFull) => Some(TooManyFromSource),
                Some(TooManyFromSource) => Some(SourceRate),
                Some(SourceRate) => Some(SourceTableFull),
                Some(SourceTableFull) => Some(TooManyFromPrefix),
                Some(TooManyFromPrefix) => Some(PrefixRate),
                Some(PrefixRate) => Some(PrefixTableFull),
                Some(PrefixTableFull) => None,
            }
        }
        let mut r = next(None);
        let mut n = 0;
        while let Some(refusal) = r {
            assert!(known_rejection("l1", refusal.reason()), "{refusal:?}");
            r = next(r);
            n += 1;
        }
        assert_eq!(n, 11);
    }

    #[test]
    fn l4_and_ballot_reasons_are_registered_exactly() {
        let l4: BTreeSet<_> = L4Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(reasons("l4"), l4);
        let mut codes: BTreeSet<_> = BallotError::ALL_CODES.into_iter().collect();
        assert!(codes.remove("bad_signature"), "counted at l6");
        assert_eq!(reasons("l5"), codes);
        assert!(known_rejection("l6", "bad_signature"));
        assert!(known_rejection("l6", "overloaded") && known_rejection("l7", "overloaded"));
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut names = BTreeSet::new();
        for s in SERIES {
            assert!(names.insert(s.name), "{} twice", s.name);
            assert!(
                s.name.starts_with("urna_")
                    && s.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                s.name
            );
            // Counters end in _total; nothing else does.
            assert_eq!(
                s.name.ends_with("_total"),
                s.kind == Kind::Counter,
                "{}",
                s.name
            );
            // A unit in the name is the base unit, and declared.
            if s.name.ends_with("_seconds") {
                assert_eq!(s.unit, Some(Unit::Seconds), "{}", s.name);
            }
            assert!(s.help.len() > 10 && !s.help.contains('\n'), "{}", s.name);
            if let Kind::Histogram(b) = s.kind {
                assert!(!b.is_empty(), "{}", s.name);
                assert!(
                    b.windows(2).all(|w| w[0] < w[1]),
                    "{}: buckets not increasing",
                    s.name
                );
            }
        }
    }

    #[test]
    fn preset_label_values_are_lowercase() {
        let lower = |v: &str| v.bytes().all(|b| !b.is_ascii_uppercase());
        for (layer, rs) in REJECTIONS {
            assert!(lower(layer), "{layer}");
            for r in *rs {
                assert!(lower(r), "{r}");
            }
        }
        for s in SERIES {
            if let Preset::Each(sets) = s.preset {
                for (k, v) in sets.iter().flat_map(|l| l.iter()) {
                    assert!(lower(k) && lower(v), "{}: {k}={v}", s.name);
                }
            }
        }
    }
}
