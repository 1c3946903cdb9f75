//! What each kind of client does, and running a whole scenario.
//!
//! Every loop here ends at the scenario's deadline (plus a short grace for answers in
//! flight) or sooner when its work runs out: the simulator always stops by itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at};
use urna::ballot::keys::VoterSecret;

use crate::ballots::{load_voters, presign, seq_base};
use crate::h1::encode_request;
use crate::net::{
    connect, connect_h1, connect_h2, request, send_h2, source_addr, tcp, H1Conn, H2Sender, Sender,
    Target,
};
use crate::report::{Report, Stats, TaskReport};
use crate::scenario::{FloodRequest, Scenario, Task};

/// How long answers still in flight at the deadline may take before they are abandoned.
const GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed connect, so a refusing server is not spun against.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// Runs every task of `s` side by side and reports on each.
pub async fn run(s: &Scenario) -> anyhow::Result<Report> {
    // The plan below relies on the bounds (e.g. one lane per HTTP/1.1 connection).
    s.check()?;
    let target = Arc::new(Target::new(
        s.target,
        &s.server_name,
        if s.plain { None } else { s.ca.as_deref() },
    )?);
    let voters = match &s.voters {
        Some(path) => {
            let need = s
                .tasks
                .iter()
                .map(|t| match t {
                    Task::Voters { ballots, .. } => *ballots,
                    _ => 1,
                })
                .max()
                .unwrap_or(1);
            let path = path.clone();
            tokio::task::spawn_blocking(move || load_voters(&path, need)).await??
        }
        None => Vec::new(),
    };
    // Everything costly (signing) happens before the clock starts.
    let mut plans = Vec::new();
    let mut voter_offset = 0;
    for task in &s.tasks {
        plans.push(plan(task, s, &voters, &mut voter_offset, target.host())?);
    }
    // Connections too: a run measures answers over keep-alive, not the burst of handshakes
    // that opening hundreds of connections at once costs both sides.
    for plan in &mut plans {
        plan.connect(&target, Instant::now() + Duration::from_secs(30))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(s.settle_ms)).await;
    // HTTP tasks send from `launch`; what they see is counted from `start`, after the
    // warm-up. The other tasks begin at `start`.
    let launch = Instant::now();
    let start = launch + Duration::from_secs(s.warmup_s);
    let deadline = start + Duration::from_secs(s.duration_s);
    let mut running = JoinSet::new();
    for (i, plan) in plans.into_iter().enumerate() {
        let target = target.clone();
        let window = Window {
            launch,
            start,
            deadline,
        };
        running.spawn(async move { (i, plan.run(target, window).await) });
    }
    let mut reports: Vec<Option<TaskReport>> = vec![None; s.tasks.len()];
    while let Some(done) = running.join_next().await {
        let (i, stats) = done?;
        let t = &s.tasks[i];
        reports[i] = Some(TaskReport::new(
            t.name(),
            kind(t),
            start.elapsed().min(Duration::from_secs(s.duration_s)),
            &stats,
        ));
    }
    Ok(Report {
        tasks: reports.into_iter().flatten().collect(),
    })
}

fn kind(t: &Task) -> &'static str {
    match t {
        Task::Voters { .. } => "voters",
        Task::Flood { .. } => "flood",
        Task::Slowloris { .. } => "slowloris",
        Task::HandshakeStall { .. } => "handshake-stall",
        Task::TlsChurn { .. } => "tls-churn",
    }
}

/// When a run's tasks send and when what they see counts.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// HTTP lanes start sending (the warm-up begins).
    launch: Instant,
    /// Answers to requests scheduled from here on are counted.
    start: Instant,
    /// Nothing new is sent from here on.
    deadline: Instant,
}

