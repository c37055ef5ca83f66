//! Runs the checks of many reals on one tokio runtime.
//!
//! One lightweight task per real (not a thread per check): it sleeps until its next round,
//! runs the real's checkers concurrently, feeds the combined result to its [`Hysteresis`] and
//! reports on an mpsc channel. A global [`Semaphore`] bounds how many checks run at once, so a
//! config with thousands of reals (or a reload that adds them all at once) cannot open
//! thousands of sockets or fork thousands of scripts in the same instant.
//!
//! Timing uses `tokio::time` only, so the whole scheduler runs under paused time in tests.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::hysteresis::{Hysteresis, State};
use super::probe::{fmt_duration, ConfigError, Outcome, Probe, Target};

/// Opaque identifier chosen by the caller (the agent maps it to its (VIP, real) pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RealId(pub u64);

impl fmt::Display for RealId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "real#{}", self.0)
    }
}

/// Everything the scheduler needs to check one real.
#[derive(Debug, Clone)]
pub struct RealSpec {
    pub target: Target,
    /// All must succeed for the round to count as a success. Empty = always up (keepalived
    /// treats a real without checkers as alive).
    pub checks: Vec<Probe>,
    /// Interval between the starts of two rounds (keepalived `delay_loop`), jittered ±10%.
    pub delay_loop: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl RealSpec {
    /// Defaults: 5s interval, rise 2, fall 3 (a real must fail for ~15s before it is pulled,
    /// and prove itself twice before it gets traffic back after an outage).
    pub fn new(target: Target, checks: Vec<Probe>) -> Self {
        Self {
            target,
            checks,
            delay_loop: Duration::from_secs(5),
            rise: 2,
            fall: 3,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.delay_loop.is_zero() {
            return Err(ConfigError::Zero("delay_loop"));
        }
        if self.rise == 0 {
            return Err(ConfigError::Zero("rise"));
        }
        if self.fall == 0 {
            return Err(ConfigError::Zero("fall"));
        }
        self.checks
            .iter()
            .try_for_each(|c| c.validate(&self.target))
    }
}

/// A state transition of a real (the only event that must change the data plane).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub real: RealId,
    pub from: State,
    pub state: State,
    /// Reason of the deciding round, e.g. `"HTTP 503"`.
    pub reason: String,
    pub latency: Duration,
    /// Last dynamic weight reported by a `MISC_CHECK` with `dynamic: true`, if any.
    pub weight: Option<u32>,
}

/// A dynamic weight changed without a state transition (keepalived applies `misc_dynamic`
/// weights immediately, without rise/fall).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightEvent {
    pub real: RealId,
    pub state: State,
    pub weight: u32,
    pub reason: String,
}

/// Sent after every round, for latency metrics and "last check result" in the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeDone {
    pub real: RealId,
    /// State after this round.
    pub state: State,
    /// The combined result that was fed to the hysteresis (latency = slowest checker).
    pub outcome: Outcome,
    /// Each checker's own result, in `RealSpec::checks` order.
    pub checks: Vec<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Health(HealthEvent),
    Weight(WeightEvent),
    ProbeDone(ProbeDone),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Checks running at once, across all reals.
    pub max_concurrency: usize,
    /// Capacity of the event channel. `Health`/`Weight` events wait for room (they must not be
    /// lost); `ProbeDone` events are dropped and counted when it is full, so a slow metrics
    /// consumer never delays failure detection.
    pub event_capacity: usize,
    /// Relative jitter of each interval (0.1 = ±10%), clamped to 0..=0.5.
    pub jitter: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 256,
            event_capacity: 4096,
            jitter: 0.1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    #[error("{0} is already scheduled")]
    AlreadyExists(RealId),
    #[error("{0} is not scheduled")]
    NotFound(RealId),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Executes one check. The production implementation is [`NetProber`]; tests substitute a
/// fake to drive the scheduler with thousands of reals under paused time.
pub trait Prober: Send + Sync + 'static {
    fn probe<'a>(
        &'a self,
        probe: &'a Probe,
        target: &'a Target,
    ) -> impl Future<Output = Outcome> + Send + 'a;
}

/// Runs the real checks ([`super::probe::run`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetProber;

impl Prober for NetProber {
    fn probe<'a>(
        &'a self,
        probe: &'a Probe,
        target: &'a Target,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        super::probe::run(probe, target)
    }
}

/// Extra time beyond a check's own timeout before the scheduler gives up on it. Every check
/// bounds itself; this only guards against a bug (or a custom [`Prober`]) hanging a real's
/// loop forever.
const BACKSTOP_GRACE: Duration = Duration::from_secs(2);

