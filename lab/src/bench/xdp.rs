//! Data-path cost with BPF_PROG_TEST_RUN (64-byte frames), each case beside a bare MAC-swap
//! XDP_TX program (the floor) driven the same way, alternating in rounds:
//! - a hit on an existing flow and a miss: one frame, run `repeat` times per call;
//! - a true new flow: many distinct 5-tuples, each run once (so each is an insert of a key
//!   that was not in the table), the floor also run once per distinct frame;
//! - forwarded packets per second ([`live`]): frames injected in live mode into a veth and
//!   counted where they arrive.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result};
use lb_agent::{
    config::{Capacity, XdpMode},
    dataplane::{loader, Dataplane, DesiredReal, DesiredService, L2},
};
use lb_common::{maps, ServiceKey};

use super::Stat;
use lb_tests::{frames::Frame, testrun};

const VIP_BASE: [u8; 4] = [10, 100, 0, 0];
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// Not a VIP: the miss case and the floor's frames.
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);

#[derive(Clone, Debug, serde::Serialize)]
pub struct Case {
    pub name: String,
    pub services: u32,
    pub reals: u32,
    /// How each figure was taken ("1 frame x 2000000 runs", "20000 distinct frames, 1 run
    /// each").
    pub method: String,
    pub rounds: usize,
    /// ns per packet.
    pub ns: Stat,
    /// The floor in the same rounds, taken the same way.
    pub floor_ns: Stat,
    /// Per-round ratio case / floor.
    pub ratio: Stat,
    /// lb_xdp only, when lb_xdp_base ran in the same rounds: per-round difference lb_xdp -
    /// lb_xdp_base in ns (what the edge handling, ICMP errors and fragments, costs this case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_base_ns: Option<Stat>,
    /// IPv6 cases: per-round ratio to the same case over IPv4, taken in the same rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_ipv4: Option<Stat>,
    /// New flows of a service with `flow_sync`: per-round ratio to the same new flows of a
    /// service without it, taken in the same rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_nosync: Option<Stat>,
}

fn vip(i: u32) -> Ipv4Addr {
    let b = (i + 1).to_be_bytes();
    Ipv4Addr::new(VIP_BASE[0], VIP_BASE[1] + b[1], b[2], b[3])
}

fn reals(n: u32, dst_mac: Option<[u8; 6]>, src_mac: [u8; 6]) -> Vec<DesiredReal> {
    (0..n)
        .map(|i| {
            let b = (i + 1).to_be_bytes();
            DesiredReal {
                addr: Ipv4Addr::new(10, 200 + b[1], b[2], b[3]).into(),
                port: 80,
                weight: 1,
                keep_flows: true,
                l2: Some(L2 {
                    dst_mac: dst_mac.unwrap_or([2, 0, b[1], b[2], b[3], 1]),
                    src_mac,
                    ifindex: 0,
                }),
            }
        })
        .collect()
}

/// A 64-byte TCP frame (60 bytes + FCS on the wire; here padded to 64). Over IPv6 the same
/// 10-byte payload makes 84 bytes.
fn frame(src: impl Into<IpAddr>, sport: u16, dst: impl Into<IpAddr>) -> Vec<u8> {
    let mut f = Frame::tcp(src, sport, dst, 80);
    f.payload = vec![0; 10];
    let mut b = f.bytes();
    if b.len() < 64 {
        b.resize(64, 0);
    }
    b
}

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 2);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 3);