/// A request lane's work, as the task describes it: pre-signed ballots (sent once each) or
/// one request repeated. HTTP/2 lanes build a request from it per send; HTTP/1.1 lanes get it
/// pre-encoded as [`Wire`].
enum Work {
    Ballots(Vec<Bytes>),
    Repeat(Method, &'static str, Option<Bytes>),
}

impl Work {
    fn get(&self, i: usize) -> Option<(Method, &'static str, Option<Bytes>)> {
        match self {
            Work::Ballots(list) => list
                .get(i)
                .map(|b| (Method::POST, "/v1/ballots", Some(b.clone()))),
            Work::Repeat(m, p, b) => Some((m.clone(), p, b.clone())),
        }
    }

    /// Every request whole, as it goes on the wire: encoded once, before the clock, like
    /// the signatures.
    fn encode(self, host: &str) -> Wire {
        match self {
            Work::Ballots(list) => Wire::Once(
                list.iter()
                    .map(|b| encode_request(&Method::POST, host, "/v1/ballots", Some(b)))
                    .collect(),
            ),
            Work::Repeat(m, p, b) => Wire::Repeat(encode_request(&m, host, p, b.as_deref())),
        }
    }
}

/// An HTTP/1.1 lane's work: whole requests, pre-encoded.
enum Wire {
    /// Each sent once, in order.
    Once(Vec<Bytes>),
    /// One request, again and again.
    Repeat(Bytes),
}

impl Wire {
    fn get(&self, i: usize) -> Option<&Bytes> {
        match self {
            Wire::Once(list) => list.get(i),
            Wire::Repeat(req) => Some(req),
        }
    }
}

/// One connection's lanes.
enum Lanes {
    /// HTTP/1.1: one lane, owning the connection.
    H1(Wire),
    /// HTTP/2: `streams_per_connection` lanes sharing it.
    H2(Vec<Work>),
}

/// A task, ready to start.
enum Plan {
    Http {
        conns: Vec<(IpAddr, Lanes)>,
        http2: bool,
        /// Pause between one lane's sends (open loop), if any.
        interval: Option<Duration>,
        /// Connections opened before the clock starts, one per entry of `conns`.
        ready: Vec<Option<Sender>>,
    },
    Slowloris {
        sources: Vec<IpAddr>,
        interval: Duration,
    },
    Stall {
        sources: Vec<IpAddr>,
    },
    Churn {
        sources: Vec<IpAddr>,
    },
}

fn plan(
    task: &Task,
    s: &Scenario,
    voters: &[VoterSecret],
    voter_offset: &mut usize,
    host: &str,
) -> anyhow::Result<Plan> {
    let sources =
        |net: &ipnet::IpNet, n: usize| (0..n).map(|i| source_addr(net, i)).collect::<Vec<_>>();
    Ok(match task {
        Task::Voters {
            connections,
            sources: net,
            rate_per_s,
            ballots,
            payload_bytes,
            http2,
            streams_per_connection,
            alg,
            ..
        } => {
            // Each voters task takes its own slice of the electorate, so two tasks never
            // race one voter's seqs.
            let wanted = |v: &VoterSecret| alg.as_deref().is_none_or(|a| v.alg().as_str() == a);
            let picked: Vec<usize> = (*voter_offset..voters.len())
                .filter(|&i| wanted(&voters[i]))
                .take(*ballots)
                .collect();
            anyhow::ensure!(
                !picked.is_empty(),
                "no voters left in the voters file for task {}",
                task.name()
            );
            *voter_offset = picked[picked.len() - 1] + 1;
            let mine: Vec<&VoterSecret> = picked.iter().map(|&i| &voters[i]).collect();
            let lanes = connections * streams_per_connection;
            let mut lists = presign(
                &mine,
                &s.election,
                *ballots,
                lanes,
                *payload_bytes,
                seq_base(),
            )
            .into_iter();
            http_plan(
                net,
                *connections,
                *streams_per_connection,
                *http2,
                *rate_per_s,
                host,
                || Work::Ballots(lists.next().unwrap_or_default()),
            )
        }
        Task::Flood {
            connections,
            sources: net,
            request,
            rate_per_s,
            http2,
            streams_per_connection,
            ..
        } => {
            let (method, path, body) = flood_request(*request, &s.election, voters)?;
            http_plan(
                net,
                *connections,
                *streams_per_connection,
                *http2,
                *rate_per_s,
                host,
                || Work::Repeat(method.clone(), path, body.clone()),
            )
        }
        Task::Slowloris {
            connections,
            sources: net,
            interval_ms,
            ..
        } => Plan::Slowloris {
            sources: sources(net, *connections),
            interval: Duration::from_millis(*interval_ms),
        },
        Task::HandshakeStall {
            connections,
            sources: net,
            ..
        } => Plan::Stall {
            sources: sources(net, *connections),
        },
        Task::TlsChurn {
            connections,
            sources: net,
            ..
        } => {
            anyhow::ensure!(s.ca.is_some() && !s.plain, "tls-churn needs a TLS target");
            Plan::Churn {
                sources: sources(net, *connections),
            }
        }
    })
}

/// An HTTP task: `connections` connections from `net`, each with `streams` lanes of work
/// (each from `work()`), sending at `rate_per_s` in total if given. HTTP/1.1 carries one
/// request at a time: there each connection is one lane (the scenario refuses more).
#[allow(clippy::too_many_arguments)]
fn http_plan(
    net: &ipnet::IpNet,
    connections: usize,
    streams: usize,
    http2: bool,
    rate_per_s: Option<f64>,
    host: &str,
    mut work: impl FnMut() -> Work,
) -> Plan {
    let streams = if http2 { streams } else { 1 };
    let lanes = connections * streams;
    let conns = (0..connections)
        .map(|i| {
            let lanes = if http2 {
                Lanes::H2((0..streams).map(|_| work()).collect())
            } else {
                Lanes::H1(work().encode(host))
            };
            (source_addr(net, i), lanes)
        })
        .collect();
    Plan::Http {
        conns,
        http2,
        interval: rate_per_s.map(|r| Duration::from_secs_f64(lanes as f64 / r)),
        ready: Vec::new(),
    }
}

fn flood_request(
    kind: FloodRequest,
    election: &str,
    voters: &[VoterSecret],
) -> anyhow::Result<(Method, &'static str, Option<Bytes>)> {
    Ok(match kind {
        FloodRequest::GetElection => (Method::GET, "/v1/election", None),
        FloodRequest::GetCheckpoint => (Method::GET, "/log/checkpoint", None),
        FloodRequest::JunkBallot => (
            Method::POST,
            "/v1/ballots",
            Some(Bytes::from_static(b"{\"election\": [1, 2, 3")),
        ),
        FloodRequest::BadSignature => {
            let voter = voters
                .first()
                .ok_or_else(|| anyhow::anyhow!("bad-signature needs voters"))?;
            let body = voter.sign_submission(election, seq_base() + 1, b"flood");
            let mut v: serde_json::Value = serde_json::from_str(&body)?;
            // Flip the first signature character to another base64url letter: still
            // well-formed, never valid.
            let sig = v["sig"].as_str().unwrap_or_default().to_owned();
            let flipped = match sig.as_bytes().first() {
                Some(b'A') => format!("B{}", &sig[1..]),
                _ => format!("A{}", sig.get(1..).unwrap_or_default()),
            };
            v["sig"] = serde_json::Value::String(flipped);
            (
                Method::POST,
                "/v1/ballots",
                Some(Bytes::from(v.to_string())),
            )
        }
        FloodRequest::Unlisted => {
            let stranger = VoterSecret::generate_ed25519(&mut rand::thread_rng());
            let body = stranger.sign_submission(election, 1, b"flood");
            (Method::POST, "/v1/ballots", Some(Bytes::from(body)))
        }
    })
}

impl Plan {
    /// Opens an HTTP task's connections (at most 256 handshakes at a time), by `until`.
    async fn connect(&mut self, target: &Arc<Target>, until: Instant) {
        let Plan::Http {
            conns,
            http2,
            ready,
            ..
        } = self
        else {
            return;
        };
        let mut pending = JoinSet::new();
        let mut opened: Vec<Option<Sender>> = (0..conns.len()).map(|_| None).collect();
        for (i, (ip, _)) in conns.iter().enumerate() {
            if pending.len() >= 256 {
                if let Some(Ok((j, s))) = pending.join_next().await {
                    opened[j] = s;
                }
            }
            let (target, ip, http2) = (target.clone(), *ip, *http2);
            pending.spawn(async move {
                let s = timeout_at(until.into(), connect(&target, ip, http2)).await;
                (i, s.ok().and_then(Result::ok))
            });
        }
        while let Some(done) = pending.join_next().await {
            if let Ok((j, s)) = done {
                opened[j] = s;
            }
        }
        *ready = opened;
    }

