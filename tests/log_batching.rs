//! Group commit under light load: a lone entry is committed without waiting for a batch to
//! fill, whatever the batch size; the delay only bounds how long the writer waits for company.

mod common;

use common::{open_sim, rt};
use std::time::Duration;
use urna::log::sim::SimStorage;
use urna::log::{LogConfig, Opaque};

#[test]
fn lone_entry_does_not_wait_for_a_full_batch() {
    let origin = "urna.test/lone";
    for delay_us in [0, 20_000] {
        let disk = SimStorage::new();
        let cfg = LogConfig {
            batch_max_entries: 100_000,
            batch_delay_us: delay_us,
            ..common::config(origin)
        };
        let (log, writer) = open_sim(&disk, cfg, common::key(origin), Opaque).unwrap();
        rt().block_on(async {
            for i in 0..5u8 {
                // A batch that waited to fill would never complete: 100,000 never arrive.
                let r = tokio::time::timeout(Duration::from_secs(5), log.submit(vec![i])).await;
                assert_eq!(
                    r.expect("lone entry waited").unwrap().index,
                    u64::from(i) + 1
                );
            }
            log.shutdown().await;
        });
        writer.join().unwrap();
    }
}
