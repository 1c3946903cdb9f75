//! The whole `urna.toml`: one typed struct per section, parsed with `deny_unknown_fields` so
//! a misspelt key is a startup error that names it, never a silently ignored limit.
//!
//! Units go last in key names (`_ms`, `_bytes`, `_per_s`). Rates and caps that must not be
//! zero are `NonZero*` types, so a zero is rejected by the parser with the key's name.
//! Cross-key rules (a cap that must exceed another) are checked in [`Config::validate`].

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::ballot::RevotePolicy;

/// The embedded default configuration: small, works on a fresh machine, storage in `./data`.
pub const DEFAULT_TOML: &str = include_str!("../config/urna.toml");

/// Why a configuration could not be used. Every variant names the key at fault, and
/// [`Config::load`] adds the file ([`ConfigError::InFile`]): an operator with several
/// configs must see which one is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML did not match the schema: the message names the key (unknown key, bad type,
    /// zero where a non-zero is required, malformed address or date).
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    /// The keys parsed but disagree with each other.
    #[error("invalid config: `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// A [`ConfigError::Parse`] or [`ConfigError::Invalid`] in the file `file`. The inner
    /// error is part of this message, not a separate cause, so it is printed once.
    #[error("invalid config {file}: {}", .error.detail())]
    InFile {
        file: String,
        error: Box<ConfigError>,
    },
}

impl ConfigError {
    /// The message without its "invalid config:" prefix.
    fn detail(&self) -> String {
        match self {
            ConfigError::Parse(e) => e.to_string(),
            ConfigError::Invalid { key, reason } => format!("`{key}`: {reason}"),
            ConfigError::InFile { error, .. } => error.detail(),
            ConfigError::Read { .. } => self.to_string(),
        }
    }

    fn in_file(self, file: String) -> ConfigError {
        match self {
            ConfigError::Read { .. } | ConfigError::InFile { .. } => self,
            error => ConfigError::InFile {
                file,
                error: Box::new(error),
            },
        }
    }
}

/// The whole `urna.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    pub election: ElectionConfig,
    pub storage: StorageConfig,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub signatures: SignaturesConfig,
}

/// `[server]`: where to listen and whom to trust for client addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The TLS listener voters connect to.
    pub listen: SocketAddr,
    /// Optional plain-HTTP listener, for deployments behind a TLS-terminating balancer.
    /// Without TLS, only bind it to an address the balancer alone can reach.
    #[serde(default)]
    pub listen_plain: Option<SocketAddr>,
    /// Peers allowed to send a PROXY protocol v2 header. Behind a balancer every connection
    /// comes from its address; without the header every voter would share one rate limit.
    /// A header from any other peer closes the connection (it could forge its address).
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    /// Whether a trusted proxy *must* send the header. When true, a trusted peer without one
    /// is closed: its traffic would otherwise be limited as the balancer's own address.
    #[serde(default = "yes")]
    pub proxy_protocol_required: bool,
    /// Who may read `/metrics` (everyone else gets 404): the counters tell an attacker how
    /// well an attack works. Default: loopback only.
    #[serde(default = "d_metrics_allow")]
    pub metrics_allow: Vec<IpNet>,
    /// `human` or `json` log lines on stderr.
    #[serde(default)]
    pub log_format: LogFormat,
    /// On SIGTERM, how long in-flight requests may take to finish before their connections
    /// are dropped. Bounds how long a shutdown (and so a rolling restart) can hang.
    #[serde(default = "d_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Threads running the network side (accept, TLS, HTTP, L4). Default: one per core.
    /// Signature checks and the log writer have threads of their own, so on a small
    /// machine fewer network threads can mean fewer context switches (measure it:
    /// load-tests/README.md).
    #[serde(default)]
    pub worker_threads: Option<std::num::NonZeroUsize>,
    /// Origins whose pages may use the API from a browser (CORS): an election's voting
    /// client on its own site, e.g. `["https://vote.example.org"]`, written as browsers send
    /// them. Default: none, so only the server's own pages can (same origin). Not access
    /// control: programs that are not browsers ignore CORS, and ballots stand on their
    /// signatures. At most 64 (`edge::cors`).
    #[serde(default)]
    pub cors_origins: Vec<crate::edge::cors::CorsOrigin>,
    /// The voter's pages: `"public"` (default: `/` the election's status, `/verify` a
    /// receipt checker), `"demo"` (also `/vote`, a demo client that takes a voter's secret
    /// key: never for a real election), or `"none"`.
    #[serde(default)]
    pub pages: crate::edge::pages::PagesMode,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `[tls]`: the server certificate. Both absent: a self-signed ECDSA P-256 certificate is
/// generated into `<storage.dir>/tls/` on first start and reused after.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Re-read on SIGHUP.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1). Re-read on SIGHUP.
    pub key: Option<PathBuf>,
}