/// Hit and miss over IPv4 and IPv6 in the same rounds (floor, then each frame, lb_xdp), each
/// IPv6 case with its per-round ratio to the IPv4 one.
fn measure_families(dp: &mut Dataplane, rounds: usize, repeat: u32) -> Result<Vec<Case>> {
    let cases = [
        (
            "VIP hit, existing flow [IPv4, same rounds as IPv6]",
            frame(CLIENT, 40000, vip(0)),
        ),
        (
            "VIP hit, existing flow [IPv6, 84-byte frame]",
            frame(CLIENT6, 40000, VIP6),
        ),
        (
            "miss (not a VIP) [IPv4, same rounds as IPv6]",
            frame(CLIENT, 1, OTHER),
        ),
        (
            "miss (not a VIP) [IPv6, 84-byte frame]",
            frame(CLIENT6, 1, OTHER6),
        ),
    ];
    let floor_frame = frame(CLIENT, 1, OTHER);
    for (_, f) in &cases {
        ns_per_packet(dp, maps::PROG_LB, f, 1000)?;
    }
    let mut fl = Vec::new();
    let mut c = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        fl.push(ns_per_packet(dp, maps::PROG_MACSWAP, &floor_frame, repeat)?);
        for (i, (_, f)) in cases.iter().enumerate() {
            c[i].push(ns_per_packet(dp, maps::PROG_LB, f, repeat)?);
        }
    }
    Ok(cases
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let per_round = |x: &[f64], y: &[f64]| -> Vec<f64> {
                x.iter().zip(y).map(|(a, b)| a / b.max(0.1)).collect()
            };
            Case {
                name: (*name).to_owned(),
                services: 2,
                reals: 3,
                method: format!("1 frame x {repeat} runs per call"),
                rounds,
                ns: Stat::of(&c[i]),
                floor_ns: Stat::of(&fl),
                ratio: Stat::of(&per_round(&c[i], &fl)),
                vs_base_ns: None,
                // Odd cases are IPv6, each after its IPv4 twin.
                vs_ipv4: (i % 2 == 1).then(|| Stat::of(&per_round(&c[i], &c[i - 1]))),
                vs_nosync: None,
            }
        })
        .collect())
}

/// A service like the first, whose new flows are published for the flow sync.
const SYNC_VIP: Ipv4Addr = Ipv4Addr::new(10, 101, 0, 1);

/// The data path with `services` services of `reals_per` reals each (and an IPv6 twin and a
/// `flow_sync` twin of the first).
fn setup(services: u32, reals_per: u32, table: u32, conntrack: u32) -> Result<Dataplane> {
    let cap = Capacity {
        max_services: services + 2,
        service_ports: services + 2,
        max_reals: (services + 2) * reals_per,
        ring_size: table,
        conntrack,
        conntrack6: conntrack,
        affinity: 1024,
    };
    let mut dp = Dataplane::open(&cap, None, XdpMode::Auto).context("loading the XDP object")?;
    let mut desired: Vec<DesiredService> = (0..services)
        .map(|i| DesiredService {
            ports: Vec::new(),
            key: ServiceKey::new(vip(i), 80, 6),
            active: true,
            flags: 0,
            affinity_timeout_s: 0,
            table_size: table,
            reals: reals(reals_per, None, [2, 0, 0, 0, 0, 1]),
            sorry: None,
        })
        .collect();
    // An IPv6 twin of the first service (its reals at IPv6 addresses, same MACs).
    if let Some(first) = desired.first().cloned() {
        let mut twin = DesiredService {
            key: ServiceKey::new(VIP6, 80, 6),
            ..first.clone()
        };
        for (i, r) in twin.reals.iter_mut().enumerate() {
            r.addr = Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, i as u16 + 1).into();
        }
        desired.push(twin);
        desired.push(DesiredService {
            key: ServiceKey::new(SYNC_VIP, 80, 6),
            flags: lb_common::SVC_F_SYNC,
            ..first
        });
    }
    dp.apply(&desired)?;
    Ok(dp)
}

fn ns_per_packet(dp: &mut Dataplane, prog: &str, f: &[u8], repeat: u32) -> Result<f64> {
    let p = loader::program(&mut dp.loaded.ebpf, prog)?;
    Ok(testrun::run(p, f, repeat, 0)?.ns_per_run as f64)
}

