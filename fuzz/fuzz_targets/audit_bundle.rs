//! Any bytes as an entry bundle and its level-0 tile, as `urna audit` prepares them: split,
//! lined up with the tile, decoded, signatures batch-verified. Must not panic; the leaves it
//! goes on with are exactly `width`, and every violation names an index inside the bundle.
//!
//! Input: 1 byte (width - 1), 2 bytes big-endian tile length (0xffff: no tile), the tile,
//! then the bundle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use urna::audit::check::prepare_bundle;

fuzz_target!(|data: &[u8]| {
    let [w, a, b, rest @ ..] = data else { return };
    let width = u32::from(*w) + 1;
    let tile_len = usize::from(u16::from_be_bytes([*a, *b]));
    let (tile, bundle) = if tile_len == 0xffff {
        (None, rest)
    } else if tile_len <= rest.len() {
        (Some(&rest[..tile_len]), &rest[tile_len..])
    } else {
        return;
    };
    let index = 3;
    let p = prepare_bundle(index, width, Some(bundle), tile);
    if let Some(leaves) = &p.leaves {
        assert_eq!(leaves.len(), width as usize);
    }
    let range = index * 256..index * 256 + u64::from(width);
    for v in &p.violations {
        assert!(v.index.is_none_or(|i| range.contains(&i)), "{v}");
    }
    for (i, _) in &p.entries {
        assert!(range.contains(i));
    }
});
