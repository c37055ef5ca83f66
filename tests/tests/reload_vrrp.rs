//! VRRP changes applied by reload, without a restart, under traffic: a VIP (with its service)
//! added to the master, and a virtual server inserted above one an instance tracks (this used
//! to be refused with "needs a restart": tracking referred to services by position).

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use lb_tests::{
    agent::{Agent, WorkDir},
    client::{http_many, tally, Prober},
    netns::wait_for,
    topology::{real_ip, Spec, Topology, VIP},
};

const VIP2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 101);

/// One instance on eth0 with `vips`, priority `prio`; a TCP and a UDP service on port 80 of
/// each VIP in `services`, to two reals; `instance_extra` lines are indented by 4.
fn config(
    rid: &str,
    prio: u8,
    vips: &[Ipv4Addr],
    services: &[Ipv4Addr],
    instance_extra: &str,
) -> String {
    let vip_list: Vec<String> = vips.iter().map(|v| format!("\"{v}/24\"")).collect();
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 8\n  max_reals: 32\n  conntrack_size: 65536\n\
         vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: {prio}\n    \
         version: 3\n    advert_int: 100ms\n    virtual_ipaddresses: [{}]\n{instance_extra}virtual_servers:\n",
        vip_list.join(", ")
    );
    for vip in services {
        for proto in ["tcp", "udp"] {
            y += &format!(
                "  - address: {vip}\n    port: 80\n    protocol: {proto}\n    interface: eth0\n    real_servers:\n"
            );
            for i in 0..2 {
                y += &format!("      - {{ address: {}, port: 80 }}\n", real_ip(i));
            }
        }
    }
    y
}

struct Lab {
    agents: Vec<Agent>,
    _dir: WorkDir,
    t: Topology,
}

fn lab(tag: &str, extra: &str) -> Lab {
    let mut t = Topology::build(
        tag,
        Spec {
            lbs: 2,
            reals: 2,
            native_xdp: true,
        },
    )
    .expect("topology");
    for r in &t.reals {
        r.ns.ip(&["addr", "add", &format!("{VIP2}/32"), "dev", "lo"])
            .expect("vip2 on lo");
    }
    t.start_all_servers().expect("servers");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let mut agents = Vec::new();
    for (i, prio) in [150u8, 100].into_iter().enumerate() {
        let rid = t.router_id(i);
        let a = Agent::start(
            &t.lbs[i].ns,
            &dir,
            &rid,
            &config(&rid, prio, &[VIP], &[VIP], extra),
        )
        .expect("agent");
        agents.push(a);
        if i == 0 {
            assert!(wait_for(Duration::from_secs(10), || t.holds(0, VIP).then_some(())).is_some());
        }
    }
    assert!(agents[1].wait_log("to=\"backup\"", Duration::from_secs(10)));
    Lab {
        agents,
        _dir: dir,
        t,
    }
}

fn reload(l: &Lab, i: usize, yaml: &str) {
    let a = &l.agents[i];
    let before = a.log_text().matches("configuration reloaded").count();
    lb_tests::agent::write_config(&a.config, yaml).expect("write");
    let (ok, out, err) = a.cli(&["reload"]).expect("cli");
    assert!(ok, "reload refused: {out}{err}\n{}", a.log_text());
    assert!(
        a.log_text().matches("configuration reloaded").count() > before,
        "{}",
        a.log_text()
    );
}

#[test]
fn a_vip_added_by_reload_to_the_master_loses_nothing() {
    let l = lab("lbrv", "");
    let prober = Prober::start(
        &l.t.client.ns,
        SocketAddr::from((VIP, 80)),
        Duration::from_millis(10),
    )
    .expect("prober");
    std::thread::sleep(Duration::from_millis(300));
    let transitions =
        |a: &Agent| a.status().expect("status")["instances"][0]["transitions"].clone();
    let before: Vec<_> = l.agents.iter().map(transitions).collect();
    for (i, prio) in [(0, 150u8), (1, 100)] {
        let rid = l.t.router_id(i);
        reload(&l, i, &config(&rid, prio, &[VIP, VIP2], &[VIP, VIP2], ""));
    }
    let served = wait_for(Duration::from_secs(5), || {
        let c = tally(&http_many(&l.t.client.ns, SocketAddr::from((VIP2, 80)), 10).ok()?);
        (!c.contains_key("error") && !c.is_empty()).then_some(c)
    });
    assert!(
        served.is_some(),
        "the new VIP never answered:\n{}",
        l.agents[0].log_text()
    );
    assert!(
        l.t.holds(0, VIP2) && !l.t.holds(1, VIP2),
        "VIP2 on the master only"
    );
    std::thread::sleep(Duration::from_millis(500));
    let r = prober.finish();
    eprintln!("measured: VIP added by reload: probes to the first VIP {r:?}");
    assert!(r.sent >= 50, "the prober sent too little: {r:?}");
    assert_eq!(r.lost, 0, "probes lost while a VIP was added: {r:?}");
    // No state change on either node.
    let after: Vec<_> = l.agents.iter().map(transitions).collect();
    assert_eq!(before, after, "a node changed state");
}

#[test]
fn a_service_inserted_above_a_tracked_one_reloads_without_a_restart() {
    let track = "    track_services: [ { service: \"10.99.0.100:80/tcp\", weight: -100 } ]\n";
    let l = lab("lbrt", track);
    let rid = l.t.router_id(0);
    // A service on the second VIP goes first in the list, above the tracked one.
    let inserted = config(&rid, 150, &[VIP], &[VIP2, VIP], track);
    reload(&l, 0, &inserted);
    let st = l.agents[0].status().expect("status");
    assert_eq!(st["instances"][0]["state"], "master", "{st}");
    assert_eq!(st["instances"][0]["priority"], 150, "{st}");
    // The tracked service loses its reals: lb1 gives way (the tracking follows the service,
    // not its old position).
    for i in 0..2 {
        l.t.reals[i]
            .ns
            .reject_input("down", &["tcp", "dport", "80"])
            .expect("nft");
    }
    let checked = inserted.replace(
        &format!("      - {{ address: {}, port: 80 }}\n      - {{ address: {}, port: 80 }}\n  - address: 10.99.0.100\n    port: 80\n    protocol: udp", real_ip(0), real_ip(1)),
        &format!("      - {{ address: {}, port: 80, checks: [ {{ tcp: {{ connect_timeout: 200ms }} }} ], delay_loop: 200ms, fall: 1 }}\n      - {{ address: {}, port: 80, checks: [ {{ tcp: {{ connect_timeout: 200ms }} }} ], delay_loop: 200ms, fall: 1 }}\n  - address: 10.99.0.100\n    port: 80\n    protocol: udp", real_ip(0), real_ip(1)),
    );
    assert_ne!(checked, inserted, "the checks were not added");
    reload(&l, 0, &checked);
    let gave_way = wait_for(Duration::from_secs(5), || {
        (l.t.holds(1, VIP) && !l.t.holds(0, VIP)).then_some(())
    });
    assert!(
        gave_way.is_some(),
        "lb1 kept the VIP with its tracked service down:\n{}",
        l.agents[0].log_text()
    );
}
