//! The connection table: every connection the server holds, what phase it is in, and which
//! ones to give up when the table is full or a phase has lasted too long.
//!
//! A botnet does not need to break any per-source limit to fill a server: tens of thousands
//! of addresses, each holding one silent or idle connection, are enough. So a full table
//! never refuses a newcomer while it holds a connection worth less than a new voter's. It
//! *reclaims* (as nginx drains its reusable connections): idle keep-alive connections first,
//! then silent ones (no byte since accept), then stalled ones (a ClientHello, then a request
//! head or body, still arriving), oldest first within each class, and only then a connection
//! whose whole ClientHello is in — what a voter's new connection sends in its first packet.
//! A connection with a request being processed (a ballot on its way to the log) is never
//! reclaimed. The sources of connections reclaimed for wasting their slot are remembered
//! ([`super::accept`]): their next handshakes wait behind everyone else's.
//!
//! Layout: the phase of every slot is one `AtomicU64` in a fixed array of `max_connections`
//! words, so a reclaim or a timeout sweep scans 8 bytes a connection, contiguous, without
//! touching the connections themselves (10,000 slots are 80 KB). Each word packs the phase,
//! the slot's generation and when the phase began; a connection writes its own word with a
//! compare-and-swap that fails once its slot has been given to someone else, so a reclaimed
//! connection that has not yet noticed cannot scribble over its successor.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

/// Where a connection is in its life. The order of the variants is not the reclaim order:
/// see [`Phase::reclaim_rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Accepted; not one byte received yet.
    Silent = 1,
    /// The first bytes arrived; the ClientHello (or PROXY header) is not whole yet.
    Hello = 2,
    /// The whole ClientHello is in: waiting for a handshake slot, or doing the crypto.
    Handshake = 3,
    /// Ready for a request, none arriving: an idle keep-alive connection.
    Idle = 4,
    /// Bytes of a request head arrived; the head is not complete (HTTP/1.1 only).
    Headers = 5,
    /// A request's body is being read.
    Body = 6,
    /// A request is being processed: never reclaimed.
    Busy = 7,
}

impl Phase {
    fn from_u8(v: u8) -> Option<Phase> {
        Some(match v {
            1 => Phase::Silent,
            2 => Phase::Hello,
            3 => Phase::Handshake,
            4 => Phase::Idle,
            5 => Phase::Headers,
            6 => Phase::Body,
            7 => Phase::Busy,
            _ => return None,
        })
    }

    /// Lower goes first when the table is full; `None`: never reclaimed. `settled` says
    /// whether the phase has lasted the table's idle grace: a connection that has only just
    /// finished its handshake or an answer is idle by phase but about to speak (a voter's
    /// request, a revote), and ranks last, with the handshakes, where its youth protects it.
    /// `young` says the phase began within the new-connection grace: a voter's connection
    /// is silent or mid-hello from its accept until its task first reads, which on a busy
    /// server takes a few milliseconds, and under a flood's churn the oldest silent or
    /// hello connection in the table can be that young. Such a connection goes after every
    /// stalled one, but before the whole hellos: ranked with them, it had the flood's young
    /// hellos take the handshakes' places (measured: 1,631 handshakes reclaimed in the
    /// all-kinds botnet run instead of 2, voters' p99 166 -> 351 ms).
    ///
    /// The ranks: settled idle (0); silent (1); a ClientHello still arriving (2); a request
    /// head or body still arriving (3); a silent or hello connection still young (4); a
    /// whole ClientHello — what a voter's new connection sends in one packet — and fresh
    /// idle (5).
    pub fn reclaim_rank(self, settled: bool, young: bool) -> Option<u8> {
        match self {
            Phase::Idle if settled => Some(0),
            Phase::Silent | Phase::Hello if young => Some(4),
            Phase::Silent => Some(1),
            Phase::Hello => Some(2),
            Phase::Headers | Phase::Body => Some(3),
            Phase::Idle | Phase::Handshake => Some(5),
            Phase::Busy => None,
        }
    }