/// `[limits]`: every bound of L1–L4 (docs/ARCHITECTURE.md). The defaults suit one real deployment on a
/// small machine; `config/production.example.toml` says why each exists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    // ---- L1 accept ----
    /// Connections from these networks are closed at accept.
    pub deny: Vec<IpNet>,
    /// When not empty, only these networks may connect (checked after `deny`).
    pub allow: Vec<IpNet>,
    /// Most open connections in all. Each costs memory (TLS state, buffers); past it new
    /// connections are closed at accept rather than exhausting file descriptors.
    pub max_connections: NonZeroUsize,
    /// Most open connections from one source (IPv4 /32, IPv6 /64): one host cannot take the
    /// whole connection budget.
    pub max_connections_per_source: NonZeroU32,
    /// New connections per second from one source, sustained. Handshakes are the dearest
    /// thing a client can make us do; this bounds what one host can ask for.
    pub new_connections_per_source_per_s: NonZeroU32,
    /// Burst allowance above that rate (a browser opens a few connections at once).
    pub new_connections_burst: NonZeroU32,
    /// Most open connections from one prefix (IPv4 /24, IPv6 /48): a botnet concentrated in
    /// a few subnets cannot fill the table from under the per-source cap. Generous, since a
    /// campus or carrier NAT puts many real voters behind one prefix.
    pub max_connections_per_prefix: NonZeroU32,
    /// New connections per second from one prefix, sustained (as the per-source rate, for
    /// the subnet: a botnet in one /24 costs at most this many handshakes a second).
    pub new_connections_per_prefix_per_s: NonZeroU32,
    /// Burst allowance above the per-prefix rate.
    pub new_connections_burst_per_prefix: NonZeroU32,
    /// Most sources (and, separately, prefixes) tracked by L1. The tables are keyed by what
    /// the network chooses, so they have a cap; past it idle entries are evicted, oldest
    /// first. Must exceed `max_connections` so an entry with live connections never needs
    /// evicting.
    pub max_tracked_sources: NonZeroUsize,
    /// The kernel's queue of connections waiting for `accept()` (capped by the system's
    /// `net.core.somaxconn`). The accept loop never waits on anything else, so this only
    /// has to absorb a burst between two wake-ups; too small and the kernel drops SYNs.
    pub listen_backlog: NonZeroU32,
    /// When the connection table is full, how many of its least valuable connections one
    /// newcomer reclaims at once (idle keep-alive first, then silent and stalled ones,
    /// oldest first; never one with a request being processed). Reclaiming a few at a time
    /// (as nginx's drain does, 32) amortises the scan of the table over several newcomers.
    pub reclaim_batch: NonZeroUsize,
    /// A new connection's first phases — silent, then its ClientHello arriving — are spared
    /// by that reclaim for this long (taken after every stalled one, before whole hellos),
    /// and one reclaimed within it does not count against its source as wasted. A voter's connection is silent or
    /// mid-hello from its accept until its task first reads; under a flood's churn the
    /// oldest silent connection in a full table can be only milliseconds old, and a voter
    /// reclaimed twice so became a waster (measured: 1 of 900 voters lost in the botnet
    /// run with every attack kind). At most 10000.
    pub new_connection_grace_ms: u64,
    /// The kernel keeps a connection that has sent nothing out of `accept()` this long
    /// (Linux `TCP_DEFER_ACCEPT`, nginx's `listen … deferred`): a socket that connects and
    /// says nothing costs a kernel request slot (a few hundred bytes, in the listen queue),
    /// not a file descriptor, a task and a table slot. Past it the kernel hands it over and
    /// `first_byte_timeout_ms` applies. 0: off. Ignored where the system has no such option.
    pub defer_accept_ms: u64,

    // ---- wasters (L1–L2) ----
    /// A source whose connections the server has ended this many times for holding a slot
    /// without using it (reclaimed or timed out silent, mid-hello, mid-request or idle)...
    pub waster_strikes: NonZeroU32,
    /// ...the last within this time, is a waster: its new connections' handshakes wait
    /// behind everyone else's (below). Kept in the per-source table of L1, so bounded by
    /// `max_tracked_sources`. A voter arrives once and is never one; a botnet that holds
    /// connections and reconnects when cut becomes one within two rounds.
    pub waster_memory_ms: u64,
    /// Percent of `max_handshakes_in_flight` that wasters' handshakes may hold together.
    /// The rest stays free for everyone else, so a reconnecting botnet cannot queue voters
    /// behind its own handshakes.
    pub waster_handshake_share_pct: u8,

    // ---- penalty box (L1, fed by L4's refusals) ----
    /// A source that has been answered 429 this many times within `penalty_box_window_ms`
    /// ignores Retry-After: its connection is closed and it is refused at accept for
    /// `penalty_box_cooldown_ms`, so that its further requests cost an accept and a close,
    /// not a TLS record and an HTTP answer each. A voter who honours Retry-After gets a
    /// handful of 429s at most.
    pub penalty_box_strikes: NonZeroU32,
    /// The window in which the strikes are counted.
    pub penalty_box_window_ms: u64,
    /// How long a boxed source is refused at accept. Short: the box is per source (IPv4
    /// /32, IPv6 /64), never per prefix, and a voter behind a boxed address gets in again
    /// soon.
    pub penalty_box_cooldown_ms: u64,
    /// Most sources the penalty box tracks (strikes or boxed). Keyed by what the network
    /// chooses, so bounded: past it, expired entries go first, then the oldest.
    pub max_penalized_sources: NonZeroUsize,
    /// Up to this many boxed sources are also refused in the kernel (Linux): a classic BPF
    /// filter on the listening socket drops their SYNs, so while boxed they cost the server
    /// no accept, no descriptor and no reset at all, and their connects stall instead of
    /// failing at once. Sources past this number (the longest boxed first) are refused at
    /// accept as before. 0 turns the kernel filter off; at most 800 (the filter's 4,096
    /// instructions).
    pub penalty_box_kernel_sources: usize,

    // ---- overload manager (L1–L3) ----
    /// A connection that has sent no byte this long after accept is closed. Separate from
    /// the handshake timeout, and short: a silent connection proves nothing and holds a
    /// slot of the connection table.
    pub first_byte_timeout_ms: u64,
    /// Above this fill (percent) of the connection table or of the handshake slots, every
    /// L1–L3 timeout starts to shrink (as Envoy's overload manager `reduce_timeouts`)...
    pub overload_scale_from_pct: u8,
    /// ...and at this fill it has reached its `*_min_ms`. Timeouts recover as pressure falls.
    pub overload_saturated_pct: u8,
    /// How often the overload manager measures pressure and closes connections that have
    /// outlived their (scaled) timeout for the phase they are in.
    pub overload_tick_ms: u64,
    /// `first_byte_timeout_ms` under full pressure. Each `*_min_ms` above its full timeout
    /// counts as the full timeout.
    pub first_byte_timeout_min_ms: u64,
    /// `handshake_timeout_ms` under full pressure.
    pub handshake_timeout_min_ms: u64,
    /// `header_read_timeout_ms` under full pressure.
    pub header_read_timeout_min_ms: u64,
    /// `body_timeout_ms` under full pressure.
    pub body_timeout_min_ms: u64,
    /// `keep_alive_idle_ms` under full pressure.
    pub keep_alive_idle_min_ms: u64,

    // ---- L2 TLS ----
    /// A handshake not finished this long after its first byte is dropped: a client that
    /// stalls mid-handshake (a partial ClientHello, a missing Finished) cannot hold a slot.
    pub handshake_timeout_ms: u64,
    /// Most handshakes doing crypto at once: counted from the moment a whole ClientHello has
    /// arrived, never before (a silent or half-sent hello costs no slot, so it cannot hold
    /// the door shut on voters). A full handshake costs far more CPU than a request; past
    /// this many, a new hello waits for a slot (within its handshake timeout) instead of
    /// starving the requests already inside.
    pub max_handshakes_in_flight: NonZeroUsize,
    /// Most whole ClientHellos waiting for a handshake slot. Past it, the oldest hello of
    /// the prefix (/24, /48) with the most waiting is shed — its connection closed — as
    /// FQ-CoDel drops from its fattest flow: a flood's subnets lose their oldest hellos,
    /// a voter's prefix, with one or two waiting, keeps its own. Slots go to the prefix
    /// with the fewest hellos waiting first (docs/ARCHITECTURE.md, "The edge under a
    /// botnet").
    pub max_handshakes_waiting: NonZeroUsize,
    /// Stateless TLS session tickets (rustls' rotating ticketer): a voter who retries, or
    /// comes back to check a receipt, resumes without a full handshake.
    pub tls_session_tickets: bool,

    // ---- L3 HTTP ----
    /// The whole request head must arrive within this time (slowloris).
    pub header_read_timeout_ms: u64,
    /// Largest request head (HTTP/1 read buffer, HTTP/2 header list). Bigger heads are
    /// refused before they cost memory. HTTP/1 needs at least 8192.
    pub max_header_bytes: u32,
    /// Most header fields in one HTTP/1 request.
    pub max_headers: NonZeroUsize,
    /// One request, from its head to the last byte of the answer. A bound on how long any
    /// request can hold an in-flight slot.
    pub request_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed: idle keep-alive
    /// connections cost a slot under `max_connections`.
    pub keep_alive_idle_ms: u64,
    /// After this many requests a connection is asked to close (HTTP/1 `Connection: close`,
    /// HTTP/2 GOAWAY), so one connection cannot pin a source forever past new L1 rules.
    pub max_requests_per_connection: NonZeroU32,
    /// 429s one connection may be answered before it is closed after the last (graceful:
    /// HTTP/1 `Connection: close`, HTTP/2 GOAWAY). A client that honours Retry-After sees
    /// one or two; a botnet connection pipelining a thousand requests, each source under
    /// the penalty box's count, made the server write ~100 429s per socket in a burst that
    /// delayed voters' handshakes by up to 2 s (slow-read run, 2026-12-07).
    pub max_refusals_per_connection: NonZeroU32,
    /// HTTP/2 streams open at once on one connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 streams reset by the client before we accepted them (rapid reset,
    /// CVE-2023-44487): past this the connection gets GOAWAY.
    pub h2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 streams we had to reset for the client's protocol errors (CVE-2024-27316-like
    /// floods): past this the connection gets GOAWAY.
    pub h2_max_local_error_reset_streams: usize,
    /// HTTP/2 flow-control window per stream; bounds what a client can push before we read.
    pub h2_initial_stream_window_bytes: u32,
    /// HTTP/2 flow-control window per connection.
    pub h2_initial_connection_window_bytes: u32,
    /// Largest HTTP/2 frame we accept (16384..=16777215).
    pub h2_max_frame_bytes: u32,
    /// PING and SETTINGS frames (not ACKs) one HTTP/2 connection may send at once, each
    /// answered with a frame (CVE-2019-9512, -9515): past it, and past the refill below,
    /// the connection is closed (`l3/h2_control_flood`). At least 1.
    pub h2_control_frames_burst: u32,
    /// ...refilled at this many a second. A browser sends one SETTINGS and the odd PING.
    pub h2_control_frames_per_s: u32,

    // ---- L4 admission ----
    /// Ballot submissions per second from one source (IPv4 /32, IPv6 /64). A voter needs one.
    pub ballots_per_source_per_s: NonZeroU32,
    /// Ballot burst per source.
    pub ballots_burst_per_source: NonZeroU32,
    /// Ballot submissions per second from one prefix (IPv4 /24, IPv6 /48): a household, an
    /// office behind NAT, or one attacker's subnet.
    pub ballots_per_prefix_per_s: NonZeroU32,
    /// Ballot burst per prefix.
    pub ballots_burst_per_prefix: NonZeroU32,
    /// Reads (election, receipts, tiles) per second from one source. Reads are cheap but
    /// not free; a separate budget keeps a read flood from eating the ballot budget.
    pub reads_per_source_per_s: NonZeroU32,
    /// Read burst per source.
    pub reads_burst_per_source: NonZeroU32,
    /// Reads per second from one prefix.
    pub reads_per_prefix_per_s: NonZeroU32,
    /// Read burst per prefix.
    pub reads_burst_per_prefix: NonZeroU32,
    /// Most keys tracked by each L4 rate limiter. Past it, new keys share one fallback
    /// limiter (they are throttled together) until the periodic sweep frees room.
    pub max_tracked_keys: NonZeroUsize,
    /// How often idle limiter keys are forgotten (`retain_recent` + `shrink_to_fit`).
    pub limiter_sweep_ms: u64,
    /// Most requests being handled at once, all routes. Past it: 503 + Retry-After, before
    /// the body is read, so overload costs almost nothing.
    pub max_in_flight: NonZeroUsize,
    /// Most reads (checkpoint, tiles, receipts, manifest) among `max_in_flight`. The rest
    /// is kept for ballots: without it a read flood from thousands of connections filled
    /// every slot and voters' ballots were shed with 503 (slow-read run, 2026-12-01).
    /// Unset: three quarters of `max_in_flight` ([`Self::reads_in_flight_cap`]).
    pub max_reads_in_flight: Option<NonZeroUsize>,
    /// Most request bodies being read at once. A body still arriving holds one of these,
    /// not one of `max_in_flight` (taken once the body is whole); when they are all held, a
    /// new body reclaims the oldest one still arriving (its connection is closed), as a
    /// full connection table does. A voter's ballot arrives in one or two packets; slow
    /// bodies are what an attacker holds.
    pub max_bodies_in_flight: NonZeroUsize,
    /// When the backend reports this many ballots queued (sequencer, signature pool), new
    /// ballots get 503 + Retry-After instead of waiting past their timeout.
    pub shed_queue_depth: NonZeroUsize,
    /// `Retry-After` seconds on a 503.
    pub overloaded_retry_after_s: u32,
    /// Largest ballot request body (the JSON, with base64 payload and signature). Checked on
    /// `Content-Length` before reading, and again while reading.
    pub max_body_bytes: NonZeroUsize,
    /// The body must arrive within this time, or 408: a slow body holds an in-flight slot.
    pub body_timeout_ms: u64,
    /// Tokens taken from a source's ballot budget when the ballot layer reports it sent a
    /// bad signature (on top of the one its request already used). Clamped to the burst.
    pub penalty_tokens: NonZeroU32,
}

