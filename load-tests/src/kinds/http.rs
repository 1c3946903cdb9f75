//! HTTP request lanes, shared by the kinds that send requests over keep-alive connections
//! opened before the clock (`voters`, `flood`): each lane sends its work in order, on a
//! schedule (open loop) or as answers come back (closed loop), and reconnects when the
//! server closes — from the next address of its pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at};

use super::{BoxFuture, Plan, Pool, Window, GRACE, RECONNECT_PAUSE};
use crate::h1::encode_request;
use crate::net::{
    connect, connect_h1, connect_h2, request, send_h2, H1Conn, H2Sender, Sender, Target,
};
use crate::report::Stats;

/// A request lane's work, as the task describes it: pre-signed ballots (sent once each) or
/// one request repeated. HTTP/2 lanes build a request from it per send; HTTP/1.1 lanes get it
/// pre-encoded as [`Wire`].
pub enum Work {
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

/// How an HTTP task's connections are laid out.
pub struct Shape {
    pub connections: usize,
    pub streams: usize,
    pub http2: bool,
    pub rate_per_s: Option<f64>,
    pub pool: Pool,
    /// HTTP/1.1: close the connection after this many answers and reconnect from the next
    /// address, so a few lanes speak from the whole pool.
    pub requests_per_connection: Option<usize>,
}

/// An HTTP task, ready to start.
pub struct HttpPlan {
    conns: Vec<Lanes>,
    shape: Shape,
    /// Pause between one lane's sends (open loop), if any.
    interval: Option<Duration>,
    /// Connections opened before the clock starts, one per entry of `conns`.
    ready: Vec<Option<Sender>>,
}

/// An HTTP task: `connections` connections from the pool, each with `streams` lanes of work
/// (each from `work()`), sending at `rate_per_s` in total if given. HTTP/1.1 carries one
/// request at a time: there each connection is one lane (the scenario refuses more).
pub fn http_plan(shape: Shape, host: &str, mut work: impl FnMut() -> Work) -> HttpPlan {
    let streams = if shape.http2 { shape.streams } else { 1 };
    let lanes = shape.connections * streams;
    let conns = (0..shape.connections)
        .map(|_| {
            if shape.http2 {
                Lanes::H2((0..streams).map(|_| work()).collect())
            } else {
                Lanes::H1(work().encode(host))
            }
        })
        .collect();
    HttpPlan {
        conns,
        interval: shape
            .rate_per_s
            .map(|r| Duration::from_secs_f64(lanes as f64 / r)),
        shape,
        ready: Vec::new(),
    }
}

impl Plan for HttpPlan {
    /// Opens the connections (at most 256 handshakes at a time), by `until`: a run measures
    /// answers over keep-alive, not the burst of handshakes that opening hundreds of
    /// connections at once costs both sides.
    fn connect<'a>(&'a mut self, target: &'a Arc<Target>, until: Instant) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut pending = JoinSet::new();
            let n = self.conns.len();
            let mut opened: Vec<Option<Sender>> = (0..n).map(|_| None).collect();
            for i in 0..n {
                if pending.len() >= 256 {
                    if let Some(Ok((j, s))) = pending.join_next().await {
                        opened[j] = s;
                    }
                }
                let ip = self.shape.pool.cycled(i, n, 0);
                let (target, http2) = (target.clone(), self.shape.http2);
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
            self.ready = opened;
        })
    }

    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        Box::pin(self.run_lanes(target, window))
    }
}

