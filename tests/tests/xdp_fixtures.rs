//! BPF_PROG_TEST_RUN fixtures against the real object: for each frame, the verdict, the frame
//! the program leaves and the counter it moves. Needs root (CI runs as root).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::programs::Xdp;
use lb_agent::{
    config::{Capacity, XdpMode},
    dataplane::{loader, Dataplane, DesiredReal, DesiredService, L2},
};
use lb_common::{
    flow_hash, flow_hash6, maps::PROG_LB, stats, ServiceKey, PORT_ANY, SVC_F_AFFINITY,
    SVC_F_FRAGMENTS, SVC_F_ICMP,
};
use lb_tests::{
    frames::{Ext, Frame, ETH_P_ARP, NEXTHDR_DEST, NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ROUTING},
    testrun,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const LB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x01];
const TABLE: u32 = 251;

fn cap() -> Capacity {
    Capacity {
        max_services: 8,
        service_ports: 64,
        max_reals: 64,
        ring_size: TABLE,
        conntrack: 4096,
        conntrack6: 1024,
        affinity: 1024,
    }
}

fn real(i: u8) -> DesiredReal {
    DesiredReal {
        addr: Ipv4Addr::new(10, 99, 0, 10 + i).into(),
        port: 80,
        weight: 1,
        keep_flows: true,
        l2: Some(L2 {
            dst_mac: real_mac(i),
            src_mac: LB_MAC,
            ifindex: 0,
        }),
    }
}

fn real_mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, 0x10 + i]
}

/// Real `i` with an IPv6 address (same MAC as `real(i)`).
fn real6(i: u8) -> DesiredReal {
    DesiredReal {
        addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 + u16::from(i)).into(),
        ..real(i)
    }
}

/// The same service on the IPv6 VIP.
fn service6(port: u16, proto: u8, reals: Vec<DesiredReal>) -> DesiredService {
    DesiredService {
        key: ServiceKey::new(VIP6, port, proto),
        ..service(port, proto, reals)
    }
}

fn service(port: u16, proto: u8, reals: Vec<DesiredReal>) -> DesiredService {
    DesiredService {
        ports: Vec::new(),
        key: ServiceKey::new(VIP, port, proto),
        active: true,
        flags: 0,
        affinity_timeout_s: 0,
        table_size: TABLE,
        reals: reals
            .into_iter()
            .map(|mut r| {
                r.port = port;
                r
            })
            .collect(),
        sorry: None,
    }
}

struct Fx {
    dp: Dataplane,
}

impl Fx {
    fn new(services: &[DesiredService]) -> Fx {
        let mut dp =
            Dataplane::open(&cap(), None, XdpMode::Auto).expect("load the XDP object (root?)");
        dp.apply(services).expect("apply");
        Fx { dp }
    }

    fn prog(&mut self) -> &mut Xdp {
        loader::program(&mut self.dp.loaded.ebpf, PROG_LB).expect("program")
    }

    fn stat(&self, idx: u32) -> u64 {
        self.dp.counters(&[]).expect("counters").get(idx)
    }

    /// Runs one frame; checks the verdict and that exactly `counter` moved among verdicts.
    fn run(&mut self, what: &str, frame: &[u8], action: u32, counter: u32) -> Vec<u8> {
        let before: Vec<u64> = (0..stats::COUNT).map(|i| self.stat(i)).collect();
        let out = testrun::run(self.prog(), frame, 1, 0).expect("test run");
        assert_eq!(out.action, action, "{what}: verdict");
        for i in 0..stats::COUNT {
            if !stats::is_verdict(i) {
                continue;
            }
            let delta = self.stat(i) - before[i as usize];
            let want = u64::from(i == counter);
            assert_eq!(
                delta,
                want,
                "{what}: counter {} moved by {delta}",
                stats::NAMES[i as usize]
            );
        }
        if action == XDP_PASS || action == XDP_DROP {
            assert_eq!(
                out.frame, frame,
                "{what}: a passed or dropped frame must be untouched"
            );
        }
        out.frame
    }

    fn apply(&mut self, services: &[DesiredService]) {
        self.dp.apply(services).expect("apply");
    }
}

fn tcp(sport: u16, dport: u16) -> Frame {
    Frame::tcp(CLIENT, sport, VIP, dport)
}

/// The real MAC a forwarded frame was sent to.
fn forwarded_to(out: &[u8], input: &[u8]) -> [u8; 6] {
    assert_eq!(
        &out[6..12],
        &LB_MAC,
        "source MAC must be the LB interface's"
    );
    assert_eq!(
        &out[12..],
        &input[12..],
        "only the Ethernet addresses may change"
    );
    let mut m = [0u8; 6];
    m.copy_from_slice(&out[0..6]);
    m
}

fn basic() -> Vec<DesiredService> {
    vec![
        service(80, 6, vec![real(1), real(2)]),
        service(53, 17, vec![real(1)]),
        service(
            81,
            6,
            vec![DesiredReal {
                l2: None,
                ..real(1)
            }],
        ),
        DesiredService {
            sorry: Some(DesiredReal {
                port: 82,
                ..real(9)
            }),
            ..service(
                82,
                6,
                vec![DesiredReal {
                    weight: 0,
                    keep_flows: false,
                    ..real(1)
                }],
            )
        },
    ]
}

