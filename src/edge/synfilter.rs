//! The penalty box in the kernel (Linux): a classic BPF socket filter on each listening
//! socket that drops every packet, SYNs included, from the sources the box holds.
//!
//! Refused at accept, a boxed source still costs the server an `accept()`, a descriptor and
//! a reset for each of its attempts, and the reset invites it to reconnect at once. Dropped
//! by the listener's filter, its SYN is discarded in the kernel's receive path before a
//! request socket exists: no accept, no reset, nothing for the process to do, and the
//! client's `connect()` stalls in SYN retransmits (1 s, 3 s, 7 s…) instead of failing
//! fast — HAProxy's `silent-drop` spirit, without `TCP_REPAIR` or an iptables rule.
//!
//! Hand-written because no well-kept crate builds classic BPF from a list of addresses
//! (the eBPF toolchains, aya and libbpf-rs, need a second compiler target and privileges
//! that `SO_ATTACH_FILTER` does not: any process may filter its own sockets). socket2
//! attaches it; the program itself is the short list below.
//!
//! The program, per packet: load the protocol; for IPv4, compare the source address with
//! each boxed /32; for IPv6, the first 64 bits of the source with each boxed /64; drop on a
//! match, keep otherwise. A linear scan: at most [`MAX_SOURCES`] entries, a few hundred
//! instructions on the common path, run (JIT-compiled) only for packets that reach the
//! listening socket — SYNs and the handshake's last ACK. A connection accepted while the
//! filter is on inherits it (the kernel clones a listener's filter into its children), so
//! the accept loop detaches it from each accepted socket: established connections never
//! run the list.

use ipnet::IpNet;
use socket2::SockFilter;

/// Most sources one filter holds: an IPv6 /64 takes 5 instructions and the kernel allows
/// 4,096 per program.
pub const MAX_SOURCES: usize = 800;

// Classic BPF opcodes (linux/filter.h), as u16 the way `sock_filter.code` holds them.
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Negative offsets reach the network header and the packet's metadata (the data pointer
/// of a TCP socket's filter sits at the TCP header).
const NET: u32 = libc::SKF_NET_OFF as u32;
const PROTOCOL: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;
/// `ret #0` drops the packet; any other value keeps that many bytes of it.
const DROP: u32 = 0;
const KEEP: u32 = u32::MAX;

/// The filter that drops packets from `sources` (penalty-box keys: IPv4 /32 and IPv6 /64;
/// any other prefix is matched on its first 32 or 64 bits) and keeps every other packet.
/// At most [`MAX_SOURCES`] are used.
pub fn program(sources: &[IpNet]) -> Vec<SockFilter> {
    let sources = &sources[..sources.len().min(MAX_SOURCES)];
    let v4: Vec<u32> = sources
        .iter()
        .filter_map(|n| match n {
            IpNet::V4(n) => Some(u32::from(n.network())),
            IpNet::V6(_) => None,
        })
        .collect();
    let v6: Vec<(u32, u32)> = sources
        .iter()
        .filter_map(|n| match n {
            IpNet::V6(n) => {
                let bits = u128::from(n.network());
                Some(((bits >> 96) as u32, (bits >> 64) as u32))
            }
            IpNet::V4(_) => None,
        })
        .collect();
    let op = SockFilter::new;
    let mut p = Vec::with_capacity(8 + 2 * v4.len() + 5 * v6.len());
    // 0: A = protocol. 1–2: IPv6 jumps (32-bit offset) past the IPv4 block.
    p.push(op(LD_H_ABS, 0, 0, PROTOCOL));
    p.push(op(JEQ_K, 0, 1, ETH_P_IPV6));
    // Past the jump: the IPv4 test (2), the load (1), two per address, the `ret` (1).
    let v4_block = 4 + 2 * v4.len() as u32;
    p.push(op(JA, 0, 0, v4_block));
    // 3: not IPv4 either: keep.
    p.push(op(JEQ_K, 1, 0, ETH_P_IP));
    p.push(op(RET_K, 0, 0, KEEP));
    // The IPv4 block: A = source address; each match drops.
    p.push(op(LD_W_ABS, 0, 0, NET + 12));
    for a in &v4 {
        p.push(op(JEQ_K, 0, 1, *a));
        p.push(op(RET_K, 0, 0, DROP));
    }
    p.push(op(RET_K, 0, 0, KEEP));
    // The IPv6 block: the source's first two words (the /64) against each entry.
    for (hi, lo) in &v6 {
        p.push(op(LD_W_ABS, 0, 0, NET + 8));
        p.push(op(JEQ_K, 0, 3, *hi));
        p.push(op(LD_W_ABS, 0, 0, NET + 12));
        p.push(op(JEQ_K, 0, 1, *lo));
        p.push(op(RET_K, 0, 0, DROP));
    }
    p.push(op(RET_K, 0, 0, KEEP));
    p
}