    /// Whether a connection the server ends in this phase past its timeout held its slot
    /// without using it (never said a byte, never finished its hello, its request head or
    /// body, or sat idle): its source is remembered as a waster ([`super::accept`]). A
    /// whole ClientHello waiting for its handshake did nothing wrong.
    pub fn wasted(self) -> bool {
        !matches!(self, Phase::Handshake | Phase::Busy)
    }

    /// The `reason` label of a reclaim.
    pub fn reclaim_reason(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Silent => "silent",
            Phase::Handshake => "handshake",
            _ => "stalled",
        }
    }
}

// One slot word: | phase: 8 bits | generation: 16 bits | phase start, ms since epoch: 40 bits |.
// 40 bits of milliseconds are 34 years of uptime; the generation only has to differ between
// two consecutive owners of a slot, and wraps harmlessly.
const SINCE_BITS: u32 = 40;
const SINCE_MASK: u64 = (1 << SINCE_BITS) - 1;
const GEN_MASK: u64 = 0xffff;

fn pack(phase: Phase, generation: u16, since_ms: u64) -> u64 {
    (u64::from(phase as u8) << 56) | (u64::from(generation) << SINCE_BITS) | (since_ms & SINCE_MASK)
}

/// A slot word, unpacked: `None` when the slot is empty.
fn unpack(word: u64) -> Option<(Phase, u16, u64)> {
    let phase = Phase::from_u8((word >> 56) as u8)?;
    Some((
        phase,
        ((word >> SINCE_BITS) & GEN_MASK) as u16,
        word & SINCE_MASK,
    ))
}

/// Why a connection was ended by the table rather than by its peer or its own work. The
/// strings are metric labels: keep them stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Reclaimed for a newcomer while the table was full.
    Reclaimed,
    /// Its phase outlived the (pressure-scaled) timeout of that phase.
    TimedOut,
    /// Its source was put in the penalty box.
    Penalized,
    /// It sent more HTTP/2 PINGs or SETTINGS than its budget ([`super::h2control`]).
    Flooded,
}

/// One connection's shared state: the table, the overload manager, the HTTP front and the
/// connection's own task all look at it.
#[derive(Debug)]
pub struct ConnState {
    /// The client address (after PROXY v2 from a trusted balancer).
    pub client: IpAddr,
    table: Arc<ConnTable>,
    slot: usize,
    generation: u16,
    requests: AtomicU32,
    /// 429s answered on this connection ([`Self::next_refusal`]).
    refusals: AtomicU32,
    in_flight: AtomicUsize,
    /// Requests whose body is still arriving (a subset of `in_flight`).
    reading_body: AtomicUsize,
    /// Rung when the connection should close gracefully: its quota of requests is served,
    /// or it sat idle past the keep-alive timeout (HTTP/1 closes after the answer in hand,
    /// HTTP/2 sends GOAWAY).
    pub close: Notify,
    /// Set once the connection has been asked to close gracefully.
    closing: AtomicBool,
    /// Rung when the table ended the connection ([`Ended`]): the task drops it at once.
    kill: Notify,
    ended: AtomicU8,
}