#[test]
fn hits_are_forwarded_with_only_the_ethernet_header_rewritten() {
    let mut fx = Fx::new(&basic());
    let f = tcp(40000, 80).bytes();
    let out = fx.run("tcp hit", &f, XDP_TX, stats::TX);
    let to = forwarded_to(&out, &f);
    assert!(to == real_mac(1) || to == real_mac(2));

    let u = Frame::udp(CLIENT, 5353, VIP, 53).bytes();
    let out = fx.run("udp hit", &u, XDP_TX, stats::TX);
    assert_eq!(forwarded_to(&out, &u), real_mac(1));

    let mut v = tcp(40001, 80);
    v.vlans = vec![42];
    let vb = v.bytes();
    let out = fx.run("tcp hit with one 802.1Q tag", &vb, XDP_TX, stats::TX);
    forwarded_to(&out, &vb);
    assert_eq!(&out[12..16], &[0x81, 0x00, 0x00, 42], "the tag is kept");

    let mut o = tcp(40002, 80);
    o.ip_options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL
    let ob = o.bytes();
    let before = fx.stat(stats::INFO_IP_OPTIONS);
    let out = fx.run("tcp hit with IP options", &ob, XDP_TX, stats::TX);
    forwarded_to(&out, &ob);
    assert_eq!(fx.stat(stats::INFO_IP_OPTIONS), before + 1);

    // A jumbo frame, longer than a page: the test run hands it over as a multi-buffer frame,
    // as a 9,000-byte MTU interface does in native mode. Forwarded whole.
    let mut j = tcp(40004, 80);
    j.payload = vec![0x6a; 8900];
    let jb = j.bytes();
    let out = fx.run("tcp hit, 8,954-byte frame", &jb, XDP_TX, stats::TX);
    assert_eq!(out.len(), jb.len());
    forwarded_to(&out, &jb);

    let s = tcp(40003, 82).bytes();
    let out = fx.run("all reals down: the sorry server", &s, XDP_TX, stats::TX);
    assert_eq!(forwarded_to(&out, &s), real_mac(9));
}

