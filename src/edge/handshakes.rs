//! Who gets the next handshake slot. A handshake's crypto is the dearest thing a client can
//! make the server do, and under a flood there are more whole ClientHellos waiting than
//! slots. A first-come queue then makes a voter wait behind every hello of the flood — the
//! flood decides the voter's wait. So the slots are handed out:
//!
//! - **wasters last**: a source that has lately made a habit of holding connections
//!   without using them ([`super::accept`]) waits behind everyone else, and its handshakes
//!   hold at most `waster_handshake_share_pct` of the slots together;
//! - **thinnest prefix first** (IPv4 /24, IPv6 /48), within each of the two classes: the
//!   next slot goes to the prefix with the fewest hellos waiting, oldest hello first (ties:
//!   the oldest). A botnet's subnets each have many hellos waiting; a voter's prefix has
//!   its own one, or a few — it goes first, whatever the flood queued before it. (Plain
//!   round-robin was measured first: voters who share a /24 got one slot a round of the
//!   flood's 256 prefixes, fewer than they arrived, and timed out.)
//! - **a bounded queue**: past `max_handshakes_waiting` hellos, the oldest hello of the
//!   fattest prefix is shed (its connection closed at once), wasters' first — as FQ-CoDel
//!   drops from its fattest flow. A hello that waits longer than the handshake timeout
//!   lets go anyway; shedding early frees its table slot and spares the voter's.
//!
//! The price of thinnest-first: a prefix with many voters arriving at once (a carrier NAT)
//! looks like a flood's subnet and waits with it. Slots are never left idle while anyone
//! waits (work-conserving). Hand-written: tokio's `Semaphore` is first-come only, and no
//! maintained crate offers a fair-queued, two-class semaphore. Choosing a prefix scans the
//! prefixes that have hellos waiting, at most `max_handshakes_waiting` of them: a few
//! microseconds a handshake.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use tokio::sync::oneshot;

use super::source::prefix_key;

/// The two classes, served in this order.
const OTHERS: usize = 0;
const WASTERS: usize = 1;

/// One waiting hello: its place in line, and where to send its slot. Dropping the sender
/// unsent sheds it.
#[derive(Debug)]
struct Waiter {
    seq: u64,
    tx: oneshot::Sender<()>,
}

#[derive(Debug, Default)]
struct Fair {
    /// Waiting hellos per prefix, oldest first.
    queues: HashMap<IpNet, VecDeque<Waiter>>,
    waiting: usize,
}

impl Fair {
    fn push(&mut self, prefix: IpNet, waiter: Waiter) {
        self.queues.entry(prefix).or_default().push_back(waiter);
        self.waiting += 1;
    }

    /// The prefix `better` prefers among those waiting, compared on (hellos waiting, seq of
    /// the oldest).
    fn pick(&self, better: impl Fn((usize, u64), (usize, u64)) -> bool) -> Option<IpNet> {
        let mut best: Option<(IpNet, (usize, u64))> = None;
        for (prefix, q) in &self.queues {
            let Some(head) = q.front() else { continue };
            let key = (q.len(), head.seq);
            if best.is_none_or(|(_, b)| better(key, b)) {
                best = Some((*prefix, key));
            }
        }
        best.map(|(p, _)| p)
    }

    fn pop_from(&mut self, prefix: IpNet) -> Option<Waiter> {
        let queue = self.queues.get_mut(&prefix)?;
        let waiter = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&prefix);
        }
        self.waiting = self.waiting.saturating_sub(1);
        waiter
    }

    /// The next in turn, live or gone (the caller checks): the oldest hello of the prefix
    /// with the fewest waiting.
    fn pop(&mut self) -> Option<Waiter> {
        let prefix = self.pick(|a, b| a < b)?;
        self.pop_from(prefix)
    }

    /// The oldest hello of the prefix with the most waiting (ties: the oldest), to shed.
    fn pop_fattest(&mut self) -> Option<Waiter> {
        let prefix = self.pick(|(la, sa), (lb, sb)| la > lb || (la == lb && sa < sb))?;
        self.pop_from(prefix)
    }

    /// Drops the entries of hellos whose connections have gone.
    fn sweep(&mut self) {
        self.queues.retain(|_, q| {
            q.retain(|w| !w.tx.is_closed());
            !q.is_empty()
        });
        self.waiting = self.queues.values().map(VecDeque::len).sum();
    }
}

#[derive(Debug, Default)]
struct Inner {
    in_flight: usize,
    wasters_in_flight: usize,
    classes: [Fair; 2],
    next_seq: u64,
}

/// The handshake slots of a server.
#[derive(Debug)]
pub struct Handshakes {
    inner: Mutex<Inner>,
    max: usize,
    max_wasters: usize,
    /// Past this many hellos waiting, the fattest prefix's oldest is shed.
    max_waiting: usize,
}

