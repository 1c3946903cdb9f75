//! C2SP tlog-tiles resource paths and entry bundles. Spec code: no I/O.
//!
//! `tlog_tiles` 0.2.0's `Tile::path()` writes Go sumdb paths (`tile/8/0/…`, `tile/8/data/…`),
//! which are *not* the C2SP paths (`tile/<L>/<N>`, `tile/entries/<N>`), so the paths are
//! parsed and written here.

/// Width of a full tile or entry bundle (tile height 8).
pub const TILE_WIDTH: u64 = 256;

/// One resource of the log's read side, by the path after the `/log/` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `checkpoint`: the latest signed checkpoint.
    Checkpoint,
    /// `tile/<L>/<N>[.p/<W>]`: `width` hashes at tree level `8 × level`.
    Tile { level: u8, index: u64, width: u32 },
    /// `tile/entries/<N>[.p/<W>]`: `width` length-prefixed entries from `index × 256`.
    Entries { index: u64, width: u32 },
}

/// Longest path accepted: `tile/entries/` + 7 groups of 4 + `.p/255` is well under this.
const MAX_PATH_BYTES: usize = 64;

impl Resource {
    /// Parses a path exactly as tlog-tiles writes it; anything else (leading zeroes, `.p/256`,
    /// `.p/0`, trailing slash, upper case `X`) is `None`, so one resource has one name.
    pub fn parse(path: &str) -> Option<Self> {
        if path.len() > MAX_PATH_BYTES {
            return None;
        }
        if path == "checkpoint" {
            return Some(Self::Checkpoint);
        }
        let rest = path.strip_prefix("tile/")?;
        let (kind, rest) = rest.split_once('/')?;
        let (n_part, width) = match rest.split_once(".p/") {
            Some((n, w)) => (n, Some(parse_decimal(w)?)),
            None => (rest, None),
        };
        let width = match width {
            Some(w) if (1..TILE_WIDTH).contains(&w) => w as u32,
            Some(_) => return None,
            None => TILE_WIDTH as u32,
        };
        let index = parse_index(n_part)?;
        let res = if kind == "entries" {
            Self::Entries { index, width }
        } else {
            let level = parse_decimal(kind)?;
            if level > 63 {
                return None;
            }
            Self::Tile {
                level: level as u8,
                index,
                width,
            }
        };
        // Round trip: exactly one spelling per resource.
        (res.path() == path).then_some(res)
    }

    /// The resource's path (after the `/log/` prefix).
    pub fn path(&self) -> String {
        match *self {
            Self::Checkpoint => "checkpoint".to_string(),
            Self::Tile {
                level,
                index,
                width,
            } => format!("tile/{level}/{}{}", format_index(index), suffix(width)),
            Self::Entries { index, width } => {
                format!("tile/entries/{}{}", format_index(index), suffix(width))
            }
        }
    }
}

fn suffix(width: u32) -> String {
    if u64::from(width) == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// Decimal without leading zeroes (except "0"), at most 20 digits.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// `N` as zero-padded 3-digit groups, all but the last prefixed with `x`: 1234067 →
/// `x001/x234/067`.
pub fn format_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() > 7 {
        return None;
    }
    let mut n: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() {
            p.strip_prefix('x')?
        } else {
            p
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let d: u64 = digits.parse().ok()?;
        n = n.checked_mul(1000)?.checked_add(d)?;
    }
    Some(n)
}

/// Appends one entry to an entry bundle: big-endian `u16` length, then the bytes.
/// The log never holds an entry longer than `u16::MAX`, so the length always fits.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) {
    debug_assert!(entry.len() <= usize::from(u16::MAX));
    bundle.extend_from_slice(&(entry.len() as u16).to_be_bytes());
    bundle.extend_from_slice(entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_1234067_is_x001_x234_067() {
        assert_eq!(format_index(1234067), "x001/x234/067");
        assert_eq!(format_index(0), "000");
        assert_eq!(format_index(999), "999");
        assert_eq!(format_index(1000), "x001/000");
        let t = Resource::Tile {
            level: 0,
            index: 1234067,
            width: 256,
        };
        assert_eq!(t.path(), "tile/0/x001/x234/067");
        assert_eq!(Resource::parse("tile/0/x001/x234/067"), Some(t));
    }

    #[test]
    fn partial_tiles_and_bundles_have_p_suffix() {
        let t = Resource::Tile {
            level: 3,
            index: 1234067,
            width: 1,
        };
        assert_eq!(t.path(), "tile/3/x001/x234/067.p/1");
        assert_eq!(Resource::parse("tile/3/x001/x234/067.p/1"), Some(t));
        let e = Resource::Entries {
            index: 5,
            width: 255,
        };
        assert_eq!(e.path(), "tile/entries/005.p/255");
        assert_eq!(Resource::parse("tile/entries/005.p/255"), Some(e));
        assert_eq!(
            Resource::parse("tile/entries/x001/000"),
            Some(Resource::Entries {
                index: 1000,
                width: 256
            })
        );
        assert_eq!(Resource::parse("checkpoint"), Some(Resource::Checkpoint));
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for p in [
            "tile/0/5",
            "tile/0/0005",
            "tile/00/005",
            "tile/64/000",
            "tile/0/005.p/0",
            "tile/0/005.p/256",
            "tile/0/005.p/07",
            "tile/0/001/000",
            "tile/0/x000/001",
            "tile/0/X001/000",
            "tile/0/005/",
            "tile/8/0/000",
            "tile/8/data/000",
            "tile/data/000",
            "tile/entries/005.p/",
            "tile/entries/x018/x446/x744/x073/x709/x551/x616/000",
            "/checkpoint",
            "checkpoint/",
            "",
        ] {
            assert_eq!(Resource::parse(p), None, "{p}");
        }
        // The largest index that fits in u64 still parses; one more does not.
        assert!(Resource::parse("tile/entries/x018/x446/x744/x073/x709/x551/615").is_some());
        assert!(Resource::parse("tile/entries/x018/x446/x744/x073/x709/x551/616").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_string_parses_without_panic_and_parsed_paths_round_trip(p in "\\PC{0,70}") {
            if let Some(r) = Resource::parse(&p) {
                proptest::prop_assert_eq!(r.path(), p);
            }
        }

        #[test]
        fn every_resource_round_trips(level in 0u8..64, index in proptest::num::u64::ANY, width in 1u32..=256) {
            for r in [Resource::Tile { level, index, width }, Resource::Entries { index, width }] {
                proptest::prop_assert_eq!(Resource::parse(&r.path()), Some(r));
            }
        }
    }

    #[test]
    fn bundle_entries_are_u16_be_length_prefixed() {
        let mut b = Vec::new();
        push_bundle_entry(&mut b, b"abc");
        push_bundle_entry(&mut b, b"");
        assert_eq!(b, [0, 3, b'a', b'b', b'c', 0, 0]);
    }
}
