//! Whole-node behaviour on the simulated segment (`sim`), in virtual time, without root:
//! elections and failovers (shutdown, crash, link loss), preemption rules, sync groups,
//! tracking, split brain, reloads while master, gratuitous ARP discipline.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::{
    overrides::Override,
    sim::{Sim, LATENCY},
    Event,
};
use crate::vrrp::state::State;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));
const VIP2: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 101));
const REAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11));

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One node's config: one v3 instance at 100 ms on eth0 with `VIP`, one TCP service on it.
/// `instance_extra` lines are indented by 4; `top` is top-level YAML.
fn cfg(id: usize, priority: u8, instance_extra: &str, top: &str) -> String {
    format!(
        "global_defs:\n  router_id: n{id}\n{top}vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    \
         virtual_router_id: 51\n    priority: {priority}\n    version: 3\n    advert_int: 100ms\n    \
         virtual_ipaddresses: [\"{VIP}/24\"]\n{instance_extra}virtual_servers:\n  - address: {VIP}\n    \
         port: 80\n    protocol: tcp\n    interface: eth0\n    real_servers:\n      - {{ address: {REAL}, port: 80 }}\n"
    )
}

fn pair(a: &str, b: &str) -> Sim {
    let mut s = Sim::new(&[cfg(0, 150, a, ""), cfg(1, 100, b, "")]);
    s.run_for(ms(1000));
    assert_only_master(&s, 0);
    s
}

fn assert_only_master(s: &Sim, i: usize) {
    assert_eq!(s.holders(VIP), vec![i], "VIP holders");
    assert_eq!(s.forwarders(), vec![i], "XDP attached");
}

fn state(s: &Sim, i: usize) -> State {
    s.node(i).instances()[0].sm.state()
}

#[test]
fn one_master_after_startup_with_the_data_path_up_first() {
    let s = pair("", "");
    assert_eq!(state(&s, 0), State::Master);
    assert_eq!(state(&s, 1), State::Backup);
    assert!(s.node(0).services()[0].active);
    assert!(!s.node(1).services()[0].active);
}

#[test]
fn graceful_stop_hands_over_within_skew_time_and_the_old_master_lets_go() {
    let mut s = pair("", "");
    s.shutdown(0);
    // Skew_Time for priority 100 at 100 ms: 60.9 ms (the run steps by 1 ms); the old master
    // keeps forwarding until the new one speaks, so someone always forwards.
    let took = s
        .run_until_cond(ms(500), |s| s.holders(VIP).contains(&1))
        .expect("takeover");
    assert!(took <= ms(62) + LATENCY * 4, "took {took:?}");
    assert!(
        !s.forwarders().is_empty(),
        "nobody forwarding during the hand-over"
    );
    s.run_for(ms(700));
    assert_only_master(&s, 1);
    assert!(s.nodes[0].host.stopped, "the stopped node never finished");
}

#[test]
fn a_crashed_master_is_replaced_within_master_down_interval() {
    let mut s = pair("", "");
    s.crash(0);
    let took = s
        .run_until_cond(ms(2000), |s| s.holders(VIP).contains(&1))
        .expect("takeover");
    // 3 x 100 ms + Skew_Time(100) = 360.9 ms, from the last advert heard.
    assert!(took <= ms(361) + LATENCY * 2, "took {took:?}");
    assert_eq!(
        s.forwarders(),
        vec![0, 1],
        "the dead node keeps its pinned XDP link"
    );
}

#[test]
fn link_loss_faults_the_master_and_it_preempts_back_when_the_link_returns() {
    let mut s = pair("", "");
    s.link(0, false);
    assert_eq!(state(&s, 0), State::Fault);
    s.run_for(ms(5));
    assert!(s.holders(VIP).is_empty() || s.holders(VIP) == vec![1]);
    assert!(
        !s.forwarders().contains(&0),
        "a faulted node must stop forwarding"
    );
    s.run_until_cond(ms(1000), |s| s.holders(VIP) == vec![1])
        .expect("backup takes over");
    s.link(0, true);
    s.run_until_cond(ms(1500), |s| {
        s.holders(VIP) == vec![0] && s.forwarders() == vec![0]
    })
    .expect("preempts back");
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let nopre = "    nopreempt: true\n";
    let mut s = pair(nopre, nopre);
    s.shutdown(0);
    s.run_for(ms(800));
    assert_only_master(&s, 1);
    s.start(0);
    s.run_for(ms(3000));
    assert_only_master(&s, 1);
    assert_eq!(state(&s, 0), State::Backup);
}

