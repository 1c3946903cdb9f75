//! A budget for the HTTP/2 control frames a client sends that oblige an answer: PING and
//! SETTINGS (not their ACKs). Each costs the server a frame written back, and a client can
//! send them forever without opening a stream (CVE-2019-9512 "Ping Flood", CVE-2019-9515
//! "Settings Flood"): urna-sim's `h2-frames` kind had 800,000 of each ACKed on single
//! connections, none closed, none seen by the penalty box. hyper's `h2` answers every one
//! and exposes no hook on received control frames, so the connection's decrypted byte
//! stream is scanned here — frame headers only, nine bytes a frame, no payload copied — as
//! netty's `Http2ControlFrameLimitEncoder` and nginx's flood checks bound the same thing.
//!
//! A token bucket per connection: `burst` frames at once, refilled at `per_s`. A browser
//! sends one SETTINGS and the odd keep-alive PING; past the budget the connection is closed.

use std::time::Instant;

/// The client's connection preface, before the first frame (RFC 9113 §3.4). A connection
/// that starts otherwise is HTTP/1.1 and is not scanned: this also catches HTTP/2 with
/// prior knowledge, which hyper's auto builder serves without ALPN.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const TYPE_SETTINGS: u8 = 0x4;
const TYPE_PING: u8 = 0x6;
const FLAG_ACK: u8 = 0x1;

/// The scanner and the bucket of one HTTP/2 connection (40 bytes or so).
#[derive(Debug)]
pub struct ControlBudget {
    /// Bytes of the preface matched so far.
    preface_at: u8,
    /// Not HTTP/2: nothing to count.
    off: bool,
    header: [u8; FRAME_HEADER_LEN],
    have: u8,
    /// Payload bytes left of the current frame.
    skip: u32,
    tokens: u32,
    burst: u32,
    per_s: u32,
    refilled: Instant,
}

impl ControlBudget {
    pub fn new(burst: u32, per_s: u32) -> ControlBudget {
        ControlBudget {
            preface_at: 0,
            off: false,
            header: [0; FRAME_HEADER_LEN],
            have: 0,
            skip: 0,
            tokens: burst,
            burst,
            per_s,
            refilled: Instant::now(),
        }
    }

    /// Scans bytes the client sent, in order. `false`: the client has sent more control
    /// frames than its budget allows, and the connection should be closed.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        // Scans to the end even past a refusal, so the frame boundaries stay right.
        let mut within = true;
        while !bytes.is_empty() && !self.off {
            if (self.preface_at as usize) < PREFACE.len() {
                let at = self.preface_at as usize;
                let n = bytes.len().min(PREFACE.len() - at);
                self.off = bytes[..n] != PREFACE[at..at + n];
                self.preface_at += n as u8;
                bytes = &bytes[n..];
            } else if self.skip > 0 {
                let n = bytes.len().min(self.skip as usize);
                self.skip -= n as u32;
                bytes = &bytes[n..];
            } else {
                let at = self.have as usize;
                let n = bytes.len().min(FRAME_HEADER_LEN - at);
                self.header[at..at + n].copy_from_slice(&bytes[..n]);
                self.have += n as u8;
                bytes = &bytes[n..];
                if self.have as usize == FRAME_HEADER_LEN {
                    self.have = 0;
                    let h = self.header;
                    self.skip = u32::from_be_bytes([0, h[0], h[1], h[2]]);
                    let (kind, flags) = (h[3], h[4]);
                    if (kind == TYPE_PING || kind == TYPE_SETTINGS)
                        && flags & FLAG_ACK == 0
                        && !self.take()
                    {
                        within = false;
                    }
                }
            }
        }
        within
    }

    /// Takes one token; refills (from the clock) only when the bucket is empty, so a
    /// well-behaved connection never reads the clock here.
    fn take(&mut self) -> bool {
        if self.tokens == 0 {
            let now = Instant::now();
            let earned = now.saturating_duration_since(self.refilled).as_millis() as u64
                * u64::from(self.per_s)
                / 1000;
            if earned == 0 {
                return false;
            }
            self.tokens = earned.min(u64::from(self.burst)) as u32;
            self.refilled = now;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags, 0, 0, 0, 0]);
        f.extend(payload);
        f
    }

    #[test]
    fn pings_past_the_burst_are_refused_and_acks_and_other_frames_are_free() {
        let mut b = ControlBudget::new(3, 0);
        assert!(b.feed(PREFACE));
        assert!(b.feed(&frame(TYPE_SETTINGS, 0, &[0; 6])));
        // ACKs, DATA, WINDOW_UPDATE and HEADERS cost nothing, however many.
        for _ in 0..1000 {
            assert!(b.feed(&frame(TYPE_SETTINGS, FLAG_ACK, &[])));
            assert!(b.feed(&frame(TYPE_PING, FLAG_ACK, &[7; 8])));
            assert!(b.feed(&frame(0x0, 0, &[6; 100])));
            assert!(b.feed(&frame(0x8, 0, &[0, 0, 1, 0])));
        }
        assert!(b.feed(&frame(TYPE_PING, 0, &[1; 8])));
        assert!(b.feed(&frame(TYPE_PING, 0, &[1; 8])));
        assert!(!b.feed(&frame(TYPE_PING, 0, &[1; 8])));
    }

    #[test]
    fn frames_split_anywhere_across_reads_are_counted_the_same() {
        // A PING's payload that looks like a PING header must not be counted: the scanner
        // skips payloads by their length, whatever the read boundaries.
        let fake = frame(TYPE_PING, 0, &[])[..8].to_vec();
        let mut stream = PREFACE.to_vec();
        for _ in 0..5 {
            stream.extend(frame(TYPE_PING, 0, &fake));
        }
        for chunk in [1, 2, 5, 9, 13, 64] {
            let mut b = ControlBudget::new(5, 0);
            assert!(stream.chunks(chunk).all(|c| b.feed(c)), "chunks of {chunk}");
            let mut b = ControlBudget::new(4, 0);
            assert!(
                !stream.chunks(chunk).all(|c| b.feed(c)),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn http1_is_not_scanned() {
        let mut b = ControlBudget::new(1, 0);
        let mut stream = b"POST /v1/ballots HTTP/1.1\r\n\r\n".to_vec();
        for _ in 0..10 {
            stream.extend(frame(TYPE_PING, 0, &[0; 8]));
        }
        assert!(stream.chunks(7).all(|c| b.feed(c)));
    }

    #[test]
    fn the_bucket_refills_with_time() {
        let mut b = ControlBudget::new(2, 10);
        assert!(b.feed(PREFACE));
        let ping = frame(TYPE_PING, 0, &[0; 8]);
        assert!(b.feed(&ping) && b.feed(&ping));
        assert!(!b.feed(&ping));
        std::thread::sleep(std::time::Duration::from_millis(300));
        // 3 earned, capped at the burst of 2.
        assert!(b.feed(&ping) && b.feed(&ping));
        assert!(!b.feed(&ping));
    }
}