/// One frame run `repeat` times per call, for each of `progs`; `rounds` rounds of (floor,
/// each prog in turn). One case per prog.
#[allow(clippy::too_many_arguments)]
fn measure_repeat(
    dp: &mut Dataplane,
    progs: &[String],
    name: &str,
    services: u32,
    reals: u32,
    f: &[u8],
    rounds: usize,
    repeat: u32,
) -> Result<Vec<Case>> {
    let floor_frame = frame(CLIENT, 1, OTHER);
    // Warm up (and, for hits, create the flow).
    for p in progs {
        ns_per_packet(dp, p, f, 1000)?;
    }
    let mut fl = Vec::new();
    let mut c = vec![Vec::new(); progs.len()];
    let mut r = vec![Vec::new(); progs.len()];
    for _ in 0..rounds {
        let floor = ns_per_packet(dp, maps::PROG_MACSWAP, &floor_frame, repeat)?;
        fl.push(floor);
        for (i, p) in progs.iter().enumerate() {
            let case = ns_per_packet(dp, p, f, repeat)?;
            c[i].push(case);
            r[i].push(case / floor.max(0.1));
        }
    }
    let base = progs.iter().position(|p| p == maps::PROG_LB_BASE);
    Ok(progs
        .iter()
        .enumerate()
        .map(|(i, p)| Case {
            name: named(name, p),
            services,
            reals,
            method: format!("1 frame x {repeat} runs per call"),
            rounds,
            ns: Stat::of(&c[i]),
            floor_ns: Stat::of(&fl),
            ratio: Stat::of(&r[i]),
            vs_ipv4: None,
            vs_base_ns: base.filter(|_| p == maps::PROG_LB).map(|b| {
                let d: Vec<f64> = c[i].iter().zip(&c[b]).map(|(x, y)| x - y).collect();
                Stat::of(&d)
            }),
            vs_nosync: None,
        })
        .collect())
}

/// A case's name, with the program when it is not the production one.
fn named(name: &str, prog: &str) -> String {
    if prog == maps::PROG_LB {
        name.to_owned()
    } else {
        format!("{name} [{prog}]")
    }
}

/// The median single-run time of `frames`, each run once.
fn each_once(dp: &mut Dataplane, prog: &str, frames: &[Vec<u8>]) -> Result<f64> {
    let p = loader::program(&mut dp.loaded.ebpf, prog)?;
    let mut v = Vec::with_capacity(frames.len());
    for f in frames {
        v.push(testrun::run(p, f, 1, 0)?.ns_per_run as f64);
    }
    Ok(Stat::of(&v).median)
}

/// True new flows: each round sends `per_round` 5-tuples never seen before (a source
/// address of its own per round and program, the source port differing within it), each run
/// once; the floor is run once on as many distinct frames, in the same round.
fn measure_new(
    dp: &mut Dataplane,
    progs: &[String],
    services: u32,
    reals: u32,
    rounds: usize,
    per_round: u16,
) -> Result<Vec<Case>> {
    let mut fl = Vec::new();
    let mut c = vec![Vec::new(); progs.len()];
    let mut r = vec![Vec::new(); progs.len()];
    for round in 0..rounds {
        let b = (round as u16 + 1).to_be_bytes();
        let floors: Vec<Vec<u8>> = (0..per_round)
            .map(|i| frame(Ipv4Addr::new(10, 97, b[0], b[1]), 1024 + i, OTHER))
            .collect();
        let floor = each_once(dp, maps::PROG_MACSWAP, &floors)?;
        fl.push(floor);
        for (k, p) in progs.iter().enumerate() {
            let src = Ipv4Addr::new(10, 98 - k as u8, b[0], b[1]);
            let news: Vec<Vec<u8>> = (0..per_round)
                .map(|i| frame(src, 1024 + i, vip(services - 1)))
                .collect();
            let case = each_once(dp, p, &news)?;
            c[k].push(case);
            r[k].push(case / floor.max(0.1));
        }
    }
    Ok(progs
        .iter()
        .enumerate()
        .map(|(k, p)| Case {
            name: named("VIP hit, new flow (Maglev + insert)", p),
            services,
            reals,
            method: format!("{per_round} distinct frames per round, each run once"),
            rounds,
            ns: Stat::of(&c[k]),
            floor_ns: Stat::of(&fl),
            ratio: Stat::of(&r[k]),
            vs_base_ns: None,
            vs_ipv4: None,
            vs_nosync: None,
        })
        .collect())
}

