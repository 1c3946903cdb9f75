//! HTTP request lanes, shared by the kinds that send requests over keep-alive connections
//! opened before the clock (`voters`, `flood`): each lane sends its work in order, on a
//! schedule (open loop) or as answers come back (closed loop), and reconnects when the
//! server closes — from the next address of its pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at};

use super::retry::RetryPolicy;
use super::{BoxFuture, Plan, Pool, Window, GRACE, RECONNECT_PAUSE};
use crate::h1::{encode_request, H1Error};
use crate::net::{
    connect, connect_h1, connect_h2, request, send_h2, H1Conn, H2Error, H2Sender, Sender, Target,
};
use crate::receipts::{check_receipt, request_body};
use crate::report::{ArrivalStats, Stats};

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
    /// Voters' lanes: retry refused ballots and follow each one's outcome.
    pub retry: Option<RetryPolicy>,
    /// Voters' lanes: check each receipt offline with this verifier key.
    pub verifier_key: Option<Arc<str>>,
}

/// An HTTP task, ready to start.
pub struct HttpPlan {
    conns: Vec<Lanes>,
    shape: Shape,
    /// Pause between one lane's sends (open loop), if any.
    interval: Option<Duration>,
    /// Connections opened before the clock starts, one per entry of `conns`.
    ready: Vec<Option<Sender>>,
    /// Seeds the lanes' retry jitter ([`HttpPlan::seeded`]; 0 unless set).
    seed: u64,
}

