//! `cargo xtask soak`: the lab under mixed traffic for minutes, with a graceful failover every
//! 30 s and a real server flapping every 20 s. Bounded in time; it passes only when
//! - no request and no long-lived connection failed, except on the flapping real inside its
//!   documented windows (traced: a failed request is attributed to a real by asking both
//!   agents which real its flow was sent to, `lb-agent explain`);
//! - traffic really flowed (a minimum of requests and answers) and the traffic threads ran;
//! - neither agent's memory grew: lb2 over the whole soak, lb1 over each of its lifetimes
//!   (it is the one restarted at every failover).

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use lb_agent::control::{self, Request, Response};
use lb_tests::{
    client::{http_get_traced, LongConn},
    netns::Netns,
    topology::{CLIENT_IP, VIP},
};

use crate::lab::{pause, stopped, Lab};

/// The real that flaps (r3).
const FLAPPER: usize = 2;
/// After the flapper stops, requests sent to it fail until health checks take it out
/// (fall 2 x 500 ms + timeout 500 ms, plus margin).
const DETECTION: Duration = Duration::from_millis(2500);
/// After it restarts, the two load balancers let it back at slightly different times (rise 2
/// x 500 ms, each with its own jitter): a long-lived flow that crosses a failover while their
/// tables disagree about the flapper may move.
const REJOIN: Duration = Duration::from_millis(3000);
/// Agent RSS may grow by this much (KiB) plus a fifth over a lifetime: allocator noise.
const RSS_SLACK_KIB: u64 = 8192;

#[derive(Debug, Default)]
pub struct SoakReport {
    pub seconds: u64,
    pub failovers: u64,
    pub flaps: u64,
    pub requests: u64,
    /// Failed requests not on the flapper inside its windows.
    pub unexpected_errors: u64,
    /// Failed requests on the flapper inside its windows.
    pub expected_errors: u64,
    /// Long-lived connections checked (pings answered).
    pub long_answers: u64,
    /// Long-lived connections that broke other than on the flapper inside its windows.
    pub long_broken_unexpected: u64,
    pub long_broken_on_flapper: u64,
    /// What each unexpected failure looked like.
    pub unexpected: Vec<String>,
    /// lb2 runs the whole soak: its RSS (KiB) at the start and the end.
    pub lb2_rss_start: u64,
    pub lb2_rss_end: u64,
    /// lb1 is restarted at each failover: its RSS (KiB) two seconds into each lifetime and
    /// just before it is stopped.
    pub lb1_rss_lifetimes: Vec<(u64, u64)>,
    /// Why the soak did not count as a soak (too little traffic, a thread that died).
    pub invalid: Vec<String>,
}

fn grew(start: u64, end: u64) -> bool {
    start == 0 || end > start + start / 5 + RSS_SLACK_KIB
}

impl SoakReport {
    pub fn passed(&self) -> bool {
        self.invalid.is_empty()
            && self.unexpected_errors == 0
            && self.long_broken_unexpected == 0
            && !grew(self.lb2_rss_start, self.lb2_rss_end)
            && !self.lb1_rss_lifetimes.iter().any(|(a, b)| grew(*a, *b))
    }
}