struct Shared<P> {
    prober: P,
    permits: Semaphore,
    events: mpsc::Sender<Event>,
    dropped_probe_events: AtomicU64,
    jitter: f64,
}

struct RealHandle {
    spec: watch::Sender<Arc<RealSpec>>,
    pause: Arc<Pause>,
    task: JoinHandle<()>,
}

/// Whether a real's checks are paused, and a count of pause changes so a round that overlapped
/// one is not counted either. (Odd = paused.)
#[derive(Default)]
struct Pause(AtomicU64);

impl Pause {
    fn mark(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn paused(mark: u64) -> bool {
        mark & 1 == 1
    }

    fn set(&self, paused: bool) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                (Self::paused(m) != paused).then_some(m + 1)
            });
    }
}

/// The health-check scheduler. Dropping it stops every check (in-flight scripts are killed).
pub struct Scheduler<P: Prober = NetProber> {
    shared: Arc<Shared<P>>,
    reals: Mutex<HashMap<RealId, RealHandle>>,
    runtime: Handle,
    seed: u64,
}

impl Scheduler<NetProber> {
    /// New scheduler running real checks, and the receiver of its events.
    ///
    /// Must be called from within a tokio runtime (like `tokio::spawn`); the real tasks run
    /// on that runtime.
    pub fn new(config: SchedulerConfig) -> (Self, mpsc::Receiver<Event>) {
        Self::with_prober(config, NetProber)
    }
}

impl<P: Prober> Scheduler<P> {
    /// Like [`Scheduler::new`] with a custom check executor.
    pub fn with_prober(config: SchedulerConfig, prober: P) -> (Self, mpsc::Receiver<Event>) {
        // mpsc::channel panics on 0, a zero-size semaphore would deadlock every check.
        let (tx, rx) = mpsc::channel(config.event_capacity.max(1));
        let jitter = if config.jitter.is_finite() {
            config.jitter.clamp(0.0, 0.5)
        } else {
            0.0
        };
        let shared = Arc::new(Shared {
            prober,
            permits: Semaphore::new(config.max_concurrency.clamp(1, Semaphore::MAX_PERMITS)),
            events: tx,
            dropped_probe_events: AtomicU64::new(0),
            jitter,
        });
        let scheduler = Self {
            shared,
            reals: Mutex::new(HashMap::new()),
            runtime: Handle::current(),
            // Per-process random seed so two directors do not share a jitter sequence.
            seed: RandomState::new().hash_one(0x6c62_u64),
        };
        (scheduler, rx)
    }

    fn reals(&self) -> MutexGuard<'_, HashMap<RealId, RealHandle>> {
        // The map is consistent at every unlock; a panic elsewhere must not stop reloads.
        self.reals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start checking a new real. Its first round starts immediately and its state is
    /// `Unknown` until that round completes, so the agent can add a real to the scheduler
    /// before the data plane and only give it traffic once it is reported `Up`.
    pub fn add(&self, real: RealId, spec: RealSpec) -> Result<(), SchedulerError> {
        spec.validate()?;
        let mut reals = self.reals();
        if reals.contains_key(&real) {
            return Err(SchedulerError::AlreadyExists(real));
        }
        let (tx, rx) = watch::channel(Arc::new(spec));
        let seed = self.seed ^ real.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let pause = Arc::new(Pause::default());
        let task = self.runtime.spawn(real_task(
            real,
            rx,
            self.shared.clone(),
            pause.clone(),
            seed,
        ));
        reals.insert(
            real,
            RealHandle {
                spec: tx,
                pause,
                task,
            },
        );
        Ok(())
    }

    /// Replace a real's spec on reload. Its state and streaks are kept (a reload must not
    /// pull healthy reals or re-admit failed ones); new `rise`/`fall` apply from the next
    /// result, new checks from the next round, and a new `delay_loop` re-plans the next round
    /// from the start of the last one. A round already running finishes with the old spec.
    pub fn update(&self, real: RealId, spec: RealSpec) -> Result<(), SchedulerError> {
        spec.validate()?;
        let reals = self.reals();
        let handle = reals.get(&real).ok_or(SchedulerError::NotFound(real))?;
        handle.spec.send_replace(Arc::new(spec));
        Ok(())
    }

    /// Stop checking a real; an in-flight check is cancelled (scripts are killed). No event is
    /// sent for it afterwards. Returns whether it was scheduled.
    pub fn remove(&self, real: RealId) -> bool {
        match self.reals().remove(&real) {
            Some(handle) => {
                handle.task.abort();
                true
            }
            None => false,
        }
    }