/// `[election]`: the one election this server takes ballots for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionConfig {
    /// Election id, `[a-z0-9._-]{1,64}` (docs/PROTOCOL.md).
    pub id: String,
    /// The voter roll file, one `<alg> <key>` per line.
    pub roll: PathBuf,
    /// Revote policy: `last` (a higher `seq` replaces the earlier ballot; every version is
    /// logged) or `none` (one ballot per voter).
    #[serde(default = "d_revote")]
    pub revote: RevotePolicy,
    /// Ballots before this instant are refused (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub opens_at: Option<OffsetDateTime>,
    /// Ballots from this instant on are refused and a final checkpoint is signed (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closes_at: Option<OffsetDateTime>,
    /// Largest decoded ballot payload. A logged entry must fit in 65,535 bytes (tlog-tiles).
    #[serde(default = "d_max_payload_bytes")]
    pub max_payload_bytes: NonZeroUsize,
    /// Most ballots one voter may have logged under revote `last`. Without it one eligible
    /// key could append entries for the whole election (each costs disk and every auditor's
    /// time); a real voter revotes a handful of times.
    #[serde(default = "d_max_ballots_per_voter")]
    pub max_ballots_per_voter: NonZeroU32,
    /// Demo and load tests only: when the roll file does not exist, generate an electorate
    /// of this many voters — the roll, and beside it `voters.jsonl` with their *secret*
    /// keys. Never set in production, where a missing roll must stop the server.
    #[serde(default)]
    pub demo_voters: Option<NonZeroU32>,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Everything durable lives here: log segments, keys, the generated certificate.
    pub dir: PathBuf,
}