impl HttpPlan {
    /// Draws the lanes' retry jitter from `seed` (the run's, mixed with the task's name),
    /// so a replay of the run waits alike.
    pub fn seeded(mut self, seed: u64) -> HttpPlan {
        self.seed = seed;
        self
    }
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
        seed: 0,
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
            seed,
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
                seed,
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
                        retry: shape.retry,
                        verifier_key: shape.verifier_key.clone(),
                    };
                    set.spawn(crate::live::scoped(lane.run()));
                }
                Lanes::H2(works) => {
                    let sender = match sender {
                        Some(Sender::H2(s)) => Some(s),
                        _ => None,
                    };
                    let shared = Arc::new(Mutex::new((sender, 0usize)));
                    for work in works {
                        let at = first();
                        set.spawn(crate::live::scoped(lane_h2(
                            target.clone(),
                            from,
                            shared.clone(),
                            work,
                            interval,
                            at,
                            window,
                            shape.retry,
                            shape.verifier_key.clone(),
                        )));
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
    /// The plan's seed, for the lane's jitter.
    seed: u64,
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
    /// Voters: how refused ballots are retried (each ballot's outcome is followed);
    /// absent for hostile kinds, whose requests never retry.
    retry: Option<RetryPolicy>,
    /// Voters: the log's verifier key, to check each receipt offline.
    verifier_key: Option<Arc<str>>,
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
            retry,
            verifier_key,
        } = self;
        let deadline = window.deadline;
        let end = deadline + GRACE;
        let mut st = Stats::for_lane(retry.is_some());
        // What the warm-up sees is thrown away.
        let mut warmup = Stats::for_lane(retry.is_some());
        // Answers in flight at the deadline get GRACE, then are abandoned. One timer for the
        // whole lane: the limit is the same for every request.
        let give_up = sleep_until(end.into());
        tokio::pin!(give_up);
        let mut rng = lane_rng(&from);
        let mut i = 0usize;
        // The current request when it is being tried again (voters), else `None`.
        let mut again: Option<Try> = None;
        // Connections this lane has opened (the one opened before the clock is round 0).
        let mut round = usize::from(conn.is_some());
        // Answers on the current connection.
        let mut used = 0usize;
        loop {
            if again.is_none() && Instant::now() >= deadline {
                break;
            }
            let Some(req) = work.get(i) else {
                break;
            };
            let t = match again.take() {
                Some(t) => t,
                None => match schedule(interval, first, i, deadline).await {
                    Some(at) => Try::first(at),
                    None => break,
                },
            };
            if Instant::now() >= end {
                // A voter still retrying when the run's grace ran out.
                t.counted(&mut st, &mut warmup, window)
                    .give_up("timeout", t, None);
                break;
            }
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
                            st.fail("connect");
                            let counted = t.counted(&mut st, &mut warmup, window);
                            match on_failure(retry.as_ref(), t, "connect", counted) {
                                OnFail::Again(next) => again = Some(next),
                                OnFail::GiveUp => i += 1,
                                OnFail::Resend => {}
                            }
                            sleep(RECONNECT_PAUSE).await;
                            continue;
                        }
                    }
                }
            };
            let counted = t.counted(&mut st, &mut warmup, window);
            let (close, wait) = tokio::select! {
                biased;
                answer = c.send(req) => match answer {
                    Ok(answer) => {
                        counted.answer(answer.status, answer.body, t.scheduled.elapsed());
                        used += 1;
                        // The server ends the connection after this answer (its
                        // `max_requests_per_connection`): a clean close, not a broken one.
                        if answer.close {
                            counted.closed_by_server += 1;
                        }
                        let close =
                            answer.close || requests_per_connection.is_some_and(|n| used >= n);
                        let receipt = verifier_key.as_deref().map(|k| Receipt {
                            answer: answer.body,
                            sent: request_body(req),
                            verifier_key: k,
                        });
                        let then = after_answer(
                            retry.as_ref(),
                            t,
                            answer.status,
                            answer.retry_after_s,
                            end,
                            counted,
                            &mut rng,
                            receipt,
                        );
                        match then {
                            Then::Next => {
                                i += 1;
                                (close, None)
                            }
                            Then::Retry(wait) => {
                                again = Some(t.retried());
                                (close, Some(wait))
                            }
                        }
                    }
                    Err(H1Error::Closed) if used > 0 => {
                        // The server ended this keep-alive connection between requests (its
                        // request quota or an idle timeout, without a `Connection: close` on
                        // the last answer): nothing of this request was answered, so it goes
                        // again on a new connection, neither an error nor a voter's retry.
                        counted.closed_by_server += 1;
                        again = retry.map(|_| t);
                        (true, None)
                    }
                    Err(_) => {
                        // The connection broke (or its answer could not be framed): drop it
                        // and reconnect; the same request is sent again, which is safe — an
                        // identical ballot is an idempotent repeat.
                        counted.fail("reset");
                        match on_failure(retry.as_ref(), t, "reset", counted) {
                            OnFail::Again(next) => again = Some(next),
                            OnFail::GiveUp => i += 1,
                            OnFail::Resend => {}
                        }
                        (true, None)
                    }
                },
                _ = &mut give_up => {
                    counted.fail("timeout");
                    again = retry.map(|_| t);
                    (true, None)
                }
            };
            if close {
                conn = None;
            }
            if let Some(wait) = wait {
                sleep(wait).await;
            }
        }
        st
    }
}

/// A lane's current request: when it was due, and how often it has been tried again.
#[derive(Debug, Clone, Copy)]
struct Try {
    /// Its slot on the schedule: latency (and a voter's wait) counts from here.
    scheduled: Instant,
    retries: u32,
}

impl Try {
    fn first(scheduled: Instant) -> Try {
        Try {
            scheduled,
            retries: 0,
        }
    }

    fn retried(self) -> Try {
        Try {
            retries: self.retries + 1,
            ..self
        }
    }

    /// Where what this request sees is counted: the run, or the warm-up (thrown away).
    fn counted<'a>(&self, st: &'a mut Stats, warmup: &'a mut Stats, w: Window) -> &'a mut Stats {
        if self.scheduled >= w.start {
            st
        } else {
            warmup
        }
    }
}

/// What a lane does after an answer.
enum Then {
    /// On to the next request.
    Next,
    /// The same request again after this wait (a voter told 429/503).
    Retry(Duration),
}