#[test]
fn preempt_delay_holds_back_a_returning_master() {
    let mut s = pair("    preempt_delay: 1s\n", "");
    s.shutdown(0);
    s.run_for(ms(800));
    assert_only_master(&s, 1);
    s.start(0);
    s.run_for(ms(800));
    assert_only_master(&s, 1);
    let took = s
        .run_until_cond(ms(2000), |s| s.holders(VIP) == vec![0])
        .expect("preempts after the delay");
    assert!(took <= ms(700), "took {took:?} after the delay");
}

fn script_top(weight: i32) -> String {
    format!(
        "vrrp_scripts:\n  - {{ name: chk, script: /bin/true, interval: 1s, weight: {weight}, rise: 1, fall: 1 }}\n"
    )
}

fn script(s: &mut Sim, i: usize, ok: bool) {
    s.event(
        i,
        Event::Script {
            name: "chk".into(),
            ok,
            reason: String::new(),
        },
    );
}

#[test]
fn a_tracking_weight_moves_the_master_and_back() {
    let track = "    track_scripts: [chk]\n";
    let mut s = Sim::new(&[cfg(0, 150, track, &script_top(-100)), cfg(1, 100, "", "")]);
    script(&mut s, 0, true);
    s.run_for(ms(1000));
    assert_only_master(&s, 0);
    script(&mut s, 0, false);
    assert_eq!(s.node(0).instances()[0].sm.priority(), 50);
    s.run_until_cond(ms(1000), |s| s.holders(VIP) == vec![1])
        .expect("the backup preempts the weakened master");
    script(&mut s, 0, true);
    s.run_until_cond(ms(1000), |s| s.holders(VIP) == vec![0])
        .expect("back");
}

#[test]
fn a_failing_script_of_weight_zero_faults_the_instance() {
    let track = "    track_scripts: [chk]\n";
    let mut s = Sim::new(&[cfg(0, 150, track, &script_top(0)), cfg(1, 100, "", "")]);
    // No result yet counts as failing (keepalived): the instance starts faulted.
    s.run_for(ms(1000));
    assert_eq!(state(&s, 0), State::Fault);
    assert_only_master(&s, 1);
    script(&mut s, 0, true);
    s.run_until_cond(ms(1500), |s| s.holders(VIP) == vec![0])
        .expect("recovers and preempts");
}

/// Two instances in a sync group on each node.
fn group_cfg(id: usize, priority: u8, top: &str, extra: &str) -> String {
    format!(
        "global_defs:\n  router_id: n{id}\n{top}vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    \
         virtual_router_id: 51\n    priority: {priority}\n    version: 3\n    advert_int: 100ms\n    \
         virtual_ipaddresses: [\"{VIP}/24\"]\n  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    \
         priority: {priority}\n    version: 3\n    advert_int: 100ms\n    virtual_ipaddresses: [\"{VIP2}/24\"]\n{extra}\
         vrrp_sync_groups:\n  - {{ name: G, group: [VI_1, VI_2] }}\n"
    )
}

#[test]
fn a_sync_group_faults_and_moves_as_one() {
    let top = script_top(0);
    let mut s = Sim::new(&[
        group_cfg(0, 150, &top, "    track_scripts: [chk]\n"),
        group_cfg(1, 100, "", ""),
    ]);
    script(&mut s, 0, true);
    s.run_for(ms(1000));
    assert_eq!(s.holders(VIP), vec![0]);
    assert_eq!(s.holders(VIP2), vec![0]);
    // Only VI_2 tracks the script, but the whole group faults with it.
    script(&mut s, 0, false);
    assert_eq!(
        s.node(0)
            .instances()
            .iter()
            .map(|i| i.sm.state())
            .collect::<Vec<_>>(),
        vec![State::Fault, State::Fault]
    );
    s.run_until_cond(ms(1000), |s| {
        s.holders(VIP) == vec![1] && s.holders(VIP2) == vec![1]
    })
    .expect("the other node takes both");
}