/// Puts the filter for `sources` on `socket` (a listening socket), or takes any filter off
/// when `sources` is empty.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn install(socket: &socket2::SockRef<'_>, sources: &[IpNet]) -> std::io::Result<()> {
    if sources.is_empty() {
        return uninstall(socket);
    }
    socket.attach_filter(&program(sources))
}

/// Takes the filter off `socket` (an accepted connection inherits its listener's). No
/// filter there is not an error.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn uninstall(socket: &socket2::SockRef<'_>) -> std::io::Result<()> {
    match socket.detach_filter() {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn install(_: &socket2::SockRef<'_>, _: &[IpNet]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "socket filters are Linux only",
    ))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn uninstall(_: &socket2::SockRef<'_>) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use socket2::{Domain, SockAddr, SockRef, Socket, Type};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
    use std::time::Duration;

    fn key(ip: IpAddr) -> IpNet {
        crate::edge::source::source_key(ip)
    }

    /// Connects from `from` to `to`, giving up after `wait`: Ok if the handshake completed.
    fn connect_from(from: IpAddr, to: SocketAddr, wait: Duration) -> std::io::Result<Socket> {
        let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
        s.bind(&SockAddr::from(SocketAddr::new(from, 0)))?;
        s.connect_timeout(&SockAddr::from(to), wait)?;
        Ok(s)
    }

    #[test]
    fn the_program_fits_the_kernel_limit_at_its_largest() {
        let v6: Vec<IpNet> = (0..MAX_SOURCES as u128 + 50)
            .map(|i| key(IpAddr::V6(Ipv6Addr::from(i << 64))))
            .collect();
        let p = program(&v6);
        assert!(p.len() <= libc::BPF_MAXINSNS as usize, "{}", p.len());
        assert_eq!(p.len(), 8 + 5 * MAX_SOURCES);
    }

    #[test]
    fn syns_from_boxed_sources_are_dropped_and_everyone_else_gets_in() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        let boxed: Vec<IpNet> = [77u8, 79]
            .iter()
            .map(|b| key(IpAddr::V4(Ipv4Addr::new(127, 0, 0, *b))))
            .collect();
        install(&SockRef::from(&listener), &boxed).unwrap();

        let err = connect_from(
            "127.0.0.77".parse().unwrap(),
            to,
            Duration::from_millis(400),
        )
        .expect_err("a boxed source's SYN must be dropped");
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            "the connect stalls (no reset): {err}"
        );
        // The neighbour in the same /24, and another address, get in.
        for b in [78u8, 1] {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, b));
            connect_from(from, to, Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("{from} must connect: {e}"));
            let (conn, peer) = listener.accept().unwrap();
            assert_eq!(peer.ip(), from);
            // The accepted socket inherited the filter; taking it off works.
            uninstall(&SockRef::from(&conn)).unwrap();
        }
        // Off again: the boxed source gets in.
        install(&SockRef::from(&listener), &[]).unwrap();
        connect_from("127.0.0.77".parse().unwrap(), to, Duration::from_secs(2))
            .expect("with the filter off, every source connects");
    }

    #[test]
    fn ipv6_sources_are_matched_on_their_64_bit_prefix() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback here: skipped");
            return;
        };
        let to = listener.local_addr().unwrap();
        // An unrelated /64 boxed: ::1 still connects.
        install(
            &SockRef::from(&listener),
            &[key("2001:db8::1".parse().unwrap())],
        )
        .unwrap();
        connect_from(Ipv6Addr::LOCALHOST.into(), to, Duration::from_secs(2))
            .expect("::1 is not boxed");
        // ::1's own /64 boxed, together with IPv4 entries: dropped.
        install(
            &SockRef::from(&listener),
            &[
                key("127.0.0.9".parse().unwrap()),
                key("::2".parse().unwrap()),
            ],
        )
        .unwrap();
        connect_from(Ipv6Addr::LOCALHOST.into(), to, Duration::from_millis(400))
            .expect_err("::1 shares ::2's /64");
    }
}