impl ConnState {
    /// Marks the start of `phase` now. Does nothing once the slot belongs to another
    /// connection (this one was reclaimed and has not noticed yet).
    pub fn set_phase(&self, phase: Phase) {
        let word = &self.table.words[self.slot];
        let next = pack(phase, self.generation, self.table.now_ms());
        let mut current = word.load(Ordering::Acquire);
        loop {
            match unpack(current) {
                Some((_, g, _)) if g == self.generation => {}
                _ => return,
            }
            match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The phase this connection is in (as the table sees it).
    pub fn phase(&self) -> Option<Phase> {
        match unpack(self.table.words[self.slot].load(Ordering::Acquire)) {
            Some((p, g, _)) if g == self.generation => Some(p),
            _ => None,
        }
    }

    /// Resolves when the table has ended this connection; says why.
    pub async fn ended(&self) -> Ended {
        loop {
            if let Some(why) = self.ended_now() {
                return why;
            }
            self.kill.notified().await;
        }
    }

    fn ended_now(&self) -> Option<Ended> {
        match self.ended.load(Ordering::Acquire) {
            1 => Some(Ended::Reclaimed),
            2 => Some(Ended::TimedOut),
            3 => Some(Ended::Penalized),
            4 => Some(Ended::Flooded),
            _ => None,
        }
    }

    /// Ends the connection now (the first reason given is kept) and frees its slot.
    pub fn end(&self, why: Ended) {
        let code = match why {
            Ended::Reclaimed => 1,
            Ended::TimedOut => 2,
            Ended::Penalized => 3,
            Ended::Flooded => 4,
        };
        if self
            .ended
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.kill.notify_one();
        }
        self.table.remove(self);
    }

    /// Asks the connection to close gracefully; `true` the first time only.
    pub fn ask_to_close(&self) -> bool {
        let first = !self.closing.swap(true, Ordering::AcqRel);
        if first {
            self.close.notify_one();
        }
        first
    }

    /// Counts one more request; returns how many this connection has served with it.
    pub fn next_request(&self) -> u32 {
        self.requests
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1)
    }

    /// Counts one more 429 answered here; returns how many this connection has had.
    pub fn next_refusal(&self) -> u32 {
        self.refusals
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1)
    }

    /// A request entered the service: the connection is busy until [`Self::request_done`].
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set_phase(Phase::Busy);
    }

    /// A request left the service (answered, or dropped with its client).
    pub fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.set_phase(Phase::Idle);
        }
    }

    /// A request's body starts arriving: the connection may be reclaimed as stalled until
    /// [`Self::body_read`] (no ballot is accepted before its body is whole).
    pub fn body_started(&self) {
        self.reading_body.fetch_add(1, Ordering::AcqRel);
        self.set_phase(Phase::Body);
    }

    /// The body is whole (or abandoned): the request is being processed.
    pub fn body_read(&self) {
        self.reading_body.fetch_sub(1, Ordering::AcqRel);
        self.set_phase(Phase::Busy);
    }

    /// Whether every request in flight is still reading its body (so none is being
    /// processed). The phase word is a hint written last-writer-wins by HTTP/2 streams;
    /// these counters are the truth a reclaim checks before ending a connection.
    fn reclaimable(&self) -> bool {
        let in_flight = self.in_flight.load(Ordering::Acquire);
        in_flight == 0 || self.reading_body.load(Ordering::Acquire) >= in_flight
    }
}

/// A connection's hold on its slot: dropping it (when the connection ends) frees the slot,
/// unless the table already gave it to someone else.
#[derive(Debug)]
pub struct Held(Arc<ConnState>);

impl Held {
    /// The shared state, for the HTTP front and the timers.
    pub fn state(&self) -> &Arc<ConnState> {
        &self.0
    }
}

impl std::ops::Deref for Held {
    type Target = ConnState;
    fn deref(&self) -> &ConnState {
        &self.0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.table.remove(&self.0);
    }
}

/// The table. One per server, shared by its listeners.
#[derive(Debug)]
pub struct ConnTable {
    /// One word per slot (see the module comment); 0 is an empty slot.
    words: Box<[AtomicU64]>,
    /// Who holds each slot, and the free slots. Taken on open, close and reclaim only.
    slots: Mutex<Slots>,
    /// How many of the least valuable connections one newcomer reclaims at once.
    reclaim_batch: usize,
    /// How long a connection must have been idle to rank as idle keep-alive (see
    /// [`Phase::reclaim_rank`]).
    idle_grace_ms: u64,
    /// How long a new connection's silent and hello phases rank behind stalled ones.
    new_grace_ms: u64,
    epoch: Instant,
    open: AtomicUsize,
}

#[derive(Debug)]
struct Slots {
    held: Vec<Option<Arc<ConnState>>>,
    generations: Vec<u16>,
    free: Vec<usize>,
}

