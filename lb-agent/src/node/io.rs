//! The node's inputs and outputs. Everything the node learns arrives as an [`Event`] stamped
//! with the time by the caller; everything it wants done leaves as an [`Effect`] for the agent
//! to carry out. Real servers, scripts and instances are named by key or name, never by their
//! position in a list.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    time::Duration,
};

use lb_common::ServiceKey;

use super::instance::Iface;
use crate::{
    config::{Config, RealCfg, ScriptCfg, TrackFileCfg, Vip},
    dataplane::DesiredService,
    netlink::{link::Link, neigh::Neighbour},
    vrrp::packet::Advert,
};

/// A real server of a service: (service, address, port).
pub type RealKey = (ServiceKey, IpAddr, u16);

#[derive(Clone, Debug)]
pub enum Event {
    /// A deadline from [`super::Node::poll_timeout`] passed (or may have: spurious calls are
    /// harmless).
    Timer,
    /// A VRRP advert that passed the packet checks, received on `ifname` from `src`.
    Advert {
        ifname: String,
        src: IpAddr,
        advert: Advert,
    },
    /// A VRRP datagram that failed the packet checks.
    BadAdvert {
        ifname: String,
        reason: &'static str,
    },
    /// The host's interfaces, read just now.
    Links(HashMap<u32, Link>),
    /// The host's neighbour entries for the watched addresses, read just now.
    Neighbours(HashMap<IpAddr, Neighbour>),
    /// Asking the kernel to resolve this address failed.
    ResolveFailed(IpAddr),
    /// The interfaces where XDP is attached now (after each data-path change).
    Attached(BTreeSet<String>),
    /// The host removed a VIP we gave up (or tried and failed: either way it is settled).
    VipRemoved(IpAddr),
    /// The number a `vrrp_track_files` entry holds now (0 when missing or not a number).
    TrackFile { name: String, value: i64 },
    /// A real's health changed (rise/fall passed).
    RealHealth {
        real: RealKey,
        up: bool,
        /// A dynamic weight reported with it (`misc_dynamic`).
        weight: Option<u32>,
        reason: String,
    },
    /// A real's dynamic weight changed without a state change.
    RealWeight {
        real: RealKey,
        weight: u32,
        reason: String,
    },
    /// One check round of a real finished.
    Probe {
        real: RealKey,
        ok: bool,
        reason: String,
        latency: Duration,
    },
    /// A `vrrp_scripts` entry's result changed (rise/fall passed).
    Script {
        name: String,
        ok: bool,
        reason: String,
    },
    /// The operator set (or, with `None`, cleared) a real's weight.
    Override {
        real: RealKey,
        set: Option<super::overrides::Override>,
    },
    /// A new configuration, validated, with the interfaces of its instances as the host
    /// reports them.
    Reload {
        cfg: Box<Config>,
        ifaces: HashMap<String, Iface>,
    },
    /// The flow sync's bulk sync of this start ended (done, timed out, or no peer answered):
    /// preemption and announcements need not wait for it any more.
    FlowSyncReady,
    /// Stop: masters hand over first.
    Shutdown,
}

/// What the data path should hold: every service (active or withdrawn) and the interfaces
/// XDP must be attached to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataplaneState {
    pub services: Vec<DesiredService>,
    pub attach: BTreeSet<String>,
}

/// What the health checker should run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckPlan {
    pub reals: Vec<(RealKey, RealCfg)>,
    pub scripts: Vec<ScriptCfg>,
    /// `vrrp_track_files` to read (answered with [`Event::TrackFile`]).
    pub track_files: Vec<TrackFileCfg>,
    /// Services whose reals' checks are paused (their interface is down or settling).
    pub paused: BTreeSet<ServiceKey>,
}

#[derive(Clone, Debug)]
pub enum Effect {
    /// Transmit a VRRP advert on `ifname` to `dst`: over IPv4 a datagram with its IP header,
    /// over IPv6 the VRRP message (the socket adds the header).
    SendAdvert {
        instance: String,
        ifname: String,
        src: IpAddr,
        dst: IpAddr,
        datagram: Vec<u8>,
    },
    /// Transmit an Ethernet frame (a gratuitous ARP or unsolicited neighbour advertisement)
    /// on `ifindex`.
    SendFrame { ifindex: u32, frame: Vec<u8> },
    /// Put a VIP on its interface.
    AddVip(Vip),
    /// Take a VIP off its interface; answer with [`Event::VipRemoved`].
    RemoveVip(Vip),
    /// Make the data path hold this (write the maps, attach and detach XDP), now, before the
    /// effects that follow.
    Dataplane(DataplaneState),
    /// Run a notify hook (in the background, with a timeout).
    Hook {
        what: String,
        argv: Vec<String>,
        args: Vec<String>,
    },
    /// Ask the kernel to resolve a neighbour; answer failures with [`Event::ResolveFailed`].
    Resolve { ifindex: u32, ip: IpAddr },
    /// Report neighbour entries for these addresses (on these interfaces) from now on.
    WatchNeighbours(Vec<(IpAddr, String)>),
    /// Run these checks.
    Checks(CheckPlan),
    /// Scale-out: have BIRD announce exactly these VIPs (withdrawing the others).
    Announce(Vec<IpAddr>),
    /// Keep these operator overrides across restarts (replacing what was saved).
    SaveOverrides(Vec<super::overrides::Saved>),
    /// Everything is released: the agent may exit.
    Stopped,
}