/// `[log]`: the Merkle log and its single writer (docs/ARCHITECTURE.md, L7). The log's directory is
/// `<storage.dir>/log`; its key `<storage.dir>/log.key` (generated on first start).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Checkpoint origin and log key name: names the deployment and the election, so a
    /// checkpoint of one election can never pass for another's. Default
    /// `urna.localhost/<election.id>`; a real deployment names its own domain.
    pub origin: Option<String>,
    /// Most ballots in one group commit (one fdatasync, one signed checkpoint). Larger
    /// batches raise throughput; the bound keeps the first ballot's wait short.
    pub batch_max_entries: NonZeroUsize,
    /// How long the writer waits to fill a batch once it has one ballot, in µs. Zero: take
    /// what is queued and go (under load, ballots queue during the previous fsync anyway).
    pub batch_delay_us: u64,
    /// Most ballots waiting for the writer; past it, submissions fail fast with 503.
    pub queue_depth: NonZeroUsize,
    /// A segment file is closed and a new one started at this size.
    pub segment_max_bytes: u64,
}

/// `[signatures]`: the L6 verification pool. Verifying costs ~20–60 µs of CPU a ballot:
/// run on the async workers it would stall accept, TLS and HTTP for everyone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignaturesConfig {
    /// Verification threads. Default: one per core.
    pub threads: Option<NonZeroUsize>,
    /// Ballots waiting for a verifier; past it, new ballots get 503 at once instead of
    /// piling up in memory.
    pub queue_depth: NonZeroUsize,
    /// Most ballots one thread verifies as a batch (an Ed25519 batch of 256 costs ~15 µs a
    /// signature against ~35 alone; a bad one in a batch costs a re-check of each alone).
    pub max_batch: NonZeroUsize,
}