/// One connection reclaimed to make room, for the caller to count and remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reclaim {
    pub phase: Phase,
    /// Its reclaim rank ([`Phase::reclaim_rank`]).
    pub rank: u8,
    pub client: IpAddr,
}

impl Reclaim {
    /// Whether the connection held its slot without using it (ranks 0 to 3; see
    /// [`Phase::wasted`]): not a whole ClientHello, not one that had just become idle or
    /// just been accepted.
    pub fn wasted(&self) -> bool {
        self.rank <= 3
    }
}

/// The connections reclaimed by one call.
pub type Reclaimed = Vec<Reclaim>;

impl ConnTable {
    pub fn new(
        capacity: usize,
        reclaim_batch: usize,
        idle_grace_ms: u64,
        new_grace_ms: u64,
    ) -> Arc<ConnTable> {
        let capacity = capacity.max(1);
        Arc::new(ConnTable {
            words: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            slots: Mutex::new(Slots {
                held: vec![None; capacity],
                generations: vec![0; capacity],
                // Popped from the end: slot 0 first, so a small table stays at the front.
                free: (0..capacity).rev().collect(),
            }),
            reclaim_batch: reclaim_batch.clamp(1, capacity),
            idle_grace_ms,
            new_grace_ms,
            epoch: Instant::now(),
            open: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves at worst one slot mis-filed; keep serving
        // rather than poison every later accept.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Slots in all (`max_connections`).
    pub fn capacity(&self) -> usize {
        self.words.len()
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Takes a slot for a new connection from `client`, in phase [`Phase::Silent`]. When
    /// the table is full, first reclaims up to `reclaim_batch` of its least valuable
    /// connections (their phases are returned for counting). `None` when every connection
    /// is being processed and none can be given up.
    pub fn insert(self: &Arc<Self>, client: IpAddr) -> (Option<Held>, Reclaimed) {
        let mut slots = self.lock();
        let mut reclaimed = Vec::new();
        if slots.free.is_empty() {
            reclaimed = self.reclaim(&mut slots, self.reclaim_batch);
        }
        let Some(slot) = slots.free.pop() else {
            return (None, reclaimed);
        };
        let generation = slots.generations[slot].wrapping_add(1);
        slots.generations[slot] = generation;
        let conn = Arc::new(ConnState {
            client,
            table: self.clone(),
            slot,
            generation,
            requests: AtomicU32::new(0),
            refusals: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
            reading_body: AtomicUsize::new(0),
            close: Notify::new(),
            closing: AtomicBool::new(false),
            kill: Notify::new(),
            ended: AtomicU8::new(0),
        });
        self.words[slot].store(
            pack(Phase::Silent, generation, self.now_ms()),
            Ordering::Release,
        );
        slots.held[slot] = Some(conn.clone());
        self.open.fetch_add(1, Ordering::AcqRel);
        (Some(Held(conn)), reclaimed)
    }

    /// Frees `conn`'s slot if it still holds it.
    fn remove(&self, conn: &ConnState) {
        let mut slots = self.lock();
        let holds = slots.held[conn.slot]
            .as_ref()
            .is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), conn));
        if holds {
            self.release(&mut slots, conn.slot);
        }
    }

    fn release(&self, slots: &mut Slots, slot: usize) {
        slots.held[slot] = None;
        self.words[slot].store(0, Ordering::Release);
        slots.free.push(slot);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Ends up to `n` of the least valuable connections: lowest reclaim rank, then oldest
    /// phase start. Called with the lock held.
    fn reclaim(&self, slots: &mut Slots, n: usize) -> Reclaimed {
        self.reclaim_where(slots, n, |_| true)
    }

    /// Ends up to `n` of the oldest connections in `phase` (a body still arriving, when the
    /// body slots are full): the same reclaim, limited to one phase.
    pub fn reclaim_phase(&self, phase: Phase, n: usize) -> Reclaimed {
        let mut slots = self.lock();
        self.reclaim_where(&mut slots, n, |p| p == phase)
    }

    fn reclaim_where(
        &self,
        slots: &mut Slots,
        n: usize,
        wanted: impl Fn(Phase) -> bool,
    ) -> Reclaimed {
        let now = self.now_ms();
        let mut candidates: Vec<(u8, u64, usize)> = self
            .words
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| {
                let (phase, _, since) = unpack(w.load(Ordering::Acquire))?;
                if !wanted(phase) {
                    return None;
                }
                let age = now.saturating_sub(since);
                let rank =
                    phase.reclaim_rank(age >= self.idle_grace_ms, age < self.new_grace_ms)?;
                Some((rank, since, slot))
            })
            .collect();
        if candidates.len() > n {
            candidates.select_nth_unstable(n - 1);
            candidates.truncate(n);
        }
        candidates.sort_unstable();
        let mut reclaimed = Vec::with_capacity(candidates.len());
        for (rank, _, slot) in candidates {
            let Some(conn) = slots.held[slot].clone() else {
                continue;
            };
            // The word is a hint; the counters are the truth (a ballot in flight stays).
            let Some(phase) = conn.phase() else { continue };
            if phase.reclaim_rank(true, false).is_none() || !conn.reclaimable() {
                continue;
            }
            if conn
                .ended
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                conn.kill.notify_one();
            }
            self.release(slots, slot);
            reclaimed.push(Reclaim {
                phase,
                rank,
                client: conn.client,
            });
        }
        reclaimed
    }