    async fn run(self, target: Arc<Target>, window: Window) -> Stats {
        let Window {
            launch,
            start,
            deadline,
        } = window;
        if !matches!(self, Plan::Http { .. }) {
            sleep_until(start.into()).await;
        }
        let mut set: JoinSet<Stats> = JoinSet::new();
        let mut connected = 0;
        match self {
            Plan::Http {
                conns,
                interval,
                mut ready,
                ..
            } => {
                let total: usize = conns
                    .iter()
                    .map(|(_, lanes)| match lanes {
                        Lanes::H1(_) => 1,
                        Lanes::H2(works) => works.len(),
                    })
                    .sum();
                let mut n = 0;
                ready.resize_with(conns.len(), || None);
                connected = ready.iter().filter(|s| s.is_some()).count() as u64;
                // Lanes are spread evenly over one interval: together they send at a steady
                // rate, not in a burst of every lane at each tick.
                let mut first = || {
                    let at = launch
                        + interval
                            .unwrap_or_default()
                            .mul_f64(n as f64 / total as f64);
                    n += 1;
                    at
                };
                for ((ip, lanes), sender) in conns.into_iter().zip(ready) {
                    match lanes {
                        Lanes::H1(wire) => {
                            let conn = match sender {
                                Some(Sender::H1(c)) => Some(*c),
                                _ => None,
                            };
                            let at = first();
                            set.spawn(lane_h1(
                                target.clone(),
                                ip,
                                conn,
                                wire,
                                interval,
                                at,
                                window,
                            ));
                        }
                        Lanes::H2(works) => {
                            let sender = match sender {
                                Some(Sender::H2(s)) => Some(s),
                                _ => None,
                            };
                            let shared = Arc::new(Mutex::new(sender));
                            for work in works {
                                let at = first();
                                set.spawn(lane_h2(
                                    target.clone(),
                                    ip,
                                    shared.clone(),
                                    work,
                                    interval,
                                    at,
                                    window,
                                ));
                            }
                        }
                    }
                }
            }
            Plan::Slowloris { sources, interval } => {
                for ip in sources {
                    set.spawn(slowloris(target.clone(), ip, interval, deadline));
                }
            }
            Plan::Stall { sources } => {
                for ip in sources {
                    set.spawn(stall(target.clone(), ip, deadline));
                }
            }
            Plan::Churn { sources } => {
                for ip in sources {
                    set.spawn(churn(target.clone(), ip, deadline));
                }
            }
        }
        let mut total = Stats {
            connects: connected,
            ..Stats::default()
        };
        while let Some(s) = set.join_next().await {
            if let Ok(s) = s {
                total.merge(s);
            }
        }
        total
    }
}

/// When a lane's request `i` is due: at once (closed loop), or on its slot of the open
/// loop's schedule; `None` when that slot falls after the deadline.
async fn schedule(
    interval: Option<Duration>,
    first: Instant,
    i: usize,
    deadline: Instant,
) -> Option<Instant> {
    match interval {
        Some(iv) => {
            let at = first + iv.mul_f64(i as f64);
            if at >= deadline {
                return None;
            }
            sleep_until(at.into()).await;
            Some(at)
        }
        None => Some(Instant::now()),
    }
}

/// One HTTP/1.1 lane: a connection of its own, owned by this task (no connection task, no
/// channel: see `h1`), sending its pre-encoded work in order and reconnecting when the
/// server closes. Only requests scheduled after the warm-up (`window.start`) are counted.
async fn lane_h1(
    target: Arc<Target>,
    ip: IpAddr,
    mut conn: Option<H1Conn>,
    work: Wire,
    interval: Option<Duration>,
    first: Instant,
    window: Window,
) -> Stats {
    let deadline = window.deadline;
    let mut st = Stats::default();
    // What the warm-up sees is thrown away.
    let mut warmup = Stats::default();
    // Answers in flight at the deadline get GRACE, then are abandoned. One timer for the
    // whole lane: the limit is the same for every request.
    let give_up = sleep_until((deadline + GRACE).into());
    tokio::pin!(give_up);
    let mut i = 0usize;
    while Instant::now() < deadline {
        let Some(req) = work.get(i) else {
            break;
        };
        let Some(scheduled) = schedule(interval, first, i, deadline).await else {
            break;
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let opened = tokio::select! {
                    biased;
                    c = connect_h1(&target, ip) => c.ok(),
                    _ = &mut give_up => None,
                };
                match opened {
                    Some(c) => {
                        st.connects += 1;
                        conn.insert(c)
                    }
                    None => {
                        st.io_errors += 1;
                        sleep(RECONNECT_PAUSE).await;
                        continue;
                    }
                }
            }
        };
        let counted = if scheduled >= window.start {
            &mut st
        } else {
            &mut warmup
        };
        let close = tokio::select! {
            biased;
            answer = c.send(req) => match answer {
                Ok(answer) => {
                    counted.answer(answer.status, answer.body, scheduled.elapsed());
                    i += 1;
                    // The server ends the connection after this answer (its
                    // `max_requests_per_connection`): a clean close, not a broken one.
                    if answer.close {
                        counted.closed_by_server += 1;
                    }
                    answer.close
                }
                Err(_) => {
                    // The connection broke (or its answer could not be framed): drop it and
                    // reconnect; the same request is sent again, which is safe — an
                    // identical ballot is an idempotent repeat.
                    counted.io_errors += 1;
                    true
                }
            },
            _ = &mut give_up => {
                counted.io_errors += 1;
                true
            }
        };
        if close {
            conn = None;
        }
    }
    st
}

