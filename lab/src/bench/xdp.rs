//! Data-path cost per packet with BPF_PROG_TEST_RUN (64-byte frames, repeat >= 1,000,000),
//! each case beside a bare MAC-swap XDP_TX program (the floor) measured in the same round.

use std::net::Ipv4Addr;

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

#[derive(Clone, Debug, serde::Serialize)]
pub struct Case {
    pub name: String,
    pub services: u32,
    pub reals: u32,
    /// ns per packet.
    pub ns: Stat,
    /// The floor in the same rounds.
    pub floor_ns: Stat,
    /// Per-round ratio case / floor.
    pub ratio: Stat,
}

fn vip(i: u32) -> Ipv4Addr {
    let b = (i + 1).to_be_bytes();
    Ipv4Addr::new(VIP_BASE[0], VIP_BASE[1] + b[1], b[2], b[3])
}

fn reals(n: u32, keep_flows: bool) -> Vec<DesiredReal> {
    (0..n)
        .map(|i| {
            let b = (i + 1).to_be_bytes();
            DesiredReal {
                addr: Ipv4Addr::new(10, 200 + b[1], b[2], b[3]),
                port: 80,
                weight: 1,
                keep_flows,
                l2: Some(L2 {
                    dst_mac: [2, 0, b[1], b[2], b[3], 1],
                    src_mac: [2, 0, 0, 0, 0, 1],
                    ifindex: 0,
                }),
            }
        })
        .collect()
}

/// A 64-byte TCP frame (with FCS that would be 64 on the wire; here 60 + padding to 64).
fn frame(dst: Ipv4Addr, sport: u16) -> Vec<u8> {
    let mut f = Frame::tcp(CLIENT, sport, dst, 80);
    f.payload = vec![0; 10];
    let mut b = f.bytes();
    b.resize(64, 0);
    b
}

struct Setup {
    dp: Dataplane,
}

fn setup(services: u32, reals_per: u32, table: u32, keep_flows: bool) -> Result<Setup> {
    let cap = Capacity {
        max_services: services.max(2),
        max_reals: (services * reals_per).max(2),
        ring_size: table,
        conntrack: 1 << 16,
        affinity: 1024,
    };
    let mut dp = Dataplane::open(&cap, None, XdpMode::Auto).context("loading the XDP object")?;
    let desired: Vec<DesiredService> = (0..services)
        .map(|i| DesiredService {
            key: ServiceKey::new(vip(i), 80, 6),
            active: true,
            flags: 0,
            affinity_timeout_s: 0,
            table_size: table,
            reals: reals(reals_per, keep_flows),
            sorry: None,
        })
        .collect();
    dp.apply(&desired)?;
    Ok(Setup { dp })
}

fn ns_per_packet(dp: &mut Dataplane, prog: &str, f: &[u8], repeat: u32) -> Result<f64> {
    let p = loader::program(&mut dp.loaded.ebpf, prog)?;
    Ok(testrun::run(p, f, repeat, 0)?.ns_per_run as f64)
}

/// One case: `rounds` rounds of (floor, case), alternating.
fn measure(
    s: &mut Setup,
    name: &str,
    services: u32,
    reals: u32,
    f: &[u8],
    rounds: usize,
    repeat: u32,
) -> Result<Case> {
    let floor_frame = frame(Ipv4Addr::new(10, 99, 0, 3), 1);
    // Warm up (and, for hits, create the flow).
    ns_per_packet(&mut s.dp, maps::PROG_LB, f, 1000)?;
    let (mut c, mut fl, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let floor = ns_per_packet(&mut s.dp, maps::PROG_MACSWAP, &floor_frame, repeat)?;
        let case = ns_per_packet(&mut s.dp, maps::PROG_LB, f, repeat)?;
        fl.push(floor);
        c.push(case);
        r.push(case / floor.max(0.1));
    }
    Ok(Case {
        name: name.to_owned(),
        services,
        reals,
        ns: Stat::of(&c),
        floor_ns: Stat::of(&fl),
        ratio: Stat::of(&r),
    })
}

pub struct Plan {
    pub rounds: usize,
    pub repeat: u32,
    pub scaling: bool,
}

pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    let (rounds, repeat) = (plan.rounds, plan.repeat);
    progress("xdp: 1 service, 3 reals, table 65537");
    let mut s = setup(1, 3, 65537, true)?;
    for prog in [maps::PROG_LB, maps::PROG_MACSWAP] {
        let info = loader::program(&mut s.dp.loaded.ebpf, prog)?.info()?;
        progress(&format!(
            "xdp: {prog}: {} instructions after verification",
            info.size_translated().unwrap_or(0) / 8
        ));
    }
    let hit = frame(vip(0), 40000);
    out.push(measure(
        &mut s,
        "VIP hit, existing flow",
        1,
        3,
        &hit,
        rounds,
        repeat,
    )?);
    out.push(measure(
        &mut s,
        "miss (not a VIP)",
        1,
        3,
        &frame(Ipv4Addr::new(10, 99, 0, 3), 1),
        rounds,
        repeat,
    )?);
    // New-flow path: the flow's remembered real does not keep flows, so every packet takes
    // the table, re-checks the real and rewrites the connection-table entry.
    let mut s = setup(1, 3, 65537, false)?;
    out.push(measure(
        &mut s,
        "VIP hit, new flow (table + insert)",
        1,
        3,
        &hit,
        rounds,
        repeat,
    )?);

    if plan.scaling {
        for (services, reals) in [(1u32, 1u32), (100, 10), (10_000, 1), (1, 1000), (100, 1000)] {
            progress(&format!(
                "xdp: {services} services x {reals} reals, table 4093"
            ));
            let mut s = setup(services, reals, 4093, true)?;
            let f = frame(vip(services - 1), 40000);
            out.push(measure(
                &mut s,
                "VIP hit, existing flow",
                services,
                reals,
                &f,
                rounds,
                repeat,
            )?);
            let mut s = setup(services, reals, 4093, false)?;
            out.push(measure(
                &mut s,
                "VIP hit, new flow (table + insert)",
                services,
                reals,
                &f,
                rounds,
                repeat,
            )?);
        }
    }
    Ok(out)
}