/// A voter's ballot (when `retry` is given) ends here if it was accepted, refused for good,
/// or its retry budget or the run's grace is spent; else it is tried again after the wait
/// its `Retry-After` asks. Other requests always move on.
#[allow(clippy::too_many_arguments)]
fn after_answer(
    retry: Option<&RetryPolicy>,
    t: Try,
    status: u16,
    retry_after_s: Option<u64>,
    end: Instant,
    counted: &mut Stats,
    rng: &mut StdRng,
    receipt: Option<Receipt<'_>>,
) -> Then {
    let Some(policy) = retry else {
        return Then::Next;
    };
    if (200..300).contains(&status) {
        counted.accept(t.retries, t.scheduled.elapsed());
        if let Some(r) = receipt {
            counted.receipt(check_receipt(r.answer, r.sent, r.verifier_key));
        }
        return Then::Next;
    }
    match policy.wait(status, retry_after_s, t.retries, rng) {
        Some(wait) if Instant::now() + wait < end => Then::Retry(wait),
        Some(_) => {
            counted.give_up("timeout", t, Some(status));
            Then::Next
        }
        None => {
            counted.give_up("status", t, Some(status));
            Then::Next
        }
    }
}

/// A voter's receipt to check: the 2xx body, the submission it answers, the log's key.
struct Receipt<'a> {
    answer: &'a [u8],
    sent: &'a [u8],
    verifier_key: &'a str,
}

/// What a lane does after its connection failed on a request.
enum OnFail {
    /// A voter tries the same ballot again (a retry spent).
    Again(Try),
    /// A voter's retry budget is spent: the ballot is given up, on to the next.
    GiveUp,
    /// Other kinds send the same request again, as its schedule allows.
    Resend,
}

fn on_failure(retry: Option<&RetryPolicy>, t: Try, why: &str, counted: &mut Stats) -> OnFail {
    match retry {
        None => OnFail::Resend,
        Some(p) if t.retries < p.max_retries => OnFail::Again(t.retried()),
        Some(_) => {
            counted.give_up(why, t, None);
            OnFail::GiveUp
        }
    }
}

impl Stats {
    /// A lane's stats; voters' lanes also follow each ballot's outcome.
    fn for_lane(voters: bool) -> Stats {
        Stats {
            arrivals: voters.then(ArrivalStats::default),
            ..Stats::default()
        }
    }

    /// A voter's ballot accepted after `retries` retries, `latency` after it was due.
    fn accept(&mut self, retries: u32, latency: Duration) {
        self.legit_live(latency);
        if let Some(a) = self.arrivals.as_mut() {
            a.accepted(retries, latency);
        }
    }

    /// A voter's receipt checked: good (the entry's index) or not.
    fn receipt(&mut self, checked: crate::receipts::Checked) {
        if let Some(a) = self.arrivals.as_mut() {
            a.receipt(checked);
        }
    }

    /// A voter's ballot given up: `why`, and the last status if an answer ended it.
    fn give_up(&mut self, why: &str, t: Try, status: Option<u16>) {
        if let Some(a) = self.arrivals.as_mut() {
            a.failed(t.retries, why, status);
        }
    }
}

/// A lane's generator for retry jitter. Seeded from the run's seed and the lane's slot, so
/// runs of one seed wait alike.
fn lane_rng(from: &Addresses) -> StdRng {
    StdRng::seed_from_u64(from.seed ^ 0x5eed_0000 ^ from.slot as u64)
}

