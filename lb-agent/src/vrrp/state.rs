//! The sans-IO VRRP protocol core (quinn-proto style): one [`Instance`] per
//! virtual router.
//!
//! The instance never reads a clock and never touches a socket. The driver
//! feeds it events stamped with the current time ([`Instance::startup`],
//! [`Instance::handle_advert`], [`Instance::handle_timeout`], tracking and
//! admin events) and then drains [`Instance::poll_action`] and sleeps until
//! [`Instance::poll_timeout`]. Actions are queued in protocol order: within
//! one event, adverts come before the state change that follows them, as in
//! the RFC text ("Send an ADVERTISEMENT ... Transition to the Master state").
//!
//! Protocol references: RFC 3768 (v2) and RFC 5798 (v3), obsoleted by
//! RFC 9568, which renames Master to "Active" but keeps the rules. Where we
//! go beyond the RFCs (graceful handover, split-brain accounting,
//! `preempt_delay`) the comments say so.
//!
//! One deliberate departure everywhere: the RFC's Shutdown event leads to
//! Initialize; ours leads to the terminal [`State::Stopped`] (via
//! [`State::Releasing`] for a master), because an `lb` instance that is shut
//! down is going away. A restart is a new `Instance`.

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::packet::{Advert, Auth, Version, V3_MAX_INTERVAL_CS};
use super::timers::{self, cs_to_duration, deadline};

/// Priority of the router that owns the virtual addresses (RFC 3768 §5.3.4,
/// RFC 9568 §5.2.4).
pub const OWNER_PRIORITY: u8 = 255;
/// Priority in an advert that says "the master is leaving"
/// (RFC 3768 §5.3.4, RFC 9568 §5.2.4).
pub const RELEASE_PRIORITY: u8 = 0;
/// Highest priority a tracked, non-owner router may take.
pub const MAX_BACKUP_PRIORITY: u8 = 254;
/// Most addresses one advert can carry (the count field is 8 bits).
pub const MAX_VIPS: usize = 255;

/// Configuration of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Name for logs and notify scripts.
    pub name: String,
    /// Virtual router ID, 1..=255.
    pub vrid: u8,
    /// Protocol version.
    pub version: Version,
    /// Configured base priority, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Advertisement_Interval. v3: multiple of 10 ms in 10 ms..=40.95 s;
    /// v2: whole seconds 1..=255.
    pub advert_interval: Duration,
    /// Preempt_Mode (default true; keepalived `nopreempt` => false).
    pub preempt: bool,
    /// keepalived `preempt_delay`: after startup (or recovery from Fault),
    /// follow a lower-priority master as if `nopreempt` until this has
    /// passed, e.g. to let routes and health checks settle first.
    pub preempt_delay: Duration,
    /// Our primary address: the source of our adverts and the equal-priority
    /// tie-break key.
    pub primary_addr: Ipv4Addr,
    /// Virtual addresses carried in adverts.
    pub vips: Vec<Ipv4Addr>,
    /// v2 authentication (must be [`Auth::None`] for v3).
    pub auth: Auth,
    /// Empty = multicast. Otherwise adverts are sent to these addresses and
    /// adverts from any other source are dropped.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// Optional allow-list of sources in multicast mode (empty = any).
    pub allowed_peers: Vec<Ipv4Addr>,
    /// How long a master that was shut down keeps the VIPs while waiting to
    /// hear the new master. `None` => Skew_Time(priority 1) + one advert
    /// interval ([`timers::default_handover_timeout`]).
    pub handover_timeout: Option<Duration>,
}

impl Default for InstanceConfig {
    /// keepalived's defaults: VRRP v2, priority 100, `advert_int 1`,
    /// preempt on, no delay, multicast.
    fn default() -> Self {
        InstanceConfig {
            name: String::new(),
            vrid: 1,
            version: Version::V2,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_addr: Ipv4Addr::UNSPECIFIED,
            vips: Vec::new(),
            auth: Auth::None,
            unicast_peers: Vec::new(),
            allowed_peers: Vec::new(),
            handover_timeout: None,
        }
    }
}

/// A configuration [`InstanceConfig::validate`] rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigError {
    /// VRID 0 (RFC 3768 §5.3.3, RFC 9568 §5.2.3: 1..=255).
    Vrid,
    /// Priority 0 is reserved for "master leaving" (RFC 9568 §5.2.4).
    Priority,
    /// Interval out of range or not representable on the wire.
    Interval,
    /// No virtual address (an advert needs at least one, RFC 9568 §5.2.5).
    NoVips,
    /// More than 255 virtual addresses.
    TooManyVips,
    /// Primary address unspecified, multicast or broadcast.
    PrimaryAddr,
    /// Authentication configured for v3, which has none (RFC 5798 §9).
    AuthWithV3,
    /// Our own primary address listed as a unicast peer.
    PeerIsSelf,
}

impl ConfigError {
    /// Stable label for logs.
    pub const fn label(&self) -> &'static str {
        match self {
            ConfigError::Vrid => "vrid",
            ConfigError::Priority => "priority",
            ConfigError::Interval => "interval",
            ConfigError::NoVips => "no_vips",
            ConfigError::TooManyVips => "too_many_vips",
            ConfigError::PrimaryAddr => "primary_addr",
            ConfigError::AuthWithV3 => "auth_with_v3",
            ConfigError::PeerIsSelf => "peer_is_self",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid VRRP instance configuration: {}", self.label())
    }
}

impl std::error::Error for ConfigError {}

impl InstanceConfig {
    /// Checks everything [`Instance::new`] would otherwise silently
    /// normalize. Call it when loading configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::Vrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::Priority);
        }
        let cs = interval_cs(self.version, self.advert_interval);
        if cs_to_duration(cs) != self.advert_interval {
            return Err(ConfigError::Interval);
        }
        if self.vips.is_empty() {
            return Err(ConfigError::NoVips);
        }
        if self.vips.len() > MAX_VIPS {
            return Err(ConfigError::TooManyVips);
        }
        let a = self.primary_addr;
        if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
            return Err(ConfigError::PrimaryAddr);
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(ConfigError::AuthWithV3);
        }
        if self.unicast_peers.contains(&self.primary_addr) {
            return Err(ConfigError::PeerIsSelf);
        }
        Ok(())
    }
}

/// Advertisement_Interval in centiseconds, clamped to what the wire can
/// carry: v2 whole seconds 1..=255 (sub-second parts truncated), v3 whole
/// centiseconds 1..=4095 (sub-centisecond parts truncated).
fn interval_cs(version: Version, interval: Duration) -> u16 {
    match version {
        Version::V2 => {
            let secs = interval.as_secs().clamp(1, 255);
            u16::try_from(secs * 100).unwrap_or(25_500)
        }
        Version::V3 => {
            let cs = (interval.as_millis() / 10).clamp(1, u128::from(V3_MAX_INTERVAL_CS));
            u16::try_from(cs).unwrap_or(V3_MAX_INTERVAL_CS)
        }
    }
}

/// Protocol state (RFC 3768 §6.4, RFC 9568 §6.4) plus our additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Created, not started (RFC §6.4.1).
    Initialize,
    /// Monitoring the master (RFC §6.4.2).
    Backup,
    /// Owning the virtual addresses (RFC §6.4.3; "Active" in RFC 9568).
    Master,
    /// Tracked resource down: no adverts sent or heard, no VIPs.
    Fault,
    /// Shut down while master: priority 0 sent, VIPs and forwarding kept
    /// until the new master is heard (graceful handover).
    Releasing,
    /// Terminal.
    Stopped,
}

impl State {
    /// Stable label for logs, metrics and notify scripts.
    pub const fn label(&self) -> &'static str {
        match self {
            State::Initialize => "initialize",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
            State::Releasing => "releasing",
            State::Stopped => "stopped",
        }
    }

    /// Whether the driver should hold the VIPs and forward in this state.
    pub const fn holds_vips(&self) -> bool {
        matches!(self, State::Master | State::Releasing)
    }
}

/// Why a state change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// [`Instance::startup`].
    Startup,
    /// Master_Down_Timer expired: the master went silent.
    MasterDownTimer,
    /// Master_Down_Timer expired after the master sent priority 0.
    PriorityZeroReceived {
        /// The master that left.
        peer: Ipv4Addr,
    },
    /// Master_Down_Timer expired while we ignored a lower-priority master
    /// (we preempted it).
    Preempted {
        /// The lower-priority master.
        peer: Ipv4Addr,
    },
    /// A master heard a better master: higher priority, or equal priority
    /// and a higher primary address.
    HigherPriorityAdvert {
        /// The better master.
        peer: Ipv4Addr,
        /// Its priority.
        priority: u8,
    },
    /// [`Instance::fault`].
    Fault,
    /// [`Instance::recover`].
    Recovered,
    /// [`Instance::shutdown`].
    Shutdown,
    /// While releasing, the new master's advert arrived.
    NewMasterSeen {
        /// The new master.
        peer: Ipv4Addr,
    },
    /// While releasing, nobody took over within the handover timeout.
    HandoverTimeout,
    /// Another member of this instance's sync group changed state
    /// ([`Instance::sync_master`], [`Instance::sync_backup`]).
    SyncGroup,
}