/// A handshake slot, held until dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<Handshakes>,
    waster: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.owner.release(self.waster);
    }
}

impl Handshakes {
    /// `max` slots, of which wasters may hold `max_wasters` together; at most
    /// `max_waiting` hellos wait for one.
    pub fn new(max: usize, max_wasters: usize, max_waiting: usize) -> Arc<Handshakes> {
        Arc::new(Handshakes {
            inner: Mutex::new(Inner::default()),
            max: max.max(1),
            max_wasters: max_wasters.clamp(1, max.max(1)),
            max_waiting: max_waiting.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves at worst one count off; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handshakes holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Hellos waiting for a slot now (live or not yet swept).
    pub fn waiting(&self) -> usize {
        let inner = self.lock();
        inner.classes[OTHERS].waiting + inner.classes[WASTERS].waiting
    }

    /// The most slots.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Waits for a slot for a handshake from `client`; `None` if the hello was shed.
    pub async fn acquire(self: &Arc<Self>, client: IpAddr, waster: bool) -> Option<Slot> {
        let class = if waster { WASTERS } else { OTHERS };
        let rx = {
            let mut inner = self.lock();
            // Straight in when a slot is free and nobody of this class or before waits.
            let ahead = inner.classes[OTHERS].waiting
                + if waster {
                    inner.classes[WASTERS].waiting
                } else {
                    0
                };
            if ahead == 0 && self.may_take(&inner, waster) {
                take(&mut inner, waster);
                return Some(self.slot(waster));
            }
            let (tx, rx) = oneshot::channel();
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.classes[class].push(prefix_key(client), Waiter { seq, tx });
            self.shed_past_bound(&mut inner);
            // A slot may have freed between the check above and the push (a waiter of
            // another class gone): hand out what can be handed out.
            self.grant(&mut inner);
            rx
        };
        let mut wait = Waiting {
            rx: Some(rx),
            owner: self,
            waster,
        };
        wait.granted().await.then(|| self.slot(waster))
    }

    /// Past `max_waiting`: first forgets hellos whose connections have gone, then sheds
    /// the oldest hello of the fattest prefix, wasters' first.
    fn shed_past_bound(&self, inner: &mut Inner) {
        let waiting = |i: &Inner| i.classes[OTHERS].waiting + i.classes[WASTERS].waiting;
        if waiting(inner) <= self.max_waiting {
            return;
        }
        inner.classes[OTHERS].sweep();
        inner.classes[WASTERS].sweep();
        while waiting(inner) > self.max_waiting {
            let class = if inner.classes[WASTERS].waiting > 0 {
                WASTERS
            } else {
                OTHERS
            };
            let Some(shed) = inner.classes[class].pop_fattest() else {
                break;
            };
            if !shed.tx.is_closed() {
                super::metrics::reject("l2", "handshake_queue_full");
            }
            drop(shed);
        }
    }

    fn slot(self: &Arc<Self>, waster: bool) -> Slot {
        Slot {
            owner: self.clone(),
            waster,
        }
    }

    fn may_take(&self, inner: &Inner, waster: bool) -> bool {
        inner.in_flight < self.max && (!waster || inner.wasters_in_flight < self.max_wasters)
    }

    fn release(&self, waster: bool) {
        let mut inner = self.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
        if waster {
            inner.wasters_in_flight = inner.wasters_in_flight.saturating_sub(1);
        }
        self.grant(&mut inner);
    }

    /// Hands free slots to waiters: everyone else first, then wasters within their share.
    fn grant(&self, inner: &mut Inner) {
        for (class, waster) in [(OTHERS, false), (WASTERS, true)] {
            while self.may_take(inner, waster) {
                let Some(waiter) = inner.classes[class].pop() else {
                    break;
                };
                // Counted before the send: the waiter's side gives it back if it has gone
                // by the time it looks (see `Waiting`).
                take(inner, waster);
                if waiter.tx.send(()).is_err() {
                    untake(inner, waster);
                }
            }
        }
    }
}

fn take(inner: &mut Inner, waster: bool) {
    inner.in_flight += 1;
    if waster {
        inner.wasters_in_flight += 1;
    }
}

fn untake(inner: &mut Inner, waster: bool) {
    inner.in_flight = inner.in_flight.saturating_sub(1);
    if waster {
        inner.wasters_in_flight = inner.wasters_in_flight.saturating_sub(1);
    }
}

/// A hello waiting for its slot. If the connection goes (its task is dropped) after a slot
/// was sent to it but before it took it, the slot is given back on drop.
struct Waiting<'a> {
    rx: Option<oneshot::Receiver<()>>,
    owner: &'a Arc<Handshakes>,
    waster: bool,
}

impl Waiting<'_> {
    /// Whether the slot came (`false`: shed, its sender dropped unsent).
    async fn granted(&mut self) -> bool {
        let got = match self.rx.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        self.rx = None;
        got
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            // After close(), no send can succeed; a send that came before is still in.
            rx.close();
            if rx.try_recv().is_ok() {
                self.owner.release(self.waster);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(a: u8, b: u8) -> IpAddr {
        IpAddr::from([10, 0, a, b])
    }

    /// Starts a hello waiting for a slot; records in `order` when it gets one, and keeps
    /// the slot (`None`: shed) in its join handle's output.
    fn waiter(
        h: &Arc<Handshakes>,
        client: IpAddr,
        waster: bool,
        order: &Arc<Mutex<Vec<IpAddr>>>,
    ) -> tokio::task::JoinHandle<Option<Slot>> {
        let (h, order) = (h.clone(), order.clone());
        tokio::spawn(async move {
            let slot = h.acquire(client, waster).await;
            if slot.is_some() {
                order.lock().unwrap().push(client);
            }
            slot
        })
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    #[tokio::test]
    async fn a_voters_thin_prefix_goes_before_a_floods_queued_hellos() {
        let h = Handshakes::new(1, 1, 100);
        let first = h.acquire(ip(9, 9), false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        // A flood of five hellos from 10.0.1.0/24, then one voter from 10.0.2.0/24.
        let mut tasks = Vec::new();
        for i in 1..=5 {
            tasks.push(waiter(&h, ip(1, i), false, &order));
            settle().await;
        }
        tasks.push(waiter(&h, ip(2, 1), false, &order));
        settle().await;
        assert_eq!(h.waiting(), 6);
        drop(first);
        // Each handshake ends (its slot dropped) before the next is handed out.
        for n in 1..=6 {
            settle().await;
            assert_eq!(order.lock().unwrap().len(), n, "one slot: one at a time");
            let i = tasks.iter().position(|t| t.is_finished()).unwrap();
            drop(tasks.remove(i).await.unwrap());
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order,
            vec![ip(2, 1), ip(1, 1), ip(1, 2), ip(1, 3), ip(1, 4), ip(1, 5)],
            "the voter's one hello first, then the flood's, oldest first"
        );
        assert_eq!(h.in_flight(), 0);
    }

    #[tokio::test]
    async fn past_the_bound_the_fattest_prefixs_oldest_hello_is_shed() {
        let h = Handshakes::new(1, 1, 3);
        let held = h.acquire(ip(9, 9), false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut flood = Vec::new();
        for i in 1..=3 {
            flood.push(waiter(&h, ip(1, i), false, &order));
            settle().await;
        }
        let voter = waiter(&h, ip(2, 1), false, &order);
        settle().await;
        // Four waiting, bound three: the flood's oldest goes, the voter stays.
        assert_eq!(h.waiting(), 3);
        assert!(flood[0].is_finished());
        assert!(flood.remove(0).await.unwrap().is_none(), "shed");
        drop(held);
        settle().await;
        assert_eq!(order.lock().unwrap().clone(), vec![ip(2, 1)]);
        drop(voter.await.unwrap());
        for f in flood {
            settle().await;
            drop(f.await.unwrap());
        }
        assert_eq!(h.in_flight(), 0);
        assert_eq!(h.waiting(), 0);
    }

    #[tokio::test]
    async fn wasters_wait_behind_everyone_and_hold_only_their_share() {
        let h = Handshakes::new(2, 1, 100);
        let order = Arc::new(Mutex::new(Vec::new()));
        // Wasters may hold one of the two slots.
        let w1 = h.acquire(ip(1, 1), true).await;
        let w2 = waiter(&h, ip(1, 2), true, &order);
        settle().await;
        assert_eq!(
            h.in_flight(),
            1,
            "the second waster waits though a slot is free"
        );
        let voter = h.acquire(ip(2, 1), false).await;
        assert_eq!(h.in_flight(), 2);
        let voter2 = waiter(&h, ip(3, 1), false, &order);
        settle().await;
        // The waster's slot frees: the waiting voter goes before the waiting waster.
        drop(w1);
        settle().await;
        assert_eq!(order.lock().unwrap().clone(), vec![ip(3, 1)]);
        drop(voter);
        let s = w2.await.unwrap();
        assert_eq!(order.lock().unwrap().clone(), vec![ip(3, 1), ip(1, 2)]);
        drop(s);
        drop(voter2.await.unwrap());
        assert_eq!(h.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_gives_back_nothing_it_did_not_take() {
        let h = Handshakes::new(1, 1, 100);
        let held = h.acquire(ip(1, 1), false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let gone = waiter(&h, ip(2, 1), false, &order);
        let next = waiter(&h, ip(3, 1), false, &order);
        settle().await;
        gone.abort();
        settle().await;
        drop(held);
        let s = next.await.unwrap();
        assert_eq!(h.in_flight(), 1);
        drop(s);
        assert_eq!(h.in_flight(), 0);
        assert_eq!(h.waiting(), 0);
    }
}
