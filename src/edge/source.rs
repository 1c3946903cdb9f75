//! Who a client is, for the limits: its source (IPv4 /32, IPv6 /64) and its prefix
//! (IPv4 /24, IPv6 /48). An IPv6 host gets a whole /64 from its provider and can pick any
//! address in it, so /64 is the smallest unit that costs an attacker anything.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A client address as seen by the limits, IPv4-mapped IPv6 addresses made IPv4 first so
/// one host cannot appear as two.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The source key: IPv4 /32, IPv6 /64.
pub fn source_key(ip: IpAddr) -> IpNet {
    truncate(ip, 32, 64)
}

/// The prefix key: IPv4 /24, IPv6 /48.
pub fn prefix_key(ip: IpAddr) -> IpNet {
    truncate(ip, 24, 48)
}

fn truncate(ip: IpAddr, v4_len: u8, v6_len: u8) -> IpNet {
    match canonical(ip) {
        // Prefix lengths are constants within 0..=32 and 0..=128: `new` cannot fail.
        IpAddr::V4(a) => IpNet::V4(
            Ipv4Net::new(a, v4_len)
                .map(|n| n.trunc())
                .unwrap_or_default(),
        ),
        IpAddr::V6(a) => IpNet::V6(
            Ipv6Net::new(a, v6_len)
                .map(|n| n.trunc())
                .unwrap_or_default(),
        ),
    }
}

/// Whether `ip` lies in any of `nets`.
pub fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_in_one_64_share_a_source_key() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        assert_eq!(prefix_key(a), prefix_key(c));
        assert_eq!(prefix_key(a).to_string(), "2001:db8:1::/48");
    }

    #[test]
    fn ipv4_keys_are_host_and_slash_24() {
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(source_key(a).to_string(), "203.0.113.7/32");
        assert_eq!(prefix_key(a).to_string(), "203.0.113.0/24");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_keyed_as_ipv4() {
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(source_key(mapped).to_string(), "203.0.113.7/32");
        assert!(in_any(&["203.0.113.0/24".parse().unwrap()], mapped));
    }
}