fn rss_kib(lab: &Lab, i: usize) -> u64 {
    let Some(pid) = lab.agents[i].as_ref().and_then(|a| a.proc.pid()) else {
        return 0;
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The flapper's windows (start, length) during which its failures are expected.
#[derive(Clone, Default)]
struct Windows(Arc<Mutex<Vec<(Instant, Duration)>>>);

impl Windows {
    fn open(&self, len: Duration) {
        if let Ok(mut w) = self.0.lock() {
            w.push((Instant::now(), len));
        }
    }

    fn contains(&self, at: Instant) -> bool {
        self.0
            .lock()
            .map(|w| w.iter().any(|(s, len)| at >= *s && at < *s + *len))
            .unwrap_or(false)
    }

    /// When the last window closes.
    fn last_end(&self) -> Option<Instant> {
        self.0.lock().ok()?.iter().map(|(s, len)| *s + *len).max()
    }
}

/// Which real a failed request's flow was sent to, asked of both agents (the entry in a
/// connection table; the node that forwarded it has one).
fn traced_real(sockets: &[std::path::PathBuf], local: SocketAddr) -> Option<String> {
    let client = SocketAddr::from((CLIENT_IP, local.port()));
    let req = Request::Explain {
        client,
        vip: SocketAddr::from((VIP, 80)),
        proto: "tcp".into(),
    };
    sockets
        .iter()
        .find_map(|s| match control::client::call(s, &req) {
            Ok(Response::Explain(e)) => e.entry.map(|r| r.real),
            _ => None,
        })
}

/// `r3` for `10.99.0.13:80`.
fn real_name(addr: &str) -> String {
    let last: Option<u8> = addr
        .split(':')
        .next()
        .and_then(|ip| ip.rsplit('.').next())
        .and_then(|o| o.parse().ok());
    last.map_or_else(|| addr.to_owned(), |o| format!("r{}", o.saturating_sub(10)))
}

pub fn run(lab: &mut Lab, secs: u64, say: &mut dyn FnMut(&str)) -> Result<SoakReport> {
    let vip = SocketAddr::from((VIP, 80));
    let mut r = SoakReport {
        seconds: secs,
        ..Default::default()
    };
    let windows = Windows::default();
    let stop = Arc::new(AtomicBool::new(false));
    let counter = || Arc::new(AtomicU64::new(0));
    let (requests, unexpected, expected) = (counter(), counter(), counter());
    let (long_ok, long_bad, long_flap) = (counter(), counter(), counter());
    let details: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let soak_t0 = Instant::now();
    let ns_name = lab.t.client.ns.name.clone();
    let flapper_name = format!("r{}", FLAPPER + 1);
    let sockets: Vec<_> = lab.agents.iter().flatten().map(|a| a.socket()).collect();
    let note = {
        let details = details.clone();
        move |s: String| {
            if let Ok(mut d) = details.lock() {
                if d.len() < 50 {
                    d.push(s);
                }
            }
        }
    };
    let mut threads: Vec<std::thread::JoinHandle<Result<()>>> = Vec::new();
    // New requests, each traced when it fails.
    {
        let (stop, requests, unexpected, expected) = (
            stop.clone(),
            requests.clone(),
            unexpected.clone(),
            expected.clone(),
        );
        let (windows, note, flapper, sockets) = (
            windows.clone(),
            note.clone(),
            flapper_name.clone(),
            sockets.clone(),
        );
        let client = Netns {
            name: ns_name.clone(),
        };
        let file = std::fs::File::open(client.path())?;
        std::mem::forget(client);
        threads.push(std::thread::spawn(move || -> Result<()> {
            // SAFETY: setns on this thread only.
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) }
                != 0
            {
                bail!("request thread: setns: {}", std::io::Error::last_os_error());
            }
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                requests.fetch_add(1, Ordering::Relaxed);
                let (local, served) = http_get_traced(vip).context("request thread: socket")?;
                if let Err(e) = served {
                    let real = traced_real(&sockets, local).map(|a| real_name(&a));
                    if real.as_deref() == Some(flapper.as_str()) && windows.contains(t) {
                        expected.fetch_add(1, Ordering::Relaxed);
                    } else {
                        unexpected.fetch_add(1, Ordering::Relaxed);
                        note(format!(
                            "request at {:.1}s from port {} to {}: {e:#}",
                            (t - soak_t0).as_secs_f64(),
                            local.port(),
                            real.as_deref()
                                .unwrap_or("no real (no entry on either node)")
                        ));
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }));
    }
    // Long-lived connections, replaced when they break.
    {
        let (stop, ok, bad, flap) = (
            stop.clone(),
            long_ok.clone(),
            long_bad.clone(),
            long_flap.clone(),
        );
        let (windows, note, flapper) = (windows.clone(), note.clone(), flapper_name.clone());
        let ns_name = ns_name.clone();
        threads.push(std::thread::spawn(move || -> Result<()> {
            let client = Netns { name: ns_name };
            let mut conns = Vec::new();
            for _ in 0..10 {
                conns.push(Some(
                    LongConn::open(&client, vip).context("long-lived connections")?,
                ));
            }
            let mut seq = 1;
            while !stop.load(Ordering::Relaxed) {
                for c in conns.iter_mut() {
                    match c {
                        Some(conn) => {
                            let t = Instant::now();
                            match conn.ping(seq) {
                                Ok(real) if real == conn.real => {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                other => {
                                    if conn.real == flapper && windows.contains(t) {
                                        flap.fetch_add(1, Ordering::Relaxed);
                                    } else {
                                        bad.fetch_add(1, Ordering::Relaxed);
                                        note(format!(
                                            "connection at {:.1}s on {}: {:?}",
                                            (t - soak_t0).as_secs_f64(),
                                            conn.real,
                                            other.map_err(|e| e.to_string())
                                        ));
                                    }
                                    *c = None;
                                }
                            }
                        }
                        None => *c = LongConn::open(&client, vip).ok(),
                    }
                }
                seq += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            std::mem::forget(client);
            Ok(())
        }));
    }
    pause(Duration::from_secs(2));
    r.lb2_rss_start = rss_kib(lab, 1);
    let mut lb1_born = rss_kib(lab, 0);
    let t0 = Instant::now();
    let (mut next_failover, mut next_flap) = (Duration::from_secs(30), Duration::from_secs(20));
    while t0.elapsed() < Duration::from_secs(secs) && !stopped() {
        if t0.elapsed() >= next_flap {
            next_flap += Duration::from_secs(20);
            r.flaps += 1;
            say(&format!(
                "[{:>4}s] flap: stop r{} for 5 s",
                t0.elapsed().as_secs(),
                FLAPPER + 1
            ));
            windows.open(DETECTION);
            lab.t.stop_server(FLAPPER);
            pause(Duration::from_secs(5));
            lab.t.start_server(FLAPPER, &[])?;
            windows.open(REJOIN);
        }
        // A failover never overlaps the flapper's windows: an error it caused on the flapper
        // would be excused.
        let clear = windows.last_end().is_none_or(|e| Instant::now() >= e);
        if t0.elapsed() >= next_failover && clear {
            next_failover += Duration::from_secs(30);
            r.failovers += 1;
            say(&format!(
                "[{:>4}s] failover: graceful stop of lb1, restart (it preempts back)",
                t0.elapsed().as_secs()
            ));
            r.lb1_rss_lifetimes.push((lb1_born, rss_kib(lab, 0)));
            if let Some(a) = lab.agents[0].as_mut() {
                a.stop()?;
            }
            pause(Duration::from_secs(2));
            lab.start_agent(0)?;
            pause(Duration::from_secs(2));
            lb1_born = rss_kib(lab, 0);
        }
        pause(Duration::from_millis(200));
    }
    r.lb2_rss_end = rss_kib(lab, 1);
    r.lb1_rss_lifetimes.push((lb1_born, rss_kib(lab, 0)));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => r.invalid.push(format!("{e:#}")),
            Err(_) => r.invalid.push("a traffic thread panicked".into()),
        }
    }
    r.requests = requests.load(Ordering::Relaxed);
    r.unexpected_errors = unexpected.load(Ordering::Relaxed);
    r.expected_errors = expected.load(Ordering::Relaxed);
    r.long_answers = long_ok.load(Ordering::Relaxed);
    r.long_broken_unexpected = long_bad.load(Ordering::Relaxed);
    r.long_broken_on_flapper = long_flap.load(Ordering::Relaxed);
    r.unexpected = details.lock().map(|d| d.clone()).unwrap_or_default();
    // A request every 20 ms (plus its own time) and 10 connections answering every 200 ms: at
    // least half of that must have happened, or the soak did not test anything.
    let ran = t0.elapsed().as_secs();
    let (min_requests, min_answers) = (ran * 20, ran * 25);
    if r.requests < min_requests {
        r.invalid.push(format!(
            "only {} requests in {ran} s (at least {min_requests} expected)",
            r.requests
        ));
    }
    if r.long_answers < min_answers {
        r.invalid.push(format!(
            "only {} long-lived answers in {ran} s (at least {min_answers} expected)",
            r.long_answers
        ));
    }
    if r.failovers == 0 && ran >= 35 {
        r.invalid.push("no failover happened".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_and_memory_growth() {
        assert_eq!(real_name("10.99.0.13:80"), "r3");
        assert_eq!(real_name("garbage"), "garbage");
        assert!(!grew(100_000, 110_000));
        assert!(grew(100_000, 200_000));
        assert!(grew(0, 10), "an unreadable RSS is a failure, not a pass");
    }
}