impl HttpPlan {
    async fn run_lanes(self, target: Arc<Target>, window: Window) -> Stats {
        let HttpPlan {
            conns,
            shape,
            interval,
            mut ready,
        } = self;
        let mut set: JoinSet<Stats> = JoinSet::new();
        let total: usize = conns
            .iter()
            .map(|lanes| match lanes {
                Lanes::H1(_) => 1,
                Lanes::H2(works) => works.len(),
            })
            .sum();
        let slots = conns.len();
        let mut n = 0;
        ready.resize_with(slots, || None);
        let connected = ready.iter().filter(|s| s.is_some()).count() as u64;
        // Lanes are spread evenly over one interval: together they send at a steady rate,
        // not in a burst of every lane at each tick.
        let mut first = || {
            let at = window.launch
                + interval
                    .unwrap_or_default()
                    .mul_f64(n as f64 / total.max(1) as f64);
            n += 1;
            at
        };
        for (slot, (lanes, sender)) in conns.into_iter().zip(ready).enumerate() {
            let from = Addresses {
                pool: shape.pool,
                slot,
                slots,
            };
            match lanes {
                Lanes::H1(wire) => {
                    let conn = match sender {
                        Some(Sender::H1(c)) => Some(*c),
                        _ => None,
                    };
                    let lane = LaneH1 {
                        target: target.clone(),
                        from,
                        conn,
                        work: wire,
                        interval,
                        first: first(),
                        window,
                        requests_per_connection: shape.requests_per_connection,
                    };
                    set.spawn(lane.run());
                }
                Lanes::H2(works) => {
                    let sender = match sender {
                        Some(Sender::H2(s)) => Some(s),
                        _ => None,
                    };
                    let shared = Arc::new(Mutex::new((sender, 0usize)));
                    for work in works {
                        let at = first();
                        set.spawn(lane_h2(
                            target.clone(),
                            from,
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

/// Which addresses a connection slot takes as it reconnects.
#[derive(Debug, Clone, Copy)]
struct Addresses {
    pool: Pool,
    slot: usize,
    slots: usize,
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
struct LaneH1 {
    target: Arc<Target>,
    from: Addresses,
    conn: Option<H1Conn>,
    work: Wire,
    interval: Option<Duration>,
    first: Instant,
    window: Window,
    requests_per_connection: Option<usize>,
}

impl LaneH1 {
    async fn run(self) -> Stats {
        let LaneH1 {
            target,
            from,
            mut conn,
            work,
            interval,
            first,
            window,
            requests_per_connection,
        } = self;
        let deadline = window.deadline;
        let mut st = Stats::default();
        // What the warm-up sees is thrown away.
        let mut warmup = Stats::default();
        // Answers in flight at the deadline get GRACE, then are abandoned. One timer for the
        // whole lane: the limit is the same for every request.
        let give_up = sleep_until((deadline + GRACE).into());
        tokio::pin!(give_up);
        let mut i = 0usize;
        // Connections this lane has opened (the one opened before the clock is round 0).
        let mut round = usize::from(conn.is_some());
        // Answers on the current connection.
        let mut used = 0usize;
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
                    let ip = from.pool.cycled(from.slot, from.slots, round);
                    round += 1;
                    used = 0;
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
                        used += 1;
                        // The server ends the connection after this answer (its
                        // `max_requests_per_connection`): a clean close, not a broken one.
                        if answer.close {
                            counted.closed_by_server += 1;
                        }
                        answer.close || requests_per_connection.is_some_and(|n| used >= n)
                    }
                    Err(_) => {
                        // The connection broke (or its answer could not be framed): drop it
                        // and reconnect; the same request is sent again, which is safe — an
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
}

/// One HTTP/2 lane: one stream of a connection shared with the connection's other lanes,
/// sending its work in order, reconnecting when the server closes. Only requests scheduled
/// after the warm-up (`window.start`) are counted. The shared slot holds the connection and
/// how many its lanes have opened (for the next address).
async fn lane_h2(
    target: Arc<Target>,
    from: Addresses,
    shared: Arc<Mutex<(Option<H2Sender>, usize)>>,
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
            match slot.0.as_ref() {
                Some(s) => s.clone(),
                None => {
                    // Round 0 was opened before the clock.
                    slot.1 += 1;
                    let ip = from.pool.cycled(from.slot, from.slots, slot.1);
                    match timeout_at((deadline + GRACE).into(), connect_h2(&target, ip)).await {
                        Ok(Ok(s)) => {
                            st.connects += 1;
                            slot.0 = Some(s.clone());
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
                shared.lock().await.0 = None;
            }
        }
    }
    st
}

/// HTTP/2 lanes share a connection; an HTTP/1.1 connection carries one request at a time.
pub fn check_streams(name: &str, http2: bool, streams: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=256).contains(&streams),
        "task {name}: streams_per_connection must be in 1..=256"
    );
    anyhow::ensure!(
        http2 || streams == 1,
        "task {name}: streams_per_connection > 1 needs http2 (an HTTP/1.1 connection carries one request at a time)"
    );
    Ok(())
}
