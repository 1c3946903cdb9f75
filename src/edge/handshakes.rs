//! Who gets the next handshake slot. A handshake's crypto is the dearest thing a client can
//! make the server do, and under a flood there are more whole ClientHellos waiting than
//! slots. A first-come queue then makes a voter wait behind every hello of the flood — the
//! flood decides the voter's wait. So the slots are handed out:
//!
//! - **wasters last**: a source that has lately made a habit of holding connections
//!   without using them ([`super::accept`]) waits behind everyone else, and its handshakes
//!   hold at most `waster_handshake_share_pct` of the slots together;
//! - **fairly between prefixes** (IPv4 /24, IPv6 /48), within each of the two classes, as
//!   FQ-CoDel schedules flows: a prefix that had nothing waiting when its hello came (a
//!   voter's, most of the time) is served first; prefixes that still have hellos waiting
//!   after their turn go round-robin, oldest hello first within a prefix. A botnet's
//!   thousand waiting hellos from one subnet take one turn a round; a voter's one hello
//!   from its own does not wait for the round.
//!
//! Slots are never left idle while anyone waits (work-conserving), and nobody is refused
//! here: a hello waits until it gets a slot or its handshake timeout ends its connection.
//! Hand-written: tokio's `Semaphore` is first-come only, and no maintained crate offers a
//! fair-queued, two-class semaphore. The queues hold at most one entry per connection in
//! the table (bounded by `max_connections`), plus entries of connections that have gone,
//! dropped as they are met and swept when they pile up.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use tokio::sync::oneshot;

use super::source::prefix_key;

/// The two classes, served in this order.
const OTHERS: usize = 0;
const WASTERS: usize = 1;

#[derive(Debug, Default)]
struct Fair {
    /// Waiting hellos per prefix, oldest first.
    queues: HashMap<IpNet, VecDeque<oneshot::Sender<()>>>,
    /// Prefixes that had nothing waiting until their hello came (FQ-CoDel's new flows): a
    /// voter's prefix, most of the time. Served before `ring`.
    fresh: VecDeque<IpNet>,
    /// Prefixes that still have hellos waiting after their turn, in turn order.
    ring: VecDeque<IpNet>,
    waiting: usize,
}

impl Fair {
    fn push(&mut self, prefix: IpNet, tx: oneshot::Sender<()>) {
        let queue = self.queues.entry(prefix).or_default();
        if queue.is_empty() {
            self.fresh.push_back(prefix);
        }
        queue.push_back(tx);
        self.waiting += 1;
    }

    /// The next waiter in turn, live or gone (the caller checks): fresh prefixes first,
    /// then the others round-robin.
    fn pop(&mut self) -> Option<oneshot::Sender<()>> {
        let prefix = self.fresh.pop_front().or_else(|| self.ring.pop_front())?;
        let queue = self.queues.get_mut(&prefix)?;
        let tx = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&prefix);
        } else {
            self.ring.push_back(prefix);
        }
        self.waiting = self.waiting.saturating_sub(1);
        tx
    }

    /// Drops the entries of hellos whose connections have gone.
    fn sweep(&mut self) {
        self.queues.retain(|_, q| {
            q.retain(|tx| !tx.is_closed());
            !q.is_empty()
        });
        let queues = &self.queues;
        self.fresh.retain(|p| queues.contains_key(p));
        self.ring.retain(|p| queues.contains_key(p));
        self.waiting = self.queues.values().map(VecDeque::len).sum();
    }
}

#[derive(Debug, Default)]
struct Inner {
    in_flight: usize,
    wasters_in_flight: usize,
    classes: [Fair; 2],
}

/// The handshake slots of a server.
#[derive(Debug)]
pub struct Handshakes {
    inner: Mutex<Inner>,
    max: usize,
    max_wasters: usize,
    /// Past this many queued entries, gone ones are swept.
    sweep_at: usize,
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
    /// `max` slots, of which wasters may hold `max_wasters` together; `bound`: the most
    /// live waiters there can be (the connection table's size).
    pub fn new(max: usize, max_wasters: usize, bound: usize) -> Arc<Handshakes> {
        Arc::new(Handshakes {
            inner: Mutex::new(Inner::default()),
            max: max.max(1),
            max_wasters: max_wasters.clamp(1, max.max(1)),
            sweep_at: bound.max(1024).saturating_mul(2),
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

    /// Waits for a slot for a handshake from `client`.
    pub async fn acquire(self: &Arc<Self>, client: IpAddr, waster: bool) -> Slot {
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
                return self.slot(waster);
            }
            let (tx, rx) = oneshot::channel();
            inner.classes[class].push(prefix_key(client), tx);
            let queued = inner.classes[OTHERS].waiting + inner.classes[WASTERS].waiting;
            if queued > self.sweep_at {
                inner.classes[OTHERS].sweep();
                inner.classes[WASTERS].sweep();
            }
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
        wait.granted().await;
        self.slot(waster)
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
                let Some(tx) = inner.classes[class].pop() else {
                    break;
                };
                // Counted before the send: the waiter's side gives it back if it has gone
                // by the time it looks (see `Waiting`).
                take(inner, waster);
                if tx.send(()).is_err() {
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
    async fn granted(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            // The sender is only dropped unsent by a sweep, which only drops the entries of
            // closed receivers: an error cannot reach a live waiter.
            let _ = rx.await;
        }
        self.rx = None;
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

    /// Starts a waiter; returns a receiver that fires when it got its slot (and keeps it
    /// until `hold` is dropped).
    fn waiter(
        h: &Arc<Handshakes>,
        client: IpAddr,
        waster: bool,
        order: &Arc<Mutex<Vec<IpAddr>>>,
    ) -> tokio::task::JoinHandle<Slot> {
        let (h, order) = (h.clone(), order.clone());
        tokio::spawn(async move {
            let slot = h.acquire(client, waster).await;
            order.lock().unwrap().push(client);
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
    async fn a_voters_fresh_prefix_goes_before_a_floods_waiting_hellos() {
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
        // The flood's prefix was fresh when its first hello came: it has the first turn.
        // Then the voter's fresh prefix goes before the flood's other four.
        assert_eq!(
            order[0],
            ip(1, 1),
            "the flood's first hello came to an empty queue"
        );
        assert_eq!(
            order[1],
            ip(2, 1),
            "the voter's fresh prefix before the flood's rest"
        );
        assert_eq!(&order[2..], &[ip(1, 2), ip(1, 3), ip(1, 4), ip(1, 5)]);
        assert_eq!(h.in_flight(), 0);
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
