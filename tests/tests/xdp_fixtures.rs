//! BPF_PROG_TEST_RUN fixtures against the real object: for each frame, the verdict and the
//! frame the program leaves. Needs root (CI runs as root).

use std::net::Ipv4Addr;

use lb_agent::{
    config::Capacity,
    dataplane::{loader, testrun, Dataplane, DesiredReal, DesiredService, L2},
};
use lb_common::{stats, ServiceKey};
use lb_tests::frames::Frame;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

fn cap() -> Capacity {
    Capacity {
        max_services: 8,
        max_reals: 64,
        ring_size: 251,
        conntrack: 4096,
        affinity: 1024,
    }
}

#[test]
fn loads_and_forwards_a_vip_hit() {
    let mut dp = Dataplane::open(&cap(), None, lb_agent::config::XdpMode::Auto).expect("load");
    let vip = Ipv4Addr::new(10, 99, 0, 100);
    let l2 = L2 {
        dst_mac: [2, 0, 0, 0, 0, 0x11],
        src_mac: [2, 0, 0, 0, 0, 0x01],
        ifindex: 0,
    };
    let d = DesiredService {
        key: ServiceKey::new(vip, 80, 6),
        active: true,
        flags: 0,
        affinity_timeout_s: 0,
        table_size: 251,
        reals: vec![DesiredReal {
            addr: Ipv4Addr::new(10, 99, 0, 11),
            port: 80,
            weight: 1,
            keep_flows: true,
            l2: Some(l2),
        }],
        sorry: None,
    };
    dp.apply(&[d]).expect("apply");
    let prog = loader::program(&mut dp.loaded.ebpf, lb_common::maps::PROG_LB).expect("prog");
    let f = Frame::tcp(Ipv4Addr::new(10, 99, 0, 2), 40000, vip, 80).bytes();
    let out = testrun::run(prog, &f, 1, 0).expect("run");
    assert_eq!(out.action, XDP_TX);
    assert_eq!(&out.frame[0..6], &l2.dst_mac);
    assert_eq!(&out.frame[6..12], &l2.src_mac);
    assert_eq!(&out.frame[12..], &f[12..]);
    let miss = Frame::tcp(Ipv4Addr::new(10, 99, 0, 2), 40000, vip, 81).bytes();
    let out = testrun::run(prog, &miss, 1, 0).expect("run");
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame, miss);
    let _ = (XDP_DROP, stats::TX);
}