    /// Pauses or resumes a real's checks. While paused (and for a round that overlapped a
    /// pause) results are not counted: the state stays what it was. The agent pauses the reals
    /// behind an interface that is down, whose checks would only measure our own outage.
    /// Returns whether the real is scheduled.
    pub fn set_paused(&self, real: RealId, paused: bool) -> bool {
        match self.reals().get(&real) {
            Some(h) => {
                h.pause.set(paused);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, real: RealId) -> bool {
        self.reals().contains_key(&real)
    }

    pub fn len(&self) -> usize {
        self.reals().len()
    }

    pub fn is_empty(&self) -> bool {
        self.reals().is_empty()
    }

    /// `ProbeDone` events dropped because the event channel was full.
    pub fn dropped_probe_events(&self) -> u64 {
        self.shared.dropped_probe_events.load(Ordering::Relaxed)
    }
}

impl<P: Prober> Drop for Scheduler<P> {
    fn drop(&mut self) {
        for (_, handle) in self.reals().drain() {
            handle.task.abort();
        }
    }
}

/// Small, fast, seedable PRNG for jitter (no `rand` dependency; quality is irrelevant here).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `delay` scaled by a random factor in [1 - jitter, 1 + jitter): independent per interval,
/// so reals added together drift apart instead of probing in lockstep forever.
fn jittered(delay: Duration, jitter: f64, rng: &mut SplitMix64) -> Duration {
    let factor = 1.0 + jitter * (2.0 * rng.next_f64() - 1.0);
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(delay)
}

/// Poll several futures of one type to completion concurrently, results in input order.
/// (A real usually has one or two checkers; this avoids a task spawn per checker and keeps
/// cancellation trivial: dropping the round drops every checker.)
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, slot) in futures.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

async fn one_check<P: Prober>(shared: &Shared<P>, probe: &Probe, target: &Target) -> Outcome {
    let Ok(_permit) = shared.permits.acquire().await else {
        return Outcome::down("scheduler closed", Duration::ZERO);
    };
    let limit = probe.timeout() + BACKSTOP_GRACE;
    let start = Instant::now();
    match tokio::time::timeout(limit, shared.prober.probe(probe, target)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::down(
            format!("check did not finish within {}", fmt_duration(limit)),
            start.elapsed(),
        ),
    }
}

/// The round's result: success only if every checker succeeded; otherwise the first failing
/// checker's reason. Latency is the slowest checker's; weight the lowest reported one (the
/// conservative choice when several dynamic scripts disagree).
fn combine(outcomes: &[Outcome]) -> Outcome {
    let latency = outcomes.iter().map(|o| o.latency).max().unwrap_or_default();
    if let Some(failed) = outcomes.iter().find(|o| !o.ok) {
        return Outcome::down(failed.reason.clone(), latency);
    }
    let reason = if outcomes.is_empty() {
        "no checks configured".to_owned()
    } else {
        outcomes
            .iter()
            .map(|o| o.reason.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Outcome {
        ok: true,
        reason,
        latency,
        weight: outcomes.iter().filter_map(|o| o.weight).min(),
    }
}

/// Per-real state that lives in its task.
struct RealState {
    real: RealId,
    hysteresis: Hysteresis,
    /// Last dynamic weight seen on a successful round.
    weight: Option<u32>,
}

impl RealState {
    /// Apply one round and emit its events. `false` when nobody listens any more.
    async fn report<P>(&mut self, shared: &Shared<P>, checks: Vec<Outcome>) -> bool {
        let outcome = combine(&checks);
        // Our own node could not reach the network: nothing learned about the real.
        let counted = !checks.iter().any(Outcome::is_local_failure);
        let transition = if counted {
            self.hysteresis.observe(outcome.ok, &outcome.reason)
        } else {
            tracing::debug!(real = %self.real, reason = %outcome.reason, "local failure; round not counted");
            None
        };
        let weight_changed = match outcome.weight {
            Some(w) if counted && outcome.ok && self.weight != Some(w) => {
                self.weight = Some(w);
                true
            }
            _ => false,
        };
        let state = self.hysteresis.state();
        let important = if let Some(t) = transition {
            tracing::info!(real = %self.real, from = %t.from, to = %t.to, reason = %t.reason, "real state changed");
            Some(Event::Health(HealthEvent {
                real: self.real,
                from: t.from,
                state: t.to,
                reason: t.reason,
                latency: outcome.latency,
                weight: self.weight,
            }))
        } else if let (true, Some(weight)) = (weight_changed, self.weight) {
            tracing::info!(real = %self.real, weight, "real weight changed");
            Some(Event::Weight(WeightEvent {
                real: self.real,
                state,
                weight,
                reason: outcome.reason.clone(),
            }))
        } else {
            None
        };
        if let Some(event) = important {
            if shared.events.send(event).await.is_err() {
                return false;
            }
        }
        tracing::debug!(real = %self.real, ok = outcome.ok, reason = %outcome.reason, latency = ?outcome.latency, "check round done");
        let done = Event::ProbeDone(ProbeDone {
            real: self.real,
            state,
            outcome,
            checks,
        });
        match shared.events.try_send(done) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                shared.dropped_probe_events.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

async fn real_task<P: Prober>(
    real: RealId,
    mut spec_rx: watch::Receiver<Arc<RealSpec>>,
    shared: Arc<Shared<P>>,
    pause: Arc<Pause>,
    seed: u64,
) {
    let mut spec = spec_rx.borrow_and_update().clone();
    let mut rng = SplitMix64(seed);
    let mut state = RealState {
        real,
        hysteresis: Hysteresis::new(spec.rise, spec.fall),
        weight: None,
    };
    let mut last_start: Option<Instant> = None;
    // First round right away: a new real is checked before it can get traffic.
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = sleep_until(next) => {}
            changed = spec_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let new = spec_rx.borrow_and_update().clone();
                state.hysteresis.set_thresholds(new.rise, new.fall);
                if let (Some(last), true) = (last_start, new.delay_loop != spec.delay_loop) {
                    next = last + jittered(new.delay_loop, shared.jitter, &mut rng);
                }
                spec = new;
                continue;
            }
        }
        // Plan from the scheduled start, not from when the round ends, so check duration and
        // timer rounding do not accumulate into drift.
        let start = next;
        last_start = Some(start);
        let mark = pause.mark();
        if !Pause::paused(mark) {
            let checks = join_all(
                spec.checks
                    .iter()
                    .map(|probe| one_check(&shared, probe, &spec.target))
                    .collect(),
            )
            .await;
            if pause.mark() != mark {
                tracing::debug!(real = %real, "check round overlapped a pause; not counted");
            } else if !state.report(&shared, checks).await {
                return;
            }
        }
        // A round that overran its interval is followed immediately, never by a burst of
        // catch-up rounds.
        next = (start + jittered(spec.delay_loop, shared.jitter, &mut rng)).max(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::super::probe::TcpCheck;
    use super::*;
    use std::net::{IpAddr, SocketAddr};
    use std::sync::atomic::AtomicUsize;

    /// Scriptable prober: the result is looked up by the port the check would connect to;
    /// every call takes `duration` of (paused) time and is counted.
    #[derive(Default)]
    struct Fake {
        duration: Duration,
        results: Mutex<HashMap<u16, Outcome>>,
        hang: Mutex<Vec<u16>>,
        in_flight: AtomicUsize,
        peak: AtomicUsize,
        starts: Mutex<HashMap<u16, Vec<Instant>>>,
    }

    impl Fake {
        fn new(duration: Duration) -> Arc<Self> {
            Arc::new(Self {
                duration,
                ..Self::default()
            })
        }

        fn set(&self, port: u16, ok: bool, reason: &str, weight: Option<u32>) {
            let mut o = if ok {
                Outcome::up(reason, self.duration)
            } else {
                Outcome::down(reason, self.duration)
            };
            o.weight = weight;
            self.results.lock().unwrap().insert(port, o);
        }

        fn calls(&self, port: u16) -> usize {
            self.starts.lock().unwrap().get(&port).map_or(0, Vec::len)
        }
    }

    impl Prober for Arc<Fake> {
        async fn probe(&self, probe: &Probe, target: &Target) -> Outcome {
            let port = match probe {
                Probe::Tcp(c) => c.connect_port.unwrap_or(target.port),
                _ => target.port,
            };
            self.starts
                .lock()
                .unwrap()
                .entry(port)
                .or_default()
                .push(Instant::now());
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(n, Ordering::SeqCst);
            let hang = self.hang.lock().unwrap().contains(&port);
            if hang {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(self.duration).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let result = self.results.lock().unwrap().get(&port).cloned();
            result.unwrap_or_else(|| Outcome::up("ok", self.duration))
        }
    }

    fn tcp(port: Option<u16>) -> Probe {
        Probe::Tcp(TcpCheck {
            connect_port: port,
            connect_timeout: Duration::from_secs(1),
            ..TcpCheck::default()
        })
    }

    fn spec(port: u16, delay: Duration, rise: u32, fall: u32) -> RealSpec {
        RealSpec {
            target: Target::new(IpAddr::from([127, 0, 0, 1]), port),
            checks: vec![tcp(None)],
            delay_loop: delay,
            rise,
            fall,
        }
    }

    async fn next_event(rx: &mut mpsc::Receiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("no event before the deadline")
            .expect("channel closed")
    }

    async fn next_health(rx: &mut mpsc::Receiver<Event>) -> HealthEvent {
        loop {
            if let Event::Health(h) = next_event(rx).await {
                return h;
            }
        }
    }

    /// Consume events until the next ProbeDone; returns it and the Health event (if any) that
    /// preceded it in the same round.
    async fn next_round(rx: &mut mpsc::Receiver<Event>) -> (ProbeDone, Option<HealthEvent>) {
        let mut health = None;
        loop {
            match next_event(rx).await {
                Event::Health(h) => health = Some(h),
                Event::ProbeDone(p) => return (p, health),
                Event::Weight(_) => {}
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_round_decides_then_rise_and_fall_exactly() {
        let fake = Fake::new(Duration::from_millis(10));
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        let t0 = Instant::now();
        s.add(RealId(7), spec(80, Duration::from_secs(1), 2, 3))
            .unwrap();

        let (done, health) = next_round(&mut rx).await;
        let health = health.expect("first round must report a transition");
        assert_eq!(
            (health.real, health.from, health.state),
            (RealId(7), State::Unknown, State::Up)
        );
        assert_eq!(health.reason, "ok");
        assert_eq!(done.state, State::Up);
        // Checked right away, not after a delay_loop.
        assert!(t0.elapsed() < Duration::from_millis(100));

        fake.set(80, false, "HTTP 503", None);
        for i in 1..=3 {
            let (done, health) = next_round(&mut rx).await;
            assert!(!done.outcome.ok);
            if i < 3 {
                assert_eq!((done.state, health), (State::Up, None), "round {i}");
            } else {
                let h = health.expect("Down after exactly fall rounds");
                assert_eq!(
                    (h.from, h.state, h.reason.as_str()),
                    (State::Up, State::Down, "HTTP 503")
                );
                assert_eq!(done.state, State::Down);
            }
        }
        fake.set(80, true, "HTTP 200", None);
        let (done, health) = next_round(&mut rx).await;
        assert_eq!((done.state, health), (State::Down, None));
        let (done, health) = next_round(&mut rx).await;
        let h = health.expect("Up after exactly rise rounds");
        assert_eq!(
            (h.from, h.state, h.reason.as_str()),
            (State::Down, State::Up, "HTTP 200")
        );
        assert_eq!(done.state, State::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_real_keeps_its_state_and_runs_no_checks() {
        let fake = Fake::new(Duration::from_millis(10));
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        s.add(RealId(3), spec(80, Duration::from_secs(1), 1, 1))
            .unwrap();
        assert_eq!(next_health(&mut rx).await.state, State::Up);
        assert!(s.set_paused(RealId(3), true));
        fake.set(80, false, "connection refused", None);
        let calls = fake.calls(80);
        // Ten intervals paused: no check, so no result and no transition.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(fake.calls(80), calls, "checks ran while paused");
        while let Ok(ev) = rx.try_recv() {
            assert!(!matches!(ev, Event::Health(_)), "{ev:?} while paused");
        }
        // Resumed: the first failing round counts again (fall 1).
        assert!(s.set_paused(RealId(3), false));
        let h = next_health(&mut rx).await;
        assert_eq!((h.from, h.state), (State::Up, State::Down));
        assert!(!s.set_paused(RealId(99), true), "unknown real");
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_failure_is_not_counted_against_the_real() {
        let fake = Fake::new(Duration::from_millis(10));
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        s.add(RealId(4), spec(80, Duration::from_secs(1), 1, 1))
            .unwrap();
        assert_eq!(next_health(&mut rx).await.state, State::Up);
        next_round(&mut rx).await; // the first round's ProbeDone
        fake.set(80, false, super::super::probe::NET_UNREACHABLE, None);
        for _ in 0..5 {
            let (done, health) = next_round(&mut rx).await;
            assert_eq!((done.state, health), (State::Up, None));
            assert_eq!(done.outcome.reason, "network unreachable");
        }
        fake.set(80, false, "connection refused", None);
        let h = next_health(&mut rx).await;
        assert_eq!(
            (h.state, h.reason.as_str()),
            (State::Down, "connection refused")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn all_checkers_must_pass_and_failing_reason_wins() {
        let fake = Fake::new(Duration::from_millis(10));
        fake.set(1001, true, "connected", None);
        fake.set(1002, false, "HTTP 503", None);
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        let mut sp = spec(80, Duration::from_secs(1), 1, 1);
        sp.checks = vec![tcp(Some(1001)), tcp(Some(1002))];
        s.add(RealId(1), sp).unwrap();
        let (done, health) = next_round(&mut rx).await;
        assert_eq!(
            health.map(|h| (h.state, h.reason)),
            Some((State::Down, "HTTP 503".into()))
        );
        assert_eq!(done.checks.len(), 2);
        assert!(done.checks[0].ok && !done.checks[1].ok);
        assert_eq!(done.outcome.reason, "HTTP 503");
        // Both ran in the same round, concurrently.
        assert_eq!((fake.calls(1001), fake.calls(1002)), (1, 1));
        assert_eq!(done.outcome.latency, Duration::from_millis(10));

        fake.set(1002, true, "HTTP 200", None);
        let (done, health) = next_round(&mut rx).await;
        assert_eq!(health.map(|h| h.state), Some(State::Up));
        assert_eq!(done.outcome.reason, "connected, HTTP 200");
    }

    #[tokio::test(start_paused = true)]
    async fn dynamic_weight_is_reported_on_change_only() {
        let fake = Fake::new(Duration::from_millis(10));
        fake.set(80, true, "exit 7, weight 5", Some(5));
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        s.add(RealId(1), spec(80, Duration::from_secs(1), 2, 2))
            .unwrap();
        let h = next_health(&mut rx).await;
        assert_eq!((h.state, h.weight), (State::Up, Some(5)));
        // Same weight: rounds but no Weight event.
        let (_, health) = next_round(&mut rx).await;
        assert_eq!(health, None);
        fake.set(80, true, "exit 9, weight 7", Some(7));
        let ev = loop {
            match next_event(&mut rx).await {
                Event::ProbeDone(p) if p.outcome.weight == Some(5) => continue,
                other => break other,
            }
        };
        assert_eq!(
            ev,
            Event::Weight(WeightEvent {
                real: RealId(1),
                state: State::Up,
                weight: 7,
                reason: "exit 9, weight 7".into()
            })
        );
        // A plain success (exit 0: weight unchanged) keeps weight 7 and sends no Weight event.
        fake.set(80, true, "exit 0", None);
        for _ in 0..3 {
            let ev = next_event(&mut rx).await;
            assert!(matches!(ev, Event::ProbeDone(_)), "{ev:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn update_keeps_state_and_applies_new_spec() {
        let fake = Fake::new(Duration::from_millis(10));
        fake.set(81, false, "connection refused", None);
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        s.add(RealId(1), spec(80, Duration::from_secs(1), 3, 3))
            .unwrap();
        assert_eq!(next_health(&mut rx).await.state, State::Up);

        // Reload: new port (failing), fall lowered to 1, faster interval. The state is kept
        // (no Unknown), and one failure now suffices.
        let t = Instant::now();
        s.update(RealId(1), spec(81, Duration::from_millis(200), 3, 1))
            .unwrap();
        let h = next_health(&mut rx).await;
        assert_eq!(
            (h.from, h.state, h.reason.as_str()),
            (State::Up, State::Down, "connection refused")
        );
        // The new interval applied: re-planned from the last start, not after the old 1s.
        assert!(
            t.elapsed() <= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(fake.calls(81), 1);

        assert_eq!(
            s.update(RealId(2), spec(1, Duration::from_secs(1), 1, 1)),
            Err(SchedulerError::NotFound(RealId(2)))
        );
        assert_eq!(
            s.add(RealId(1), spec(1, Duration::from_secs(1), 1, 1)),
            Err(SchedulerError::AlreadyExists(RealId(1)))
        );
        assert_eq!(
            s.update(RealId(1), spec(1, Duration::from_secs(1), 0, 1)),
            Err(SchedulerError::Config(ConfigError::Zero("rise")))
        );
        assert_eq!(
            s.add(RealId(3), spec(1, Duration::ZERO, 1, 1)),
            Err(SchedulerError::Config(ConfigError::Zero("delay_loop")))
        );
        assert!(!s.contains(RealId(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn remove_stops_checks_and_events() {
        let fake = Fake::new(Duration::from_millis(10));
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        s.add(RealId(1), spec(80, Duration::from_secs(1), 1, 1))
            .unwrap();
        s.add(RealId(2), spec(90, Duration::from_secs(1), 1, 1))
            .unwrap();
        for _ in 0..4 {
            next_round(&mut rx).await;
        }
        assert!(s.remove(RealId(1)));
        assert!(!s.remove(RealId(1)));
        assert_eq!(s.len(), 1);
        let calls = fake.calls(80);
        // Ten intervals of (virtual) time: only real 2 reports.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = 0;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if let Event::ProbeDone(p) = ev {
                assert_eq!(p.real, RealId(2));
                seen += 1;
            }
        }
        assert!(seen >= 9, "real 2 kept being checked ({seen})");
        assert_eq!(fake.calls(80), calls, "removed real still probed");
    }

    #[tokio::test(start_paused = true)]
    async fn hung_probe_is_cut_by_backstop() {
        let fake = Fake::new(Duration::from_millis(10));
        fake.hang.lock().unwrap().push(80);
        let (s, mut rx) = Scheduler::with_prober(SchedulerConfig::default(), fake.clone());
        s.add(RealId(1), spec(80, Duration::from_secs(1), 1, 1))
            .unwrap();
        let (done, health) = next_round(&mut rx).await;
        assert_eq!(health.map(|h| h.state), Some(State::Down));
        // connect_timeout 1s + 2s grace.
        assert_eq!(done.outcome.reason, "check did not finish within 3s");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_consumer_loses_probe_done_but_never_transitions() {
        let fake = Fake::new(Duration::from_millis(10));
        let cfg = SchedulerConfig {
            event_capacity: 2,
            ..SchedulerConfig::default()
        };
        let (s, mut rx) = Scheduler::with_prober(cfg, fake.clone());
        s.add(RealId(1), spec(80, Duration::from_secs(1), 1, 1))
            .unwrap();
        // Do not read for 10 rounds: the channel fills with the first events.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            s.dropped_probe_events() >= 5,
            "{}",
            s.dropped_probe_events()
        );
        fake.set(80, false, "HTTP 500", None);
        // The Down transition is delivered anyway (the real's loop waits for room).
        let mut states = Vec::new();
        while states.len() < 2 {
            if let Event::Health(h) = next_event(&mut rx).await {
                states.push(h.state);
            }
        }
        assert_eq!(states, vec![State::Up, State::Down]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded_with_1000_reals() {
        let fake = Fake::new(Duration::from_millis(100));
        let cfg = SchedulerConfig {
            max_concurrency: 64,
            ..SchedulerConfig::default()
        };
        assert_eq!(SchedulerConfig::default().max_concurrency, 256);
        let (s, mut rx) = Scheduler::with_prober(cfg, fake.clone());
        let t0 = Instant::now();
        for i in 0..1000u16 {
            s.add(
                RealId(u64::from(i)),
                spec(10_000 + i, Duration::from_secs(1), 1, 1),
            )
            .unwrap();
        }
        let mut first_round_done = None;
        let mut checked = std::collections::HashSet::new();
        let mut rounds = 0;
        while rounds < 3000 {
            if let Event::ProbeDone(p) = next_event(&mut rx).await {
                rounds += 1;
                checked.insert(p.real);
                if checked.len() == 1000 && first_round_done.is_none() {
                    first_round_done = Some(t0.elapsed());
                }
            }
        }
        // The limit was reached and never exceeded.
        assert_eq!(fake.peak.load(Ordering::SeqCst), 64);
        // 1000 checks of 100ms, 64 at a time: at least 16 waves.
        let first = first_round_done.unwrap();
        assert!(first >= Duration::from_millis(1600), "{first:?}");
        assert!(first < Duration::from_millis(1700), "{first:?}");
        assert_eq!(s.dropped_probe_events(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_drift_and_real_jitter_with_1000_reals() {
        const ROUNDS: usize = 20;
        let delay = Duration::from_secs(1);
        // Each check takes 300ms: scheduling from the end of a check would add 6s over 20
        // rounds, far outside the ±10% bound asserted below.
        let fake = Fake::new(Duration::from_millis(300));
        let cfg = SchedulerConfig {
            max_concurrency: 1000,
            event_capacity: 1 << 16,
            ..SchedulerConfig::default()
        };
        let (s, mut rx) = Scheduler::with_prober(cfg, fake.clone());
        for i in 0..1000u16 {
            s.add(RealId(u64::from(i)), spec(10_000 + i, delay, 1, 1))
                .unwrap();
        }
        let mut per_real: HashMap<RealId, usize> = HashMap::new();
        let mut complete = 0;
        while complete < 1000 {
            if let Event::ProbeDone(p) = next_event(&mut rx).await {
                let n = per_real.entry(p.real).or_default();
                *n += 1;
                if *n == ROUNDS + 1 {
                    complete += 1;
                }
            }
        }
        drop(s);
        let starts = fake.starts.lock().unwrap();
        let (mut sum, mut count) = (Duration::ZERO, 0u32);
        let (mut min, mut max) = (Duration::MAX, Duration::ZERO);
        for (port, times) in starts.iter() {
            assert!(times.len() > ROUNDS, "port {port}");
            let t0 = times[0];
            for k in 1..=ROUNDS {
                let since = times[k] - t0;
                // Timer wheel resolution is 1ms per sleep.
                let slack = Duration::from_millis(k as u64);
                assert!(
                    since >= delay.mul_f64(0.9 * k as f64),
                    "port {port} round {k}: {since:?}"
                );
                assert!(
                    since <= delay.mul_f64(1.1 * k as f64) + slack,
                    "port {port} round {k}: {since:?}"
                );
                let gap = times[k] - times[k - 1];
                sum += gap;
                count += 1;
                min = min.min(gap);
                max = max.max(gap);
            }
        }
        let mean = sum / count;
        assert!(
            mean > Duration::from_millis(990) && mean < Duration::from_millis(1010),
            "mean {mean:?}"
        );
        // Jitter really spreads the rounds out.
        assert!(min < Duration::from_millis(920), "min {min:?}");
        assert!(max > Duration::from_millis(1080), "max {max:?}");
    }

    /// Real sockets, real time: a loopback server that stops and restarts.
    #[tokio::test]
    async fn real_listener_goes_down_after_fall_and_up_after_rise() {
        fn listen(addr: SocketAddr) -> tokio::net::TcpListener {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.set_reuseaddr(true).unwrap();
            sock.bind(addr).unwrap();
            sock.listen(128).unwrap()
        }
        fn serve(l: tokio::net::TcpListener) -> JoinHandle<()> {
            tokio::spawn(async move {
                loop {
                    if let Ok((conn, _)) = l.accept().await {
                        drop(conn);
                    }
                }
            })
        }
        let listener = listen("127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().unwrap();
        let server = serve(listener);

        let (s, mut rx) = Scheduler::new(SchedulerConfig::default());
        let (rise, fall) = (2, 3);
        s.add(
            RealId(9),
            spec(addr.port(), Duration::from_millis(100), rise, fall),
        )
        .unwrap();
        let h = next_health(&mut rx).await;
        assert_eq!(
            (h.from, h.state, h.reason.as_str()),
            (State::Unknown, State::Up, "connected")
        );

        // Stop the server (abort drops the listener; await makes sure it is closed).
        server.abort();
        assert!(server.await.unwrap_err().is_cancelled());
        let mut fails = 0;
        loop {
            let (done, health) = next_round(&mut rx).await;
            if done.outcome.ok {
                fails = 0; // a round that connected just before the stop
                assert_eq!(done.state, State::Up);
                continue;
            }
            fails += 1;
            assert_eq!(done.outcome.reason, "connection refused");
            if fails < fall {
                assert_eq!((done.state, health), (State::Up, None));
            } else {
                let h = health.expect("transition on the fall-th failure");
                assert_eq!(
                    (h.from, h.state, h.reason.as_str()),
                    (State::Up, State::Down, "connection refused")
                );
                assert_eq!(done.state, State::Down);
                break;
            }
        }

        // Restart on the same port.
        let server = serve(listen(addr));
        let mut oks = 0;
        loop {
            let (done, health) = next_round(&mut rx).await;
            if !done.outcome.ok {
                oks = 0; // a round that ran just before the restart
                continue;
            }
            oks += 1;
            if oks < rise {
                assert_eq!((done.state, health), (State::Down, None));
            } else {
                let h = health.expect("transition on the rise-th success");
                assert_eq!(
                    (h.from, h.state, h.reason.as_str()),
                    (State::Down, State::Up, "connected")
                );
                break;
            }
        }
        server.abort();
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let mut rng = SplitMix64(42);
        let d = Duration::from_secs(10);
        let samples: Vec<Duration> = (0..10_000).map(|_| jittered(d, 0.1, &mut rng)).collect();
        assert!(samples
            .iter()
            .all(|s| *s >= Duration::from_secs(9) && *s < Duration::from_secs(11)));
        assert!(samples.iter().any(|s| *s < Duration::from_millis(9100)));
        assert!(samples.iter().any(|s| *s > Duration::from_millis(10900)));
        assert_eq!(jittered(d, 0.0, &mut rng), d);
    }

    #[test]
    fn combine_rules() {
        let ok = |r: &str, ms, w| Outcome {
            ok: true,
            reason: r.into(),
            latency: Duration::from_millis(ms),
            weight: w,
        };
        let c = combine(&[ok("a", 5, Some(9)), ok("b", 7, Some(3)), ok("c", 1, None)]);
        assert_eq!(
            (c.ok, c.reason.as_str(), c.latency, c.weight),
            (true, "a, b, c", Duration::from_millis(7), Some(3))
        );
        let c = combine(&[
            ok("a", 5, Some(9)),
            Outcome::down("x", Duration::from_millis(9)),
            Outcome::down("y", Duration::ZERO),
        ]);
        assert_eq!(
            (c.ok, c.reason.as_str(), c.latency, c.weight),
            (false, "x", Duration::from_millis(9), None)
        );
        let c = combine(&[]);
        assert_eq!((c.ok, c.reason.as_str()), (true, "no checks configured"));
    }
}