impl Default for SignaturesConfig {
    fn default() -> Self {
        SignaturesConfig {
            threads: None,
            queue_depth: nz(4_096),
            max_batch: nz(256),
        }
    }
}

fn yes() -> bool {
    true
}
fn d_metrics_allow() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}
fn d_shutdown_grace_ms() -> u64 {
    10_000
}
fn d_revote() -> RevotePolicy {
    RevotePolicy::Last
}
fn d_max_ballots_per_voter() -> NonZeroU32 {
    nz32(32)
}
fn d_max_payload_bytes() -> NonZeroUsize {
    nz(16 * 1024)
}

/// A non-zero constant. Only called with literals above zero.
const fn nz(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => panic!("zero constant"),
    }
}
const fn nz32(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("zero constant"),
    }
}

impl LimitsConfig {
    /// Reads' share of `max_in_flight`: `max_reads_in_flight`, or three quarters of
    /// `max_in_flight` (at least one) when it is not set; never more than `max_in_flight`
    /// (`validate` refuses that, but a config built in code is not validated).
    pub fn reads_in_flight_cap(&self) -> usize {
        let all = self.max_in_flight.get();
        self.max_reads_in_flight
            .map_or((all * 3 / 4).max(1), NonZeroUsize::get)
            .min(all)
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            deny: Vec::new(),
            allow: Vec::new(),
            max_connections: nz(4_096),
            max_connections_per_source: nz32(64),
            new_connections_per_source_per_s: nz32(20),
            new_connections_burst: nz32(40),
            max_connections_per_prefix: nz32(1_024),
            new_connections_per_prefix_per_s: nz32(400),
            new_connections_burst_per_prefix: nz32(800),
            max_tracked_sources: nz(100_000),
            listen_backlog: nz32(4_096),
            reclaim_batch: nz(16),
            new_connection_grace_ms: 250,
            defer_accept_ms: 3_000,
            waster_strikes: nz32(2),
            waster_memory_ms: 120_000,
            waster_handshake_share_pct: 25,
            penalty_box_strikes: nz32(50),
            penalty_box_window_ms: 10_000,
            penalty_box_cooldown_ms: 30_000,
            max_penalized_sources: nz(65_536),
            penalty_box_kernel_sources: 512,
            first_byte_timeout_ms: 3_000,
            overload_scale_from_pct: 50,
            overload_saturated_pct: 95,
            overload_tick_ms: 100,
            first_byte_timeout_min_ms: 1_000,
            handshake_timeout_min_ms: 1_000,
            header_read_timeout_min_ms: 1_000,
            body_timeout_min_ms: 1_000,
            keep_alive_idle_min_ms: 1_000,
            handshake_timeout_ms: 5_000,
            max_handshakes_in_flight: nz(256),
            max_handshakes_waiting: nz(1_024),
            tls_session_tickets: true,
            header_read_timeout_ms: 5_000,
            max_header_bytes: 16 * 1024,
            max_headers: nz(64),
            request_timeout_ms: 15_000,
            keep_alive_idle_ms: 30_000,
            max_requests_per_connection: nz32(10_000),
            max_refusals_per_connection: nz32(8),
            h2_max_concurrent_streams: 100,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 100,
            h2_initial_stream_window_bytes: 64 * 1024,
            h2_initial_connection_window_bytes: 1024 * 1024,
            h2_max_frame_bytes: 16 * 1024,
            h2_control_frames_burst: 100,
            h2_control_frames_per_s: 10,
            ballots_per_source_per_s: nz32(5),
            ballots_burst_per_source: nz32(10),
            ballots_per_prefix_per_s: nz32(100),
            ballots_burst_per_prefix: nz32(200),
            reads_per_source_per_s: nz32(20),
            reads_burst_per_source: nz32(40),
            reads_per_prefix_per_s: nz32(200),
            reads_burst_per_prefix: nz32(400),
            max_tracked_keys: nz(100_000),
            limiter_sweep_ms: 10_000,
            max_in_flight: nz(2_048),
            max_reads_in_flight: None,
            max_bodies_in_flight: nz(1_024),
            shed_queue_depth: nz(8_192),
            overloaded_retry_after_s: 1,
            max_body_bytes: nz(32 * 1024),
            body_timeout_ms: 5_000,
            penalty_tokens: nz32(5),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        let log = crate::log::LogConfig::default();
        LogSection {
            origin: None,
            batch_max_entries: nz(1_024),
            batch_delay_us: 0,
            queue_depth: nz(8_192),
            segment_max_bytes: log.segment_max_bytes,
        }
    }
}