/// Drains the flow-sync queues as the agent does; the records they held (none may be lost).
fn drain(dp: &Dataplane) -> Result<usize> {
    let mut out = Vec::new();
    let lost = lb_agent::flowsync::queue::FlowQueue::of(&dp.loaded.maps)?.drain(&mut out);
    if lost > 0 {
        anyhow::bail!("{lost} flow-sync records were overwritten before the drain");
    }
    Ok(out.len())
}

/// What publishing new flows costs: in each round, the floor, `per_round` true new flows of
/// the first service and as many of its `flow_sync` twin (each frame run once); the queues
/// are drained after each round, as the agent drains them, and must hold exactly the twin's
/// flows.
fn measure_new_sync(dp: &mut Dataplane, rounds: usize, per_round: u16) -> Result<Vec<Case>> {
    drain(dp)?;
    let (mut fl, mut off, mut on, mut r_off, mut r_on, mut vs) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let b = (round as u16 + 1).to_be_bytes();
        let flows = |net: u8, dst: Ipv4Addr| -> Vec<Vec<u8>> {
            (0..per_round)
                .map(|i| frame(Ipv4Addr::new(10, net, b[0], b[1]), 1024 + i, dst))
                .collect()
        };
        let floor = each_once(dp, maps::PROG_MACSWAP, &flows(93, OTHER))?;
        // Each round's inserts grow the table and the queue's lines go cold: which of the
        // two goes first alternates, so neither always meets the fuller table.
        let (a, s) = if round % 2 == 0 {
            let a = each_once(dp, maps::PROG_LB, &flows(94, vip(0)))?;
            (a, each_once(dp, maps::PROG_LB, &flows(95, SYNC_VIP))?)
        } else {
            let s = each_once(dp, maps::PROG_LB, &flows(95, SYNC_VIP))?;
            (each_once(dp, maps::PROG_LB, &flows(94, vip(0)))?, s)
        };
        let published = drain(dp)?;
        if published != per_round as usize {
            anyhow::bail!("{published} of {per_round} synced new flows reached the ring");
        }
        fl.push(floor);
        off.push(a);
        on.push(s);
        r_off.push(a / floor.max(0.1));
        r_on.push(s / floor.max(0.1));
        vs.push(s / a.max(0.1));
    }
    let case = |name: &str, ns: &[f64], ratio: &[f64], vs_nosync: Option<Stat>| Case {
        name: name.into(),
        services: 1,
        reals: 3,
        method: format!("{per_round} distinct frames per round, each run once"),
        rounds,
        ns: Stat::of(ns),
        floor_ns: Stat::of(&fl),
        ratio: Stat::of(ratio),
        vs_base_ns: None,
        vs_ipv4: None,
        vs_nosync,
    };
    Ok(vec![
        case("VIP hit, new flow, flow_sync off", &off, &r_off, None),
        case(
            "VIP hit, new flow, flow_sync on (entry published to the queue)",
            &on,
            &r_on,
            Some(Stat::of(&vs)),
        ),
    ])
}

pub struct Plan {
    pub rounds: usize,
    pub repeat: u32,
    /// Distinct new flows per round.
    pub new_flows: u16,
    pub scaling: bool,
}

pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Vec<Case>> {
    // Every contender on the same core, so a migration never lands in one of them only.
    lb_tests::testrun::pin_to_cpu(0)?;
    let mut out = Vec::new();
    let (rounds, repeat) = (plan.rounds, plan.repeat);
    let conntrack = 1 << 20;
    progress("xdp: 1 service, 3 reals, table 65537");
    let mut dp = setup(1, 3, 65537, conntrack)?;
    for prog in [maps::PROG_LB, maps::PROG_MACSWAP] {
        let info = loader::program(&mut dp.loaded.ebpf, prog)?.info()?;
        progress(&format!(
            "xdp: {prog}: {} instructions after verification",
            info.size_translated().unwrap_or(0) / 8
        ));
    }
    let hit = frame(CLIENT, 40000, vip(0));
    // Programs measured beside lb_xdp in the same rounds: lb_xdp_base (the same program
    // without the edge handling: what that costs the hit and miss paths), and variants built
    // into the object for a comparison, from LB_BENCH_PROGS.
    let progs: Vec<String> = [maps::PROG_LB, maps::PROG_LB_BASE]
        .map(str::to_owned)
        .into_iter()
        .chain(
            std::env::var("LB_BENCH_PROGS")
                .unwrap_or_default()
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        )
        .collect();
    out.extend(measure_repeat(
        &mut dp,
        &progs,
        "VIP hit, existing flow",
        1,
        3,
        &hit,
        rounds,
        repeat,
    )?);
    out.extend(measure_repeat(
        &mut dp,
        &progs,
        "miss (not a VIP)",
        1,
        3,
        &frame(CLIENT, 1, OTHER),
        rounds,
        repeat,
    )?);
    out.extend(measure_new(
        &mut dp,
        &progs[..1],
        1,
        3,
        rounds,
        plan.new_flows,
    )?);
    progress("xdp: new flows with and without flow_sync in the same rounds");
    out.extend(measure_new_sync(&mut dp, rounds, plan.new_flows)?);
    progress("xdp: IPv4 and IPv6 in the same rounds");
    out.extend(measure_families(&mut dp, rounds, repeat)?);

    if plan.scaling {
        for (services, reals) in [(1u32, 1u32), (100, 10), (10_000, 1), (1, 1000), (100, 1000)] {
            progress(&format!(
                "xdp: {services} services x {reals} reals, table 4093"
            ));
            let mut dp = setup(services, reals, 4093, conntrack)?;
            let f = frame(CLIENT, 40000, vip(services - 1));
            let lb = [maps::PROG_LB.to_owned()];
            out.extend(measure_repeat(
                &mut dp,
                &lb,
                "VIP hit, existing flow",
                services,
                reals,
                &f,
                rounds,
                repeat,
            )?);
            out.extend(measure_new(
                &mut dp,
                &lb,
                services,
                reals,
                rounds,
                plan.new_flows / 4,
            )?);
        }
    }
    Ok(out)
}

/// Forwarded packets per second on one core.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Live {
    pub rounds: usize,
    pub frames_per_run: u32,
    /// Frames that arrived at the receiving end per second of the injecting call.
    pub pps: Stat,
    pub floor_pps: Stat,
    /// Per-round ratio lb_xdp / floor.
    pub ratio: Stat,
    /// Frames injected and frames counted at the receiver, summed over the rounds (each).
    pub injected: u64,
    pub received: u64,
    pub floor_received: u64,
}

