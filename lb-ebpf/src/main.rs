//! The lb data path. `lb_xdp` balances TCP and UDP packets addressed to a virtual service to
//! a real server in direct-routing mode: only the Ethernet addresses change. Everything else
//! passes to the kernel untouched. Each packet is counted under exactly one verdict.
#![no_std]
#![no_main]

mod counters;
mod frame;
mod maps;
mod parse;
mod select;

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    helpers::bpf_redirect,
    macros::xdp,
    programs::XdpContext,
};
use lb_common::{filter_bit, stats, FlowKey, ServiceKey};

use crate::{
    counters::{count, count_forward},
    frame::Frame,
    maps::{LB_FILTER, LB_SERVICES},
};

/// What happens to a frame, and the counter it is counted under.
struct Verdict {
    stat: u32,
    action: u32,
}

impl Verdict {
    /// A frame that is not forwarded, for `reason` (a `stats::*` index): dropped or passed to
    /// the local stack, as the reason says.
    #[inline(always)]
    fn refused(reason: u32) -> Verdict {
        let action = if stats::is_drop(reason) {
            XDP_DROP
        } else {
            XDP_PASS
        };
        Verdict {
            stat: reason,
            action,
        }
    }

    /// Counts the frame (a forwarded packet's one counter update is its real's, done in
    /// `count_forward`: the agent derives `tx` from those, see `lb_common::stats::TX`).
    #[inline(always)]
    fn count(&self) {
        if self.stat != stats::TX {
            count(self.stat);
        }
    }
}

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    let v = match try_lb(&ctx) {
        Ok(v) => v,
        Err(reason) => Verdict::refused(reason),
    };
    v.count();
    v.action
}

/// The verdict of a forwarded packet, or the reason it is not forwarded.
#[inline(always)]
fn try_lb(ctx: &XdpContext) -> Result<Verdict, u32> {
    let frame = Frame::new(ctx);
    let ip = parse::ipv4(&frame)?;
    // Traffic to an address that is no active VIP leaves after one array read, before its
    // transport header is parsed...
    if !filtered(ip.daddr_be, 0, 0) {
        return Err(stats::PASS_NO_SERVICE);
    }
    let pkt = parse::transport(&frame, &ip)?;
    // ...and traffic to a VIP on a port that is no service, after another.
    if !filtered(pkt.daddr_be, pkt.dport_be, pkt.proto) {
        return Err(stats::PASS_NO_SERVICE);
    }

    let key = FlowKey {
        src_be: pkt.saddr_be,
        dst_be: pkt.daddr_be,
        sport_be: pkt.sport_be,
        dport_be: pkt.dport_be,
        proto: pkt.proto as u32,
    };
    // Hot path: an established flow on a usable real needs nothing else. (Its source was
    // checked, and its service looked up, when the entry was made; a removed or withdrawn
    // service has its reals' flag cleared, which sends the flow down the slow path.)
    let (choice, new_flow) = match select::remembered(&key) {
        select::Remembered::Usable(c) => (c, false),
        other => {
            let skey = ServiceKey {
                addr_be: pkt.daddr_be,
                port_be: pkt.dport_be,
                proto: pkt.proto,
                _pad: 0,
            };
            // SAFETY: copied at once; the map is no-prealloc, so a replaced entry is not
            // recycled under us.
            let svc = unsafe { LB_SERVICES.get(&skey) }
                .copied()
                .ok_or(stats::PASS_NO_SERVICE)?;
            if pkt.eth_src_multicast || parse::bogus_source(pkt.saddr_be) {
                return Err(stats::DROP_BAD_SOURCE);
            }
            if matches!(other, select::Remembered::Stale) {
                count(stats::INFO_FLOW_RESELECT);
            }
            if pkt.vlan {
                count(stats::INFO_VLAN);
            }
            if pkt.ip_options {
                count(stats::INFO_IP_OPTIONS);
            }
            (select::choose_new(&svc, &pkt, &key)?, true)
        }
    };

    // Rewrite only the Ethernet addresses: the real holds the VIP on its loopback.
    let macs = frame.ptr::<[u16; 6]>(0).ok_or(stats::PASS_INTERNAL)?;
    let new: [[u8; 6]; 2] = [choice.real.dst_mac, choice.real.src_mac];
    // SAFETY: `ptr` checked the 12 bytes are inside the packet (2-byte aligned); the transmute
    // only reinterprets 12 bytes as six words.
    unsafe { core::ptr::write(macs, core::mem::transmute::<[[u8; 6]; 2], [u16; 6]>(new)) };

    count_forward(choice.real_id, pkt.ip_len as u64, new_flow);

    let ifindex = choice.real.ifindex;
    if ifindex == 0 || ifindex as usize == ctx.ingress_ifindex() {
        Ok(Verdict {
            stat: stats::TX,
            action: XDP_TX,
        })
    } else {
        // SAFETY: plain helper call; returns XDP_REDIRECT or XDP_ABORTED.
        let action = unsafe { bpf_redirect(ifindex, 0) } as u32;
        Ok(Verdict {
            stat: stats::REDIRECT,
            action,
        })
    }
}

/// Whether the filter's bit for this key is set (the key may be a service; clear: certainly
/// not). The agent sets one bit per active service and one per active VIP address (port and
/// protocol 0).
#[inline(always)]
fn filtered(addr_be: u32, port_be: u16, proto: u8) -> bool {
    let (word, bit) = filter_bit(addr_be, port_be, proto);
    matches!(LB_FILTER.get(word), Some(w) if *w & (1u64 << bit) != 0)
}

/// Passes everything. Lives on the far end of a veth so native XDP_TX frames get delivered.
#[xdp]
pub fn lb_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Drops everything. The receiving end of the forwarding benchmark: the cheapest consumer.
#[xdp]
pub fn lb_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

/// Swaps source and destination MAC and transmits: the cheapest useful XDP program, the floor
/// the benchmarks measure the data path against.
#[xdp]
pub fn lb_macswap(ctx: XdpContext) -> u32 {
    let frame = Frame::new(&ctx);
    match frame.ptr::<[u16; 6]>(0) {
        Some(p) => {
            // SAFETY: bounds checked by `ptr`; 2-byte aligned like every frame start.
            unsafe {
                let [a, b, c, d, e, f] = core::ptr::read(p);
                core::ptr::write(p, [d, e, f, a, b, c]);
            }
            XDP_TX
        }
        None => XDP_PASS,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
