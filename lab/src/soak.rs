//! `cargo xtask soak`: the lab under mixed traffic for minutes, with a graceful failover every
//! 30 s and a real server flapping every 20 s. Bounded in time; passes only with zero errors on
//! flows that should survive (every connection not on the flapping real, every request outside
//! the flapping real's detection window) and flat agent memory.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Result;

use lb_tests::{
    client::{http_get, LongConn},
    netns::Netns,
    topology::VIP,
};

use crate::lab::{pause, stopped, Lab};

/// The real that flaps (r3).
const FLAPPER: usize = 2;
/// After the flapper stops, requests to it fail until health checks take it out
/// (fall 2 x 500 ms + timeout 500 ms, plus margin); after it restarts, the two load
/// balancers see it come back at slightly different times (rise 2 x 500 ms, each with its own
/// jitter), and a flow that crosses a failover while their tables disagree about it may move.
/// Errors on the flapper inside these windows are expected; anywhere else they are not.
const DETECTION: Duration = Duration::from_millis(2500);
const REJOIN: Duration = Duration::from_millis(3000);

#[derive(Debug, Default)]
pub struct SoakReport {
    pub seconds: u64,
    pub failovers: u64,
    pub flaps: u64,
    pub requests: u64,
    /// Failed requests outside the flapper's detection windows.
    pub unexpected_errors: u64,
    /// Failed requests inside them (expected: they went to a real that had just died).
    pub expected_errors: u64,
    /// Long-lived connections checked (pings answered).
    pub long_answers: u64,
    /// Long-lived connections that broke while their real was alive.
    pub long_broken_unexpected: u64,
    pub long_broken_on_flapper: u64,
    /// What each unexpected break looked like.
    pub unexpected: Vec<String>,
    /// lb2 runs the whole soak: its RSS (KiB) at the start and the end.
    pub lb2_rss_start: u64,
    pub lb2_rss_end: u64,
    /// lb1 is restarted at each failover: its RSS just before each stop.
    pub lb1_rss_before_stop: Vec<u64>,
}

impl SoakReport {
    pub fn passed(&self) -> bool {
        self.unexpected_errors == 0
            && self.long_broken_unexpected == 0
            && self.lb2_rss_end <= self.lb2_rss_start + self.lb2_rss_start / 5 + 8192
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

pub fn run(lab: &mut Lab, secs: u64, say: &mut dyn FnMut(&str)) -> Result<SoakReport> {
    let vip = SocketAddr::from((VIP, 80));
    let mut r = SoakReport {
        seconds: secs,
        ..Default::default()
    };
    // The flapper's windows (start, length), shared with the traffic threads.
    let windows: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::new(Mutex::new(Vec::new()));
    let flapper_down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, unexpected, expected) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let details: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let soak_t0 = Instant::now();
    let (long_ok, long_bad, long_flap) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let in_window = {
        let windows = windows.clone();
        let flapper_down = flapper_down.clone();
        move |at: Instant| {
            flapper_down.load(Ordering::Relaxed)
                || windows
                    .lock()
                    .map(|w| w.iter().any(|(s, len)| at >= *s && at < *s + *len))
                    .unwrap_or(false)
        }
    };
    let ns_name = lab.t.client.ns.name.clone();
    let flapper_name = format!("r{}", FLAPPER + 1);
    let mut threads = Vec::new();
    // New requests.
    {
        let (stop, requests, unexpected, expected) = (
            stop.clone(),
            requests.clone(),
            unexpected.clone(),
            expected.clone(),
        );
        let in_window = in_window.clone();
        let file = std::fs::File::open(format!("/run/netns/{ns_name}"))?;
        threads.push(std::thread::spawn(move || {
            // SAFETY: setns on this thread only.
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) }
                != 0
            {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                requests.fetch_add(1, Ordering::Relaxed);
                if http_get(vip).is_err() {
                    if in_window(t) {
                        expected.fetch_add(1, Ordering::Relaxed);
                    } else {
                        unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
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
        let details = details.clone();
        let in_window = in_window.clone();
        let flapper_name = flapper_name.clone();
        let ns_name = ns_name.clone();
        threads.push(std::thread::spawn(move || {
            let client = Netns { name: ns_name };
            let mut conns: Vec<Option<LongConn>> =
                (0..10).map(|_| LongConn::open(&client, vip).ok()).collect();
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
                                    if conn.real == flapper_name && in_window(t) {
                                        flap.fetch_add(1, Ordering::Relaxed);
                                    } else {
                                        bad.fetch_add(1, Ordering::Relaxed);
                                        if let Ok(mut d) = details.lock() {
                                            d.push(format!(
                                                "at {:.1}s on {}: {:?}",
                                                (t - soak_t0).as_secs_f64(),
                                                conn.real,
                                                other.map_err(|e| e.to_string())
                                            ));
                                        }
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
        }));
    }
    pause(Duration::from_secs(2));
    r.lb2_rss_start = rss_kib(lab, 1);
    let t0 = Instant::now();
    let (mut next_failover, mut next_flap) = (Duration::from_secs(30), Duration::from_secs(20));
    let mut master = 0usize;
    while t0.elapsed() < Duration::from_secs(secs) && !stopped() {
        let now = t0.elapsed();
        if now >= next_flap {
            next_flap += Duration::from_secs(20);
            r.flaps += 1;
            say(&format!(
                "[{:>4}s] flap: stop r{}",
                now.as_secs(),
                FLAPPER + 1
            ));
            if let Ok(mut w) = windows.lock() {
                w.push((Instant::now(), DETECTION));
            }
            flapper_down.store(true, Ordering::Relaxed);
            lab.t.stop_server(FLAPPER);
            pause(Duration::from_secs(5));
            lab.t.start_server(FLAPPER, &[])?;
            if let Ok(mut w) = windows.lock() {
                w.push((Instant::now(), REJOIN));
            }
            flapper_down.store(false, Ordering::Relaxed);
            // Coming back is clean: health checks let it in only when it answers.
        }
        if now >= next_failover {
            next_failover += Duration::from_secs(30);
            r.failovers += 1;
            say(&format!(
                "[{:>4}s] failover: graceful stop of lb{}",
                now.as_secs(),
                master + 1
            ));
            r.lb1_rss_before_stop.push(rss_kib(lab, 0));
            if let Some(a) = lab.agents[master].as_mut() {
                a.stop()?;
            }
            pause(Duration::from_secs(2));
            lab.start_agent(master)?;
            // The restarted node preempts back if it is lb1; otherwise it stays backup.
            master = 0;
            pause(Duration::from_secs(2));
        }
        pause(Duration::from_millis(200));
    }
    r.lb2_rss_end = rss_kib(lab, 1);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    r.requests = requests.load(Ordering::Relaxed);
    r.unexpected_errors = unexpected.load(Ordering::Relaxed);
    r.expected_errors = expected.load(Ordering::Relaxed);
    r.long_answers = long_ok.load(Ordering::Relaxed);
    r.long_broken_unexpected = long_bad.load(Ordering::Relaxed);
    r.long_broken_on_flapper = long_flap.load(Ordering::Relaxed);
    r.unexpected = details.lock().map(|d| d.clone()).unwrap_or_default();
    Ok(r)
}