/// The XDP packets a veth's receive queues counted (`ethtool -S`), in the current namespace.
fn veth_xdp_packets(ifname: &str) -> Result<u64> {
    let out = lb_tests::netns::run(std::process::Command::new("ethtool").args(["-S", ifname]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let n: u64 = text
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| k.ends_with("_xdp_packets"))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum();
    Ok(n)
}

/// Live frames (`BPF_F_TEST_XDP_LIVE_FRAMES`): `frames` 64-byte frames injected into a veth
/// `lb0` as if received there, run through the program, and sent by its XDP_TX out of `lb0`
/// to the peer `r0`, where an XDP_DROP program receives them; the pps is what `r0` counted
/// per second of the call. lb_xdp forwards an established flow to a real whose MAC is r0's;
/// the floor swaps MACs. Alternating in rounds, on CPU 0, in a namespace of its own.
pub fn live(rounds: usize, frames: u32, progress: &mut dyn FnMut(&str)) -> Result<Live> {
    use aya::programs::{TestRun as _, TestRunAttrs, TestRunOptions, XdpMode as AyaMode};
    progress(&format!(
        "xdp: forwarded pps, live frames on a veth, {rounds} rounds of {frames} frames"
    ));
    let ns = lb_tests::netns::Netns::new(&lb_tests::netns::unique_prefix("lbpps"))?;
    ns.ip(&["link", "add", "lb0", "type", "veth", "peer", "name", "r0"])?;
    let (lb_mac, r_mac) = ([2, 0, 0, 0, 0, 0xb1], [2, 0, 0, 0, 0, 0xb2]);
    ns.ip(&["link", "set", "lb0", "address", "02:00:00:00:00:b1", "up"])?;
    ns.ip(&["link", "set", "r0", "address", "02:00:00:00:00:b2", "up"])?;
    ns.enter(move || -> Result<Live> {
        lb_tests::testrun::pin_to_cpu(0)?;
        let cap = Capacity {
            max_services: 2,
            service_ports: 64,
            max_reals: 2,
            ring_size: 4093,
            conntrack: 1 << 16,
            conntrack6: 1024,
            affinity: 1024,
        };
        let mut dp = Dataplane::open(&cap, None, XdpMode::Auto)?;
        dp.apply(&[DesiredService {
            ports: Vec::new(),
            key: ServiceKey::new(vip(0), 80, 6),
            active: true,
            flags: 0,
            affinity_timeout_s: 0,
            table_size: 4093,
            reals: reals(1, Some(r_mac), lb_mac),
            sorry: None,
        }])?;
        loader::program(&mut dp.loaded.ebpf, maps::PROG_DROP)?
            .attach("r0", AyaMode::Driver)
            .context("attaching lb_drop to r0")?;
        let ifindex = {
            let c = std::ffi::CString::new("lb0")?;
            // SAFETY: a valid C string.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        };
        let ctx: Vec<u8> = [0u32, 64, 0, ifindex, 0, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        let hit = frame(CLIENT, 40000, vip(0));
        let floor_frame = frame(CLIENT, 1, OTHER);
        // One run through the program first: the flow is then established.
        ns_per_packet(&mut dp, maps::PROG_LB, &hit, 1)?;
        let mut run_live = |prog: &str, f: &[u8]| -> Result<(f64, u64)> {
            let p = loader::program(&mut dp.loaded.ebpf, prog)?;
            let before = veth_xdp_packets("r0")?;
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(f);
            opts.ctx_in = Some(&ctx);
            opts.repeat = frames;
            opts.attrs = TestRunAttrs::new().xdp_live_frames(64);
            let t = std::time::Instant::now();
            p.test_run(opts).context("live-frames test run")?;
            let secs = t.elapsed().as_secs_f64();
            let got = veth_xdp_packets("r0")? - before;
            Ok((got as f64 / secs, got))
        };
        let (mut pps, mut floor, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let (mut received, mut floor_received) = (0, 0);
        for _ in 0..rounds {
            let (f, fg) = run_live(maps::PROG_MACSWAP, &floor_frame)?;
            let (c, cg) = run_live(maps::PROG_LB, &hit)?;
            floor.push(f);
            pps.push(c);
            ratio.push(c / f.max(1.0));
            received += cg;
            floor_received += fg;
        }
        Ok(Live {
            rounds,
            frames_per_run: frames,
            pps: Stat::of(&pps),
            floor_pps: Stat::of(&floor),
            ratio: Stat::of(&ratio),
            injected: u64::from(frames) * rounds as u64,
            received,
            floor_received,
        })
    })?
}