/// One HTTP/2 lane: one stream of a connection shared with the connection's other lanes,
/// sending its work in order, reconnecting when the server closes. Only requests scheduled
/// after the warm-up (`window.start`) are counted.
async fn lane_h2(
    target: Arc<Target>,
    ip: IpAddr,
    shared: Arc<Mutex<Option<H2Sender>>>,
    work: Work,
    interval: Option<Duration>,
    first: Instant,
    window: Window,
) -> Stats {
    let deadline = window.deadline;
    let mut st = Stats::default();
    // What the warm-up sees is thrown away.
    let mut warmup = Stats::default();
    let mut i = 0usize;
    while Instant::now() < deadline {
        let Some((method, path, body)) = work.get(i) else {
            break;
        };
        let Some(scheduled) = schedule(interval, first, i, deadline).await else {
            break;
        };
        // Every lane of the connection clones its sender; the first to find it gone opens
        // a new one for all.
        let mut sender = {
            let mut slot = shared.lock().await;
            match slot.as_ref() {
                Some(s) => s.clone(),
                None => {
                    match timeout_at((deadline + GRACE).into(), connect_h2(&target, ip)).await {
                        Ok(Ok(s)) => {
                            st.connects += 1;
                            *slot = Some(s.clone());
                            s
                        }
                        _ => {
                            st.io_errors += 1;
                            drop(slot);
                            sleep(RECONNECT_PAUSE).await;
                            continue;
                        }
                    }
                }
            }
        };
        let req = request(&target, method, path, body);
        let counted = if scheduled >= window.start {
            &mut st
        } else {
            &mut warmup
        };
        match timeout_at((deadline + GRACE).into(), send_h2(&mut sender, req)).await {
            Ok(Ok(answer)) => {
                counted.answer(answer.status.as_u16(), &answer.body, scheduled.elapsed());
                i += 1;
            }
            Ok(Err(_)) | Err(_) => {
                // The connection broke (or the server closed it after its request quota):
                // drop it and reconnect; the same request is sent again, which is safe —
                // an identical ballot is an idempotent repeat.
                counted.io_errors += 1;
                *shared.lock().await = None;
            }
        }
    }
    st
}

