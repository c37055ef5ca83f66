//! The lb data path. `lb_xdp` balances TCP and UDP packets (IPv4 and IPv6) addressed to a
//! virtual service to a real server in direct-routing mode: only the Ethernet addresses change.
//! Everything else passes to the kernel untouched. Each packet is counted under exactly one
//! verdict.
#![no_std]
#![no_main]

mod counters;
mod family;
mod frame;
mod icmp;
mod icmp6;
mod maps;
mod parse;
mod parse6;
mod select;

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    helpers::bpf_redirect,
    macros::xdp,
    programs::XdpContext,
};
use lb_common::{address_hash, filter_bit, fold6, stats, FragKey, PORT_ANY, SVC_F_ICMP};

use crate::{
    counters::{count, count_forward},
    family::{Family, V4, V6},
    frame::Frame,
    maps::{LB_FILTER, LB_FRAG_SERVICES},
    parse::{Packet, L2},
};

const IPPROTO_ICMP: u8 = 1;

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

/// The balancer. Declared multi-buffer aware (`frags`): it reads only the headers, which are in
/// the first buffer, so it may be attached natively to interfaces with a large MTU.
#[xdp(frags)]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    run::<true>(&ctx)
}

/// The balancer without the edge handling (ICMP errors, fragment steering): only for the
/// benchmark that measures what that handling costs the hit and miss paths.
#[xdp(frags)]
pub fn lb_xdp_base(ctx: XdpContext) -> u32 {
    run::<false>(&ctx)
}

#[inline(always)]
fn run<const EDGE: bool>(ctx: &XdpContext) -> u32 {
    let v = match try_lb::<EDGE>(ctx) {
        Ok(v) => v,
        Err(reason) => Verdict::refused(reason),
    };
    v.count();
    v.action
}

/// The verdict of a forwarded packet, or the reason it is not forwarded.
#[inline(always)]
fn try_lb<const EDGE: bool>(ctx: &XdpContext) -> Result<Verdict, u32> {
    let frame = Frame::new(ctx);
    let l2 = parse::ethernet(&frame)?;
    match l2.ethertype {
        parse::ETH_P_IP => ipv4::<EDGE>(ctx, &frame, &l2),
        parse::ETH_P_IPV6 => ipv6::<EDGE>(ctx, &frame, &l2),
        _ => Err(stats::PASS_NOT_IP),
    }
}

#[inline(always)]
fn ipv4<const EDGE: bool>(ctx: &XdpContext, frame: &Frame, l2: &L2) -> Result<Verdict, u32> {
    let ip = parse::ipv4(frame, l2)?;
    // Traffic to an address that is no active VIP leaves after one array read, before its
    // transport header is parsed...
    if !filtered(ip.daddr_be, 0, 0) {
        return Err(stats::PASS_NO_SERVICE);
    }
    if ip.fragment {
        return if EDGE {
            fragment(ctx, frame, &ip)
        } else {
            Err(stats::PASS_FRAGMENT)
        };
    }
    let pkt = match parse::transport(frame, &ip) {
        Ok(pkt) => pkt,
        // ICMP is looked at only once TCP and UDP are ruled out: nothing on their path.
        Err(stats::PASS_OTHER_PROTO) if EDGE && ip.proto == IPPROTO_ICMP => {
            let q = icmp::quoted(frame, &ip)?;
            let (client, vip) = (q.key.src_be, q.key.dst_be);
            let (port_be, proto) = (q.key.dport_be, q.key.proto as u8);
            return icmp_error::<V4>(ctx, frame, &q, &client, &vip, port_be, proto);
        }
        Err(reason) => return Err(reason),
    };
    balance::<V4, EDGE>(ctx, frame, &pkt)
}

#[inline(always)]
fn ipv6<const EDGE: bool>(ctx: &XdpContext, frame: &Frame, l2: &L2) -> Result<Verdict, u32> {
    let ip = parse6::ipv6(frame, l2)?;
    // As for IPv4: not a VIP, gone after one array read (neighbour discovery, MLD and router
    // adverts go to multicast or to the node's own addresses, so they leave here).
    if !filtered(fold6(&ip.daddr), 0, 0) {
        return Err(stats::PASS_NO_SERVICE);
    }
    let t = parse6::walk(frame, &ip)?;
    let pkt = match parse6::transport(frame, &ip, &t) {
        Ok(pkt) => pkt,
        Err(stats::PASS_OTHER_PROTO) if EDGE && t.proto == parse6::IPPROTO_ICMPV6 => {
            let q = icmp6::quoted(frame, &ip, &t)?;
            let (client, vip) = (q.key.src, q.key.dst);
            let (port_be, proto) = (q.key.dport_be, q.key.proto as u8);
            return icmp_error::<V6>(ctx, frame, &q, &client, &vip, port_be, proto);
        }
        Err(reason) => return Err(reason),
    };
    balance::<V6, EDGE>(ctx, frame, &pkt)
}