#[test]
fn a_split_brain_is_counted_and_heals_within_an_interval() {
    let mut s = pair("", "");
    // Node 1 stops hearing node 0: it becomes a second master.
    s.cut(0, 1, true);
    s.run_until_cond(ms(1000), |s| s.holders(VIP) == vec![0, 1])
        .expect("second master");
    s.run_for(ms(300));
    assert!(s.node(0).instances()[0].sm.split_brain_count() > 0);
    s.cut(0, 1, false);
    let healed = s
        .run_until_cond(ms(1000), |s| {
            s.holders(VIP) == vec![0] && s.forwarders() == vec![0]
        })
        .expect("heals");
    // One advert interval, the 20 ms hand-over grace, the host's confirmation that the VIP
    // is gone (1 ms here) and the 1 ms steps of the run.
    assert!(
        healed <= ms(100) + ms(20) + ms(2) + LATENCY * 4,
        "healed after {healed:?}"
    );
}

#[test]
fn a_node_that_loses_the_election_sends_no_more_gratuitous_arp() {
    // keepalived's habit: a delayed second burst of gratuitous ARPs from a node that already
    // lost the election pulls clients back to it. Ours is cancelled with the mastership.
    let garp = "    garp_master_delay: 2s\n";
    let mut s = Sim::new(&[cfg(0, 150, garp, ""), cfg(1, 100, garp, "")]);
    s.run_for(ms(1000));
    s.crash(0);
    s.run_for(ms(1000));
    assert_eq!(
        s.holders(VIP),
        vec![0, 1],
        "node 1 took over (node 0 is dead)"
    );
    s.start(0);
    s.run_until_cond(ms(1000), |s| s.holders(VIP) == vec![0])
        .expect("node 0 back");
    let lost_at = s.now;
    s.run_for(ms(3000));
    let late: Vec<_> = s.nodes[1]
        .host
        .garps
        .iter()
        .filter(|(t, _)| *t > lost_at)
        .collect();
    assert!(late.is_empty(), "gratuitous ARPs after losing: {late:?}");
    assert!(
        s.nodes[0]
            .host
            .garps
            .iter()
            .any(|(t, _)| *t > lost_at + ms(1500)),
        "the winner's own delayed burst should still go out"
    );
}

#[test]
fn a_vip_added_by_reload_is_taken_at_once_without_a_restart() {
    let mut s = pair("", "");
    let transitions = s.node(0).instances()[0].sm.transitions();
    let next = cfg(0, 150, "", "").replace(
        &format!("virtual_ipaddresses: [\"{VIP}/24\"]"),
        &format!("virtual_ipaddresses: [\"{VIP}/24\", \"{VIP2}/24\"]"),
    );
    s.reload(0, &next);
    s.run_for(ms(50));
    assert!(s.nodes[0].host.vips.contains(&VIP2), "the new VIP is held");
    assert!(s.nodes[0].host.vips.contains(&VIP), "the old VIP stays");
    assert!(
        s.nodes[0].host.garps.iter().any(|(_, v)| *v == VIP2),
        "the new VIP is announced"
    );
    assert_eq!(s.node(0).instances()[0].sm.transitions(), transitions);
    // And removed again by the next reload.
    s.reload(0, &cfg(0, 150, "", ""));
    s.run_for(ms(50));
    assert!(!s.nodes[0].host.vips.contains(&VIP2));
    assert_only_master(&s, 0);
}

#[test]
fn reload_changes_priority_and_interval_in_place() {
    let mut s = pair("", "");
    // Node 0 drops below node 1: node 1 preempts.
    s.reload(0, &cfg(0, 50, "", ""));
    s.run_until_cond(ms(1000), |s| s.holders(VIP) == vec![1])
        .expect("node 1 preempts");
    // Node 1's interval goes to 300 ms: node 0 learns it (v3) and still sees a master.
    let slow = cfg(1, 100, "", "").replace("advert_int: 100ms", "advert_int: 300ms");
    s.reload(1, &slow);
    s.run_for(ms(2000));
    assert_eq!(s.holders(VIP), vec![1]);
    assert_eq!(s.node(0).instances()[0].sm.master_adver_interval(), ms(300));
}