/// Sends a request head one byte at a time and never finishes it; records when the server
/// gives up on us, then comes back.
async fn slowloris(
    target: Arc<Target>,
    ip: IpAddr,
    interval: Duration,
    deadline: Instant,
) -> Stats {
    let mut st = Stats::default();
    while Instant::now() < deadline {
        let opened = Instant::now();
        let Ok(Ok(stream)) = timeout_at(deadline.into(), tcp(&target, ip)).await else {
            st.io_errors += 1;
            sleep(RECONNECT_PAUSE).await;
            continue;
        };
        st.connects += 1;
        let closed = match target.tls(false) {
            Some(tls) => match timeout_at(
                deadline.into(),
                tokio_rustls::TlsConnector::from(tls).connect(target.server_name.clone(), stream),
            )
            .await
            {
                Ok(Ok(s)) => drip(s, interval, deadline).await,
                _ => true,
            },
            None => drip(stream, interval, deadline).await,
        };
        if closed {
            st.closed_by_server += 1;
            st.close_after_us
                .saturating_record(opened.elapsed().as_micros().max(1) as u64);
        }
    }
    st
}

/// Writes a head byte by byte; true when the server closed the connection first.
async fn drip<S: tokio::io::AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    interval: Duration,
    deadline: Instant,
) -> bool {
    if s.write_all(b"POST /v1/ballots HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                // Any answer (a 408) or a close means the server is done with us.
                Ok(_) | Err(_) => return true,
            },
            _ = sleep(interval) => {
                if Instant::now() >= deadline {
                    return false;
                }
                if s.write_all(b"a").await.is_err() {
                    return true;
                }
            }
        }
    }
}