    /// Every held connection whose phase began before `deadline_ms(phase)` ago — those
    /// past their timeout — with the phase it is in. Lock-free: a scan of the slot words.
    pub fn overdue(
        &self,
        timeout_ms: impl Fn(Phase) -> Option<u64>,
    ) -> Vec<(Arc<ConnState>, Phase)> {
        let now = self.now_ms();
        let late: Vec<(usize, u16, Phase)> = self
            .words
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| {
                let (phase, generation, since) = unpack(w.load(Ordering::Acquire))?;
                let limit = timeout_ms(phase)?;
                (now.saturating_sub(since) >= limit).then_some((slot, generation, phase))
            })
            .collect();
        if late.is_empty() {
            return Vec::new();
        }
        let slots = self.lock();
        late.into_iter()
            .filter_map(|(slot, generation, phase)| {
                let conn = slots.held[slot].as_ref()?;
                (conn.generation == generation).then(|| (conn.clone(), phase))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, i])
    }

    fn phases(r: &Reclaimed) -> Vec<Phase> {
        r.iter().map(|r| r.phase).collect()
    }

    /// Phase starts are kept in milliseconds: two inserts in one millisecond tie, and the
    /// slot index breaks the tie. The order tests below need distinct starts.
    fn tick() {
        std::thread::sleep(Duration::from_millis(3));
    }

    #[test]
    fn a_full_table_reclaims_idle_then_silent_then_stalled_and_never_busy() {
        let table = ConnTable::new(4, 1, 0, 0);
        let busy = table.insert(ip(1)).0.unwrap();
        busy.request_started();
        let stalled = table.insert(ip(2)).0.unwrap();
        stalled.set_phase(Phase::Hello);
        tick();
        let silent = table.insert(ip(3)).0.unwrap();
        let idle = table.insert(ip(4)).0.unwrap();
        idle.set_phase(Phase::Idle);
        assert_eq!(table.open(), 4);

        tick();
        let (a, r) = table.insert(ip(5));
        assert!(a.is_some());
        assert_eq!(phases(&r), vec![Phase::Idle]);
        assert_eq!(idle.ended_now(), Some(Ended::Reclaimed));
        tick();
        let (b, r) = table.insert(ip(6));
        assert!(b.is_some());
        assert_eq!(phases(&r), vec![Phase::Silent]);
        assert_eq!(silent.ended_now(), Some(Ended::Reclaimed));
        // Newcomers are silent too, and younger: the stalled hello ranks after them,
        // so the oldest silent newcomer goes next.
        let a = a.unwrap();
        let (_c, r) = table.insert(ip(7));
        assert_eq!(phases(&r), vec![Phase::Silent]);
        assert_eq!(a.ended_now(), Some(Ended::Reclaimed));
        assert_eq!(busy.ended_now(), None);
        assert_eq!(stalled.ended_now(), None);
        assert_eq!(table.open(), 4);
    }

    #[test]
    fn a_connection_that_just_became_idle_ranks_behind_silent_ones() {
        // A voter's connection right after its handshake: idle by phase, about to speak.
        let table = ConnTable::new(2, 1, 60_000, 0);
        let silent = table.insert(ip(1)).0.unwrap();
        tick();
        let voter = table.insert(ip(2)).0.unwrap();
        voter.set_phase(Phase::Idle);
        let (_n, r) = table.insert(ip(3));
        assert_eq!(phases(&r), vec![Phase::Silent]);
        assert_eq!(silent.ended_now(), Some(Ended::Reclaimed));
        assert_eq!(voter.ended_now(), None);
    }

    #[test]
    fn a_whole_client_hello_ranks_after_every_stalled_connection() {
        // The voter's ClientHello came whole, long ago (a busy server); the attackers'
        // hello, head and body are younger but stalled: they go first, oldest first.
        let table = ConnTable::new(4, 1, 60_000, 0);
        let voter = table.insert(ip(1)).0.unwrap();
        voter.set_phase(Phase::Handshake);
        tick();
        let body = table.insert(ip(2)).0.unwrap();
        body.request_started();
        body.body_started();
        tick();
        let hello = table.insert(ip(3)).0.unwrap();
        hello.set_phase(Phase::Hello);
        tick();
        let head = table.insert(ip(4)).0.unwrap();
        head.set_phase(Phase::Headers);
        let (mut order, mut busy) = (Vec::new(), Vec::new());
        for i in 5..8 {
            tick();
            let (n, r) = table.insert(ip(i));
            let n = n.unwrap();
            n.request_started();
            busy.push(n);
            assert_eq!(r.len(), 1);
            assert!(r[0].wasted());
            order.push((r[0].phase, r[0].client));
        }
        assert_eq!(
            order,
            vec![
                (Phase::Hello, ip(3)),
                (Phase::Body, ip(2)),
                (Phase::Headers, ip(4))
            ]
        );
        assert_eq!(voter.ended_now(), None);
        // Nothing else left: the voter goes last, and is not counted a waster.
        let (_n, r) = table.insert(ip(9));
        assert_eq!(phases(&r), vec![Phase::Handshake]);
        assert!(!r[0].wasted());
    }

    #[test]
    fn a_just_accepted_connection_is_spared_and_not_counted_a_waster() {
        // A voter's connection between its accept and its task's first read (hello, as
        // the listener marks one whose bytes are already in), beside an attacker's hello
        // that has stalled past the grace and another voter's whole hello, older still:
        // the attacker's goes, and counts as wasted.
        let table = ConnTable::new(4, 1, 0, 500);
        let whole = table.insert(ip(9)).0.unwrap();
        whole.set_phase(Phase::Handshake);
        let stalled = table.insert(ip(1)).0.unwrap();
        stalled.set_phase(Phase::Hello);
        std::thread::sleep(Duration::from_millis(600));
        let voter = table.insert(ip(2)).0.unwrap();
        voter.set_phase(Phase::Hello);
        let _silent = table.insert(ip(3)).0.unwrap();
        let (_n, r) = table.insert(ip(4));
        assert_eq!((r[0].phase, r[0].client), (Phase::Hello, ip(1)));
        assert!(r[0].wasted());
        assert_eq!(stalled.ended_now(), Some(Ended::Reclaimed));
        // Young ones and the whole hello left: the oldest young one goes, before the whole
        // hello, and it had no time to waste its slot.
        let (_n, r) = table.insert(ip(5));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].rank, 4);
        assert!(!r[0].wasted());
        // (Starts within one millisecond tie, and the slot index breaks the tie.)
        assert!([ip(2), ip(3), ip(4)].contains(&r[0].client), "{r:?}");
        assert_eq!(whole.ended_now(), None);
        // Past the grace, the same phases rank as silent and hello again.
        std::thread::sleep(Duration::from_millis(600));
        let (_n, r) = table.insert(ip(6));
        assert!(r[0].rank <= 2 && r[0].wasted(), "{r:?}");
        assert_eq!(whole.ended_now(), None);
    }

    #[test]
    fn reclaim_phase_takes_the_oldest_of_that_phase_only() {
        let table = ConnTable::new(8, 1, 0, 0);
        let idle = table.insert(ip(1)).0.unwrap();
        idle.set_phase(Phase::Idle);
        let old_body = table.insert(ip(2)).0.unwrap();
        old_body.request_started();
        old_body.body_started();
        tick();
        let new_body = table.insert(ip(3)).0.unwrap();
        new_body.request_started();
        new_body.body_started();
        let r = table.reclaim_phase(Phase::Body, 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].client, ip(2));
        assert_eq!(old_body.ended_now(), Some(Ended::Reclaimed));
        assert_eq!(new_body.ended_now(), None);
        assert_eq!(idle.ended_now(), None);
    }

    #[test]
    fn a_table_of_busy_connections_refuses_the_newcomer() {
        let table = ConnTable::new(2, 4, 0, 0);
        let held: Vec<_> = (0..2)
            .map(|i| {
                let c = table.insert(ip(i)).0.unwrap();
                c.request_started();
                c
            })
            .collect();
        let (c, r) = table.insert(ip(9));
        assert!(c.is_none());
        assert!(r.is_empty());
        drop(held);
        assert_eq!(table.open(), 0);
        assert!(table.insert(ip(9)).0.is_some());
    }

    #[test]
    fn a_ballot_whose_body_is_whole_is_never_reclaimed_though_its_word_says_idle() {
        let table = ConnTable::new(1, 1, 0, 0);
        let c = table.insert(ip(1)).0.unwrap();
        c.request_started();
        c.body_started();
        c.body_read();
        // An HTTP/2 sibling stream finishing writes Idle last.
        c.set_phase(Phase::Idle);
        let (n, _) = table.insert(ip(2));
        assert!(n.is_none());
        assert_eq!(c.ended_now(), None);
        // A body still arriving may be given up.
        let table = ConnTable::new(1, 1, 0, 0);
        let c = table.insert(ip(1)).0.unwrap();
        c.request_started();
        c.body_started();
        let (n, r) = table.insert(ip(2));
        assert!(n.is_some());
        assert_eq!(phases(&r), vec![Phase::Body]);
    }

    #[test]
    fn a_reclaimed_connection_cannot_write_over_its_successor() {
        let table = ConnTable::new(1, 1, 0, 0);
        let old = table.insert(ip(1)).0.unwrap();
        old.set_phase(Phase::Idle);
        let new = table.insert(ip(2)).0.unwrap();
        new.request_started();
        old.set_phase(Phase::Idle);
        assert_eq!(new.phase(), Some(Phase::Busy));
        drop(old);
        assert_eq!(
            table.open(),
            1,
            "the old one's drop frees nothing of the new one's"
        );
    }

    #[test]
    fn overdue_lists_only_phases_past_their_timeout() {
        let table = ConnTable::new(8, 1, 0, 0);
        let silent = table.insert(ip(1)).0.unwrap();
        let idle = table.insert(ip(2)).0.unwrap();
        idle.set_phase(Phase::Idle);
        let late = table.overdue(|p| (p == Phase::Silent).then_some(0));
        assert_eq!(late.len(), 1);
        assert!(Arc::ptr_eq(&late[0].0, silent.state()));
        assert!(table.overdue(|_| Some(60_000)).is_empty());
        assert!(table.overdue(|_| None).is_empty());
    }
}