/// A TCP or UDP packet to a VIP, of either family.
#[inline(always)]
fn balance<F: Family, const EDGE: bool>(
    ctx: &XdpContext,
    frame: &Frame,
    pkt: &Packet<F::Addr>,
) -> Result<Verdict, u32> {
    // ...and traffic to a VIP on a port that is no service, after another (or two: a VIP may
    // have an all-ports service).
    let fa = F::filter_addr(&pkt.daddr);
    if !filtered(fa, pkt.dport_be, pkt.proto) && !filtered(fa, PORT_ANY, pkt.proto) {
        return Err(stats::PASS_NO_SERVICE);
    }
    let key = F::flow_key(
        &pkt.saddr,
        &pkt.daddr,
        pkt.sport_be,
        pkt.dport_be,
        pkt.proto,
    );
    // Hot path: an established flow on a usable real needs nothing else. (Its source was
    // checked, and its service looked up, when the entry was made; a removed or withdrawn
    // service has its reals' flag cleared, which sends the flow down the slow path.)
    let (choice, new_flow) = match select::remembered::<F>(&key) {
        select::Remembered::Usable(c) => (c, false),
        other => {
            let svc = select::service::<F>(&pkt.daddr, pkt.dport_be, pkt.proto)
                .ok_or(stats::PASS_NO_SERVICE)?;
            if pkt.eth_src_multicast || F::bogus_source(&pkt.saddr) {
                return Err(stats::DROP_BAD_SOURCE);
            }
            if EDGE && select::by_address(&svc) {
                // Steered by address only, like its fragments: no connection table.
                let hash = F::address_hash(&pkt.saddr, &pkt.daddr, pkt.proto);
                (select::table_slot(&svc, hash)?, false)
            } else {
                if matches!(other, select::Remembered::Stale) {
                    count(stats::INFO_FLOW_RESELECT);
                }
                if pkt.vlan {
                    count(stats::INFO_VLAN);
                }
                if pkt.ip_options {
                    count(stats::INFO_IP_OPTIONS);
                }
                if let Some(info) = F::NEW_FLOW_INFO {
                    count(info);
                }
                (select::choose_new::<F>(&svc, pkt, &key)?, true)
            }
        }
    };
    forward(ctx, frame, &choice, pkt.ip_len, new_flow)
}
/// Sends the frame to `choice`'s real: only the Ethernet addresses change (the real holds the
/// VIP on its loopback); its real's counters count it.
#[inline(always)]
fn forward(
    ctx: &XdpContext,
    frame: &Frame,
    choice: &select::Choice,
    ip_len: u32,
    new_flow: bool,
) -> Result<Verdict, u32> {
    let macs = frame.ptr::<[u16; 6]>(0).ok_or(stats::PASS_INTERNAL)?;
    let new: [[u8; 6]; 2] = [choice.real.dst_mac, choice.real.src_mac];
    // SAFETY: `ptr` checked the 12 bytes are inside the packet (2-byte aligned); the transmute
    // only reinterprets 12 bytes as six words.
    unsafe { core::ptr::write(macs, core::mem::transmute::<[[u8; 6]; 2], [u16; 6]>(new)) };

    count_forward(choice.real_id, ip_len as u64, new_flow);

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

/// An IPv4 fragment to a VIP: steered by (client, VIP, protocol) when a service of that VIP
/// and protocol asks for it (`fragments: true`), so every fragment of a datagram, in whatever
/// order, reaches the real the service's table names for that hash; otherwise passed.
#[inline(always)]
fn fragment(ctx: &XdpContext, frame: &Frame, ip: &parse::Ipv4) -> Result<Verdict, u32> {
    let fkey = FragKey {
        addr_be: ip.daddr_be,
        proto: ip.proto as u32,
    };
    // SAFETY: copied at once.
    let skey = unsafe { LB_FRAG_SERVICES.get(&fkey) }
        .copied()
        .ok_or(stats::PASS_FRAGMENT)?;
    let svc = select::service::<V4>(&ip.daddr_be, skey.port_be, skey.proto)
        .ok_or(stats::PASS_FRAGMENT)?;
    if ip.eth_src_multicast || parse::bogus_source(ip.saddr_be) {
        return Err(stats::DROP_BAD_SOURCE);
    }
    let choice = select::table_slot(&svc, address_hash(ip.saddr_be, ip.daddr_be, ip.proto))?;
    count(stats::INFO_FRAGMENT);
    forward(ctx, frame, &choice, ip.ip_len as u32, false)
}

/// An ICMP error to a VIP about a reply of a service flow (`q`, from `client` to `vip`:
/// `port_be`/`proto`): to the real that owns the flow (its connection-table entry), or the one
/// the service's table names for it. Anything else (echo requests above all) passes to the
/// node's own stack, as before.
#[inline(always)]
fn icmp_error<F: Family>(
    ctx: &XdpContext,
    frame: &Frame,
    q: &icmp::Quoted<F::Flow>,
    client: &F::Addr,
    vip: &F::Addr,
    port_be: u16,
    proto: u8,
) -> Result<Verdict, u32> {
    let svc = select::service::<F>(vip, port_be, proto).ok_or(stats::PASS_ICMP_OTHER)?;
    if svc.flags & SVC_F_ICMP == 0 {
        return Err(stats::PASS_ICMP_OTHER);
    }
    let choice = match select::remembered::<F>(&q.key) {
        select::Remembered::Usable(c) => {
            count(stats::INFO_ICMP_FLOW);
            c
        }
        _ => {
            count(stats::INFO_ICMP_TABLE);
            select::table_choice::<F>(&svc, &q.key, client, vip, proto)?
        }
    };
    forward(ctx, frame, &choice, q.ip_len, false)
}

/// Whether the filter's bit for this key is set (the key may be a service; clear: certainly
/// not). The agent sets one bit per active service and one per active VIP address (port and
/// protocol 0).
#[inline(always)]
fn filtered(addr_be: u32, port_be: u16, proto: u8) -> bool {
    let (word, bit) = filter_bit(addr_be, port_be, proto);
    matches!(LB_FILTER.get(word), Some(w) if *w & (1u64 << bit) != 0)
}

/// Passes everything. Lives on the far end of a veth so native XDP_TX frames get delivered
/// (multi-buffer aware, like `lb_xdp`, so it may sit on a jumbo-MTU veth).
#[xdp(frags)]
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