impl Reason {
    /// Stable label for logs and notify scripts.
    pub const fn label(&self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::MasterDownTimer => "master_down_timer",
            Reason::PriorityZeroReceived { .. } => "priority_zero_received",
            Reason::Preempted { .. } => "preempted",
            Reason::HigherPriorityAdvert { .. } => "higher_priority_advert",
            Reason::Fault => "fault",
            Reason::Recovered => "recovered",
            Reason::Shutdown => "shutdown",
            Reason::NewMasterSeen { .. } => "new_master_seen",
            Reason::HandoverTimeout => "handover_timeout",
            Reason::SyncGroup => "sync_group",
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert now: to [`super::packet::VRRP_MCAST_V4`], or to each
    /// unicast peer, from `primary_addr` (priority 0 when releasing).
    Transmit(Advert),
    /// Exactly one per state change. The driver applies the side effects:
    /// add/remove VIPs, attach/detach XDP, start/cancel gratuitous ARP,
    /// run notify scripts. See [`State::holds_vips`].
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// While master, we heard another router's non-zero-priority advert:
    /// two routers claimed the VIPs at the same time. Normal for an instant
    /// during preemption; repeated events mean a one-way partition.
    SplitBrain {
        /// The other master.
        peer: Ipv4Addr,
        /// Its advertised priority.
        peer_priority: u8,
    },
}

/// Why [`Instance::handle_advert`] ignored an advert that parsed fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// We are in Initialize, Fault or Stopped and listen to nobody.
    Inactive,
    /// Another virtual router's advert (RFC 3768 §7.1, RFC 9568 §7.1).
    WrongVrid,
    /// VRRP version differs from ours (keepalived drops these too; mixed
    /// v2/v3 operation, RFC 9568 §8.4, is not supported).
    VersionMismatch,
    /// Our own advert, looped back by multicast or a misconfigured
    /// duplicate address. Processing it would make a master answer itself.
    OwnAdvert,
    /// Source is not a configured unicast peer, or not in `allowed_peers`.
    NotAPeer,
    /// v2 auth type or password differs from ours (RFC 3768 §7.1).
    Auth,
    /// v2: the advert interval differs from ours (RFC 3768 §7.1: MUST
    /// discard). For v3 this is only counted in [`Stats::noted`]: backups
    /// learn the master's interval (RFC 9568 §7.1 says log only).
    IntervalMismatch,
    /// The advertised address list differs from our VIPs. Never returned:
    /// the advert is still processed and the event is counted in
    /// [`Stats::noted`] (RFC 3768 §7.1 / RFC 9568 §7.1 "MAY verify ... SHOULD
    /// log"; keepalived logs and continues).
    AddressListMismatch,
}

impl DropReason {
    /// Every variant, e.g. to pre-register counters.
    pub const ALL: [DropReason; 8] = [
        DropReason::Inactive,
        DropReason::WrongVrid,
        DropReason::VersionMismatch,
        DropReason::OwnAdvert,
        DropReason::NotAPeer,
        DropReason::Auth,
        DropReason::IntervalMismatch,
        DropReason::AddressListMismatch,
    ];

    /// Stable `snake_case` label for counters.
    pub const fn label(&self) -> &'static str {
        match self {
            DropReason::Inactive => "inactive",
            DropReason::WrongVrid => "wrong_vrid",
            DropReason::VersionMismatch => "version_mismatch",
            DropReason::OwnAdvert => "own_advert",
            DropReason::NotAPeer => "not_a_peer",
            DropReason::Auth => "auth",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::AddressListMismatch => "address_list_mismatch",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VRRP advert dropped: {}", self.label())
    }
}

/// Per-instance counters for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Adverts that passed every check and reached the state machine.
    pub adverts_rx: u64,
    /// Of those, priority 0.
    pub priority_zero_rx: u64,
    /// Adverts we asked to transmit.
    pub adverts_tx: u64,
    /// Of those, priority 0.
    pub priority_zero_tx: u64,
    dropped: [u64; DropReason::ALL.len()],
    noted: [u64; DropReason::ALL.len()],
}

impl Stats {
    /// Adverts dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Adverts accepted despite `reason` (address list mismatch; v3 interval
    /// mismatch).
    pub fn noted(&self, reason: DropReason) -> u64 {
        self.noted[reason.index()]
    }
}

fn bump(counter: &mut u64) {
    *counter = counter.saturating_add(1);
}

/// What the Master_Down_Timer will mean when it fires, for the reason of the
/// resulting state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownCause {
    Silence,
    PriorityZero(Ipv4Addr),
    Preempting(Ipv4Addr),
}

impl DownCause {
    const fn reason(self) -> Reason {
        match self {
            DownCause::Silence => Reason::MasterDownTimer,
            DownCause::PriorityZero(peer) => Reason::PriorityZeroReceived { peer },
            DownCause::Preempting(peer) => Reason::Preempted { peer },
        }
    }
}

/// One VRRP virtual router.
#[derive(Debug, Clone)]
pub struct Instance {
    cfg: InstanceConfig,
    /// Advertisement_Interval (ours), centiseconds.
    adver_interval_cs: u16,
    /// Effective priority (base adjusted by tracking).
    priority: u8,
    state: State,
    /// The one running timer: Master_Down_Timer in Backup, Adver_Timer in
    /// Master, the handover deadline in Releasing.
    timer: Option<Instant>,
    /// Master_Adver_Interval, centiseconds (RFC 9568 §6.1).
    master_adver_interval_cs: u16,
    /// Last master seen (address, priority); ourselves while master.
    master: Option<(Ipv4Addr, u8)>,
    down_cause: DownCause,
    /// With `preempt_delay`: until this instant, follow lower-priority
    /// masters.
    preempt_after: Option<Instant>,
    actions: VecDeque<Action>,
    split_brain_count: u64,
    transitions: u64,
    stats: Stats,
}

impl Instance {
    /// Creates an instance in [`State::Initialize`]. Never fails: values
    /// [`InstanceConfig::validate`] would reject are normalized (priority 0
    /// becomes 1; the interval is clamped and truncated to what the wire
    /// carries; v3 ignores `auth`). Use [`Instance::try_new`] to refuse them.
    pub fn new(cfg: InstanceConfig) -> Instance {
        let adver_interval_cs = interval_cs(cfg.version, cfg.advert_interval);
        let priority = cfg.priority.max(1);
        Instance {
            cfg,
            adver_interval_cs,
            priority,
            state: State::Initialize,
            timer: None,
            master_adver_interval_cs: adver_interval_cs,
            master: None,
            down_cause: DownCause::Silence,
            preempt_after: None,
            actions: VecDeque::new(),
            split_brain_count: 0,
            transitions: 0,
            stats: Stats::default(),
        }
    }

    /// [`InstanceConfig::validate`], then [`Instance::new`].
    pub fn try_new(cfg: InstanceConfig) -> Result<Instance, ConfigError> {
        cfg.validate()?;
        Ok(Instance::new(cfg))
    }

    // ----- events -------------------------------------------------------

    /// Starts the protocol: Initialize -> Master for the address owner,
    /// else Backup (RFC 3768 §6.4.1, RFC 9568 §6.4.1). No-op in any other
    /// state.
    pub fn startup(&mut self, now: Instant) {
        if self.state == State::Initialize {
            self.start(now, Reason::Startup);
        }
    }

    /// Processes an advert received from `src` (already parsed by
    /// `super::packet::parse_datagram`). `Err` means it was ignored, and
    /// why; the matching [`Stats::dropped`] counter was bumped.
    pub fn handle_advert(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        advert: &Advert,
    ) -> Result<(), DropReason> {
        if let Err(reason) = self.screen(src, advert) {
            bump(&mut self.stats.dropped[reason.index()]);
            return Err(reason);
        }
        self.note_anomalies(advert);
        bump(&mut self.stats.adverts_rx);
        if advert.priority == RELEASE_PRIORITY {
            bump(&mut self.stats.priority_zero_rx);
        }
        match self.state {
            State::Backup => self.backup_rx(now, src, advert),
            State::Master => self.master_rx(now, src, advert),
            State::Releasing => self.releasing_rx(src, advert),
            // screen() dropped these already.
            State::Initialize | State::Fault | State::Stopped => {}
        }
        Ok(())
    }