#[test]
fn an_instance_added_by_reload_starts_and_a_removed_one_hands_over() {
    let mut s = pair("", "");
    let both = |id: usize, prio: u8| {
        group_cfg(id, prio, "", "").replace(
            "vrrp_sync_groups:\n  - { name: G, group: [VI_1, VI_2] }\n",
            "",
        )
    };
    s.reload(0, &both(0, 150));
    s.reload(1, &both(1, 100));
    s.run_for(ms(1000));
    assert_eq!(s.holders(VIP2), vec![0], "the added instance runs");
    // Node 0 drops VI_1: it hands over gracefully to node 1.
    let only2 = both(0, 150);
    let cut = only2.find("  - name: VI_2").expect("VI_2");
    let start = only2.find("  - name: VI_1").expect("VI_1");
    let without_1 = format!("{}{}", &only2[..start], &only2[cut..]);
    s.reload(0, &without_1);
    s.run_until_cond(ms(500), |s| s.holders(VIP) == vec![1])
        .expect("VI_1 handed over");
    s.run_for(ms(500));
    assert_eq!(s.holders(VIP2), vec![0]);
    assert_eq!(
        s.node(0).instances().len(),
        1,
        "the removed instance is gone"
    );
}

#[test]
fn tracking_follows_a_service_when_another_is_inserted_above_it() {
    // Node 0 tracks its service's quorum: with the real down, it gives way.
    let svc_b = "  - address: 10.0.0.100\n    port: 443\n    protocol: tcp\n    interface: eth0\n    real_servers:\n      - { address: 10.0.0.12, port: 443 }\n";
    let track = "    track_services: [ { service: \"10.0.0.100:80/tcp\", weight: -100 } ]\n";
    let mut s = Sim::new(&[cfg(0, 150, track, ""), cfg(1, 100, "", "")]);
    s.run_for(ms(1000));
    assert_only_master(&s, 0);
    // Insert a service before the tracked one.
    let inserted =
        cfg(0, 150, track, "").replace("virtual_servers:\n", &format!("virtual_servers:\n{svc_b}"));
    s.reload(0, &inserted);
    s.run_for(ms(100));
    assert_only_master(&s, 0);
    // The tracked service (now second in the list) loses its real: node 0 gives way.
    let key = s
        .node(0)
        .services()
        .iter()
        .find(|v| v.cfg.port == 80)
        .map(|v| v.cfg.key())
        .expect("tracked service");
    let checked = cfg(0, 150, track, "")
        .replace("virtual_servers:\n", &format!("virtual_servers:\n{svc_b}"))
        .replace(
            &format!("{{ address: {REAL}, port: 80 }}"),
            &format!(
                "{{ address: {REAL}, port: 80, checks: [ {{ tcp: {{ connect_timeout: 1s }} }} ] }}"
            ),
        );
    s.reload(0, &checked);
    s.event(
        0,
        Event::RealHealth {
            real: (key, REAL, 80),
            up: false,
            weight: None,
            reason: "refused".into(),
        },
    );
    assert_eq!(s.node(0).instances()[0].sm.priority(), 50);
    s.run_until_cond(ms(1000), |s| s.holders(VIP) == vec![1])
        .expect("node 1 takes over");
}

/// The real's (weight, keeps its flows) in the data path node `i` last asked for.
fn real_in_dataplane(s: &Sim, i: usize) -> Option<(u32, bool)> {
    let dp = s.nodes[i].host.dataplane.as_ref()?;
    let r = dp.services.first()?.reals.iter().find(|r| r.addr == REAL)?;
    Some((r.weight, r.keep_flows))
}