impl Config {
    /// Parses and validates a configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path`, or the embedded default when `None`. Errors name the file.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Config::parse(DEFAULT_TOML)
                .map_err(|e| e.in_file("(embedded default, config/urna.toml)".into())),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::parse(&text).map_err(|e| e.in_file(path.display().to_string()))
            }
        }
    }

    /// The rules between keys that the types alone cannot say.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !crate::ballot::wire::is_valid_election_id(&self.election.id) {
            return invalid("election.id", "must match [a-z0-9._-]{1,64}");
        }
        if let (Some(open), Some(close)) = (self.election.opens_at, self.election.closes_at) {
            if close <= open {
                return invalid("election.closes_at", "must be after election.opens_at");
            }
        }
        // An entry carries the payload plus ~300 bytes of fields; it must fit in 65,535.
        if self.election.max_payload_bytes.get() > 60 * 1024 {
            return invalid(
                "election.max_payload_bytes",
                "must be at most 61440 (a logged entry must fit in 65535 bytes)",
            );
        }
        if self.server.cors_origins.len() > crate::edge::cors::MAX_CORS_ORIGINS {
            return Err(ConfigError::Invalid {
                key: "server.cors_origins",
                reason: format!("at most {} origins", crate::edge::cors::MAX_CORS_ORIGINS),
            });
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return invalid("tls.cert", "tls.cert and tls.key must be set together");
        }
        if l.max_tracked_sources.get() <= l.max_connections.get() {
            return invalid(
                "limits.max_tracked_sources",
                "must exceed limits.max_connections (a source with live connections is never evicted)",
            );
        }
        if l.max_reads_in_flight.is_some_and(|r| r > l.max_in_flight) {
            return invalid(
                "limits.max_reads_in_flight",
                "must be at most limits.max_in_flight (the rest is kept for ballots)",
            );
        }
        if l.penalty_box_kernel_sources > crate::edge::synfilter::MAX_SOURCES {
            return invalid(
                "limits.penalty_box_kernel_sources",
                "must be at most 800 (a socket filter holds 4,096 instructions)",
            );
        }
        if l.max_header_bytes < 8192 {
            return invalid("limits.max_header_bytes", "must be at least 8192");
        }
        if l.h2_control_frames_burst == 0 {
            return invalid("limits.h2_control_frames_burst", "must be above zero");
        }
        if !(16_384..=16_777_215).contains(&l.h2_max_frame_bytes) {
            return invalid("limits.h2_max_frame_bytes", "must be in 16384..=16777215");
        }
        if l.h2_initial_stream_window_bytes > i32::MAX as u32
            || l.h2_initial_connection_window_bytes > i32::MAX as u32
        {
            return invalid(
                "limits.h2_initial_stream_window_bytes",
                "must be below 2^31",
            );
        }
        for (key, ms) in [
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms),
            ("limits.header_read_timeout_ms", l.header_read_timeout_ms),
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.keep_alive_idle_ms", l.keep_alive_idle_ms),
            ("limits.body_timeout_ms", l.body_timeout_ms),
            ("limits.limiter_sweep_ms", l.limiter_sweep_ms),
            ("limits.first_byte_timeout_ms", l.first_byte_timeout_ms),
            ("limits.overload_tick_ms", l.overload_tick_ms),
            ("limits.penalty_box_window_ms", l.penalty_box_window_ms),
            ("limits.penalty_box_cooldown_ms", l.penalty_box_cooldown_ms),
            ("limits.waster_memory_ms", l.waster_memory_ms),
        ] {
            if ms == 0 {
                return invalid(key, "must be above zero");
            }
        }
        // A `*_min_ms` above its full timeout is taken as the full timeout (who shortens only
        // the full one means "this short, always"), so only zero is refused here.
        for (key, min) in [
            (
                "limits.first_byte_timeout_min_ms",
                l.first_byte_timeout_min_ms,
            ),
            (
                "limits.handshake_timeout_min_ms",
                l.handshake_timeout_min_ms,
            ),
            (
                "limits.header_read_timeout_min_ms",
                l.header_read_timeout_min_ms,
            ),
            ("limits.body_timeout_min_ms", l.body_timeout_min_ms),
            ("limits.keep_alive_idle_min_ms", l.keep_alive_idle_min_ms),
        ] {
            if min == 0 {
                return invalid(key, "must be above zero");
            }
        }
        if l.new_connection_grace_ms > 10_000 {
            return invalid("limits.new_connection_grace_ms", "must be at most 10000");
        }
        if !(1..=100).contains(&l.waster_handshake_share_pct) {
            return invalid("limits.waster_handshake_share_pct", "must be in 1..=100");
        }
        if !(l.overload_scale_from_pct < l.overload_saturated_pct
            && l.overload_saturated_pct <= 100)
        {
            return invalid(
                "limits.overload_scale_from_pct",
                "must be below limits.overload_saturated_pct, which is at most 100",
            );
        }
        // The encoded body carries the base64 payload (4/3 larger) plus the other fields.
        let needed = self.election.max_payload_bytes.get() / 3 * 4 + 1024;
        if l.max_body_bytes.get() < needed {
            return Err(ConfigError::Invalid {
                key: "limits.max_body_bytes",
                reason: format!(
                    "must be at least {needed} to carry a ballot of election.max_payload_bytes"
                ),
            });
        }
        if let Err(reason) = self.log_config().validate() {
            return Err(ConfigError::Invalid { key: "log", reason });
        }
        if let Err(reason) = self.ballot_limits().validate() {
            return Err(ConfigError::Invalid {
                key: "election",
                reason,
            });
        }
        Ok(())
    }

    /// The log's own configuration, from `[log]` and `[storage]`.
    pub fn log_config(&self) -> crate::log::LogConfig {
        crate::log::LogConfig {
            dir: self.storage.dir.join("log"),
            origin: self.log_origin(),
            batch_max_entries: self.log.batch_max_entries.get(),
            batch_delay_us: self.log.batch_delay_us,
            queue_depth: self.log.queue_depth.get(),
            segment_max_bytes: self.log.segment_max_bytes,
        }
    }

    /// The checkpoint origin (and log key name).
    pub fn log_origin(&self) -> String {
        self.log
            .origin
            .clone()
            .unwrap_or_else(|| format!("urna.localhost/{}", self.election.id))
    }

    /// Where the log's private key lives (generated on first start).
    pub fn log_key_path(&self) -> PathBuf {
        self.storage.dir.join("log.key")
    }

    /// The ballot parser's limits, from `[election]` and `[limits]`.
    pub fn ballot_limits(&self) -> crate::ballot::Limits {
        crate::ballot::Limits {
            max_body_bytes: self.limits.max_body_bytes.get(),
            max_payload_bytes: self.election.max_payload_bytes.get(),
            max_ballots_per_voter: self.election.max_ballots_per_voter.get(),
        }
    }

    /// The election as the ballot layer sees it (window in Unix milliseconds).
    pub fn election(&self) -> Result<crate::ballot::Election, ConfigError> {
        let ms = |t: Option<OffsetDateTime>| {
            t.map(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        };
        crate::ballot::Election::new(
            self.election.id.clone(),
            self.election.revote,
            ms(self.election.opens_at),
            ms(self.election.closes_at),
        )
        .map_err(|reason| ConfigError::Invalid {
            key: "election",
            reason,
        })
    }

    /// The certificate and key paths in use: the configured ones, or the generated pair.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf, bool) {
        match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
            _ => {
                let dir = self.storage.dir.join("tls");
                (dir.join("cert.pem"), dir.join("key.pem"), true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8443"
[election]
id = "demo-2026"
roll = "data/roll.txt"
[storage]
dir = "data"
"#;

    #[test]
    fn embedded_default_parses_and_validates() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.storage.dir, PathBuf::from("./data"));
        assert!(c.tls.cert.is_none());
    }

    #[test]
    fn production_example_parses_and_validates() {
        let text = include_str!("../config/production.example.toml");
        let c = Config::parse(text).unwrap();
        assert!(c.tls.cert.is_some());
        assert!(!c.server.trusted_proxies.is_empty());
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.election.revote, RevotePolicy::Last);
        assert_eq!(c.election.max_payload_bytes.get(), 16384);
        assert_eq!(c.limits.max_connections.get(), 4_096);
    }

    #[test]
    fn unknown_key_is_an_error_that_names_it() {
        let text = MINIMAL.replace("[storage]", "[storage]\nfsync_never = true");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("fsync_never"), "{err}");
    }

    #[test]
    fn errors_from_a_file_name_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("urna.toml");
        std::fs::write(
            &path,
            MINIMAL.replace("[storage]", "[storage]\nfsync_never = 1"),
        )
        .unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("invalid config {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains("fsync_never"), "{err}");
        assert_eq!(err.matches("invalid config").count(), 1, "{err}");
        let bad = MINIMAL.replace("demo-2026", "Demo 2026");
        std::fs::write(&path, bad).unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("`election.id`"), "{err}");
    }

    #[test]
    fn unknown_limit_key_is_an_error_that_names_it() {
        let text = format!("{MINIMAL}\n[limits]\nmax_conections = 5\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn zero_rate_is_an_error_that_names_the_key() {
        let text = format!("{MINIMAL}\n[limits]\nballots_per_source_per_s = 0\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("ballots_per_source_per_s"), "{err}");
    }

    #[test]
    fn bad_revote_value_is_an_error_that_names_the_key() {
        let text = MINIMAL.replace("roll =", "revote = \"sometimes\"\nroll =");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("revote"), "{err}");
    }

    #[test]
    fn bad_date_is_an_error_that_names_the_key() {
        let text = MINIMAL.replace("roll =", "opens_at = \"tomorrow\"\nroll =");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("opens_at"), "{err}");
    }

    #[test]
    fn dates_parse_as_rfc3339_and_must_be_ordered() {
        let ok = MINIMAL.replace(
            "roll =",
            "opens_at = \"2026-03-01T08:00:00Z\"\ncloses_at = \"2026-03-01T20:00:00+01:00\"\nroll =",
        );
        let c = Config::parse(&ok).unwrap();
        assert!(c.election.closes_at.unwrap() > c.election.opens_at.unwrap());
        let bad = MINIMAL.replace(
            "roll =",
            "opens_at = \"2026-03-02T08:00:00Z\"\ncloses_at = \"2026-03-01T20:00:00Z\"\nroll =",
        );
        let err = Config::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("election.closes_at"), "{err}");
    }

    #[test]
    fn bad_cidr_is_an_error_that_names_the_key() {
        let text = format!("{MINIMAL}\n[limits]\ndeny = [\"10.0.0.0/33\"]\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("deny"), "{err}");
    }

    #[test]
    fn bad_election_id_is_refused() {
        let text = MINIMAL.replace("demo-2026", "Demo 2026");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("election.id"), "{err}");
    }

    #[test]
    fn tracked_sources_must_exceed_connection_cap() {
        let text =
            format!("{MINIMAL}\n[limits]\nmax_connections = 100\nmax_tracked_sources = 100\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("limits.max_tracked_sources"), "{err}");
    }

    #[test]
    fn cors_origins_default_to_none_and_bad_ones_name_the_key() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(c.server.cors_origins.is_empty());
        assert_eq!(c.server.pages, crate::edge::pages::PagesMode::Public);
        let with =
            |v: &str| MINIMAL.replace("[election]", &format!("cors_origins = {v}\n[election]"));
        let c = Config::parse(&with(r#"["https://vote.example.org"]"#)).unwrap();
        assert_eq!(
            c.server.cors_origins[0].as_str(),
            "https://vote.example.org"
        );
        for bad in [
            r#"["https://vote.example.org/"]"#,
            r#"["*"]"#,
            r#""https://a.example""#,
        ] {
            let err = Config::parse(&with(bad)).unwrap_err().to_string();
            assert!(err.contains("cors_origins"), "{bad}: {err}");
        }
        let many: Vec<String> = (0..65)
            .map(|i| format!("\"https://{i}.example\""))
            .collect();
        let err = Config::parse(&with(&format!("[{}]", many.join(","))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.cors_origins"), "{err}");
    }

    #[test]
    fn pages_mode_parses_and_a_bad_one_names_the_key() {
        let with = |v: &str| MINIMAL.replace("[election]", &format!("pages = {v}\n[election]"));
        assert_eq!(
            Config::parse(&with("\"demo\"")).unwrap().server.pages,
            crate::edge::pages::PagesMode::Demo
        );
        let err = Config::parse(&with("\"all\"")).unwrap_err().to_string();
        assert!(err.contains("pages"), "{err}");
    }

    #[test]
    fn cert_without_key_is_refused() {
        let text = format!("{MINIMAL}\n[tls]\ncert = \"c.pem\"\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("tls.cert"), "{err}");
    }
}
