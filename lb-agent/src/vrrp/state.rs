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
use std::net::{IpAddr, Ipv4Addr};
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
    pub primary_addr: IpAddr,
    /// Virtual addresses carried in adverts.
    pub vips: Vec<IpAddr>,
    /// v2 authentication (must be [`Auth::None`] for v3).
    pub auth: Auth,
    /// Empty = multicast. Otherwise adverts are sent to these addresses and
    /// adverts from any other source are dropped.
    pub unicast_peers: Vec<IpAddr>,
    /// Optional allow-list of sources in multicast mode (empty = any).
    pub allowed_peers: Vec<IpAddr>,
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
            primary_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
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
        let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
        if a.is_unspecified() || a.is_multicast() || broadcast {
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

/// Advertisement_Interval in centiseconds as the wire carries it.
fn interval_cs(version: Version, interval: Duration) -> u16 {
    timers::interval_cs(version, interval)
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
        peer: IpAddr,
    },
    /// Master_Down_Timer expired while we ignored a lower-priority master
    /// (we preempted it).
    Preempted {
        /// The lower-priority master.
        peer: IpAddr,
    },
    /// A master heard a better master: higher priority, or equal priority
    /// and a higher primary address.
    HigherPriorityAdvert {
        /// The better master.
        peer: IpAddr,
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
        peer: IpAddr,
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
        peer: IpAddr,
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
    PriorityZero(IpAddr),
    Preempting(IpAddr),
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
    master: Option<(IpAddr, u8)>,
    down_cause: DownCause,
    /// With `preempt_delay`: until this instant, follow lower-priority
    /// masters.
    preempt_after: Option<Instant>,
    /// Follow lower-priority masters as if `nopreempt` while set (the node's flow sync has
    /// not received a peer's table yet).
    preempt_hold: bool,
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
            preempt_hold: false,
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
        src: impl Into<IpAddr>,
        advert: &Advert,
    ) -> Result<(), DropReason> {
        let src = src.into();
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
            // The next one is due an interval after this one was due, not after we got
            // round to it: a late wake-up must not stretch every following interval.
            State::Master => {
                self.send_advert(now);
                let next = deadline(at, self.advert_interval());
                if next > now {
                    self.timer = Some(next);
                }
            }
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

    /// New settings for a running instance (a reload). Everything but the identity (VRID,
    /// version, primary address, ownership: changing those is a new instance) takes effect at
    /// once, without a state change: a master advertises its new interval, priority or
    /// addresses at once so backups re-evaluate (their next Master_Down_Interval uses them).
    /// The effective priority is left to tracking ([`Instance::set_priority`]) unless the
    /// base priority changed.
    pub fn reconfigure(&mut self, now: Instant, cfg: InstanceConfig) {
        let base_changed = cfg.priority != self.cfg.priority;
        let interval_changed = cfg.advert_interval != self.cfg.advert_interval;
        let vips_changed = cfg.vips != self.cfg.vips;
        self.cfg = InstanceConfig {
            vrid: self.cfg.vrid,
            version: self.cfg.version,
            primary_addr: self.cfg.primary_addr,
            ..cfg
        };
        if interval_changed {
            self.adver_interval_cs = interval_cs(self.cfg.version, self.cfg.advert_interval);
            // v2 uses its own interval for Master_Down_Interval; a master also announces it.
            if self.cfg.version == Version::V2 || self.state == State::Master {
                self.master_adver_interval_cs = self.adver_interval_cs;
            }
        }
        if base_changed && !self.is_owner() {
            self.priority = self.cfg.priority.clamp(1, MAX_BACKUP_PRIORITY);
        }
        // A delay added by a reload does not hold back an election already under way; one
        // removed ends at once.
        if self.cfg.preempt_delay.is_zero() {
            self.preempt_after = None;
        }
        if self.state == State::Master && (base_changed || interval_changed || vips_changed) {
            self.master = Some((self.cfg.primary_addr, self.priority));
            self.send_advert(now);
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
    pub fn master_addr(&self) -> Option<IpAddr> {
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
    fn screen(&self, src: IpAddr, advert: &Advert) -> Result<(), DropReason> {
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
    fn backup_rx(&mut self, now: Instant, src: IpAddr, advert: &Advert) {
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
    fn master_rx(&mut self, now: Instant, src: IpAddr, advert: &Advert) {
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
        let theirs = (advert.priority, addr_order(src));
        let ours = (self.priority, addr_order(self.cfg.primary_addr));
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
    fn releasing_rx(&mut self, src: IpAddr, advert: &Advert) {
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
        self.cfg.preempt && !self.preempt_hold && self.preempt_after.is_none_or(|t| now >= t)
    }

    /// Holds back (or allows again) preempting a lower-priority master, whatever
    /// `preempt_delay` says: the node is not ready to take its flows yet. A backup that
    /// would preempt does so at the first advert after the hold ends (then, as always,
    /// Master_Down_Interval after the last advert it accepted).
    pub fn hold_preempt(&mut self, on: bool) {
        self.preempt_hold = on;
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
mod tests;

/// An address as the unsigned integer RFC 9568 §6.4.3 compares (network byte order).
fn addr_order(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}