/// One HTTP/2 lane: one stream of a connection shared with the connection's other lanes,
/// sending its work in order, reconnecting when the server closes. Only requests scheduled
/// after the warm-up (`window.start`) are counted. The shared slot holds the connection and
/// how many its lanes have opened: that count is also the connection's generation, so a
/// lane whose request failed on an older connection never drops the newer one another lane
/// has opened already (each server close used to cost two reconnects).
#[allow(clippy::too_many_arguments)]
async fn lane_h2(
    target: Arc<Target>,
    from: Addresses,
    shared: Arc<Mutex<(Option<H2Sender>, usize)>>,
    work: Work,
    interval: Option<Duration>,
    first: Instant,
    window: Window,
    retry: Option<RetryPolicy>,
    verifier_key: Option<Arc<str>>,
) -> Stats {
    let deadline = window.deadline;
    let end = deadline + GRACE;
    let mut st = Stats::for_lane(retry.is_some());
    // What the warm-up sees is thrown away.
    let mut warmup = Stats::for_lane(retry.is_some());
    let mut rng = lane_rng(&from);
    let mut i = 0usize;
    let mut again: Option<Try> = None;
    loop {
        if again.is_none() && Instant::now() >= deadline {
            break;
        }
        let Some((method, path, body)) = work.get(i) else {
            break;
        };
        let t = match again.take() {
            Some(t) => t,
            None => match schedule(interval, first, i, deadline).await {
                Some(at) => Try::first(at),
                None => break,
            },
        };
        if Instant::now() >= end {
            t.counted(&mut st, &mut warmup, window)
                .give_up("timeout", t, None);
            break;
        }
        // Every lane of the connection clones its sender; the first to find it gone opens
        // a new one for all.
        let (mut sender, generation) = {
            let mut slot = shared.lock().await;
            match slot.0.as_ref() {
                Some(s) if !s.is_closed() => (s.clone(), slot.1),
                _ => {
                    if slot.0.take().is_some() {
                        // Closed under us (GOAWAY after its request quota): a clean close.
                        st.closed_by_server += 1;
                    }
                    // Round 0 was opened before the clock.
                    slot.1 += 1;
                    let ip = from.pool.cycled(from.slot, from.slots, slot.1);
                    match timeout_at(end.into(), connect_h2(&target, ip)).await {
                        Ok(Ok(s)) => {
                            st.connects += 1;
                            slot.0 = Some(s.clone());
                            (s, slot.1)
                        }
                        _ => {
                            st.fail("connect");
                            drop(slot);
                            let counted = t.counted(&mut st, &mut warmup, window);
                            match on_failure(retry.as_ref(), t, "connect", counted) {
                                OnFail::Again(next) => again = Some(next),
                                OnFail::GiveUp => i += 1,
                                OnFail::Resend => {}
                            }
                            sleep(RECONNECT_PAUSE).await;
                            continue;
                        }
                    }
                }
            }
        };
        let body_sent = body.clone();
        let req = request(&target, method, path, body);
        let counted = t.counted(&mut st, &mut warmup, window);
        let failed = match timeout_at(end.into(), send_h2(&mut sender, req)).await {
            Ok(Ok(answer)) => {
                let status = answer.status.as_u16();
                counted.answer(status, &answer.body, t.scheduled.elapsed());
                let receipt = verifier_key.as_deref().map(|k| Receipt {
                    answer: &answer.body,
                    sent: body_sent.as_deref().unwrap_or_default(),
                    verifier_key: k,
                });
                let then = after_answer(
                    retry.as_ref(),
                    t,
                    status,
                    answer.retry_after_s,
                    end,
                    counted,
                    &mut rng,
                    receipt,
                );
                match then {
                    Then::Next => i += 1,
                    Then::Retry(wait) => {
                        again = Some(t.retried());
                        sleep(wait).await;
                    }
                }
                None
            }
            Ok(Err(H2Error::Closed(_))) => {
                // The server closed the connection gracefully (GOAWAY) before taking this
                // stream: it goes again on the next connection, neither an error nor a
                // voter's retry. The close is counted once, by whoever drops the sender.
                again = retry.map(|_| t);
                Some(false)
            }
            Ok(Err(H2Error::Broken(_))) => {
                counted.fail("reset");
                match on_failure(retry.as_ref(), t, "reset", counted) {
                    OnFail::Again(next) => again = Some(next),
                    OnFail::GiveUp => i += 1,
                    OnFail::Resend => {}
                }
                Some(true)
            }
            Err(_) => {
                counted.fail("timeout");
                again = retry.map(|_| t);
                Some(true)
            }
        };
        if let Some(broken) = failed {
            // Drop the connection only if it is still the one this request failed on.
            let mut slot = shared.lock().await;
            if slot.1 == generation && slot.0.take().is_some() && !broken {
                st.closed_by_server += 1;
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