#[test]
fn an_operator_drain_acts_at_once_survives_a_restart_and_ends_with_a_config_change() {
    let mut s = pair("", "");
    let key = s.node(0).services()[0].cfg.key();
    assert_eq!(real_in_dataplane(&s, 0), Some((1, true)));
    let drain = Override {
        weight: 0,
        since_unix: 1_700_000_000,
    };
    s.event(
        0,
        Event::Override {
            real: (key, REAL, 80),
            set: Some(drain),
        },
    );
    assert_eq!(
        real_in_dataplane(&s, 0),
        Some((0, true)),
        "drained: no new flows, its established flows stay"
    );
    assert_eq!(s.nodes[0].host.saved.len(), 1, "saved for the next run");
    // A restart keeps it.
    s.crash(0);
    s.start(0);
    assert_eq!(
        real_in_dataplane(&s, 0),
        Some((0, true)),
        "kept across a restart"
    );
    assert_eq!(s.node(0).services()[0].reals[0].operator, Some(drain));
    // A reload that leaves the real alone keeps it; one that changes the real ends it.
    s.reload(0, &cfg(0, 150, "", ""));
    assert_eq!(real_in_dataplane(&s, 0), Some((0, true)));
    let reweighted = cfg(0, 150, "", "").replace(
        &format!("{{ address: {REAL}, port: 80 }}"),
        &format!("{{ address: {REAL}, port: 80, weight: 3 }}"),
    );
    s.reload(0, &reweighted);
    assert_eq!(
        real_in_dataplane(&s, 0),
        Some((3, true)),
        "the config's weight again"
    );
    assert!(s.nodes[0].host.saved.is_empty(), "and nothing saved");
    // Set and cleared by the operator.
    let weight = Override {
        weight: 7,
        since_unix: 1_700_000_100,
    };
    s.event(
        0,
        Event::Override {
            real: (key, REAL, 80),
            set: Some(weight),
        },
    );
    assert_eq!(real_in_dataplane(&s, 0), Some((7, true)));
    s.event(
        0,
        Event::Override {
            real: (key, REAL, 80),
            set: None,
        },
    );
    assert_eq!(real_in_dataplane(&s, 0), Some((3, true)));
    assert!(s.nodes[0].host.saved.is_empty());
}

/// A scale-out node: no VRRP, one TCP service on `VIP` whose real is checked.
fn bgp_cfg() -> String {
    format!(
        "global_defs:\n  router_id: n0\nbgp:\n  drain_time: 2s\nvirtual_servers:\n  - address: {VIP}\n    \
         port: 80\n    protocol: tcp\n    interface: eth0\n    real_servers:\n      - {{ address: {REAL}, port: 80, \
         checks: [ {{ tcp: {{ connect_timeout: 1s }} }} ] }}\n"
    )
}

fn announced(s: &Sim) -> Option<Vec<IpAddr>> {
    s.nodes[0].host.announced.clone()
}

fn why(s: &Sim) -> String {
    s.node(0).announcements()[0].why.clone()
}

fn real_health(s: &mut Sim, up: bool) {
    let key = s.node(0).services()[0].cfg.key();
    s.event(
        0,
        Event::RealHealth {
            real: (key, REAL, 80),
            up,
            weight: None,
            reason: "test".into(),
        },
    );
}

#[test]
fn scale_out_announces_while_the_node_can_serve_and_withdraws_before_it_stops() {
    let mut s = Sim::new(&[bgp_cfg()]);
    assert_eq!(
        announced(&s),
        None,
        "nothing decided before the agent reports where XDP is attached"
    );
    s.run_for(ms(10));
    assert_eq!(
        s.forwarders(),
        vec![0],
        "XDP attached at once, without VRRP"
    );
    assert_eq!(
        announced(&s),
        Some(vec![]),
        "nothing checked yet: not announced"
    );
    assert!(why(&s).contains("below quorum"), "{}", why(&s));

    real_health(&mut s, true);
    assert_eq!(announced(&s), Some(vec![VIP]));
    real_health(&mut s, false);
    assert_eq!(announced(&s), Some(vec![]), "below quorum: withdrawn");
    real_health(&mut s, true);
    assert_eq!(announced(&s), Some(vec![VIP]));

    s.link(0, false);
    assert_eq!(announced(&s), Some(vec![]), "link down: withdrawn");
    assert!(why(&s).contains("eth0 is down"), "{}", why(&s));
    s.link(0, true);
    s.run_for(ms(10));
    assert_eq!(announced(&s), Some(vec![VIP]), "link back: announced");

    // A graceful stop withdraws at once and keeps forwarding for the drain time.
    s.shutdown(0);
    assert_eq!(announced(&s), Some(vec![]));
    s.run_for(ms(1900));
    assert_eq!(s.forwarders(), vec![0], "still forwarding while draining");
    assert!(!s.nodes[0].host.stopped);
    s.run_for(ms(200));
    assert!(s.nodes[0].host.stopped, "stopped after the drain");
    assert!(s.forwarders().is_empty(), "and detached");
}