/// Opens TCP connections that never begin TLS; records when the server closes them.
async fn stall(target: Arc<Target>, ip: IpAddr, deadline: Instant) -> Stats {
    let mut st = Stats::default();
    while Instant::now() < deadline {
        let opened = Instant::now();
        let Ok(Ok(mut stream)) = timeout_at(deadline.into(), tcp(&target, ip)).await else {
            st.io_errors += 1;
            sleep(RECONNECT_PAUSE).await;
            continue;
        };
        st.connects += 1;
        let mut buf = [0u8; 64];
        if let Ok(_closed) = timeout_at(deadline.into(), stream.read(&mut buf)).await {
            st.closed_by_server += 1;
            st.close_after_us
                .saturating_record(opened.elapsed().as_micros().max(1) as u64);
        }
    }
    st
}

/// Completes TLS handshakes and drops them at once.
async fn churn(target: Arc<Target>, ip: IpAddr, deadline: Instant) -> Stats {
    let mut st = Stats::default();
    let Some(tls) = target.tls(false) else {
        return st;
    };
    let connector = tokio_rustls::TlsConnector::from(tls);
    while Instant::now() < deadline {
        let began = Instant::now();
        let done = async {
            let stream = tcp(&target, ip).await?;
            connector.connect(target.server_name.clone(), stream).await
        };
        match timeout_at(deadline.into(), done).await {
            Ok(Ok(_)) => {
                st.connects += 1;
                st.ok_latency_us
                    .saturating_record(began.elapsed().as_micros().max(1) as u64);
            }
            Ok(Err(_)) => {
                st.io_errors += 1;
                sleep(RECONNECT_PAUSE).await;
            }
            Err(_) => break,
        }
    }
    st
}
