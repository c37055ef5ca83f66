//! Many long-lived TCP connections held through the VIP across an event (a failover, a link
//! flap, a restart), each answering a line every `period`: afterwards each is counted as
//! still answered by the same real, moved to another real, or broken (reset, timed out).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{bail, Result};

use crate::{client::LongConn, netns::Netns};

/// How long one answer may take: an outage of a few hundred milliseconds costs a TCP sender
/// a few retransmissions (200 ms, 400 ms, 800 ms, ...), not a broken connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(8);

/// What became of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Same,
    /// Answered by another real (from, to).
    Moved(String, String),
    /// Reset or silent; with the error.
    Broken(String),
}

/// The four numbers every event is reported with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldReport {
    pub opened: usize,
    pub same: usize,
    pub moved: usize,
    pub broken: usize,
    /// Up to five examples of what went wrong.
    pub examples: Vec<String>,
}

impl HeldReport {
    pub fn all_same(&self) -> bool {
        self.opened > 0 && self.same == self.opened
    }
}

impl std::fmt::Display for HeldReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} opened: {} same, {} moved, {} broken",
            self.opened, self.same, self.moved, self.broken
        )?;
        if !self.examples.is_empty() {
            write!(f, " ({})", self.examples.join("; "))?;
        }
        Ok(())
    }
}

pub struct Held {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Fate>>,
    /// Which real each connection started on.
    pub reals: Vec<String>,
}

impl Held {
    /// Opens `n` connections from `client` to `addr` (every one must open: a connection that
    /// cannot be opened is an error, not left out) and starts pinging each every `period`.
    pub fn open(client: &Netns, addr: SocketAddr, n: usize, period: Duration) -> Result<Held> {
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            match LongConn::open_with(client, addr, ANSWER_TIMEOUT) {
                Ok(c) => conns.push(c),
                Err(e) => bail!("connection {i} of {n} did not open: {e:#}"),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reals = conns.iter().map(|c| c.real.clone()).collect();
        let threads = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let stop = stop.clone();
                // Spread the pings over the period.
                let offset = period * i as u32 / n.max(1) as u32;
                std::thread::spawn(move || {
                    std::thread::sleep(offset);
                    let mut seq = 1;
                    loop {
                        let last = stop.load(Ordering::Relaxed);
                        match c.ping(seq) {
                            Ok(r) if r == c.real => {}
                            Ok(r) => return Fate::Moved(c.real.clone(), r),
                            Err(e) => return Fate::Broken(format!("{e:#}")),
                        }
                        if last {
                            return Fate::Same;
                        }
                        seq += 1;
                        std::thread::sleep(period);
                    }
                })
            })
            .collect();
        Ok(Held {
            stop,
            threads,
            reals,
        })
    }

    /// Every connection answers once more, then the fates are counted.
    pub fn finish(self) -> HeldReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut r = HeldReport {
            opened: self.threads.len(),
            ..Default::default()
        };
        for (i, t) in self.threads.into_iter().enumerate() {
            let fate = t
                .join()
                .unwrap_or_else(|_| Fate::Broken("pinger panicked".into()));
            match &fate {
                Fate::Same => r.same += 1,
                Fate::Moved(a, b) => {
                    r.moved += 1;
                    if r.examples.len() < 5 {
                        r.examples.push(format!("#{i} moved {a} -> {b}"));
                    }
                }
                Fate::Broken(e) => {
                    r.broken += 1;
                    if r.examples.len() < 5 {
                        r.examples.push(format!("#{i} broken: {e}"));
                    }
                }
            }
        }
        r
    }
}