#[test]
fn scale_out_and_vrrp_do_not_mix_in_one_file() {
    let both = cfg(0, 150, "", "bgp:\n  drain_time: 1s\n");
    let err = crate::config::parse(&both, "x.yaml").expect_err("refused");
    assert!(err.to_string().contains("either VRRP"), "{err}");
}

#[test]
fn a_real_removed_by_reload_keeps_its_flows_for_the_grace_then_leaves() {
    let mut s = pair("", "");
    assert_eq!(real_in_dataplane(&s, 0), Some((1, true)));
    let other = cfg(0, 150, "", "").replace(
        &format!("{{ address: {REAL}, port: 80 }}"),
        "{ address: 10.0.0.12, port: 80 }",
    );
    s.reload(0, &other);
    assert_eq!(
        real_in_dataplane(&s, 0),
        Some((0, true)),
        "removed: no new flows, established ones stay"
    );
    let checked = s.nodes[0].host.checks.as_ref().map(|p| p.reals.len());
    assert_eq!(checked, Some(1), "only the new real is checked");
    s.run_for(super::services::REMOVED_GRACE - ms(1000));
    assert_eq!(
        real_in_dataplane(&s, 0),
        Some((0, true)),
        "still in its grace"
    );
    s.run_for(ms(2000));
    assert_eq!(real_in_dataplane(&s, 0), None, "gone after the grace");
    // Removed and added back within the grace: an ordinary real again.
    s.reload(0, &cfg(0, 150, "", ""));
    s.reload(0, &other);
    s.run_for(ms(10));
    s.reload(0, &cfg(0, 150, "", ""));
    assert_eq!(real_in_dataplane(&s, 0), Some((1, true)));
    let reals = &s.node(0).services()[0].reals;
    assert_eq!(reals.iter().filter(|r| r.cfg.addr == REAL).count(), 1);
    assert!(reals
        .iter()
        .all(|r| r.removed_at.is_none() || r.cfg.addr != REAL));
}

/// `flow_sync` on both nodes: a node holds back preemption until its bulk sync has ended.
fn sync_top() -> String {
    "flow_sync:\n  peers: [10.0.0.1, 10.0.0.2]\n".into()
}

#[test]
fn a_returning_master_with_flow_sync_preempts_only_after_its_bulk_sync() {
    let top = sync_top();
    let mut s = Sim::new(&[cfg(0, 150, "", &top), cfg(1, 100, "", &top)]);
    // Node 0's bulk sync ends at start (no peer yet); node 1's too.
    s.event(0, Event::FlowSyncReady);
    s.event(1, Event::FlowSyncReady);
    s.run_for(ms(1000));
    assert_only_master(&s, 0);
    s.shutdown(0);
    s.run_for(ms(800));
    assert_only_master(&s, 1);
    s.start(0);
    assert!(
        s.node(0).sync_pending(),
        "a restarted node waits for its bulk sync"
    );
    s.run_for(ms(3000));
    assert_only_master(&s, 1);
    s.event(0, Event::FlowSyncReady);
    let took = s
        .run_until_cond(ms(2000), |s| s.holders(VIP) == vec![0])
        .expect("preempts once the bulk sync ended");
    assert!(took <= ms(700), "took {took:?} after the bulk sync");
}

#[test]
fn without_flow_sync_nothing_waits_for_a_bulk_sync() {
    let s = pair("", "");
    assert!(!s.node(0).sync_pending());
    assert!(!s.node(1).sync_pending());
}

#[test]
fn a_scale_out_node_with_flow_sync_announces_only_after_its_bulk_sync() {
    let yaml = bgp_cfg().replace("bgp:\n", "flow_sync:\n  peers: [10.0.0.2]\nbgp:\n");
    let mut s = Sim::new(&[yaml]);
    s.run_for(ms(10));
    real_health(&mut s, true);
    assert_eq!(announced(&s), Some(vec![]), "the bulk sync has not ended");
    assert!(why(&s).contains("bulk sync"), "{}", why(&s));
    s.event(0, Event::FlowSyncReady);
    assert_eq!(announced(&s), Some(vec![VIP]), "announced once it ended");
}
