//! Flow-sync messages as a peer's UDP datagram or TCP bulk-sync frame hands them to the agent:
//! anyone who can reach the sync port chooses these bytes (the source check comes first, but
//! a spoofed source passes it).
//!
//! Properties checked on every input:
//! - nothing panics: `wire::parse` with and without a key, at the datagram and the bulk limit;
//! - an accepted message rebuilt (`wire::Builder`, same kind, sender, sequence, time) parses
//!   again to an equal message, with and without a key.
#![no_main]

use lb_agent::flowsync::wire::{self, Body, Builder, Key, MAX_BULK_MESSAGE, MAX_DATAGRAM};
use libfuzzer_sys::fuzz_target;

/// The key the seeds are signed with.
const SEED_KEY: &[u8] = b"fuzz-flow-sync-key-0123";

fn rebuilt(m: &wire::Message, key: Option<&Key>) -> Vec<u8> {
    let mut b = Builder::new(
        m.header.kind,
        m.header.sender,
        key.cloned(),
        MAX_BULK_MESSAGE,
    );
    let total = match &m.body {
        Body::Records(recs) => {
            for r in recs {
                assert!(b.push(r), "a parsed record fits the bulk limit again");
            }
            None
        }
        Body::End { total } => Some(*total),
        Body::Request => None,
    };
    b.finish(m.header.seq, m.header.sent_us, total)
}

fuzz_target!(|data: &[u8]| {
    let key = Key::new(SEED_KEY);
    for k in [None, Some(&key)] {
        for max in [MAX_DATAGRAM, MAX_BULK_MESSAGE] {
            let Ok(m) = wire::parse(data, k, max) else {
                continue;
            };
            for k2 in [None, Some(&key)] {
                let again = wire::parse(&rebuilt(&m, k2), k2, MAX_BULK_MESSAGE)
                    .expect("a rebuilt message parses");
                assert_eq!(again, m, "rebuilt message differs");
            }
        }
    }
});