#[test]
fn everything_else_passes_untouched() {
    let mut fx = Fx::new(&basic());
    fx.run(
        "port without a service",
        &tcp(40000, 8080).bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    fx.run(
        "address without a service",
        &Frame::tcp(CLIENT, 1, Ipv4Addr::new(10, 99, 0, 3), 80).bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    fx.run(
        "udp to a tcp-only port",
        &Frame::udp(CLIENT, 1, VIP, 80).bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    let mut arp = tcp(1, 80);
    arp.ethertype = ETH_P_ARP;
    fx.run("ARP", &arp.bytes(), XDP_PASS, stats::PASS_NOT_IP);
    let mut lldp = tcp(1, 80);
    lldp.ethertype = 0x88cc;
    fx.run("LLDP", &lldp.bytes(), XDP_PASS, stats::PASS_NOT_IP);
    fx.run(
        "ICMP echo request to the VIP (the node's own stack answers)",
        &Frame::icmp(CLIENT, VIP, 8, 0, [0, 1, 0, 1]).bytes(),
        XDP_PASS,
        stats::PASS_OTHER_PROTO,
    );
    fx.run(
        "service whose reals have no MAC",
        &tcp(40000, 81).bytes(),
        XDP_DROP,
        stats::DROP_NO_REAL,
    );
}

/// A fragment of a TCP datagram to port 80: `frag` is the raw flags-and-offset field.
fn fragment(sport: u16, frag: u16) -> Vec<u8> {
    let mut f = tcp(sport, 80);
    f.frag = frag;
    f.bytes()
}

const FIRST: u16 = 0x2000; // MF, offset 0
const MIDDLE: u16 = 0x2010; // MF, offset 128 bytes
const LAST: u16 = 0x0020; // offset 256 bytes

#[test]
fn fragments_pass_unless_a_service_steers_them() {
    let mut fx = Fx::new(&basic());
    for (what, frag) in [("first", FIRST), ("middle", MIDDLE), ("last", LAST)] {
        fx.run(
            &format!("{what} fragment"),
            &fragment(40000, frag),
            XDP_PASS,
            stats::PASS_FRAGMENT,
        );
    }
}

#[test]
fn every_fragment_of_a_datagram_reaches_one_real() {
    let steer = DesiredService {
        flags: SVC_F_FRAGMENTS,
        ..service(80, 6, (1..=4).map(real).collect())
    };
    let mut fx = Fx::new(&[steer]);
    let mut reals = std::collections::HashSet::new();
    for client in 1..=20u8 {
        let src = Ipv4Addr::new(10, 98, 0, client);
        let frag = |sport: u16, frag: u16| {
            let mut f = Frame::tcp(src, sport, VIP, 80);
            f.frag = frag;
            f.bytes()
        };
        // Last first, as a shuffled datagram may arrive; and an unfragmented packet of the
        // same client, which the service steers the same way.
        let mut to = Vec::new();
        for (what, f, counter) in [
            ("last fragment", frag(1, LAST), stats::TX),
            ("first fragment", frag(1, FIRST), stats::TX),
            ("middle fragment", frag(1, MIDDLE), stats::TX),
            ("whole datagram", frag(2, 0x4000), stats::TX),
        ] {
            let steered = fx.stat(stats::INFO_FRAGMENT);
            to.push(forwarded_to(&fx.run(what, &f, XDP_TX, counter), &f));
            let want = u64::from(what.ends_with("fragment"));
            assert_eq!(fx.stat(stats::INFO_FRAGMENT), steered + want, "{what}");
        }
        assert!(
            to.iter().all(|m| *m == to[0]),
            "client {src}: fragments went to {to:?}"
        );
        reals.insert(to[0]);
    }
    assert!(
        reals.len() > 1,
        "twenty clients must not all land on one real: {reals:?}"
    );
    assert_eq!(
        fx.stat(stats::INFO_FLOW_NEW),
        0,
        "a steered service keeps no connection table"
    );
    fx.run(
        "a fragment of another protocol to the VIP",
        &{
            let mut f = Frame::udp(CLIENT, 1, VIP, 80);
            f.frag = FIRST;
            f.bytes()
        },
        XDP_PASS,
        stats::PASS_FRAGMENT,
    );
}

#[test]
fn several_ports_and_all_ports() {
    let multi = DesiredService {
        ports: vec![80, 443, 8000, 8001],
        flags: SVC_F_AFFINITY,
        affinity_timeout_s: 300,
        ..service(80, 6, (1..=4).map(real).collect())
    };
    let all = DesiredService {
        ports: vec![PORT_ANY],
        ..service(PORT_ANY, 17, vec![real(5)])
    };
    let mut fx = Fx::new(&[multi, all]);
    for client in 1..=10u8 {
        let src = Ipv4Addr::new(10, 98, 1, client);
        let mut to = Vec::new();
        for port in [80, 443, 8000, 8001] {
            let f = Frame::tcp(src, 1000 + port, VIP, port).bytes();
            to.push(forwarded_to(
                &fx.run(&format!("tcp {port}"), &f, XDP_TX, stats::TX),
                &f,
            ));
        }
        assert!(
            to.iter().all(|m| *m == to[0]),
            "persistence spans the service's ports: {to:?}"
        );
    }
    fx.run(
        "tcp port the service does not list",
        &tcp(1, 8002).bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    for port in [1, 53, 8002, 65535] {
        let f = Frame::udp(CLIENT, 5000, VIP, port).bytes();
        let out = fx.run(&format!("udp {port}: all ports"), &f, XDP_TX, stats::TX);
        assert_eq!(forwarded_to(&out, &f), real_mac(5));
    }
}

/// An ICMP error from a router on the way back (10.99.9.1) about a reply the VIP sent.
fn icmp_error(ty: u8, code: u8, reply: &Frame, quoted_l4: usize) -> Frame {
    let mut e = Frame::icmp(
        Ipv4Addr::new(10, 99, 9, 1),
        VIP,
        ty,
        code,
        [0, 0, 0x05, 0x00],
    );
    e.payload = reply.quote(quoted_l4);
    e
}

/// A reply of a service flow, as the real sends it from the VIP to the client.
fn reply(proto: u8, sport: u16, client_port: u16) -> Frame {
    let mut r = Frame::tcp(VIP, sport, CLIENT, client_port);
    r.proto = proto;
    r
}

const FRAG_NEEDED: (u8, u8) = (3, 4);

fn icmp_services(flags: u32) -> Vec<DesiredService> {
    vec![
        DesiredService {
            flags,
            ..service(80, 6, (1..=4).map(real).collect())
        },
        DesiredService {
            flags,
            ..service(53, 17, (1..=4).map(real).collect())
        },
    ]
}

#[test]
fn icmp_errors_reach_the_real_of_the_flow() {
    let mut fx = Fx::new(&icmp_services(SVC_F_ICMP));
    // A known flow: the error follows its connection-table entry, even once the table names
    // another real for it.
    let key = ServiceKey::new(VIP, 80, 6);
    let flows: Vec<(u16, [u8; 6])> = (40000..40040)
        .map(|sport| {
            let f = tcp(sport, 80).bytes();
            (
                sport,
                forwarded_to(&fx.run("flow", &f, XDP_TX, stats::TX), &f),
            )
        })
        .collect();
    fx.apply(&[DesiredService {
        flags: SVC_F_ICMP,
        ..service(80, 6, (1..=8).map(real).collect())
    }]);
    let (sport, owner) = flows
        .into_iter()
        .find(|(sport, owner)| {
            let id = fx
                .dp
                .programmer
                .real_id(&key, real(owner[5] - 0x10).addr, 80);
            id != Some(table_real(&fx, &key, *sport))
        })
        .expect("eight reals instead of four move some flow's slot");
    for (ty, code) in [FRAG_NEEDED, (3, 1), (11, 0), (12, 0)] {
        let e = icmp_error(ty, code, &reply(6, 80, sport), 8).bytes();
        let before = fx.stat(stats::INFO_ICMP_FLOW);
        let out = fx.run(
            &format!("ICMP {ty}/{code}, known flow"),
            &e,
            XDP_TX,
            stats::TX,
        );
        assert_eq!(forwarded_to(&out, &e), owner, "ICMP {ty}/{code}");
        assert_eq!(fx.stat(stats::INFO_ICMP_FLOW), before + 1);
    }
    // A router may quote more than 8 bytes; IP options in the quote shift the ports.
    let e = icmp_error(3, 4, &reply(6, 80, sport), 20).bytes();
    assert_eq!(
        forwarded_to(&fx.run("long quote", &e, XDP_TX, stats::TX), &e),
        owner
    );
    let mut with_options = reply(6, 80, sport);
    with_options.ip_options = vec![1, 1, 1, 0];
    let e = icmp_error(3, 4, &with_options, 8).bytes();
    assert_eq!(
        forwarded_to(&fx.run("quote with IP options", &e, XDP_TX, stats::TX), &e),
        owner
    );

    // Unknown flows (another node had them, or the entry expired): the real the table names,
    // the one the flow's next packet would reach.
    for client_port in 41000..41020u16 {
        let e = icmp_error(3, 4, &reply(6, 80, client_port), 8).bytes();
        let before = fx.stat(stats::INFO_ICMP_TABLE);
        let out = fx.run("ICMP, unknown flow", &e, XDP_TX, stats::TX);
        assert_eq!(fx.stat(stats::INFO_ICMP_TABLE), before + 1);
        let want = table_real(&fx, &key, client_port);
        let f = tcp(client_port, 80).bytes();
        let next = forwarded_to(&fx.run("the flow's next packet", &f, XDP_TX, stats::TX), &f);
        assert_eq!(forwarded_to(&out, &e), next, "table real {want}");
    }
}

#[test]
fn icmp_errors_about_udp_flows_and_nothing_else() {
    let mut fx = Fx::new(&icmp_services(SVC_F_ICMP));
    let u = Frame::udp(CLIENT, 5353, VIP, 53).bytes();
    let owner = forwarded_to(&fx.run("udp flow", &u, XDP_TX, stats::TX), &u);
    let e = icmp_error(3, 3, &reply(17, 53, 5353), 8).bytes();
    assert_eq!(
        forwarded_to(&fx.run("port unreachable, udp", &e, XDP_TX, stats::TX), &e),
        owner
    );

    for (what, quote_len, counter) in [
        (
            "quote cut inside the IP header",
            12,
            stats::PASS_ICMP_TRUNCATED,
        ),
        ("quote without ports", 20, stats::PASS_ICMP_TRUNCATED),
        ("quote with half the ports", 22, stats::PASS_ICMP_TRUNCATED),
    ] {
        let mut e = icmp_error(3, 4, &reply(6, 80, 40000), 8);
        e.payload.truncate(quote_len);
        fx.run(what, &e.bytes(), XDP_PASS, counter);
    }
    let e = Frame::icmp(Ipv4Addr::new(10, 99, 9, 1), VIP, 3, 4, [0; 4]);
    let mut b = e.bytes();
    b.truncate(14 + 20 + 4);
    b[16..18].copy_from_slice(&24u16.to_be_bytes());
    fx.run(
        "ICMP header cut short",
        &b,
        XDP_PASS,
        stats::PASS_ICMP_TRUNCATED,
    );

    let mut other_src = reply(6, 80, 40000);
    other_src.src = Ipv4Addr::new(10, 99, 0, 3).into();
    for (what, quoted) in [
        ("a quote not sent from the VIP", other_src),
        ("a quote from a port with no service", reply(6, 8080, 40000)),
        ("a quote of an ICMP message", {
            let mut r = reply(6, 80, 40000);
            r.proto = 1;
            r
        }),
    ] {
        let e = icmp_error(3, 4, &quoted, 8).bytes();
        fx.run(what, &e, XDP_PASS, stats::PASS_ICMP_OTHER);
    }
    fx.run(
        "echo request",
        &Frame::icmp(CLIENT, VIP, 8, 0, [0, 1, 0, 1]).bytes(),
        XDP_PASS,
        stats::PASS_OTHER_PROTO,
    );
    fx.run(
        "an error to an address that is no VIP",
        &{
            let mut e = icmp_error(3, 4, &reply(6, 80, 40000), 8);
            e.dst = Ipv4Addr::new(10, 99, 0, 3).into();
            e.bytes()
        },
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );

    // forward_icmp_errors: false: the error goes to this node's stack, as before.
    fx.apply(&icmp_services(0));
    let e = icmp_error(3, 4, &reply(6, 80, 40000), 8).bytes();
    fx.run("forwarding off", &e, XDP_PASS, stats::PASS_ICMP_OTHER);
}

#[test]
fn truncated_and_malformed_frames_pass_untouched() {
    let mut fx = Fx::new(&basic());
    let full = tcp(40000, 80).bytes();
    // BPF_PROG_TEST_RUN needs at least an Ethernet header's worth of bytes.
    for len in 14..full.len() {
        let f = &full[..len];
        let counter = if len < 34 {
            stats::PASS_TRUNCATED_IP
        } else if len < 54 {
            stats::PASS_TRUNCATED_L4
        } else {
            stats::PASS_BAD_IP_HEADER // total length beyond the frame
        };
        fx.run(&format!("truncated to {len} bytes"), f, XDP_PASS, counter);
    }
    let mut vlan = tcp(40000, 80);
    vlan.vlans = vec![7];
    let vb = vlan.bytes();
    for len in 14..18 {
        fx.run(
            &format!("802.1Q cut at {len}"),
            &vb[..len],
            XDP_PASS,
            stats::PASS_TRUNCATED_VLAN,
        );
    }
    let mut qinq = tcp(40000, 80);
    qinq.vlans = vec![7, 8];
    fx.run(
        "two VLAN tags",
        &qinq.bytes(),
        XDP_PASS,
        stats::PASS_VLAN_STACKED,
    );

    let mut f = full.clone();
    f[14] = 0x44; // IHL 4 (16 bytes)
    fx.run("IHL below 5", &f, XDP_PASS, stats::PASS_BAD_IP_HEADER);
    let mut f = full.clone();
    f[14] = 0x65; // version 6 in an IPv4 ethertype
    fx.run("version 6", &f, XDP_PASS, stats::PASS_BAD_IP_HEADER);
    let mut f = full.clone();
    f[16..18].copy_from_slice(&1500u16.to_be_bytes());
    fx.run(
        "total length beyond the frame",
        &f,
        XDP_PASS,
        stats::PASS_BAD_IP_HEADER,
    );
    let mut f = full.clone();
    f[16..18].copy_from_slice(&10u16.to_be_bytes());
    fx.run(
        "total length below the header",
        &f,
        XDP_PASS,
        stats::PASS_BAD_IP_HEADER,
    );
    let mut f = full.clone();
    f[16..18].copy_from_slice(&30u16.to_be_bytes());
    fx.run(
        "total length cuts the TCP header",
        &f,
        XDP_PASS,
        stats::PASS_TRUNCATED_L4,
    );
    let mut f = full.clone();
    f[14] = 0x4f; // IHL 15: 60-byte header, longer than what follows
    fx.run(
        "IHL beyond the frame",
        &f,
        XDP_PASS,
        stats::PASS_TRUNCATED_L4,
    );
}

#[test]
fn spoofed_sources_to_a_vip_are_dropped() {
    let mut fx = Fx::new(&basic());
    for src in [
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(239, 1, 2, 3),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(240, 0, 0, 1),
    ] {
        fx.run(
            &format!("from {src}"),
            &Frame::tcp(src, 1000, VIP, 80).bytes(),
            XDP_DROP,
            stats::DROP_BAD_SOURCE,
        );
    }
    let mut m = tcp(1000, 80);
    m.src_mac = [0x01, 0x00, 0x5e, 0, 0, 1];
    fx.run(
        "from a multicast MAC",
        &m.bytes(),
        XDP_DROP,
        stats::DROP_BAD_SOURCE,
    );
    // The same sources to a non-VIP are not ours to judge.
    fx.run(
        "broadcast source, not a VIP",
        &Frame::tcp(Ipv4Addr::BROADCAST, 1, Ipv4Addr::new(10, 99, 0, 3), 80).bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
}

#[test]
fn redirect_when_the_real_is_behind_another_interface() {
    let mut r = real(1);
    if let Some(l2) = r.l2.as_mut() {
        l2.ifindex = 7777; // test runs arrive on lo (ifindex 1)
    }
    let mut fx = Fx::new(&[service(80, 6, vec![r])]);
    let f = tcp(40000, 80).bytes();
    let out = fx.run(
        "real behind ifindex 7777",
        &f,
        XDP_REDIRECT,
        stats::REDIRECT,
    );
    assert_eq!(forwarded_to(&out, &f), real_mac(1));
}

/// Which real id the table names for this flow now.
fn table_real(fx: &Fx, key: &ServiceKey, sport: u16) -> u32 {
    let svc = fx
        .dp
        .loaded
        .maps
        .services
        .get(key, 0)
        .expect("service entry");
    let h = match key.addr() {
        IpAddr::V4(vip) => flow_hash(
            u32::from_ne_bytes(CLIENT.octets()),
            u32::from_ne_bytes(vip.octets()),
            sport.to_be(),
            key.port_be,
            key.proto,
        ),
        IpAddr::V6(_) => flow_hash6(
            &lb_common::words6(CLIENT6),
            &key.addr,
            sport.to_be(),
            key.port_be,
            key.proto,
        ),
    };
    fx.dp
        .loaded
        .maps
        .rings
        .get((svc.ring_base + h % svc.ring_size) as usize)
        .expect("slot")
}

#[test]
fn connection_table_keeps_flows_when_the_table_changes() {
    let two = vec![service(80, 6, vec![real(1), real(2)])];
    let mut fx = Fx::new(&two);
    let key = ServiceKey::new(VIP, 80, 6);
    // Establish 40 flows.
    let mut first = Vec::new();
    for p in 0..40u16 {
        let f = tcp(30000 + p, 80).bytes();
        first.push(forwarded_to(&fx.run("new flow", &f, XDP_TX, stats::TX), &f));
    }
    // Add six reals: many flows' table slots now name another real.
    let eight = vec![service(80, 6, (1..=8).map(real).collect())];
    fx.apply(&eight);
    let r1 = fx
        .dp
        .programmer
        .real_id(&key, real(1).addr, 80)
        .expect("id");
    let r2 = fx
        .dp
        .programmer
        .real_id(&key, real(2).addr, 80)
        .expect("id");
    let mut moved_in_table = 0;
    for p in 0..40u16 {
        let t = table_real(&fx, &key, 30000 + p);
        if t != r1 && t != r2 {
            moved_in_table += 1;
        }
        let f = tcp(30000 + p, 80).bytes();
        let new = fx.stat(stats::INFO_FLOW_NEW);
        let to = forwarded_to(&fx.run("established flow", &f, XDP_TX, stats::TX), &f);
        assert_eq!(
            to, first[p as usize],
            "flow {p} moved although it is in the connection table"
        );
        assert_eq!(
            fx.stat(stats::INFO_FLOW_NEW),
            new,
            "an established flow is not new"
        );
    }
    assert!(
        moved_in_table >= 10,
        "precondition: the table must have changed for many flows ({moved_in_table})"
    );
    // A new flow follows the new table.
    let mut new_on_new_reals = 0;
    for p in 0..40u16 {
        let f = tcp(50000 + p, 80).bytes();
        let to = forwarded_to(&fx.run("new flow", &f, XDP_TX, stats::TX), &f);
        if to != real_mac(1) && to != real_mac(2) {
            new_on_new_reals += 1;
        }
    }
    assert!(new_on_new_reals > 0);
}

#[test]
fn failed_real_moves_its_flows_and_draining_real_keeps_them() {
    let mut fx = Fx::new(&[service(80, 6, vec![real(1), real(2)])]);
    // Find flows on r1.
    let on_r1: Vec<u16> = (0..60u16)
        .filter(|p| {
            let f = tcp(20000 + p, 80).bytes();
            let out = fx.run("new flow", &f, XDP_TX, stats::TX);
            forwarded_to(&out, &f) == real_mac(1)
        })
        .collect();
    assert!(!on_r1.is_empty());

    // Draining (inhibit_on_failure): weight 0 but flows kept.
    let drain = DesiredReal {
        weight: 0,
        keep_flows: true,
        ..real(1)
    };
    fx.apply(&[service(80, 6, vec![drain, real(2)])]);
    for p in &on_r1 {
        let f = tcp(20000 + p, 80).bytes();
        assert_eq!(
            forwarded_to(&fx.run("draining", &f, XDP_TX, stats::TX), &f),
            real_mac(1)
        );
    }
    let f = tcp(1, 80).bytes();
    assert_eq!(
        forwarded_to(
            &fx.run("new flow while draining", &f, XDP_TX, stats::TX),
            &f
        ),
        real_mac(2)
    );

    // Failed: flows move to the live real.
    let down = DesiredReal {
        weight: 0,
        keep_flows: false,
        ..real(1)
    };
    fx.apply(&[service(80, 6, vec![down, real(2)])]);
    for p in &on_r1 {
        let f = tcp(20000 + p, 80).bytes();
        let before = fx.stat(stats::INFO_FLOW_RESELECT);
        assert_eq!(
            forwarded_to(&fx.run("failed real's flow", &f, XDP_TX, stats::TX), &f),
            real_mac(2)
        );
        assert_eq!(fx.stat(stats::INFO_FLOW_RESELECT), before + 1);
    }
}

#[test]
fn counters_per_service_and_real() {
    let mut fx = Fx::new(&[service(80, 6, vec![real(1)])]);
    let key = ServiceKey::new(VIP, 80, 6);
    let f = tcp(40000, 80);
    let bytes = f.bytes();
    let ip_len = (bytes.len() - 14) as u64;
    for _ in 0..3 {
        fx.run("hit", &bytes, XDP_TX, stats::TX);
    }
    let rid = fx
        .dp
        .programmer
        .real_id(&key, real(1).addr, 80)
        .expect("rid");
    let snap = fx.dp.counters(&[rid]).expect("counters");
    let r = snap.reals[&rid];
    assert_eq!((r.packets, r.bytes, r.flows), (3, 3 * ip_len, 1));
    assert_eq!(snap.get(stats::INFO_FLOW_NEW), 1);
    // A real that leaves keeps counting towards its service; its id starts again from zero.
    fx.apply(&[service(80, 6, vec![real(2)])]);
    assert_eq!(fx.dp.programmer.retired(&key).packets, 3);
    fx.apply(&[service(80, 6, vec![real(2), real(3)])]);
    let ids: Vec<u32> = [2, 3]
        .iter()
        .filter_map(|&i| fx.dp.programmer.real_id(&key, real(i).addr, 80))
        .collect();
    let snap = fx.dp.counters(&ids).expect("counters");
    assert!(
        snap.reals.values().all(|c| c.packets == 0),
        "reused ids must start at zero: {snap:?}"
    );
}

#[test]
fn withdrawn_service_passes() {
    let mut fx = Fx::new(&[service(80, 6, vec![real(1)])]);
    let f = tcp(40000, 80).bytes();
    fx.run("active", &f, XDP_TX, stats::TX);
    let mut s = service(80, 6, vec![real(1)]);
    s.active = false;
    fx.apply(&[s.clone()]);
    fx.run(
        "withdrawn (this node is backup): even an established flow passes",
        &f,
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    s.active = true;
    fx.apply(&[s]);
    fx.run("active again", &f, XDP_TX, stats::TX);
}

// ----- IPv6 -----

fn tcp6(sport: u16, dport: u16) -> Frame {
    Frame::tcp(CLIENT6, sport, VIP6, dport)
}

fn ext(kind: u8, body: &[u8]) -> Ext {
    Ext {
        kind,
        body: body.to_vec(),
    }
}

/// Both families on one interface: an IPv4 and an IPv6 service side by side.
fn dual() -> Vec<DesiredService> {
    vec![
        service(80, 6, vec![real(1), real(2)]),
        service6(80, 6, vec![real6(1), real6(2)]),
        service6(53, 17, vec![real6(3)]),
    ]
}

#[test]
fn ipv6_hits_are_forwarded_beside_ipv4() {
    let mut fx = Fx::new(&dual());
    let f = tcp6(40000, 80).bytes();
    let new = fx.stat(stats::INFO_IPV6);
    let out = fx.run("v6 tcp hit", &f, XDP_TX, stats::TX);
    let to = forwarded_to(&out, &f);
    assert!(to == real_mac(1) || to == real_mac(2));
    assert_eq!(fx.stat(stats::INFO_IPV6), new + 1, "a new IPv6 flow");
    // The same flow again: the connection table, same real.
    let again = forwarded_to(&fx.run("v6 established", &f, XDP_TX, stats::TX), &f);
    assert_eq!(again, to);
    assert_eq!(fx.stat(stats::INFO_IPV6), new + 1);

    let u = Frame::udp(CLIENT6, 5353, VIP6, 53).bytes();
    let out = fx.run("v6 udp hit", &u, XDP_TX, stats::TX);
    assert_eq!(forwarded_to(&out, &u), real_mac(3));

    let mut v = tcp6(40001, 80);
    v.vlans = vec![42];
    let vb = v.bytes();
    let out = fx.run("v6 tcp hit with one 802.1Q tag", &vb, XDP_TX, stats::TX);
    forwarded_to(&out, &vb);
    assert_eq!(&out[12..16], &[0x81, 0x00, 0x00, 42], "the tag is kept");

    let v4 = tcp(40000, 80).bytes();
    fx.run("and IPv4 still", &v4, XDP_TX, stats::TX);

    // Many flows spread over both reals, and each keeps its real.
    let mut seen = std::collections::HashSet::new();
    for p in 0..40u16 {
        let f = tcp6(20000 + p, 80).bytes();
        let a = forwarded_to(&fx.run("v6 flow", &f, XDP_TX, stats::TX), &f);
        let b = forwarded_to(&fx.run("v6 flow again", &f, XDP_TX, stats::TX), &f);
        assert_eq!(a, b);
        seen.insert(a);
    }
    assert_eq!(seen.len(), 2, "IPv6 flows reach both reals");
}

#[test]
fn ipv6_misses_and_neighbour_discovery_pass() {
    let mut fx = Fx::new(&dual());
    fx.run(
        "v6 port without a service",
        &tcp6(1, 8080).bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    fx.run(
        "v6 address without a service",
        &Frame::tcp(
            CLIENT6,
            1,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3),
            80,
        )
        .bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    fx.run(
        "v6 udp to a tcp-only port",
        &Frame::udp(CLIENT6, 1, VIP6, 80).bytes(),
        XDP_PASS,
        stats::PASS_NO_SERVICE,
    );
    let solicited_node = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x100);
    let mut target = VIP6.octets().to_vec();
    target.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0xc1]);
    for (what, dst, ty) in [
        ("neighbour solicitation for the VIP", solicited_node, 135),
        (
            "router solicitation",
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
            133,
        ),
        (
            "router advertisement",
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            134,
        ),
        (
            "MLDv2 report",
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16),
            143,
        ),
    ] {
        let mut f = Frame::icmp(CLIENT6, dst, ty, 0, [0; 4]);
        f.payload = target.clone();
        fx.run(what, &f.bytes(), XDP_PASS, stats::PASS_NO_SERVICE);
    }
    for (what, ty) in [
        (
            "unicast neighbour solicitation to the VIP (reachability)",
            135,
        ),
        ("neighbour advertisement to the VIP", 136),
        ("echo request to the VIP", 128),
    ] {
        let mut f = Frame::icmp(CLIENT6, VIP6, ty, 0, [0; 4]);
        f.payload = target.clone();
        fx.run(what, &f.bytes(), XDP_PASS, stats::PASS_OTHER_PROTO);
    }
    for src in [
        Ipv6Addr::UNSPECIFIED,
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    ] {
        fx.run(
            &format!("v6 from {src}"),
            &Frame::tcp(src, 1000, VIP6, 80).bytes(),
            XDP_DROP,
            stats::DROP_BAD_SOURCE,
        );
    }
}

#[test]
fn ipv6_extension_headers() {
    let mut fx = Fx::new(&dual());
    let pad6 = [0u8; 6];
    let with = |sport: u16, exts: Vec<Ext>| {
        let mut f = tcp6(sport, 80);
        f.ext = exts;
        f.bytes()
    };
    // Walked to the transport header and balanced.
    for (what, exts) in [
        ("hop-by-hop", vec![ext(NEXTHDR_HOP, &pad6)]),
        ("destination options", vec![ext(NEXTHDR_DEST, &pad6)]),
        (
            "routing header, no segments left",
            vec![ext(NEXTHDR_ROUTING, &[0, 0, 0, 0, 0, 0])],
        ),
        (
            "hop-by-hop, routing, a 24-byte destination options",
            vec![
                ext(NEXTHDR_HOP, &pad6),
                ext(NEXTHDR_ROUTING, &[0, 0, 0, 0, 0, 0]),
                ext(NEXTHDR_DEST, &[0; 22]),
            ],
        ),
        ("four headers", vec![ext(NEXTHDR_DEST, &pad6); 4]),
    ] {
        let f = with(41000 + what.len() as u16, exts);
        let before = fx.stat(stats::INFO_IP_OPTIONS);
        forwarded_to(&fx.run(what, &f, XDP_TX, stats::TX), &f);
        assert_eq!(fx.stat(stats::INFO_IP_OPTIONS), before + 1, "{what}");
    }
    // Not balanced, each for its reason.
    fx.run(
        "five headers",
        &with(1, vec![ext(NEXTHDR_DEST, &pad6); 5]),
        XDP_PASS,
        stats::PASS_IPV6_EXT,
    );
    fx.run(
        "routing header with segments left",
        &with(1, vec![ext(NEXTHDR_ROUTING, &[0, 1, 0, 0, 0, 0])]),
        XDP_PASS,
        stats::PASS_IPV6_EXT,
    );
    // Fragment header (after Next Header and Reserved): offset and flags (M set on the
    // first), identification.
    for (what, frag_off) in [("first fragment", 0x0001u16), ("later fragment", 0x0100)] {
        let [hi, lo] = frag_off.to_be_bytes();
        fx.run(
            what,
            &with(1, vec![ext(NEXTHDR_FRAGMENT, &[hi, lo, 0, 0, 0, 7])]),
            XDP_PASS,
            stats::PASS_FRAGMENT,
        );
    }
    fx.run(
        "a fragment header behind a hop-by-hop",
        &with(
            1,
            vec![
                ext(NEXTHDR_HOP, &pad6),
                ext(NEXTHDR_FRAGMENT, &[0, 0, 1, 0, 0, 0]),
            ],
        ),
        XDP_PASS,
        stats::PASS_FRAGMENT,
    );
    let mut none = tcp6(1, 80);
    none.proto = 59; // no next header
    none.payload.clear();
    fx.run(
        "no next header",
        &none.bytes(),
        XDP_PASS,
        stats::PASS_OTHER_PROTO,
    );
}

#[test]
fn ipv6_truncated_at_every_header() {
    let mut fx = Fx::new(&dual());
    let mut f = tcp6(40000, 80);
    f.ext = vec![ext(NEXTHDR_DEST, &[0; 6])];
    let full = f.bytes();
    // Ethernet 0..14, IPv6 14..54, destination options 54..62 (its first 4 bytes are what the
    // walk reads), TCP 62..82, payload 82..
    for len in 14..full.len() {
        let counter = if len < 58 {
            stats::PASS_TRUNCATED_IP
        } else if len < 82 {
            stats::PASS_TRUNCATED_L4
        } else {
            stats::PASS_BAD_IP_HEADER // payload length beyond the frame
        };
        fx.run(&format!("v6 cut at {len}"), &full[..len], XDP_PASS, counter);
    }
    let mut b = tcp6(40000, 80).bytes();
    b[18..20].copy_from_slice(&0u16.to_be_bytes());
    fx.run(
        "payload length 0 (jumbogram)",
        &b,
        XDP_PASS,
        stats::PASS_BAD_IP_HEADER,
    );
    let mut b = tcp6(40000, 80).bytes();
    b[14] = 0x45;
    fx.run(
        "version 4 in an IPv6 frame",
        &b,
        XDP_PASS,
        stats::PASS_BAD_IP_HEADER,
    );
}

#[test]
fn icmpv6_packet_too_big_reaches_the_real_of_the_flow() {
    let icmp6 = |port: u16, reals: Vec<DesiredReal>| DesiredService {
        flags: SVC_F_ICMP,
        ..service6(port, 6, reals)
    };
    let mut fx = Fx::new(&[icmp6(80, (1..=4).map(real6).collect())]);
    let f = tcp6(40000, 80).bytes();
    let owner = forwarded_to(&fx.run("v6 flow", &f, XDP_TX, stats::TX), &f);
    let reply = Frame::tcp(VIP6, 80, CLIENT6, 40000);
    let router = Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1);
    let ptb = |reply: &Frame, quote: usize| {
        let mut e = Frame::icmp(router, VIP6, 2, 0, 1280u32.to_be_bytes());
        e.payload = reply.quote(quote);
        e.bytes()
    };
    let e = ptb(&reply, 8);
    let before = fx.stat(stats::INFO_ICMP_FLOW);
    assert_eq!(
        forwarded_to(
            &fx.run("packet too big, known flow", &e, XDP_TX, stats::TX),
            &e
        ),
        owner
    );
    assert_eq!(fx.stat(stats::INFO_ICMP_FLOW), before + 1);
    // Unknown: the real the flow's next packet would reach.
    for port in 41000..41010u16 {
        let e = ptb(&Frame::tcp(VIP6, 80, CLIENT6, port), 8);
        let out = fx.run("packet too big, unknown flow", &e, XDP_TX, stats::TX);
        let n = tcp6(port, 80).bytes();
        let next = forwarded_to(&fx.run("its next packet", &n, XDP_TX, stats::TX), &n);
        assert_eq!(forwarded_to(&out, &e), next);
    }
    fx.run(
        "a quote cut inside its IPv6 header",
        &ptb(&reply, 0)[..14 + 40 + 8 + 20],
        XDP_PASS,
        stats::PASS_ICMP_TRUNCATED,
    );
    fx.run(
        "a quote without ports",
        &ptb(&reply, 0),
        XDP_PASS,
        stats::PASS_ICMP_TRUNCATED,
    );
    let mut other = reply.clone();
    other.src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3).into();
    fx.run(
        "a quote not sent from the VIP",
        &ptb(&other, 8),
        XDP_PASS,
        stats::PASS_ICMP_OTHER,
    );
    fx.apply(&[service6(80, 6, (1..=4).map(real6).collect())]);
    fx.run(
        "forward_icmp_errors: false",
        &ptb(&reply, 8),
        XDP_PASS,
        stats::PASS_ICMP_OTHER,
    );
}

/// Every record waiting in the flow-sync queues, read as the agent reads them, and how many
/// were lost (overwritten before this read).
fn drain_published(fx: &Fx) -> (Vec<lb_agent::flowsync::directory::Published>, u64) {
    let mut q = lb_agent::flowsync::queue::FlowQueue::of(&fx.dp.loaded.maps).expect("the queues");
    let mut out = Vec::new();
    let lost = q.drain(&mut out);
    (out, lost)
}

/// Every record waiting in the flow-sync queues; none may have been lost.
fn published(fx: &Fx) -> Vec<lb_agent::flowsync::directory::Published> {
    let (out, lost) = drain_published(fx);
    assert_eq!(lost, 0, "records lost");
    out
}

#[test]
fn synced_services_publish_each_new_entry_once_as_written() {
    use lb_agent::{dataplane::conns::FlowTables, flowsync::directory::Published};
    use lb_common::{FlowKey, FlowKey6, SVC_F_SYNC};
    let synced = |s: DesiredService| DesiredService {
        flags: SVC_F_SYNC,
        ..s
    };
    let mut fx = Fx::new(&[
        synced(service(80, 6, vec![real(1), real(2)])),
        synced(service6(80, 6, vec![real6(1), real6(2)])),
        service6(53, 17, vec![real6(3)]),
    ]);
    published(&fx);
    let (t4, t6) = FlowTables::of(&fx.dp.loaded.maps)
        .expect("tables")
        .open()
        .expect("open");

    let f = tcp(40000, 80).bytes();
    fx.run("v4 new flow", &f, XDP_TX, stats::TX);
    fx.run("v4 established", &f, XDP_TX, stats::TX);
    let key = FlowKey {
        src_be: u32::from_ne_bytes(CLIENT.octets()),
        dst_be: u32::from_ne_bytes(VIP.octets()),
        sport_be: 40000u16.to_be(),
        dport_be: 80u16.to_be(),
        proto: 6,
    };
    let entry = t4.get(&key, 0).expect("the v4 entry");
    match published(&fx).as_slice() {
        [Published::V4(e)] => {
            assert_eq!(e.key, key);
            assert_eq!(e.value, entry, "the entry as the table holds it");
            assert!(e.created_ns > 0);
        }
        other => panic!("one IPv4 record for one new flow, got {other:?}"),
    }

    let f6 = tcp6(40000, 80).bytes();
    fx.run("v6 new flow", &f6, XDP_TX, stats::TX);
    fx.run("v6 established", &f6, XDP_TX, stats::TX);
    let u6 = Frame::udp(CLIENT6, 5353, VIP6, 53).bytes();
    fx.run(
        "v6 new flow of a service without sync",
        &u6,
        XDP_TX,
        stats::TX,
    );
    let key6 = FlowKey6 {
        src: lb_common::addr6_of(CLIENT6.into()),
        dst: lb_common::addr6_of(VIP6.into()),
        sport_be: 40000u16.to_be(),
        dport_be: 80u16.to_be(),
        proto: 6,
    };
    let entry6 = t6.get(&key6, 0).expect("the v6 entry");
    match published(&fx).as_slice() {
        [Published::V6(e)] => {
            assert_eq!(e.key, key6);
            assert_eq!(e.value, entry6);
        }
        other => panic!("one IPv6 record (none for the unsynced service), got {other:?}"),
    }
    assert_eq!(fx.stat(stats::INFO_FLOW_PUBLISH_FAILED), 0);
}

#[test]
fn a_reader_a_whole_queue_behind_gets_the_newest_records_and_counts_the_rest_lost() {
    use lb_agent::flowsync::directory::Published;
    use lb_common::{maps::FLOW_QUEUE_SLOTS, SVC_F_SYNC};
    let mut fx = Fx::new(&[DesiredService {
        flags: SVC_F_SYNC,
        ..service(80, 6, vec![real(1), real(2)])
    }]);
    // Every run publishes into CPU 0's queue.
    lb_tests::testrun::pin_to_cpu(0).expect("pinned to CPU 0");
    published(&fx);
    let over = 100u32;
    let flows = FLOW_QUEUE_SLOTS + over;
    for i in 0..flows {
        let client = std::net::Ipv4Addr::from(0x0a63_0000 + i);
        let f = Frame::tcp(client, 40000, VIP, 80).bytes();
        fx.run("new flow", &f, XDP_TX, stats::TX);
    }
    // A queue keeps its newest FLOW_QUEUE_SLOTS - 1 records: the slot the next one goes to
    // may be being written.
    let (got, lost) = drain_published(&fx);
    assert_eq!(
        lost,
        over as u64 + 1,
        "the oldest, overwritten, are counted"
    );
    assert_eq!(got.len(), FLOW_QUEUE_SLOTS as usize - 1);
    let first = match got.first() {
        Some(Published::V4(e)) => u32::from_be(e.key.src_be),
        other => panic!("an IPv4 record, got {other:?}"),
    };
    let oldest_kept = 0x0a63_0000 + over + 1;
    assert_eq!(first, oldest_kept, "the newest are kept, oldest first");
    let (again, lost) = drain_published(&fx);
    assert!(
        again.is_empty() && lost == 0,
        "a second drain finds nothing new"
    );
}