    /// Fires the running timer if `now` has reached it; earlier calls are
    /// harmless no-ops (spurious wake-ups).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(at) = self.timer else { return };
        if now < at {
            return;
        }
        match self.state {
            // RFC 3768 §6.4.2 / RFC 9568 §6.4.2: "If the Master_Down_Timer
            // fires": send an advert, (driver: gratuitous ARP), set the
            // Adver_Timer, transition to Master.
            State::Backup => self.become_master(now, self.down_cause.reason()),
            // RFC 3768 §6.4.3 / RFC 9568 §6.4.3: "If the Adver_Timer fires":
            // send an advert and reset the Adver_Timer.
            State::Master => self.send_advert(now),
            // Graceful handover gave up: nobody announced themselves.
            State::Releasing => self.stop(Reason::HandoverTimeout),
            State::Initialize | State::Fault | State::Stopped => self.timer = None,
        }
    }

    /// Sets the effective priority from tracking (track_script / interface
    /// weights), clamped to 1..=254 so tracking can neither fake ownership
    /// nor send the reserved 0. The address owner ignores tracking, as
    /// keepalived does (an owner must always win). A master whose priority
    /// changes advertises at once so backups re-evaluate preemption without
    /// waiting an interval. A backup's new priority takes effect in the next
    /// Skew_Time it computes.
    pub fn set_priority(&mut self, now: Instant, effective: u8) {
        if self.is_owner() {
            return;
        }
        let priority = effective.clamp(1, MAX_BACKUP_PRIORITY);
        if priority == self.priority {
            return;
        }
        self.priority = priority;
        if self.state == State::Master {
            self.master = Some((self.cfg.primary_addr, priority));
            self.send_advert(now);
        }
    }

    /// A tracked resource failed (the RFCs have no Fault state; this is
    /// keepalived's FAULT). A master first sends priority 0, by analogy with
    /// Shutdown (RFC 9568 §6.4.3), so that backups take over after their
    /// Skew_Time instead of Master_Down_Interval; it gives the VIPs up at once
    /// because a faulty node should not keep forwarding. In Releasing the
    /// handover is abandoned (Stopped). Idempotent.
    pub fn fault(&mut self, _now: Instant) {
        match self.state {
            State::Master => {
                self.send_release();
                self.timer = None;
                self.transition(State::Fault, Reason::Fault);
            }
            State::Initialize | State::Backup => {
                self.timer = None;
                self.transition(State::Fault, Reason::Fault);
            }
            State::Releasing => self.stop(Reason::Fault),
            State::Fault | State::Stopped => {}
        }
    }

    /// The fault cleared: Fault -> Backup, or -> Master for the address
    /// owner, exactly as at startup (RFC §6.4.1), including a fresh
    /// `preempt_delay`. No-op in any other state.
    pub fn recover(&mut self, now: Instant) {
        if self.state == State::Fault {
            self.start(now, Reason::Recovered);
        }
    }

    /// Sync group (keepalived `vrrp_sync_group`): another member became
    /// master, so this backup does too, at once, as keepalived does: the
    /// members of a group (say, both legs of a router) must move as one.
    /// No-op in any other state.
    pub fn sync_master(&mut self, now: Instant) {
        if self.state == State::Backup {
            self.become_master(now, Reason::SyncGroup);
        }
    }

    /// Sync group: another member lost an election to a better master, so
    /// this master steps down with it, exactly as if it had heard a better
    /// master itself (RFC §6.4.3: Master_Down_Timer armed, Backup). No-op in
    /// any other state.
    pub fn sync_backup(&mut self, now: Instant) {
        if self.state == State::Master {
            self.master = None;
            self.arm_master_down(now);
            self.transition(State::Backup, Reason::SyncGroup);
        }
    }

    /// Administrative shutdown.
    ///
    /// As master: send priority 0 (RFC 3768 §6.4.3 / RFC 9568 §6.4.3) but,
    /// unlike keepalived, keep the VIPs in [`State::Releasing`] until the new
    /// master's advert arrives or the handover timeout passes, so traffic
    /// is not black-holed for the backup's Skew_Time. The priority-0 advert
    /// is sent once: repeating it would re-arm the backups'
    /// Master_Down_Timer to Skew_Time and could push a lower backup into a
    /// transient second mastership.
    ///
    /// In Releasing, a second shutdown stops at once (operator impatience
    /// wins). From any other state: Stopped at once.
    pub fn shutdown(&mut self, now: Instant) {
        match self.state {
            State::Master => {
                self.send_release();
                self.timer = Some(deadline(now, self.handover_timeout()));
                self.transition(State::Releasing, Reason::Shutdown);
            }
            State::Stopped => {}
            State::Initialize | State::Backup | State::Fault | State::Releasing => {
                self.stop(Reason::Shutdown);
            }
        }
    }

    // ----- outputs ------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// The next action, in the order they arose.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // ----- accessors ----------------------------------------------------

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Whether we own the addresses (base priority 255).
    pub fn is_owner(&self) -> bool {
        self.cfg.priority == OWNER_PRIORITY
    }

    /// The last master seen (ourselves while master or releasing), if any.
    pub fn master_addr(&self) -> Option<Ipv4Addr> {
        self.master.map(|(addr, _)| addr)
    }

    /// The priority the last master seen advertised.
    pub fn master_priority(&self) -> Option<u8> {
        self.master.map(|(_, priority)| priority)
    }

    /// How many times, as master, we heard another master.
    pub fn split_brain_count(&self) -> u64 {
        self.split_brain_count
    }

    /// Number of state changes so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The configuration as given.
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Our Advertisement_Interval (normalized).
    pub fn advert_interval(&self) -> Duration {
        cs_to_duration(self.adver_interval_cs)
    }

    /// Master_Adver_Interval: ours, or the one learned from a v3 master.
    pub fn master_adver_interval(&self) -> Duration {
        cs_to_duration(self.master_adver_interval_cs)
    }

    /// Current Skew_Time (RFC 3768 §6.1, RFC 9568 §6.1).
    pub fn skew_time(&self) -> Duration {
        timers::skew_time(
            self.cfg.version,
            self.priority,
            self.master_adver_interval_cs,
        )
    }

    /// Current Master_Down_Interval (RFC 3768 §6.1, RFC 9568 §6.1).
    pub fn master_down_interval(&self) -> Duration {
        timers::master_down_interval(
            self.cfg.version,
            self.priority,
            self.master_adver_interval_cs,
        )
    }

    /// How long Releasing waits for the new master.
    pub fn handover_timeout(&self) -> Duration {
        self.cfg.handover_timeout.unwrap_or_else(|| {
            timers::default_handover_timeout(self.cfg.version, self.adver_interval_cs)
        })
    }

    // ----- receive rules ------------------------------------------------

    /// The configuration-dependent receive checks of RFC 3768 §7.1 /
    /// RFC 9568 §7.1, plus our peer filters. The packet-level ones (TTL,
    /// version, type, length, checksum) were done by the parser.
    fn screen(&self, src: Ipv4Addr, advert: &Advert) -> Result<(), DropReason> {
        if matches!(
            self.state,
            State::Initialize | State::Fault | State::Stopped
        ) {
            return Err(DropReason::Inactive);
        }
        // "MUST verify that the VRID is configured on the receiving
        // interface". Unlike RFC 3768 §7.1 (and RFC 5798 §7.1) we do not
        // drop adverts when we are the address owner: RFC 9568 erratum 8298
        // makes that a SHOULD-log, and processing them lets an owner answer
        // a rogue master at once and count the split brain.
        if advert.vrid != self.cfg.vrid {
            return Err(DropReason::WrongVrid);
        }
        if advert.version != self.cfg.version {
            return Err(DropReason::VersionMismatch);
        }
        if src == self.cfg.primary_addr {
            return Err(DropReason::OwnAdvert);
        }
        let unicast_ok = self.cfg.unicast_peers.is_empty() || self.cfg.unicast_peers.contains(&src);
        let allowed_ok = self.cfg.allowed_peers.is_empty() || self.cfg.allowed_peers.contains(&src);
        if !unicast_ok || !allowed_ok {
            return Err(DropReason::NotAPeer);
        }
        if self.cfg.version == Version::V2 {
            // RFC 3768 §7.1: "MUST verify that the Auth Type matches the
            // locally configured authentication method".
            if advert.auth != self.cfg.auth {
                return Err(DropReason::Auth);
            }
            // RFC 3768 §7.1: "MUST verify that the Adver Interval in the
            // packet is the same as the locally configured".
            if advert.interval_cs != self.adver_interval_cs {
                return Err(DropReason::IntervalMismatch);
            }
        }
        Ok(())
    }

    /// RFC 3768 §7.1 / RFC 9568 §7.1 "MAY verify that the IP address(es)
    /// ... are valid ... SHOULD log": counted, not dropped. Likewise a v3
    /// interval that differs from ours (RFC 9568 §7.1 SHOULD log).
    fn note_anomalies(&mut self, advert: &Advert) {
        if !self.address_list_matches(advert) {
            bump(&mut self.stats.noted[DropReason::AddressListMismatch.index()]);
        }
        if self.cfg.version == Version::V3 && advert.interval_cs != self.adver_interval_cs {
            bump(&mut self.stats.noted[DropReason::IntervalMismatch.index()]);
        }
    }

    /// Same count, and every configured VIP present (order-insensitive, as
    /// keepalived checks). At most 255 × 255 comparisons.
    fn address_list_matches(&self, advert: &Advert) -> bool {
        let ours = &self.cfg.vips[..self.cfg.vips.len().min(MAX_VIPS)];
        advert.addresses.len() == ours.len() && ours.iter().all(|a| advert.addresses.contains(a))
    }

    /// RFC 3768 §6.4.2 / RFC 9568 §6.4.2, Backup receiving an advert.
    fn backup_rx(&mut self, now: Instant, src: Ipv4Addr, advert: &Advert) {
        if advert.priority == RELEASE_PRIORITY {
            // "If the Priority in the ADVERTISEMENT is zero, then: Set the
            // Master_Down_Timer to Skew_Time".
            self.timer = Some(deadline(now, self.skew_time()));
            self.down_cause = DownCause::PriorityZero(src);
            return;
        }
        self.master = Some((src, advert.priority));
        let lower = advert.priority < self.priority;
        if !self.preempt_allowed(now) || !lower {
            // "If Preempt_Mode is False, or if the Priority in the
            // ADVERTISEMENT is greater than or equal to the local Priority":
            // learn Master_Adver_Interval (v3 only; RFC 3768 has no such
            // variable and v2 intervals must match), recompute Skew_Time and
            // Master_Down_Interval, reset the Master_Down_Timer.
            self.learn_interval(advert);
            self.arm_master_down(now);
        } else if self.down_cause == DownCause::Silence {
            // "else ... Discard the ADVERTISEMENT": the timer keeps running
            // and fires Master_Down_Interval after the last accepted advert,
            // which is how a better backup preempts.
            self.down_cause = DownCause::Preempting(src);
        }
    }

    /// RFC 3768 §6.4.3 / RFC 9568 §6.4.3, Master receiving an advert.
    fn master_rx(&mut self, now: Instant, src: Ipv4Addr, advert: &Advert) {
        if advert.priority == RELEASE_PRIORITY {
            // "If the Priority in the ADVERTISEMENT is zero, then: Send an
            // ADVERTISEMENT; Reset the Adver_Timer": a leaving master must
            // not make backups take over from us.
            self.send_advert(now);
            return;
        }
        // Another router claims mastership while we hold it.
        bump(&mut self.split_brain_count);
        self.actions.push_back(Action::SplitBrain {
            peer: src,
            peer_priority: advert.priority,
        });
        // "If the Priority in the ADVERTISEMENT is greater than the local
        // Priority or the Priority in the ADVERTISEMENT is equal to the local
        // Priority and the primary IPvX address of the sender is greater than
        // the local primary IPvX address (based on an unsigned integer
        // comparison of the IPvX addresses in network byte order)".
        let theirs = (advert.priority, u32::from(src));
        let ours = (self.priority, u32::from(self.cfg.primary_addr));
        if theirs > ours {
            // "Cancel Adver_Timer; Set Master_Adver_Interval to Adver
            // Interval contained in the ADVERTISEMENT; Recompute the Skew_Time
            // and Master_Down_Interval; Set Master_Down_Timer to
            // Master_Down_Interval; Transition to the Backup state".
            self.learn_interval(advert);
            self.master = Some((src, advert.priority));
            self.arm_master_down(now);
            self.transition(
                State::Backup,
                Reason::HigherPriorityAdvert {
                    peer: src,
                    priority: advert.priority,
                },
            );
        } else {
            // RFC 9568 §6.4.3 "new Active Router logic": discard it and "Send
            // an ADVERTISEMENT immediately to assert the Active state to the
            // sending VRRP Router". keepalived does the same and resets its
            // Adver_Timer, as the captures show.
            self.send_advert(now);
        }
    }

    /// Graceful handover: any router advertising a non-zero priority is (or
    /// is becoming) the master, so our VIPs can go.
    fn releasing_rx(&mut self, src: Ipv4Addr, advert: &Advert) {
        if advert.priority != RELEASE_PRIORITY {
            self.master = Some((src, advert.priority));
            self.stop(Reason::NewMasterSeen { peer: src });
        }
    }

    /// v3: Master_Adver_Interval := the advert's interval (RFC 9568 §6.4.2,
    /// §6.4.3). The parser rejects 0 and cannot produce more than 4095, but
    /// a hand-built `Advert` could; clamping keeps a bogus value from
    /// collapsing Master_Down_Interval to zero. v2 has no such variable.
    fn learn_interval(&mut self, advert: &Advert) {
        if self.cfg.version == Version::V3 {
            self.master_adver_interval_cs = advert.interval_cs.clamp(1, V3_MAX_INTERVAL_CS);
        }
    }

    fn preempt_allowed(&self, now: Instant) -> bool {
        self.cfg.preempt && self.preempt_after.is_none_or(|t| now >= t)
    }

    // ----- transitions and timers ----------------------------------------

    /// RFC 3768 §6.4.1 / RFC 9568 §6.4.1, shared by startup and recovery.
    fn start(&mut self, now: Instant, reason: Reason) {
        self.preempt_after =
            (!self.cfg.preempt_delay.is_zero()).then(|| deadline(now, self.cfg.preempt_delay));
        // "Set Master_Adver_Interval to Advertisement_Interval".
        self.master_adver_interval_cs = self.adver_interval_cs;
        self.master = None;
        if self.priority == OWNER_PRIORITY {
            // "If the Priority = 255 ...: Send an ADVERTISEMENT; broadcast a
            // gratuitous ARP (driver); Set the Adver_Timer to
            // Advertisement_Interval; Transition to the Master state".
            self.become_master(now, reason);
        } else {
            // "Set the Master_Down_Timer to Master_Down_Interval; Transition
            // to the Backup state".
            self.arm_master_down(now);
            self.transition(State::Backup, reason);
        }
    }

    fn become_master(&mut self, now: Instant, reason: Reason) {
        self.send_advert(now);
        self.master = Some((self.cfg.primary_addr, self.priority));
        self.transition(State::Master, reason);
    }

    fn stop(&mut self, reason: Reason) {
        self.timer = None;
        self.transition(State::Stopped, reason);
    }

    /// Master_Down_Timer := now + Master_Down_Interval.
    fn arm_master_down(&mut self, now: Instant) {
        self.timer = Some(deadline(now, self.master_down_interval()));
        self.down_cause = DownCause::Silence;
    }

    /// Queues an advert at our priority and resets the Adver_Timer.
    fn send_advert(&mut self, now: Instant) {
        let advert = self.advert(self.priority);
        self.actions.push_back(Action::Transmit(advert));
        bump(&mut self.stats.adverts_tx);
        self.timer = Some(deadline(now, self.advert_interval()));
    }

    /// Queues a priority-0 advert (leaving mastership).
    fn send_release(&mut self) {
        let advert = self.advert(RELEASE_PRIORITY);
        self.actions.push_back(Action::Transmit(advert));
        bump(&mut self.stats.adverts_tx);
        bump(&mut self.stats.priority_zero_tx);
    }

    fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            interval_cs: self.adver_interval_cs,
            addresses: self.cfg.vips.iter().take(MAX_VIPS).copied().collect(),
            auth: match self.cfg.version {
                Version::V2 => self.cfg.auth,
                Version::V3 => Auth::None,
            },
        }
    }

    fn transition(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        bump(&mut self.transitions);
        self.actions
            .push_back(Action::StateChanged { from, to, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::{
        emit_datagram, parse_datagram, Ipv4Meta, V3Checksum, VRRP_MCAST_V4,
    };
    use super::super::pcap::{self, fixtures};
    use super::*;

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const LOWER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const HIGHER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    /// Virtual time zero: an hour ahead of the real clock, so tests can go
    /// back a few seconds without `Instant` underflow on a fresh boot.
    fn epoch() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config(version: Version, priority: u8, interval: Duration) -> InstanceConfig {
        InstanceConfig {
            name: "vi_test".into(),
            vrid: 51,
            version,
            priority,
            advert_interval: interval,
            primary_addr: US,
            vips: vec![VIP],
            ..InstanceConfig::default()
        }
    }

    /// v3, 100 ms.
    fn v3(priority: u8) -> InstanceConfig {
        config(Version::V3, priority, ms(100))
    }

    /// v2, 1 s.
    fn v2(priority: u8) -> InstanceConfig {
        config(Version::V2, priority, Duration::from_secs(1))
    }

    fn advert(cfg: &InstanceConfig, priority: u8) -> Advert {
        Advert {
            version: cfg.version,
            vrid: cfg.vrid,
            priority,
            interval_cs: interval_cs(cfg.version, cfg.advert_interval),
            addresses: cfg.vips.clone(),
            auth: cfg.auth,
        }
    }

    fn drain(inst: &mut Instance) -> Vec<Action> {
        std::iter::from_fn(|| inst.poll_action()).collect()
    }

    fn changed(from: State, to: State, reason: Reason) -> Action {
        Action::StateChanged { from, to, reason }
    }

    /// Started (Backup) with the actions drained.
    fn backup(cfg: InstanceConfig, now: Instant) -> Instance {
        let mut inst = Instance::new(cfg);
        inst.startup(now);
        assert_eq!(inst.state(), State::Backup);
        drain(&mut inst);
        inst
    }

    /// Started and promoted by its Master_Down_Timer; returns the instant
    /// it became master.
    fn master(cfg: InstanceConfig, now: Instant) -> (Instance, Instant) {
        let mut inst = backup(cfg, now);
        let at = inst.poll_timeout().unwrap();
        inst.handle_timeout(at);
        assert_eq!(inst.state(), State::Master);
        drain(&mut inst);
        (inst, at)
    }

    // ----- startup and timers ---------------------------------------------

    #[test]
    fn startup_non_owner_goes_backup_with_master_down_timer() {
        let t0 = epoch();
        let mut inst = Instance::new(v3(100));
        assert_eq!(
            (inst.state(), inst.poll_timeout()),
            (State::Initialize, None)
        );
        inst.startup(t0);
        assert_eq!(
            drain(&mut inst),
            [changed(State::Initialize, State::Backup, Reason::Startup)]
        );
        // 3 × 100 ms + (256 - 100) × 100 ms / 256 = 300 ms + 60.9375 ms.
        assert_eq!(inst.skew_time(), ns(60_937_500));
        assert_eq!(inst.master_down_interval(), ns(360_937_500));
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(360_937_500)));
        assert_eq!(inst.master_addr(), None);
        // A second startup is a no-op.
        inst.startup(t0 + ms(1));
        assert!(drain(&mut inst).is_empty());
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(360_937_500)));
    }

    #[test]
    fn sync_group_moves_a_backup_to_master_and_a_master_to_backup() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        // Only a master steps down, only a backup steps up.
        inst.sync_backup(t0);
        assert!(drain(&mut inst).is_empty());
        inst.sync_master(t0 + ms(10));
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 100)),
                changed(State::Backup, State::Master, Reason::SyncGroup)
            ]
        );
        assert_eq!(inst.poll_timeout(), Some(t0 + ms(110)));
        inst.sync_master(t0 + ms(20));
        assert!(drain(&mut inst).is_empty());
        inst.sync_backup(t0 + ms(50));
        assert_eq!(
            drain(&mut inst),
            [changed(State::Master, State::Backup, Reason::SyncGroup)]
        );
        // A backup again: it takes over only if the master goes silent.
        assert_eq!(inst.poll_timeout(), Some(t0 + ms(50) + ns(360_937_500)));
        assert_eq!(inst.master_addr(), None);
        let mut faulted = backup(cfg, t0);
        faulted.fault(t0);
        drain(&mut faulted);
        faulted.sync_master(t0);
        assert_eq!(
            faulted.state(),
            State::Fault,
            "a faulted member stays faulted"
        );
    }

    #[test]
    fn startup_owner_goes_master_at_once() {
        let t0 = epoch();
        let cfg = v3(255);
        let mut inst = Instance::new(cfg.clone());
        inst.startup(t0);
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 255)),
                changed(State::Initialize, State::Master, Reason::Startup)
            ]
        );
        assert_eq!(inst.poll_timeout(), Some(t0 + ms(100)));
        assert_eq!(
            (inst.master_addr(), inst.master_priority()),
            (Some(US), Some(255))
        );
        assert!(inst.is_owner());
    }

    #[test]
    fn master_down_timer_fires_exactly_at_its_deadline() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        let at = t0 + ns(360_937_500);
        inst.handle_timeout(at - ns(1));
        assert_eq!(
            (inst.state(), inst.poll_timeout()),
            (State::Backup, Some(at))
        );
        assert!(drain(&mut inst).is_empty());
        inst.handle_timeout(at);
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 100)),
                changed(State::Backup, State::Master, Reason::MasterDownTimer)
            ]
        );
        assert_eq!(inst.poll_timeout(), Some(at + ms(100)));
        assert_eq!(inst.master_addr(), Some(US));
    }

    #[test]
    fn master_advertises_every_interval_from_when_the_timer_fired() {
        let (mut inst, t) = master(v3(100), epoch());
        for k in 1..=5 {
            assert_eq!(inst.poll_timeout(), Some(t + ms(100 * k)));
            inst.handle_timeout(t + ms(100 * k));
            assert_eq!(drain(&mut inst), [Action::Transmit(advert(&v3(100), 100))]);
        }
        // A late wake-up re-arms from the actual firing time.
        let late = t + ms(630);
        inst.handle_timeout(late);
        assert_eq!(drain(&mut inst).len(), 1);
        assert_eq!(inst.poll_timeout(), Some(late + ms(100)));
        assert_eq!(inst.stats().adverts_tx, 7);
    }

    #[test]
    fn v2_timers_follow_rfc_3768() {
        let t0 = epoch();
        let inst = backup(v2(100), t0);
        assert_eq!(inst.skew_time(), ns(609_375_000));
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(3_609_375_000)));
        let slow = backup(config(Version::V2, 150, Duration::from_secs(3)), t0);
        // v2 skew does not scale with the interval.
        assert_eq!(slow.skew_time(), ns(414_062_500));
        assert_eq!(slow.poll_timeout(), Some(t0 + ns(9_414_062_500)));
    }

    #[test]
    fn v3_10ms_timers() {
        let t0 = epoch();
        let inst = backup(config(Version::V3, 100, ms(10)), t0);
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(36_093_750)));
    }

    #[test]
    fn handle_timeout_without_a_timer_is_a_no_op() {
        let t0 = epoch();
        let mut inst = Instance::new(v3(100));
        inst.handle_timeout(t0);
        assert_eq!(inst.state(), State::Initialize);
        assert!(drain(&mut inst).is_empty());
    }

    // ----- Backup receive rules -----------------------------------------

    #[test]
    fn backup_resets_its_timer_on_equal_or_higher_priority() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        for (k, prio) in [(1u64, 100u8), (2, 200), (3, 255)] {
            let t = t0 + ms(50 * k);
            assert_eq!(
                inst.handle_advert(t, HIGHER_ADDR, &advert(&cfg, prio)),
                Ok(())
            );
            assert_eq!(inst.poll_timeout(), Some(t + ns(360_937_500)));
            assert_eq!(inst.master_priority(), Some(prio));
        }
        assert!(drain(&mut inst).is_empty());
        assert_eq!(inst.stats().adverts_rx, 3);
    }

    #[test]
    fn preempting_backup_discards_lower_priority_and_takes_over() {
        let t0 = epoch();
        let cfg = v3(200);
        let mut inst = backup(cfg.clone(), t0);
        // MDI(200) = 300 ms + 56 × 100 ms / 256 = 321.875 ms.
        let at = t0 + ns(321_875_000);
        assert_eq!(inst.poll_timeout(), Some(at));
        for k in 0..4 {
            let t = t0 + ms(10 + 100 * k);
            if t >= at {
                break;
            }
            assert_eq!(
                inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100)),
                Ok(())
            );
            assert_eq!(inst.poll_timeout(), Some(at), "discarded: timer untouched");
            assert_eq!(
                inst.master_addr(),
                Some(LOWER_ADDR),
                "still the master we see"
            );
        }
        inst.handle_timeout(at);
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 200)),
                changed(
                    State::Backup,
                    State::Master,
                    Reason::Preempted { peer: LOWER_ADDR }
                )
            ]
        );
    }

    #[test]
    fn nopreempt_backup_follows_a_lower_priority_master() {
        let t0 = epoch();
        let cfg = InstanceConfig {
            preempt: false,
            ..v3(200)
        };
        let mut inst = backup(cfg.clone(), t0);
        let t = t0 + ms(50);
        inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
            .unwrap();
        assert_eq!(inst.poll_timeout(), Some(t + ns(321_875_000)));
        // ... and keeps following it for as long as it advertises.
        for k in 1..100u64 {
            let t = t0 + ms(50 + 100 * k);
            inst.handle_timeout(t);
            inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
                .unwrap();
        }
        assert_eq!(inst.state(), State::Backup);
        assert!(drain(&mut inst).is_empty());
    }

    #[test]
    fn preempt_delay_follows_lower_master_until_it_expires() {
        let t0 = epoch();
        let cfg = InstanceConfig {
            preempt_delay: Duration::from_secs(5),
            ..v2(150)
        };
        let mut inst = backup(cfg.clone(), t0);
        let sec = Duration::from_secs(1);
        let mdi = ns(3_414_062_500); // 3 s + 106/256 s
        for k in 1..=4u32 {
            inst.handle_advert(t0 + sec * k, LOWER_ADDR, &advert(&cfg, 100))
                .unwrap();
            assert_eq!(
                inst.poll_timeout(),
                Some(t0 + sec * k + mdi),
                "accepted at {k} s"
            );
        }
        // From t0 + 5 s on, lower-priority adverts are discarded.
        for k in 5..=7u32 {
            inst.handle_timeout(t0 + sec * k);
            inst.handle_advert(t0 + sec * k, LOWER_ADDR, &advert(&cfg, 100))
                .unwrap();
            assert_eq!(
                inst.poll_timeout(),
                Some(t0 + sec * 4 + mdi),
                "discarded at {k} s"
            );
        }
        assert!(drain(&mut inst).is_empty());
        let at = t0 + sec * 4 + mdi; // 7.4140625 s
        inst.handle_timeout(at);
        assert_eq!(inst.state(), State::Master);
        assert_eq!(
            drain(&mut inst).last(),
            Some(&changed(
                State::Backup,
                State::Master,
                Reason::Preempted { peer: LOWER_ADDR }
            ))
        );
    }

    #[test]
    fn preempt_delay_restarts_on_recovery() {
        let t0 = epoch();
        let cfg = InstanceConfig {
            preempt_delay: ms(500),
            ..v3(200)
        };
        let mut inst = backup(cfg.clone(), t0);
        inst.fault(t0 + Duration::from_secs(10));
        let t1 = t0 + Duration::from_secs(11);
        inst.recover(t1);
        let t = t1 + ms(400);
        inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
            .unwrap();
        assert_eq!(
            inst.poll_timeout(),
            Some(t + ns(321_875_000)),
            "followed: within delay"
        );
        let t = t1 + ms(500);
        inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
            .unwrap();
        assert_eq!(
            inst.poll_timeout(),
            Some(t1 + ms(400) + ns(321_875_000)),
            "discarded"
        );
    }

    #[test]
    fn priority_zero_sets_master_down_timer_to_skew_time() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        let t = t0 + ms(120);
        inst.handle_advert(t, HIGHER_ADDR, &advert(&cfg, 0))
            .unwrap();
        assert_eq!(inst.poll_timeout(), Some(t + ns(60_937_500)));
        assert_eq!(inst.stats().priority_zero_rx, 1);
        inst.handle_timeout(t + ns(60_937_500));
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 100)),
                changed(
                    State::Backup,
                    State::Master,
                    Reason::PriorityZeroReceived { peer: HIGHER_ADDR }
                )
            ]
        );
    }

    #[test]
    fn v2_priority_zero_skew() {
        let t0 = epoch();
        let cfg = v2(100);
        let mut inst = backup(cfg.clone(), t0);
        inst.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 0))
            .unwrap();
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(609_375_000)));
    }

    #[test]
    fn lower_priority_advert_after_priority_zero_keeps_the_skew_timer() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        inst.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 0))
            .unwrap();
        inst.handle_advert(t0 + ms(10), LOWER_ADDR, &advert(&cfg, 50))
            .unwrap();
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(60_937_500)));
        inst.handle_timeout(t0 + ns(60_937_500));
        assert_eq!(
            drain(&mut inst).last(),
            Some(&changed(
                State::Backup,
                State::Master,
                Reason::PriorityZeroReceived { peer: HIGHER_ADDR }
            ))
        );
    }

    #[test]
    fn v3_backup_learns_master_adver_interval() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        let slow = Advert {
            interval_cs: 20,
            ..advert(&cfg, 200)
        };
        inst.handle_advert(t0, HIGHER_ADDR, &slow).unwrap();
        // 3 × 200 ms + 156 × 200 ms / 256 = 600 ms + 121.875 ms.
        assert_eq!(inst.master_adver_interval(), ms(200));
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(721_875_000)));
        assert_eq!(inst.stats().noted(DropReason::IntervalMismatch), 1);
        // Priority 0 uses the learned interval: 121.875 ms.
        inst.handle_advert(
            t0 + ms(1),
            HIGHER_ADDR,
            &Advert {
                priority: 0,
                ..slow
            },
        )
        .unwrap();
        assert_eq!(inst.poll_timeout(), Some(t0 + ms(1) + ns(121_875_000)));
        // Our own adverts keep our configured interval.
        inst.handle_timeout(t0 + ms(1) + ns(121_875_000));
        assert_eq!(drain(&mut inst)[0], Action::Transmit(advert(&cfg, 100)));
        // Startup or recovery forgets the learned value.
        inst.fault(t0 + ms(500));
        inst.recover(t0 + ms(600));
        assert_eq!(inst.master_adver_interval(), ms(100));
    }

    #[test]
    fn learned_interval_is_clamped_to_what_the_wire_can_carry() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        let zero = Advert {
            interval_cs: 0,
            ..advert(&cfg, 200)
        };
        inst.handle_advert(t0, HIGHER_ADDR, &zero).unwrap();
        assert_eq!(inst.master_adver_interval(), ms(10));
        assert_eq!(inst.poll_timeout(), Some(t0 + ns(36_093_750)));
        let huge = Advert {
            interval_cs: 9999,
            ..advert(&cfg, 200)
        };
        inst.handle_advert(t0, HIGHER_ADDR, &huge).unwrap();
        assert_eq!(inst.master_adver_interval(), ms(40_950));
    }

    // ----- Master receive rules -------------------------------------------

    #[test]
    fn master_answers_priority_zero_without_counting_split_brain() {
        let cfg = v3(100);
        let (mut inst, t) = master(cfg.clone(), epoch());
        let rx = t + ms(40);
        inst.handle_advert(rx, LOWER_ADDR, &advert(&cfg, 0))
            .unwrap();
        assert_eq!(drain(&mut inst), [Action::Transmit(advert(&cfg, 100))]);
        assert_eq!(inst.poll_timeout(), Some(rx + ms(100)));
        assert_eq!((inst.state(), inst.split_brain_count()), (State::Master, 0));
    }

    #[test]
    fn master_answers_lower_priority_at_once_and_counts_split_brain() {
        let cfg = v3(100);
        let (mut inst, t) = master(cfg.clone(), epoch());
        for k in 1..=3u64 {
            let rx = t + ms(30 * k);
            inst.handle_advert(rx, HIGHER_ADDR, &advert(&cfg, 99))
                .unwrap();
            assert_eq!(
                drain(&mut inst),
                [
                    Action::SplitBrain {
                        peer: HIGHER_ADDR,
                        peer_priority: 99
                    },
                    Action::Transmit(advert(&cfg, 100))
                ]
            );
            assert_eq!(inst.poll_timeout(), Some(rx + ms(100)));
            assert_eq!(inst.split_brain_count(), k);
        }
        assert_eq!(inst.state(), State::Master);
    }

    #[test]
    fn master_yields_to_higher_priority_and_learns_its_interval() {
        let cfg = v3(100);
        let (mut inst, t) = master(cfg.clone(), epoch());
        let rx = t + ms(10);
        let better = Advert {
            interval_cs: 20,
            ..advert(&cfg, 200)
        };
        inst.handle_advert(rx, LOWER_ADDR, &better).unwrap();
        assert_eq!(
            drain(&mut inst),
            [
                Action::SplitBrain {
                    peer: LOWER_ADDR,
                    peer_priority: 200
                },
                changed(
                    State::Master,
                    State::Backup,
                    Reason::HigherPriorityAdvert {
                        peer: LOWER_ADDR,
                        priority: 200
                    }
                )
            ]
        );
        assert_eq!(inst.poll_timeout(), Some(rx + ns(721_875_000)));
        assert_eq!(
            (inst.master_addr(), inst.master_priority()),
            (Some(LOWER_ADDR), Some(200))
        );
        assert_eq!(inst.split_brain_count(), 1);
    }

    #[test]
    fn equal_priority_tie_break_on_primary_address() {
        let cfg = v3(100);
        let (mut inst, t) = master(cfg.clone(), epoch());
        inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
            .unwrap();
        assert_eq!(inst.state(), State::Master, "10.0.0.1 < 10.0.0.2: we stay");
        inst.handle_advert(t, HIGHER_ADDR, &advert(&cfg, 100))
            .unwrap();
        assert_eq!(inst.state(), State::Backup, "10.0.0.3 > 10.0.0.2: we yield");
    }

    #[test]
    fn tie_break_compares_addresses_as_unsigned_integers() {
        // 128.0.0.1 > 127.255.255.255 unsigned; a signed compare gets it wrong.
        let cfg = InstanceConfig {
            primary_addr: Ipv4Addr::new(127, 255, 255, 255),
            ..v3(100)
        };
        let (mut inst, t) = master(cfg.clone(), epoch());
        inst.handle_advert(t, Ipv4Addr::new(128, 0, 0, 1), &advert(&cfg, 100))
            .unwrap();
        assert_eq!(inst.state(), State::Backup);
    }

    #[test]
    fn owner_still_processes_adverts() {
        // RFC 9568 erratum 8298: an owner logs instead of dropping, which
        // lets it answer a rogue master at once.
        let cfg = v3(255);
        let mut inst = Instance::new(cfg.clone());
        let t0 = epoch();
        inst.startup(t0);
        drain(&mut inst);
        inst.handle_advert(t0 + ms(5), LOWER_ADDR, &advert(&cfg, 254))
            .unwrap();
        assert_eq!(
            drain(&mut inst),
            [
                Action::SplitBrain {
                    peer: LOWER_ADDR,
                    peer_priority: 254
                },
                Action::Transmit(advert(&cfg, 255))
            ]
        );
        // Two owners (a misconfiguration) still converge on one master.
        inst.handle_advert(t0 + ms(6), HIGHER_ADDR, &advert(&cfg, 255))
            .unwrap();
        assert_eq!(inst.state(), State::Backup);
    }

    // ----- tracking --------------------------------------------------------

    #[test]
    fn master_advertises_a_priority_change_at_once() {
        let cfg = v3(100);
        let (mut inst, t) = master(cfg.clone(), epoch());
        let now = t + ms(37);
        inst.set_priority(now, 120);
        assert_eq!(drain(&mut inst), [Action::Transmit(advert(&cfg, 120))]);
        assert_eq!(
            (inst.priority(), inst.poll_timeout()),
            (120, Some(now + ms(100)))
        );
        assert_eq!(inst.master_priority(), Some(120));
        inst.set_priority(now, 120);
        assert!(drain(&mut inst).is_empty(), "unchanged priority: no advert");
        inst.set_priority(now, 0);
        assert_eq!(
            drain(&mut inst),
            [Action::Transmit(advert(&cfg, 1))],
            "clamped to 1"
        );
        inst.set_priority(now, 255);
        assert_eq!(
            drain(&mut inst),
            [Action::Transmit(advert(&cfg, 254))],
            "clamped to 254"
        );
    }

    #[test]
    fn owner_ignores_tracking() {
        let mut inst = Instance::new(v3(255));
        let t0 = epoch();
        inst.startup(t0);
        drain(&mut inst);
        inst.set_priority(t0, 10);
        assert_eq!(inst.priority(), 255);
        assert!(drain(&mut inst).is_empty());
    }

    #[test]
    fn backup_priority_change_applies_to_the_next_timer() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut inst = backup(cfg.clone(), t0);
        inst.set_priority(t0 + ms(1), 200);
        assert!(drain(&mut inst).is_empty());
        assert_eq!(
            inst.poll_timeout(),
            Some(t0 + ns(360_937_500)),
            "running timer kept"
        );
        inst.handle_advert(t0 + ms(2), HIGHER_ADDR, &advert(&cfg, 250))
            .unwrap();
        assert_eq!(inst.poll_timeout(), Some(t0 + ms(2) + ns(321_875_000)));
    }

    // ----- fault ------------------------------------------------------------

    #[test]
    fn fault_as_master_releases_with_priority_zero() {
        let cfg = v3(100);
        let (mut inst, t) = master(cfg.clone(), epoch());
        inst.fault(t + ms(5));
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 0)),
                changed(State::Master, State::Fault, Reason::Fault)
            ]
        );
        assert_eq!(inst.poll_timeout(), None);
        assert_eq!(
            inst.handle_advert(t + ms(6), LOWER_ADDR, &advert(&cfg, 50)),
            Err(DropReason::Inactive)
        );
        inst.fault(t + ms(7));
        assert!(drain(&mut inst).is_empty(), "idempotent");
        let t1 = t + ms(900);
        inst.recover(t1);
        assert_eq!(
            drain(&mut inst),
            [changed(State::Fault, State::Backup, Reason::Recovered)]
        );
        assert_eq!(inst.poll_timeout(), Some(t1 + ns(360_937_500)));
        assert_eq!(inst.stats().priority_zero_tx, 1);
    }

    #[test]
    fn fault_from_backup_and_initialize() {
        let t0 = epoch();
        let mut inst = backup(v3(100), t0);
        inst.fault(t0);
        assert_eq!(
            drain(&mut inst),
            [changed(State::Backup, State::Fault, Reason::Fault)]
        );
        let mut fresh = Instance::new(v3(100));
        fresh.fault(t0);
        assert_eq!(
            drain(&mut fresh),
            [changed(State::Initialize, State::Fault, Reason::Fault)]
        );
        fresh.recover(t0);
        assert_eq!(fresh.state(), State::Backup);
        fresh.recover(t0);
        assert!(
            drain(&mut fresh).len() == 1,
            "recover outside Fault is a no-op"
        );
    }

    #[test]
    fn owner_recovers_straight_to_master() {
        let cfg = v3(255);
        let mut inst = Instance::new(cfg.clone());
        let t0 = epoch();
        inst.fault(t0);
        drain(&mut inst);
        inst.recover(t0 + ms(3));
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 255)),
                changed(State::Fault, State::Master, Reason::Recovered)
            ]
        );
    }

    // ----- shutdown and graceful handover ----------------------------------

    #[test]
    fn graceful_shutdown_keeps_vips_until_the_new_master_is_heard() {
        let cfg = v3(100);
        let (mut inst, t) = master(cfg.clone(), epoch());
        let ts = t + ms(20);
        inst.shutdown(ts);
        assert_eq!(
            drain(&mut inst),
            [
                Action::Transmit(advert(&cfg, 0)),
                changed(State::Master, State::Releasing, Reason::Shutdown)
            ]
        );
        assert!(inst.state().holds_vips());
        // Default: Skew_Time(1) + interval = 99.609375 ms + 100 ms.
        assert_eq!(inst.poll_timeout(), Some(ts + ns(199_609_375)));
        // Another leaving router's priority 0 is not a new master.
        inst.handle_advert(ts + ms(1), LOWER_ADDR, &advert(&cfg, 0))
            .unwrap();
        inst.handle_timeout(ts + ms(50));
        assert_eq!(inst.state(), State::Releasing);
        assert!(drain(&mut inst).is_empty(), "no advert while releasing");
        inst.handle_advert(ts + ms(61), LOWER_ADDR, &advert(&cfg, 50))
            .unwrap();
        assert_eq!(
            drain(&mut inst),
            [changed(
                State::Releasing,
                State::Stopped,
                Reason::NewMasterSeen { peer: LOWER_ADDR }
            )]
        );
        assert_eq!(
            (inst.poll_timeout(), inst.master_addr()),
            (None, Some(LOWER_ADDR))
        );
        assert_eq!(
            inst.split_brain_count(),
            0,
            "releasing is not a split brain"
        );
    }

    #[test]
    fn graceful_shutdown_times_out_when_nobody_takes_over() {
        let (mut inst, t) = master(v2(100), epoch());
        inst.shutdown(t);
        drain(&mut inst);
        let at = t + ns(1_996_093_750);
        assert_eq!(inst.poll_timeout(), Some(at));
        inst.handle_timeout(at - ns(1));
        assert_eq!(inst.state(), State::Releasing);
        inst.handle_timeout(at);
        assert_eq!(
            drain(&mut inst),
            [changed(
                State::Releasing,
                State::Stopped,
                Reason::HandoverTimeout
            )]
        );
        let custom = InstanceConfig {
            handover_timeout: Some(ms(5)),
            ..v2(100)
        };
        let (mut inst, t) = master(custom, epoch());
        inst.shutdown(t);
        assert_eq!(inst.poll_timeout(), Some(t + ms(5)));
    }

    #[test]
    fn second_shutdown_while_releasing_stops_at_once() {
        let (mut inst, t) = master(v3(100), epoch());
        inst.shutdown(t);
        drain(&mut inst);
        inst.shutdown(t + ms(1));
        assert_eq!(
            drain(&mut inst),
            [changed(State::Releasing, State::Stopped, Reason::Shutdown)]
        );
    }

    #[test]
    fn shutdown_from_other_states_stops_at_once() {
        let t0 = epoch();
        let mut b = backup(v3(100), t0);
        b.shutdown(t0);
        assert_eq!(
            drain(&mut b),
            [changed(State::Backup, State::Stopped, Reason::Shutdown)]
        );
        assert_eq!(b.poll_timeout(), None);
        let mut i = Instance::new(v3(100));
        i.shutdown(t0);
        assert_eq!(
            drain(&mut i),
            [changed(State::Initialize, State::Stopped, Reason::Shutdown)]
        );
        let mut f = Instance::new(v3(100));
        f.fault(t0);
        drain(&mut f);
        f.shutdown(t0);
        assert_eq!(
            drain(&mut f),
            [changed(State::Fault, State::Stopped, Reason::Shutdown)]
        );
        // Stopped is terminal.
        for inst in [&mut b, &mut i, &mut f] {
            inst.shutdown(t0);
            inst.startup(t0);
            inst.recover(t0);
            inst.fault(t0);
            inst.handle_timeout(t0 + Duration::from_secs(100));
            assert!(drain(inst).is_empty());
            assert_eq!((inst.state(), inst.poll_timeout()), (State::Stopped, None));
        }
    }

    #[test]
    fn fault_while_releasing_abandons_the_handover() {
        let (mut inst, t) = master(v3(100), epoch());
        inst.shutdown(t);
        drain(&mut inst);
        inst.fault(t + ms(1));
        assert_eq!(
            drain(&mut inst),
            [changed(State::Releasing, State::Stopped, Reason::Fault)]
        );
    }

    #[test]
    fn every_state_change_is_exactly_one_action() {
        let cfg = v3(100);
        let t0 = epoch();
        let mut inst = Instance::new(cfg.clone());
        let mut seen = Vec::new();
        let mut collect = |inst: &mut Instance| {
            for a in drain(inst) {
                if let Action::StateChanged { from, to, .. } = a {
                    seen.push((from, to));
                }
            }
        };
        inst.startup(t0);
        collect(&mut inst);
        inst.handle_timeout(t0 + Duration::from_secs(1));
        collect(&mut inst);
        inst.handle_advert(t0 + Duration::from_secs(1), HIGHER_ADDR, &advert(&cfg, 200))
            .unwrap();
        collect(&mut inst);
        inst.fault(t0 + Duration::from_secs(2));
        collect(&mut inst);
        inst.recover(t0 + Duration::from_secs(3));
        collect(&mut inst);
        inst.handle_timeout(t0 + Duration::from_secs(4));
        collect(&mut inst);
        inst.shutdown(t0 + Duration::from_secs(5));
        collect(&mut inst);
        inst.handle_timeout(t0 + Duration::from_secs(6));
        collect(&mut inst);
        use State::*;
        assert_eq!(
            seen,
            [
                (Initialize, Backup),
                (Backup, Master),
                (Master, Backup),
                (Backup, Fault),
                (Fault, Backup),
                (Backup, Master),
                (Master, Releasing),
                (Releasing, Stopped)
            ]
        );
        assert_eq!(inst.transitions(), 8);
    }

    // ----- drops --------------------------------------------------------

    #[test]
    fn every_drop_reason() {
        let t0 = epoch();
        let v2_pass = InstanceConfig {
            auth: Auth::pass(b"secret"),
            ..v2(100)
        };
        let unicast = InstanceConfig {
            unicast_peers: vec![LOWER_ADDR],
            ..v3(100)
        };
        let allow = InstanceConfig {
            allowed_peers: vec![LOWER_ADDR],
            ..v3(100)
        };
        let base = v3(100);
        let cases: Vec<(&str, InstanceConfig, Ipv4Addr, Advert, DropReason)> = vec![
            (
                "vrid",
                base.clone(),
                HIGHER_ADDR,
                Advert {
                    vrid: 52,
                    ..advert(&base, 200)
                },
                DropReason::WrongVrid,
            ),
            (
                "version",
                base.clone(),
                HIGHER_ADDR,
                advert(&v2(200), 200),
                DropReason::VersionMismatch,
            ),
            (
                "own",
                base.clone(),
                US,
                advert(&base, 200),
                DropReason::OwnAdvert,
            ),
            (
                "unicast",
                unicast.clone(),
                HIGHER_ADDR,
                advert(&base, 200),
                DropReason::NotAPeer,
            ),
            (
                "allow-list",
                allow.clone(),
                HIGHER_ADDR,
                advert(&base, 200),
                DropReason::NotAPeer,
            ),
            (
                "no auth",
                v2_pass.clone(),
                HIGHER_ADDR,
                advert(&v2(200), 200),
                DropReason::Auth,
            ),
            (
                "wrong pass",
                v2_pass.clone(),
                HIGHER_ADDR,
                Advert {
                    auth: Auth::pass(b"secreT"),
                    ..advert(&v2_pass, 200)
                },
                DropReason::Auth,
            ),
            (
                "unexpected pass",
                v2(100),
                HIGHER_ADDR,
                Advert {
                    auth: Auth::pass(b"x"),
                    ..advert(&v2(100), 200)
                },
                DropReason::Auth,
            ),
            (
                "v2 interval",
                v2(100),
                HIGHER_ADDR,
                Advert {
                    interval_cs: 200,
                    ..advert(&v2(100), 200)
                },
                DropReason::IntervalMismatch,
            ),
        ];
        for (what, cfg, src, adv, reason) in cases {
            let mut inst = backup(cfg.clone(), t0);
            let before = inst.poll_timeout();
            assert_eq!(
                inst.handle_advert(t0 + ms(7), src, &adv),
                Err(reason),
                "{what}"
            );
            assert_eq!(inst.poll_timeout(), before, "{what}: timer untouched");
            assert_eq!(inst.stats().dropped(reason), 1, "{what}");
            assert_eq!(inst.stats().adverts_rx, 0, "{what}");
            assert!(drain(&mut inst).is_empty(), "{what}");
            // The matching advert is accepted.
            let good = advert(&cfg, 200);
            let ok_src = if cfg.unicast_peers.is_empty() && cfg.allowed_peers.is_empty() {
                HIGHER_ADDR
            } else {
                LOWER_ADDR
            };
            assert_eq!(
                inst.handle_advert(t0 + ms(8), ok_src, &good),
                Ok(()),
                "{what}"
            );
        }
    }

    #[test]
    fn inactive_states_drop_everything() {
        let t0 = epoch();
        let cfg = v3(100);
        let mut init = Instance::new(cfg.clone());
        assert_eq!(
            init.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 0)),
            Err(DropReason::Inactive)
        );
        let mut stopped = backup(cfg.clone(), t0);
        stopped.shutdown(t0);
        assert_eq!(
            stopped.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 200)),
            Err(DropReason::Inactive)
        );
        assert_eq!(stopped.stats().dropped(DropReason::Inactive), 1);
    }

    #[test]
    fn address_list_mismatch_is_counted_but_accepted() {
        let t0 = epoch();
        let cfg = InstanceConfig {
            vips: vec![VIP, HIGHER_ADDR],
            ..v3(100)
        };
        let mut inst = backup(cfg.clone(), t0);
        let other = Advert {
            addresses: vec![VIP],
            ..advert(&cfg, 200)
        };
        assert_eq!(inst.handle_advert(t0 + ms(1), HIGHER_ADDR, &other), Ok(()));
        assert_eq!(
            inst.poll_timeout(),
            Some(t0 + ms(1) + ns(360_937_500)),
            "processed"
        );
        let swapped = Advert {
            addresses: vec![HIGHER_ADDR, VIP],
            ..advert(&cfg, 200)
        };
        inst.handle_advert(t0 + ms(2), HIGHER_ADDR, &swapped)
            .unwrap();
        let replaced = Advert {
            addresses: vec![VIP, LOWER_ADDR],
            ..advert(&cfg, 200)
        };
        inst.handle_advert(t0 + ms(3), HIGHER_ADDR, &replaced)
            .unwrap();
        assert_eq!(inst.stats().noted(DropReason::AddressListMismatch), 2);
        assert_eq!(inst.stats().dropped(DropReason::AddressListMismatch), 0);
        assert_eq!(inst.stats().adverts_rx, 3);
    }

    #[test]
    fn labels_are_unique_and_stable() {
        let drops: Vec<_> = DropReason::ALL.iter().map(DropReason::label).collect();
        assert_eq!(
            drops,
            [
                "inactive",
                "wrong_vrid",
                "version_mismatch",
                "own_advert",
                "not_a_peer",
                "auth",
                "interval_mismatch",
                "address_list_mismatch"
            ]
        );
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(State::Releasing.label(), "releasing");
        assert_eq!(
            Reason::NewMasterSeen { peer: US }.label(),
            "new_master_seen"
        );
        assert_eq!(DropReason::Auth.to_string(), "VRRP advert dropped: auth");
    }

    // ----- configuration ----------------------------------------------------

    #[test]
    fn config_validation() {
        let good = v3(100);
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(v2(255).validate(), Ok(()));
        let cases: Vec<(InstanceConfig, ConfigError)> = vec![
            (
                InstanceConfig {
                    vrid: 0,
                    ..good.clone()
                },
                ConfigError::Vrid,
            ),
            (
                InstanceConfig {
                    priority: 0,
                    ..good.clone()
                },
                ConfigError::Priority,
            ),
            (
                InstanceConfig {
                    advert_interval: ms(15),
                    ..good.clone()
                },
                ConfigError::Interval,
            ),
            (
                InstanceConfig {
                    advert_interval: ms(0),
                    ..good.clone()
                },
                ConfigError::Interval,
            ),
            (
                InstanceConfig {
                    advert_interval: ms(40_960),
                    ..good.clone()
                },
                ConfigError::Interval,
            ),
            (
                InstanceConfig {
                    advert_interval: ms(1500),
                    ..v2(100)
                },
                ConfigError::Interval,
            ),
            (
                InstanceConfig {
                    advert_interval: Duration::from_secs(256),
                    ..v2(100)
                },
                ConfigError::Interval,
            ),
            (
                InstanceConfig {
                    vips: vec![],
                    ..good.clone()
                },
                ConfigError::NoVips,
            ),
            (
                InstanceConfig {
                    vips: vec![VIP; 256],
                    ..good.clone()
                },
                ConfigError::TooManyVips,
            ),
            (
                InstanceConfig {
                    primary_addr: Ipv4Addr::UNSPECIFIED,
                    ..good.clone()
                },
                ConfigError::PrimaryAddr,
            ),
            (
                InstanceConfig {
                    primary_addr: VRRP_MCAST_V4,
                    ..good.clone()
                },
                ConfigError::PrimaryAddr,
            ),
            (
                InstanceConfig {
                    auth: Auth::pass(b"x"),
                    ..good.clone()
                },
                ConfigError::AuthWithV3,
            ),
            (
                InstanceConfig {
                    unicast_peers: vec![US],
                    ..good.clone()
                },
                ConfigError::PeerIsSelf,
            ),
        ];
        for (cfg, err) in cases {
            assert_eq!(cfg.validate(), Err(err), "{cfg:?}");
            assert_eq!(Instance::try_new(cfg).err(), Some(err));
        }
        assert_eq!(
            ConfigError::Vrid.to_string(),
            "invalid VRRP instance configuration: vrid"
        );
        assert!(Instance::try_new(good).is_ok());
    }

    #[test]
    fn new_normalizes_what_validate_rejects() {
        let t0 = epoch();
        let norm = |cfg: InstanceConfig| Instance::new(cfg);
        assert_eq!(
            norm(InstanceConfig {
                priority: 0,
                ..v3(1)
            })
            .priority(),
            1
        );
        let cases = [
            (
                InstanceConfig {
                    advert_interval: ms(15),
                    ..v3(100)
                },
                ms(10),
            ),
            (
                InstanceConfig {
                    advert_interval: ms(0),
                    ..v3(100)
                },
                ms(10),
            ),
            (
                InstanceConfig {
                    advert_interval: Duration::from_secs(3600),
                    ..v3(100)
                },
                ms(40_950),
            ),
            (
                InstanceConfig {
                    advert_interval: ms(1500),
                    ..v2(100)
                },
                Duration::from_secs(1),
            ),
            (
                InstanceConfig {
                    advert_interval: ms(10),
                    ..v2(100)
                },
                Duration::from_secs(1),
            ),
            (
                InstanceConfig {
                    advert_interval: Duration::from_secs(999),
                    ..v2(100)
                },
                Duration::from_secs(255),
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(norm(cfg).advert_interval(), want);
        }
        // v3 never sends auth, even if configured.
        let cfg = InstanceConfig {
            auth: Auth::pass(b"x"),
            ..v3(255)
        };
        let mut inst = Instance::new(cfg);
        inst.startup(t0);
        match drain(&mut inst).first() {
            Some(Action::Transmit(a)) => assert_eq!(a.auth, Auth::None),
            other => panic!("expected a transmit, got {other:?}"),
        }
    }

    #[test]
    fn adverts_carry_at_most_255_vips() {
        let cfg = InstanceConfig {
            vips: (0..300u32).map(Ipv4Addr::from).collect(),
            ..v3(255)
        };
        let mut inst = Instance::new(cfg);
        inst.startup(epoch());
        match drain(&mut inst).first() {
            Some(Action::Transmit(a)) => assert_eq!(a.addresses.len(), 255),
            other => panic!("expected a transmit, got {other:?}"),
        }
    }

    // ----- replays of the keepalived captures --------------------------------

    /// A received VRRP frame: when (relative to the first VRRP frame, on
    /// `base`), who from, what, and the raw datagram.
    struct Rx {
        at: Instant,
        meta: Ipv4Meta,
        advert: Advert,
        ip: Vec<u8>,
    }

    fn replay_frames(file: &[u8], base: Instant) -> Vec<Rx> {
        let frames = pcap::vrrp_frames(file).unwrap();
        let ts0 = frames[0].ts;
        frames
            .iter()
            .map(|f| {
                let (meta, advert) = parse_datagram(f.ip).unwrap();
                Rx {
                    at: base + (f.ts - ts0),
                    meta,
                    advert,
                    ip: f.ip.to_vec(),
                }
            })
            .collect()
    }

    const KA_MASTER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const KA_BACKUP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    /// The lab's keepalived configuration as one of our instances.
    fn lab(version: Version, interval: Duration, us: Ipv4Addr, priority: u8) -> InstanceConfig {
        InstanceConfig {
            name: "VI_1".into(),
            vrid: 51,
            version,
            priority,
            advert_interval: interval,
            primary_addr: us,
            vips: vec![Ipv4Addr::new(10, 99, 0, 100)],
            ..InstanceConfig::default()
        }
    }

    /// Replays keepalived's master (10.99.0.1, priority 150) into our
    /// backup configured like keepalived's (10.99.0.2, priority 100): our
    /// takeover deadline after the priority-0 advert is Skew_Time, at most
    /// 2 ms before keepalived's measured takeover (its processing delay),
    /// and our takeover advert is byte-identical to keepalived's.
    #[test]
    fn replay_sigterm_failover_matches_keepalived() {
        let cases: [(&[u8], Version, Duration, bool, u64); 4] = [
            (
                fixtures::V2_TERM,
                Version::V2,
                Duration::from_secs(1),
                false,
                609_375_000,
            ),
            (
                fixtures::V2_UNICAST_TERM,
                Version::V2,
                Duration::from_secs(1),
                true,
                609_375_000,
            ),
            (
                fixtures::V3_100CS_TERM,
                Version::V3,
                Duration::from_secs(1),
                false,
                609_375_000,
            ),
            (
                fixtures::V3_10CS_TERM,
                Version::V3,
                ms(100),
                false,
                60_937_500,
            ),
        ];
        for (file, version, interval, unicast, skew) in cases {
            let base = epoch();
            let frames = replay_frames(file, base);
            let mut cfg = lab(version, interval, KA_BACKUP, 100);
            if unicast {
                cfg.unicast_peers = vec![KA_MASTER];
            }
            let mut inst = Instance::new(cfg);
            inst.startup(base - ms(10));
            drain(&mut inst);
            let zero = frames.iter().position(|f| f.advert.priority == 0).unwrap();
            for f in &frames[..=zero] {
                assert_eq!(f.meta.src, KA_MASTER);
                assert!(
                    inst.poll_timeout().unwrap() > f.at,
                    "no takeover before priority 0"
                );
                inst.handle_advert(f.at, f.meta.src, &f.advert).unwrap();
            }
            let deadline = inst.poll_timeout().unwrap();
            assert_eq!(deadline, frames[zero].at + ns(skew));
            let theirs = &frames[zero + 1];
            assert_eq!(theirs.meta.src, KA_BACKUP);
            let lag = theirs.at - deadline;
            assert!(
                lag < ms(2),
                "keepalived took over {lag:?} after our deadline"
            );

            inst.handle_timeout(deadline);
            let actions = drain(&mut inst);
            let Some(Action::Transmit(ours)) = actions.first() else {
                panic!("expected a transmit first, got {actions:?}");
            };
            assert_eq!(ours, &theirs.advert);
            let ident = u16::from_be_bytes([theirs.ip[4], theirs.ip[5]]);
            let bytes = emit_datagram(
                ours,
                KA_BACKUP,
                theirs.meta.dst,
                ident,
                V3Checksum::PseudoHeader,
            );
            assert_eq!(
                bytes, theirs.ip,
                "byte-identical to keepalived's takeover advert"
            );
        }
    }

    /// The block/unblock capture: keepalived's backup, deaf to the master,
    /// became a second master; keepalived's master answered each of its
    /// adverts within a millisecond. Ours answers each at once and counts
    /// every one as a split brain.
    #[test]
    fn replay_one_way_partition_master_answers_like_keepalived() {
        let base = epoch();
        let frames = replay_frames(fixtures::V2_SPLIT_BRAIN, base);
        let rogue: Vec<&Rx> = frames.iter().filter(|f| f.meta.src == KA_BACKUP).collect();
        assert_eq!(rogue.len(), 5);
        for r in &rogue {
            let answer = frames
                .iter()
                .find(|f| f.meta.src == KA_MASTER && f.at > r.at)
                .unwrap();
            assert!(answer.at - r.at < ms(1), "keepalived answered within 1 ms");
        }

        let cfg = lab(Version::V2, Duration::from_secs(1), KA_MASTER, 150);
        let (mut inst, _) = master(cfg.clone(), base - Duration::from_secs(10));
        let ours_bytes = frames[0].ip[20..].to_vec();
        for r in &rogue {
            while let Some(t) = inst.poll_timeout().filter(|t| *t <= r.at) {
                inst.handle_timeout(t);
            }
            drain(&mut inst);
            inst.handle_advert(r.at, r.meta.src, &r.advert).unwrap();
            let actions = drain(&mut inst);
            assert_eq!(actions.len(), 2);
            assert_eq!(
                actions[0],
                Action::SplitBrain {
                    peer: KA_BACKUP,
                    peer_priority: 100
                }
            );
            let Action::Transmit(answer) = &actions[1] else {
                panic!("expected an answer, got {actions:?}");
            };
            let answer_bytes = answer.to_bytes(KA_MASTER, VRRP_MCAST_V4, V3Checksum::PseudoHeader);
            assert_eq!(answer_bytes, ours_bytes);
            assert_eq!(inst.poll_timeout(), Some(r.at + Duration::from_secs(1)));
        }
        assert_eq!((inst.split_brain_count(), inst.state()), (5, State::Master));
        // keepalived's next periodic advert after the last answer came
        // 1.002 s later; ours is due exactly 1 s after the answer.
        let last = rogue[4].at;
        let next = frames
            .iter()
            .rev()
            .find(|f| f.meta.src == KA_MASTER)
            .unwrap();
        let ours = inst.poll_timeout().unwrap();
        assert!(next.at >= ours && next.at - ours < ms(5));
        assert_eq!(ours, last + Duration::from_secs(1));
    }

    /// The unicast split-brain capture from the other side: our instance as
    /// 10.99.0.2, master while deaf, yields to keepalived's master
    /// (priority 150) on the first of its adverts it hears.
    #[test]
    fn replay_unicast_split_brain_resolution() {
        let base = epoch();
        let frames = replay_frames(fixtures::V2_UNICAST_SPLIT_BRAIN, base);
        let cfg = InstanceConfig {
            unicast_peers: vec![KA_MASTER],
            ..lab(Version::V2, Duration::from_secs(1), KA_BACKUP, 100)
        };
        let (mut inst, _) = master(cfg, base - Duration::from_secs(10));
        let first = frames.iter().find(|f| f.meta.src == KA_MASTER).unwrap();
        inst.handle_advert(first.at, first.meta.src, &first.advert)
            .unwrap();
        assert_eq!(
            drain(&mut inst),
            [
                Action::SplitBrain {
                    peer: KA_MASTER,
                    peer_priority: 150
                },
                changed(
                    State::Master,
                    State::Backup,
                    Reason::HigherPriorityAdvert {
                        peer: KA_MASTER,
                        priority: 150
                    }
                )
            ]
        );
        // Its own advert from the capture is dropped as our own.
        let own = frames.iter().find(|f| f.meta.src == KA_BACKUP).unwrap();
        assert_eq!(
            inst.handle_advert(own.at, own.meta.src, &own.advert),
            Err(DropReason::OwnAdvert)
        );
    }
}
