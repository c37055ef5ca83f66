//! The protocol core in scripted scenarios: inputs at virtual times, the actions and
//! states that must follow (with the RFC rule each one checks).

use super::super::packet::{emit_datagram, parse_datagram, Ipv4Meta, V3Checksum, VRRP_MCAST_V4};
use super::super::pcap::{self, fixtures};
use super::*;

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const LOWER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const HIGHER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));

fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}

/// Virtual time zero: an hour ahead of the real clock, so tests can go
/// back a few seconds without `Instant` underflow on a fresh boot.
fn epoch() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(version: Version, priority: u8, interval: Duration) -> InstanceConfig {
    InstanceConfig {
        name: "vi_test".into(),
        vrid: 51,
        version,
        priority,
        advert_interval: interval,
        primary_addr: US,
        vips: vec![VIP],
        ..InstanceConfig::default()
    }
}

/// v3, 100 ms.
fn v3(priority: u8) -> InstanceConfig {
    config(Version::V3, priority, ms(100))
}

/// v2, 1 s.
fn v2(priority: u8) -> InstanceConfig {
    config(Version::V2, priority, Duration::from_secs(1))
}

fn advert(cfg: &InstanceConfig, priority: u8) -> Advert {
    Advert {
        version: cfg.version,
        vrid: cfg.vrid,
        priority,
        interval_cs: interval_cs(cfg.version, cfg.advert_interval),
        addresses: cfg.vips.clone(),
        auth: cfg.auth,
    }
}

fn drain(inst: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| inst.poll_action()).collect()
}

fn changed(from: State, to: State, reason: Reason) -> Action {
    Action::StateChanged { from, to, reason }
}

/// Started (Backup) with the actions drained.
fn backup(cfg: InstanceConfig, now: Instant) -> Instance {
    let mut inst = Instance::new(cfg);
    inst.startup(now);
    assert_eq!(inst.state(), State::Backup);
    drain(&mut inst);
    inst
}

/// Started and promoted by its Master_Down_Timer; returns the instant
/// it became master.
fn master(cfg: InstanceConfig, now: Instant) -> (Instance, Instant) {
    let mut inst = backup(cfg, now);
    let at = inst.poll_timeout().unwrap();
    inst.handle_timeout(at);
    assert_eq!(inst.state(), State::Master);
    drain(&mut inst);
    (inst, at)
}

// ----- startup and timers ---------------------------------------------

#[test]
fn startup_non_owner_goes_backup_with_master_down_timer() {
    let t0 = epoch();
    let mut inst = Instance::new(v3(100));
    assert_eq!(
        (inst.state(), inst.poll_timeout()),
        (State::Initialize, None)
    );
    inst.startup(t0);
    assert_eq!(
        drain(&mut inst),
        [changed(State::Initialize, State::Backup, Reason::Startup)]
    );
    // 3 × 100 ms + (256 - 100) × 100 ms / 256 = 300 ms + 60.9375 ms.
    assert_eq!(inst.skew_time(), ns(60_937_500));
    assert_eq!(inst.master_down_interval(), ns(360_937_500));
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(360_937_500)));
    assert_eq!(inst.master_addr(), None);
    // A second startup is a no-op.
    inst.startup(t0 + ms(1));
    assert!(drain(&mut inst).is_empty());
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(360_937_500)));
}

#[test]
fn sync_group_moves_a_backup_to_master_and_a_master_to_backup() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    // Only a master steps down, only a backup steps up.
    inst.sync_backup(t0);
    assert!(drain(&mut inst).is_empty());
    inst.sync_master(t0 + ms(10));
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 100)),
            changed(State::Backup, State::Master, Reason::SyncGroup)
        ]
    );
    assert_eq!(inst.poll_timeout(), Some(t0 + ms(110)));
    inst.sync_master(t0 + ms(20));
    assert!(drain(&mut inst).is_empty());
    inst.sync_backup(t0 + ms(50));
    assert_eq!(
        drain(&mut inst),
        [changed(State::Master, State::Backup, Reason::SyncGroup)]
    );
    // A backup again: it takes over only if the master goes silent.
    assert_eq!(inst.poll_timeout(), Some(t0 + ms(50) + ns(360_937_500)));
    assert_eq!(inst.master_addr(), None);
    let mut faulted = backup(cfg, t0);
    faulted.fault(t0);
    drain(&mut faulted);
    faulted.sync_master(t0);
    assert_eq!(
        faulted.state(),
        State::Fault,
        "a faulted member stays faulted"
    );
}

#[test]
fn startup_owner_goes_master_at_once() {
    let t0 = epoch();
    let cfg = v3(255);
    let mut inst = Instance::new(cfg.clone());
    inst.startup(t0);
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 255)),
            changed(State::Initialize, State::Master, Reason::Startup)
        ]
    );
    assert_eq!(inst.poll_timeout(), Some(t0 + ms(100)));
    assert_eq!(
        (inst.master_addr(), inst.master_priority()),
        (Some(US), Some(255))
    );
    assert!(inst.is_owner());
}

#[test]
fn master_down_timer_fires_exactly_at_its_deadline() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    let at = t0 + ns(360_937_500);
    inst.handle_timeout(at - ns(1));
    assert_eq!(
        (inst.state(), inst.poll_timeout()),
        (State::Backup, Some(at))
    );
    assert!(drain(&mut inst).is_empty());
    inst.handle_timeout(at);
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 100)),
            changed(State::Backup, State::Master, Reason::MasterDownTimer)
        ]
    );
    assert_eq!(inst.poll_timeout(), Some(at + ms(100)));
    assert_eq!(inst.master_addr(), Some(US));
}

#[test]
fn master_advertises_every_interval_on_the_cadence_of_its_deadlines() {
    let (mut inst, t) = master(v3(100), epoch());
    for k in 1..=5 {
        assert_eq!(inst.poll_timeout(), Some(t + ms(100 * k)));
        inst.handle_timeout(t + ms(100 * k));
        assert_eq!(drain(&mut inst), [Action::Transmit(advert(&v3(100), 100))]);
    }
    // A late wake-up keeps the cadence: the next advert is due an interval after this one
    // was due (a late host does not stretch every following interval).
    inst.handle_timeout(t + ms(630));
    assert_eq!(drain(&mut inst).len(), 1);
    assert_eq!(inst.poll_timeout(), Some(t + ms(700)));
    // More than an interval late: no burst to catch up, the next one an interval from now.
    inst.handle_timeout(t + ms(850));
    assert_eq!(drain(&mut inst).len(), 1);
    assert_eq!(inst.poll_timeout(), Some(t + ms(950)));
    assert_eq!(inst.stats().adverts_tx, 8);
}

#[test]
fn v2_timers_follow_rfc_3768() {
    let t0 = epoch();
    let inst = backup(v2(100), t0);
    assert_eq!(inst.skew_time(), ns(609_375_000));
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(3_609_375_000)));
    let slow = backup(config(Version::V2, 150, Duration::from_secs(3)), t0);
    // v2 skew does not scale with the interval.
    assert_eq!(slow.skew_time(), ns(414_062_500));
    assert_eq!(slow.poll_timeout(), Some(t0 + ns(9_414_062_500)));
}

#[test]
fn v3_10ms_timers() {
    let t0 = epoch();
    let inst = backup(config(Version::V3, 100, ms(10)), t0);
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(36_093_750)));
}

#[test]
fn handle_timeout_without_a_timer_is_a_no_op() {
    let t0 = epoch();
    let mut inst = Instance::new(v3(100));
    inst.handle_timeout(t0);
    assert_eq!(inst.state(), State::Initialize);
    assert!(drain(&mut inst).is_empty());
}

// ----- Backup receive rules -----------------------------------------

#[test]
fn backup_resets_its_timer_on_equal_or_higher_priority() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    for (k, prio) in [(1u64, 100u8), (2, 200), (3, 255)] {
        let t = t0 + ms(50 * k);
        assert_eq!(
            inst.handle_advert(t, HIGHER_ADDR, &advert(&cfg, prio)),
            Ok(())
        );
        assert_eq!(inst.poll_timeout(), Some(t + ns(360_937_500)));
        assert_eq!(inst.master_priority(), Some(prio));
    }
    assert!(drain(&mut inst).is_empty());
    assert_eq!(inst.stats().adverts_rx, 3);
}

#[test]
fn preempting_backup_discards_lower_priority_and_takes_over() {
    let t0 = epoch();
    let cfg = v3(200);
    let mut inst = backup(cfg.clone(), t0);
    // MDI(200) = 300 ms + 56 × 100 ms / 256 = 321.875 ms.
    let at = t0 + ns(321_875_000);
    assert_eq!(inst.poll_timeout(), Some(at));
    for k in 0..4 {
        let t = t0 + ms(10 + 100 * k);
        if t >= at {
            break;
        }
        assert_eq!(
            inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100)),
            Ok(())
        );
        assert_eq!(inst.poll_timeout(), Some(at), "discarded: timer untouched");
        assert_eq!(
            inst.master_addr(),
            Some(LOWER_ADDR),
            "still the master we see"
        );
    }
    inst.handle_timeout(at);
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 200)),
            changed(
                State::Backup,
                State::Master,
                Reason::Preempted { peer: LOWER_ADDR }
            )
        ]
    );
}

#[test]
fn nopreempt_backup_follows_a_lower_priority_master() {
    let t0 = epoch();
    let cfg = InstanceConfig {
        preempt: false,
        ..v3(200)
    };
    let mut inst = backup(cfg.clone(), t0);
    let t = t0 + ms(50);
    inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
        .unwrap();
    assert_eq!(inst.poll_timeout(), Some(t + ns(321_875_000)));
    // ... and keeps following it for as long as it advertises.
    for k in 1..100u64 {
        let t = t0 + ms(50 + 100 * k);
        inst.handle_timeout(t);
        inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
            .unwrap();
    }
    assert_eq!(inst.state(), State::Backup);
    assert!(drain(&mut inst).is_empty());
}

#[test]
fn preempt_delay_follows_lower_master_until_it_expires() {
    let t0 = epoch();
    let cfg = InstanceConfig {
        preempt_delay: Duration::from_secs(5),
        ..v2(150)
    };
    let mut inst = backup(cfg.clone(), t0);
    let sec = Duration::from_secs(1);
    let mdi = ns(3_414_062_500); // 3 s + 106/256 s
    for k in 1..=4u32 {
        inst.handle_advert(t0 + sec * k, LOWER_ADDR, &advert(&cfg, 100))
            .unwrap();
        assert_eq!(
            inst.poll_timeout(),
            Some(t0 + sec * k + mdi),
            "accepted at {k} s"
        );
    }
    // From t0 + 5 s on, lower-priority adverts are discarded.
    for k in 5..=7u32 {
        inst.handle_timeout(t0 + sec * k);
        inst.handle_advert(t0 + sec * k, LOWER_ADDR, &advert(&cfg, 100))
            .unwrap();
        assert_eq!(
            inst.poll_timeout(),
            Some(t0 + sec * 4 + mdi),
            "discarded at {k} s"
        );
    }
    assert!(drain(&mut inst).is_empty());
    let at = t0 + sec * 4 + mdi; // 7.4140625 s
    inst.handle_timeout(at);
    assert_eq!(inst.state(), State::Master);
    assert_eq!(
        drain(&mut inst).last(),
        Some(&changed(
            State::Backup,
            State::Master,
            Reason::Preempted { peer: LOWER_ADDR }
        ))
    );
}

#[test]
fn preempt_delay_restarts_on_recovery() {
    let t0 = epoch();
    let cfg = InstanceConfig {
        preempt_delay: ms(500),
        ..v3(200)
    };
    let mut inst = backup(cfg.clone(), t0);
    inst.fault(t0 + Duration::from_secs(10));
    let t1 = t0 + Duration::from_secs(11);
    inst.recover(t1);
    let t = t1 + ms(400);
    inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
        .unwrap();
    assert_eq!(
        inst.poll_timeout(),
        Some(t + ns(321_875_000)),
        "followed: within delay"
    );
    let t = t1 + ms(500);
    inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
        .unwrap();
    assert_eq!(
        inst.poll_timeout(),
        Some(t1 + ms(400) + ns(321_875_000)),
        "discarded"
    );
}

#[test]
fn priority_zero_sets_master_down_timer_to_skew_time() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    let t = t0 + ms(120);
    inst.handle_advert(t, HIGHER_ADDR, &advert(&cfg, 0))
        .unwrap();
    assert_eq!(inst.poll_timeout(), Some(t + ns(60_937_500)));
    assert_eq!(inst.stats().priority_zero_rx, 1);
    inst.handle_timeout(t + ns(60_937_500));
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 100)),
            changed(
                State::Backup,
                State::Master,
                Reason::PriorityZeroReceived { peer: HIGHER_ADDR }
            )
        ]
    );
}

#[test]
fn v2_priority_zero_skew() {
    let t0 = epoch();
    let cfg = v2(100);
    let mut inst = backup(cfg.clone(), t0);
    inst.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 0))
        .unwrap();
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(609_375_000)));
}

#[test]
fn lower_priority_advert_after_priority_zero_keeps_the_skew_timer() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    inst.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 0))
        .unwrap();
    inst.handle_advert(t0 + ms(10), LOWER_ADDR, &advert(&cfg, 50))
        .unwrap();
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(60_937_500)));
    inst.handle_timeout(t0 + ns(60_937_500));
    assert_eq!(
        drain(&mut inst).last(),
        Some(&changed(
            State::Backup,
            State::Master,
            Reason::PriorityZeroReceived { peer: HIGHER_ADDR }
        ))
    );
}

#[test]
fn v3_backup_learns_master_adver_interval() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    let slow = Advert {
        interval_cs: 20,
        ..advert(&cfg, 200)
    };
    inst.handle_advert(t0, HIGHER_ADDR, &slow).unwrap();
    // 3 × 200 ms + 156 × 200 ms / 256 = 600 ms + 121.875 ms.
    assert_eq!(inst.master_adver_interval(), ms(200));
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(721_875_000)));
    assert_eq!(inst.stats().noted(DropReason::IntervalMismatch), 1);
    // Priority 0 uses the learned interval: 121.875 ms.
    inst.handle_advert(
        t0 + ms(1),
        HIGHER_ADDR,
        &Advert {
            priority: 0,
            ..slow
        },
    )
    .unwrap();
    assert_eq!(inst.poll_timeout(), Some(t0 + ms(1) + ns(121_875_000)));
    // Our own adverts keep our configured interval.
    inst.handle_timeout(t0 + ms(1) + ns(121_875_000));
    assert_eq!(drain(&mut inst)[0], Action::Transmit(advert(&cfg, 100)));
    // Startup or recovery forgets the learned value.
    inst.fault(t0 + ms(500));
    inst.recover(t0 + ms(600));
    assert_eq!(inst.master_adver_interval(), ms(100));
}

#[test]
fn learned_interval_is_clamped_to_what_the_wire_can_carry() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    let zero = Advert {
        interval_cs: 0,
        ..advert(&cfg, 200)
    };
    inst.handle_advert(t0, HIGHER_ADDR, &zero).unwrap();
    assert_eq!(inst.master_adver_interval(), ms(10));
    assert_eq!(inst.poll_timeout(), Some(t0 + ns(36_093_750)));
    let huge = Advert {
        interval_cs: 9999,
        ..advert(&cfg, 200)
    };
    inst.handle_advert(t0, HIGHER_ADDR, &huge).unwrap();
    assert_eq!(inst.master_adver_interval(), ms(40_950));
}

// ----- Master receive rules -------------------------------------------

#[test]
fn master_answers_priority_zero_without_counting_split_brain() {
    let cfg = v3(100);
    let (mut inst, t) = master(cfg.clone(), epoch());
    let rx = t + ms(40);
    inst.handle_advert(rx, LOWER_ADDR, &advert(&cfg, 0))
        .unwrap();
    assert_eq!(drain(&mut inst), [Action::Transmit(advert(&cfg, 100))]);
    assert_eq!(inst.poll_timeout(), Some(rx + ms(100)));
    assert_eq!((inst.state(), inst.split_brain_count()), (State::Master, 0));
}

#[test]
fn master_answers_lower_priority_at_once_and_counts_split_brain() {
    let cfg = v3(100);
    let (mut inst, t) = master(cfg.clone(), epoch());
    for k in 1..=3u64 {
        let rx = t + ms(30 * k);
        inst.handle_advert(rx, HIGHER_ADDR, &advert(&cfg, 99))
            .unwrap();
        assert_eq!(
            drain(&mut inst),
            [
                Action::SplitBrain {
                    peer: HIGHER_ADDR,
                    peer_priority: 99
                },
                Action::Transmit(advert(&cfg, 100))
            ]
        );
        assert_eq!(inst.poll_timeout(), Some(rx + ms(100)));
        assert_eq!(inst.split_brain_count(), k);
    }
    assert_eq!(inst.state(), State::Master);
}

#[test]
fn master_yields_to_higher_priority_and_learns_its_interval() {
    let cfg = v3(100);
    let (mut inst, t) = master(cfg.clone(), epoch());
    let rx = t + ms(10);
    let better = Advert {
        interval_cs: 20,
        ..advert(&cfg, 200)
    };
    inst.handle_advert(rx, LOWER_ADDR, &better).unwrap();
    assert_eq!(
        drain(&mut inst),
        [
            Action::SplitBrain {
                peer: LOWER_ADDR,
                peer_priority: 200
            },
            changed(
                State::Master,
                State::Backup,
                Reason::HigherPriorityAdvert {
                    peer: LOWER_ADDR,
                    priority: 200
                }
            )
        ]
    );
    assert_eq!(inst.poll_timeout(), Some(rx + ns(721_875_000)));
    assert_eq!(
        (inst.master_addr(), inst.master_priority()),
        (Some(LOWER_ADDR), Some(200))
    );
    assert_eq!(inst.split_brain_count(), 1);
}

#[test]
fn equal_priority_tie_break_on_primary_address() {
    let cfg = v3(100);
    let (mut inst, t) = master(cfg.clone(), epoch());
    inst.handle_advert(t, LOWER_ADDR, &advert(&cfg, 100))
        .unwrap();
    assert_eq!(inst.state(), State::Master, "10.0.0.1 < 10.0.0.2: we stay");
    inst.handle_advert(t, HIGHER_ADDR, &advert(&cfg, 100))
        .unwrap();
    assert_eq!(inst.state(), State::Backup, "10.0.0.3 > 10.0.0.2: we yield");
}

#[test]
fn tie_break_compares_addresses_as_unsigned_integers() {
    // 128.0.0.1 > 127.255.255.255 unsigned; a signed compare gets it wrong.
    let cfg = InstanceConfig {
        primary_addr: IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255)),
        ..v3(100)
    };
    let (mut inst, t) = master(cfg.clone(), epoch());
    inst.handle_advert(
        t,
        IpAddr::V4(Ipv4Addr::new(128, 0, 0, 1)),
        &advert(&cfg, 100),
    )
    .unwrap();
    assert_eq!(inst.state(), State::Backup);
}

#[test]
fn owner_still_processes_adverts() {
    // RFC 9568 erratum 8298: an owner logs instead of dropping, which
    // lets it answer a rogue master at once.
    let cfg = v3(255);
    let mut inst = Instance::new(cfg.clone());
    let t0 = epoch();
    inst.startup(t0);
    drain(&mut inst);
    inst.handle_advert(t0 + ms(5), LOWER_ADDR, &advert(&cfg, 254))
        .unwrap();
    assert_eq!(
        drain(&mut inst),
        [
            Action::SplitBrain {
                peer: LOWER_ADDR,
                peer_priority: 254
            },
            Action::Transmit(advert(&cfg, 255))
        ]
    );
    // Two owners (a misconfiguration) still converge on one master.
    inst.handle_advert(t0 + ms(6), HIGHER_ADDR, &advert(&cfg, 255))
        .unwrap();
    assert_eq!(inst.state(), State::Backup);
}

// ----- tracking --------------------------------------------------------

#[test]
fn master_advertises_a_priority_change_at_once() {
    let cfg = v3(100);
    let (mut inst, t) = master(cfg.clone(), epoch());
    let now = t + ms(37);
    inst.set_priority(now, 120);
    assert_eq!(drain(&mut inst), [Action::Transmit(advert(&cfg, 120))]);
    assert_eq!(
        (inst.priority(), inst.poll_timeout()),
        (120, Some(now + ms(100)))
    );
    assert_eq!(inst.master_priority(), Some(120));
    inst.set_priority(now, 120);
    assert!(drain(&mut inst).is_empty(), "unchanged priority: no advert");
    inst.set_priority(now, 0);
    assert_eq!(
        drain(&mut inst),
        [Action::Transmit(advert(&cfg, 1))],
        "clamped to 1"
    );
    inst.set_priority(now, 255);
    assert_eq!(
        drain(&mut inst),
        [Action::Transmit(advert(&cfg, 254))],
        "clamped to 254"
    );
}

#[test]
fn owner_ignores_tracking() {
    let mut inst = Instance::new(v3(255));
    let t0 = epoch();
    inst.startup(t0);
    drain(&mut inst);
    inst.set_priority(t0, 10);
    assert_eq!(inst.priority(), 255);
    assert!(drain(&mut inst).is_empty());
}

#[test]
fn backup_priority_change_applies_to_the_next_timer() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut inst = backup(cfg.clone(), t0);
    inst.set_priority(t0 + ms(1), 200);
    assert!(drain(&mut inst).is_empty());
    assert_eq!(
        inst.poll_timeout(),
        Some(t0 + ns(360_937_500)),
        "running timer kept"
    );
    inst.handle_advert(t0 + ms(2), HIGHER_ADDR, &advert(&cfg, 250))
        .unwrap();
    assert_eq!(inst.poll_timeout(), Some(t0 + ms(2) + ns(321_875_000)));
}

// ----- fault ------------------------------------------------------------

#[test]
fn fault_as_master_releases_with_priority_zero() {
    let cfg = v3(100);
    let (mut inst, t) = master(cfg.clone(), epoch());
    inst.fault(t + ms(5));
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 0)),
            changed(State::Master, State::Fault, Reason::Fault)
        ]
    );
    assert_eq!(inst.poll_timeout(), None);
    assert_eq!(
        inst.handle_advert(t + ms(6), LOWER_ADDR, &advert(&cfg, 50)),
        Err(DropReason::Inactive)
    );
    inst.fault(t + ms(7));
    assert!(drain(&mut inst).is_empty(), "idempotent");
    let t1 = t + ms(900);
    inst.recover(t1);
    assert_eq!(
        drain(&mut inst),
        [changed(State::Fault, State::Backup, Reason::Recovered)]
    );
    assert_eq!(inst.poll_timeout(), Some(t1 + ns(360_937_500)));
    assert_eq!(inst.stats().priority_zero_tx, 1);
}

#[test]
fn fault_from_backup_and_initialize() {
    let t0 = epoch();
    let mut inst = backup(v3(100), t0);
    inst.fault(t0);
    assert_eq!(
        drain(&mut inst),
        [changed(State::Backup, State::Fault, Reason::Fault)]
    );
    let mut fresh = Instance::new(v3(100));
    fresh.fault(t0);
    assert_eq!(
        drain(&mut fresh),
        [changed(State::Initialize, State::Fault, Reason::Fault)]
    );
    fresh.recover(t0);
    assert_eq!(fresh.state(), State::Backup);
    fresh.recover(t0);
    assert!(
        drain(&mut fresh).len() == 1,
        "recover outside Fault is a no-op"
    );
}

#[test]
fn owner_recovers_straight_to_master() {
    let cfg = v3(255);
    let mut inst = Instance::new(cfg.clone());
    let t0 = epoch();
    inst.fault(t0);
    drain(&mut inst);
    inst.recover(t0 + ms(3));
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 255)),
            changed(State::Fault, State::Master, Reason::Recovered)
        ]
    );
}

// ----- shutdown and graceful handover ----------------------------------

#[test]
fn graceful_shutdown_keeps_vips_until_the_new_master_is_heard() {
    let cfg = v3(100);
    let (mut inst, t) = master(cfg.clone(), epoch());
    let ts = t + ms(20);
    inst.shutdown(ts);
    assert_eq!(
        drain(&mut inst),
        [
            Action::Transmit(advert(&cfg, 0)),
            changed(State::Master, State::Releasing, Reason::Shutdown)
        ]
    );
    assert!(inst.state().holds_vips());
    // Default: Skew_Time(1) + interval = 99.609375 ms + 100 ms.
    assert_eq!(inst.poll_timeout(), Some(ts + ns(199_609_375)));
    // Another leaving router's priority 0 is not a new master.
    inst.handle_advert(ts + ms(1), LOWER_ADDR, &advert(&cfg, 0))
        .unwrap();
    inst.handle_timeout(ts + ms(50));
    assert_eq!(inst.state(), State::Releasing);
    assert!(drain(&mut inst).is_empty(), "no advert while releasing");
    inst.handle_advert(ts + ms(61), LOWER_ADDR, &advert(&cfg, 50))
        .unwrap();
    assert_eq!(
        drain(&mut inst),
        [changed(
            State::Releasing,
            State::Stopped,
            Reason::NewMasterSeen { peer: LOWER_ADDR }
        )]
    );
    assert_eq!(
        (inst.poll_timeout(), inst.master_addr()),
        (None, Some(LOWER_ADDR))
    );
    assert_eq!(
        inst.split_brain_count(),
        0,
        "releasing is not a split brain"
    );
}

#[test]
fn graceful_shutdown_times_out_when_nobody_takes_over() {
    let (mut inst, t) = master(v2(100), epoch());
    inst.shutdown(t);
    drain(&mut inst);
    let at = t + ns(1_996_093_750);
    assert_eq!(inst.poll_timeout(), Some(at));
    inst.handle_timeout(at - ns(1));
    assert_eq!(inst.state(), State::Releasing);
    inst.handle_timeout(at);
    assert_eq!(
        drain(&mut inst),
        [changed(
            State::Releasing,
            State::Stopped,
            Reason::HandoverTimeout
        )]
    );
    let custom = InstanceConfig {
        handover_timeout: Some(ms(5)),
        ..v2(100)
    };
    let (mut inst, t) = master(custom, epoch());
    inst.shutdown(t);
    assert_eq!(inst.poll_timeout(), Some(t + ms(5)));
}

#[test]
fn second_shutdown_while_releasing_stops_at_once() {
    let (mut inst, t) = master(v3(100), epoch());
    inst.shutdown(t);
    drain(&mut inst);
    inst.shutdown(t + ms(1));
    assert_eq!(
        drain(&mut inst),
        [changed(State::Releasing, State::Stopped, Reason::Shutdown)]
    );
}

#[test]
fn shutdown_from_other_states_stops_at_once() {
    let t0 = epoch();
    let mut b = backup(v3(100), t0);
    b.shutdown(t0);
    assert_eq!(
        drain(&mut b),
        [changed(State::Backup, State::Stopped, Reason::Shutdown)]
    );
    assert_eq!(b.poll_timeout(), None);
    let mut i = Instance::new(v3(100));
    i.shutdown(t0);
    assert_eq!(
        drain(&mut i),
        [changed(State::Initialize, State::Stopped, Reason::Shutdown)]
    );
    let mut f = Instance::new(v3(100));
    f.fault(t0);
    drain(&mut f);
    f.shutdown(t0);
    assert_eq!(
        drain(&mut f),
        [changed(State::Fault, State::Stopped, Reason::Shutdown)]
    );
    // Stopped is terminal.
    for inst in [&mut b, &mut i, &mut f] {
        inst.shutdown(t0);
        inst.startup(t0);
        inst.recover(t0);
        inst.fault(t0);
        inst.handle_timeout(t0 + Duration::from_secs(100));
        assert!(drain(inst).is_empty());
        assert_eq!((inst.state(), inst.poll_timeout()), (State::Stopped, None));
    }
}

#[test]
fn fault_while_releasing_abandons_the_handover() {
    let (mut inst, t) = master(v3(100), epoch());
    inst.shutdown(t);
    drain(&mut inst);
    inst.fault(t + ms(1));
    assert_eq!(
        drain(&mut inst),
        [changed(State::Releasing, State::Stopped, Reason::Fault)]
    );
}

#[test]
fn every_state_change_is_exactly_one_action() {
    let cfg = v3(100);
    let t0 = epoch();
    let mut inst = Instance::new(cfg.clone());
    let mut seen = Vec::new();
    let mut collect = |inst: &mut Instance| {
        for a in drain(inst) {
            if let Action::StateChanged { from, to, .. } = a {
                seen.push((from, to));
            }
        }
    };
    inst.startup(t0);
    collect(&mut inst);
    inst.handle_timeout(t0 + Duration::from_secs(1));
    collect(&mut inst);
    inst.handle_advert(t0 + Duration::from_secs(1), HIGHER_ADDR, &advert(&cfg, 200))
        .unwrap();
    collect(&mut inst);
    inst.fault(t0 + Duration::from_secs(2));
    collect(&mut inst);
    inst.recover(t0 + Duration::from_secs(3));
    collect(&mut inst);
    inst.handle_timeout(t0 + Duration::from_secs(4));
    collect(&mut inst);
    inst.shutdown(t0 + Duration::from_secs(5));
    collect(&mut inst);
    inst.handle_timeout(t0 + Duration::from_secs(6));
    collect(&mut inst);
    use State::*;
    assert_eq!(
        seen,
        [
            (Initialize, Backup),
            (Backup, Master),
            (Master, Backup),
            (Backup, Fault),
            (Fault, Backup),
            (Backup, Master),
            (Master, Releasing),
            (Releasing, Stopped)
        ]
    );
    assert_eq!(inst.transitions(), 8);
}

// ----- drops --------------------------------------------------------

#[test]
fn every_drop_reason() {
    let t0 = epoch();
    let v2_pass = InstanceConfig {
        auth: Auth::pass(b"secret"),
        ..v2(100)
    };
    let unicast = InstanceConfig {
        unicast_peers: vec![LOWER_ADDR],
        ..v3(100)
    };
    let allow = InstanceConfig {
        allowed_peers: vec![LOWER_ADDR],
        ..v3(100)
    };
    let base = v3(100);
    let cases: Vec<(&str, InstanceConfig, IpAddr, Advert, DropReason)> = vec![
        (
            "vrid",
            base.clone(),
            HIGHER_ADDR,
            Advert {
                vrid: 52,
                ..advert(&base, 200)
            },
            DropReason::WrongVrid,
        ),
        (
            "version",
            base.clone(),
            HIGHER_ADDR,
            advert(&v2(200), 200),
            DropReason::VersionMismatch,
        ),
        (
            "own",
            base.clone(),
            US,
            advert(&base, 200),
            DropReason::OwnAdvert,
        ),
        (
            "unicast",
            unicast.clone(),
            HIGHER_ADDR,
            advert(&base, 200),
            DropReason::NotAPeer,
        ),
        (
            "allow-list",
            allow.clone(),
            HIGHER_ADDR,
            advert(&base, 200),
            DropReason::NotAPeer,
        ),
        (
            "no auth",
            v2_pass.clone(),
            HIGHER_ADDR,
            advert(&v2(200), 200),
            DropReason::Auth,
        ),
        (
            "wrong pass",
            v2_pass.clone(),
            HIGHER_ADDR,
            Advert {
                auth: Auth::pass(b"secreT"),
                ..advert(&v2_pass, 200)
            },
            DropReason::Auth,
        ),
        (
            "unexpected pass",
            v2(100),
            HIGHER_ADDR,
            Advert {
                auth: Auth::pass(b"x"),
                ..advert(&v2(100), 200)
            },
            DropReason::Auth,
        ),
        (
            "v2 interval",
            v2(100),
            HIGHER_ADDR,
            Advert {
                interval_cs: 200,
                ..advert(&v2(100), 200)
            },
            DropReason::IntervalMismatch,
        ),
    ];
    for (what, cfg, src, adv, reason) in cases {
        let mut inst = backup(cfg.clone(), t0);
        let before = inst.poll_timeout();
        assert_eq!(
            inst.handle_advert(t0 + ms(7), src, &adv),
            Err(reason),
            "{what}"
        );
        assert_eq!(inst.poll_timeout(), before, "{what}: timer untouched");
        assert_eq!(inst.stats().dropped(reason), 1, "{what}");
        assert_eq!(inst.stats().adverts_rx, 0, "{what}");
        assert!(drain(&mut inst).is_empty(), "{what}");
        // The matching advert is accepted.
        let good = advert(&cfg, 200);
        let ok_src = if cfg.unicast_peers.is_empty() && cfg.allowed_peers.is_empty() {
            HIGHER_ADDR
        } else {
            LOWER_ADDR
        };
        assert_eq!(
            inst.handle_advert(t0 + ms(8), ok_src, &good),
            Ok(()),
            "{what}"
        );
    }
}

#[test]
fn inactive_states_drop_everything() {
    let t0 = epoch();
    let cfg = v3(100);
    let mut init = Instance::new(cfg.clone());
    assert_eq!(
        init.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 0)),
        Err(DropReason::Inactive)
    );
    let mut stopped = backup(cfg.clone(), t0);
    stopped.shutdown(t0);
    assert_eq!(
        stopped.handle_advert(t0, HIGHER_ADDR, &advert(&cfg, 200)),
        Err(DropReason::Inactive)
    );
    assert_eq!(stopped.stats().dropped(DropReason::Inactive), 1);
}

#[test]
fn address_list_mismatch_is_counted_but_accepted() {
    let t0 = epoch();
    let cfg = InstanceConfig {
        vips: vec![VIP, HIGHER_ADDR],
        ..v3(100)
    };
    let mut inst = backup(cfg.clone(), t0);
    let other = Advert {
        addresses: vec![VIP],
        ..advert(&cfg, 200)
    };
    assert_eq!(inst.handle_advert(t0 + ms(1), HIGHER_ADDR, &other), Ok(()));
    assert_eq!(
        inst.poll_timeout(),
        Some(t0 + ms(1) + ns(360_937_500)),
        "processed"
    );
    let swapped = Advert {
        addresses: vec![HIGHER_ADDR, VIP],
        ..advert(&cfg, 200)
    };
    inst.handle_advert(t0 + ms(2), HIGHER_ADDR, &swapped)
        .unwrap();
    let replaced = Advert {
        addresses: vec![VIP, LOWER_ADDR],
        ..advert(&cfg, 200)
    };
    inst.handle_advert(t0 + ms(3), HIGHER_ADDR, &replaced)
        .unwrap();
    assert_eq!(inst.stats().noted(DropReason::AddressListMismatch), 2);
    assert_eq!(inst.stats().dropped(DropReason::AddressListMismatch), 0);
    assert_eq!(inst.stats().adverts_rx, 3);
}

#[test]
fn labels_are_unique_and_stable() {
    let drops: Vec<_> = DropReason::ALL.iter().map(DropReason::label).collect();
    assert_eq!(
        drops,
        [
            "inactive",
            "wrong_vrid",
            "version_mismatch",
            "own_advert",
            "not_a_peer",
            "auth",
            "interval_mismatch",
            "address_list_mismatch"
        ]
    );
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    assert_eq!(State::Releasing.label(), "releasing");
    assert_eq!(
        Reason::NewMasterSeen { peer: US }.label(),
        "new_master_seen"
    );
    assert_eq!(DropReason::Auth.to_string(), "VRRP advert dropped: auth");
}

// ----- configuration ----------------------------------------------------

#[test]
fn config_validation() {
    let good = v3(100);
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(v2(255).validate(), Ok(()));
    let cases: Vec<(InstanceConfig, ConfigError)> = vec![
        (
            InstanceConfig {
                vrid: 0,
                ..good.clone()
            },
            ConfigError::Vrid,
        ),
        (
            InstanceConfig {
                priority: 0,
                ..good.clone()
            },
            ConfigError::Priority,
        ),
        (
            InstanceConfig {
                advert_interval: ms(15),
                ..good.clone()
            },
            ConfigError::Interval,
        ),
        (
            InstanceConfig {
                advert_interval: ms(0),
                ..good.clone()
            },
            ConfigError::Interval,
        ),
        (
            InstanceConfig {
                advert_interval: ms(40_960),
                ..good.clone()
            },
            ConfigError::Interval,
        ),
        (
            InstanceConfig {
                advert_interval: ms(1500),
                ..v2(100)
            },
            ConfigError::Interval,
        ),
        (
            InstanceConfig {
                advert_interval: Duration::from_secs(256),
                ..v2(100)
            },
            ConfigError::Interval,
        ),
        (
            InstanceConfig {
                vips: vec![],
                ..good.clone()
            },
            ConfigError::NoVips,
        ),
        (
            InstanceConfig {
                vips: vec![VIP; 256],
                ..good.clone()
            },
            ConfigError::TooManyVips,
        ),
        (
            InstanceConfig {
                primary_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                ..good.clone()
            },
            ConfigError::PrimaryAddr,
        ),
        (
            InstanceConfig {
                primary_addr: VRRP_MCAST_V4.into(),
                ..good.clone()
            },
            ConfigError::PrimaryAddr,
        ),
        (
            InstanceConfig {
                auth: Auth::pass(b"x"),
                ..good.clone()
            },
            ConfigError::AuthWithV3,
        ),
        (
            InstanceConfig {
                unicast_peers: vec![US],
                ..good.clone()
            },
            ConfigError::PeerIsSelf,
        ),
    ];
    for (cfg, err) in cases {
        assert_eq!(cfg.validate(), Err(err), "{cfg:?}");
        assert_eq!(Instance::try_new(cfg).err(), Some(err));
    }
    assert_eq!(
        ConfigError::Vrid.to_string(),
        "invalid VRRP instance configuration: vrid"
    );
    assert!(Instance::try_new(good).is_ok());
}

#[test]
fn new_normalizes_what_validate_rejects() {
    let t0 = epoch();
    let norm = |cfg: InstanceConfig| Instance::new(cfg);
    assert_eq!(
        norm(InstanceConfig {
            priority: 0,
            ..v3(1)
        })
        .priority(),
        1
    );
    let cases = [
        (
            InstanceConfig {
                advert_interval: ms(15),
                ..v3(100)
            },
            ms(10),
        ),
        (
            InstanceConfig {
                advert_interval: ms(0),
                ..v3(100)
            },
            ms(10),
        ),
        (
            InstanceConfig {
                advert_interval: Duration::from_secs(3600),
                ..v3(100)
            },
            ms(40_950),
        ),
        (
            InstanceConfig {
                advert_interval: ms(1500),
                ..v2(100)
            },
            Duration::from_secs(1),
        ),
        (
            InstanceConfig {
                advert_interval: ms(10),
                ..v2(100)
            },
            Duration::from_secs(1),
        ),
        (
            InstanceConfig {
                advert_interval: Duration::from_secs(999),
                ..v2(100)
            },
            Duration::from_secs(255),
        ),
    ];
    for (cfg, want) in cases {
        assert_eq!(norm(cfg).advert_interval(), want);
    }
    // v3 never sends auth, even if configured.
    let cfg = InstanceConfig {
        auth: Auth::pass(b"x"),
        ..v3(255)
    };
    let mut inst = Instance::new(cfg);
    inst.startup(t0);
    match drain(&mut inst).first() {
        Some(Action::Transmit(a)) => assert_eq!(a.auth, Auth::None),
        other => panic!("expected a transmit, got {other:?}"),
    }
}

#[test]
fn adverts_carry_at_most_255_vips() {
    let cfg = InstanceConfig {
        vips: (0..300u32).map(|a| IpAddr::V4(Ipv4Addr::from(a))).collect(),
        ..v3(255)
    };
    let mut inst = Instance::new(cfg);
    inst.startup(epoch());
    match drain(&mut inst).first() {
        Some(Action::Transmit(a)) => assert_eq!(a.addresses.len(), 255),
        other => panic!("expected a transmit, got {other:?}"),
    }
}

// ----- replays of the keepalived captures --------------------------------

/// A received VRRP frame: when (relative to the first VRRP frame, on
/// `base`), who from, what, and the raw datagram.
struct Rx {
    at: Instant,
    meta: Ipv4Meta,
    advert: Advert,
    ip: Vec<u8>,
}

fn replay_frames(file: &[u8], base: Instant) -> Vec<Rx> {
    let frames = pcap::vrrp_frames(file).unwrap();
    let ts0 = frames[0].ts;
    frames
        .iter()
        .map(|f| {
            let (meta, advert) = parse_datagram(f.ip).unwrap();
            Rx {
                at: base + (f.ts - ts0),
                meta,
                advert,
                ip: f.ip.to_vec(),
            }
        })
        .collect()
}

const KA_MASTER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
const KA_BACKUP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2));

/// The lab's keepalived configuration as one of our instances.
fn lab(version: Version, interval: Duration, us: IpAddr, priority: u8) -> InstanceConfig {
    InstanceConfig {
        name: "VI_1".into(),
        vrid: 51,
        version,
        priority,
        advert_interval: interval,
        primary_addr: us,
        vips: vec![IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100))],
        ..InstanceConfig::default()
    }
}

/// Replays keepalived's master (10.99.0.1, priority 150) into our
/// backup configured like keepalived's (10.99.0.2, priority 100): our
/// takeover deadline after the priority-0 advert is Skew_Time, at most
/// 2 ms before keepalived's measured takeover (its processing delay),
/// and our takeover advert is byte-identical to keepalived's.
#[test]
fn replay_sigterm_failover_matches_keepalived() {
    let cases: [(&[u8], Version, Duration, bool, u64); 4] = [
        (
            fixtures::V2_TERM,
            Version::V2,
            Duration::from_secs(1),
            false,
            609_375_000,
        ),
        (
            fixtures::V2_UNICAST_TERM,
            Version::V2,
            Duration::from_secs(1),
            true,
            609_375_000,
        ),
        (
            fixtures::V3_100CS_TERM,
            Version::V3,
            Duration::from_secs(1),
            false,
            609_375_000,
        ),
        (
            fixtures::V3_10CS_TERM,
            Version::V3,
            ms(100),
            false,
            60_937_500,
        ),
    ];
    for (file, version, interval, unicast, skew) in cases {
        let base = epoch();
        let frames = replay_frames(file, base);
        let mut cfg = lab(version, interval, KA_BACKUP, 100);
        if unicast {
            cfg.unicast_peers = vec![KA_MASTER];
        }
        let mut inst = Instance::new(cfg);
        inst.startup(base - ms(10));
        drain(&mut inst);
        let zero = frames.iter().position(|f| f.advert.priority == 0).unwrap();
        for f in &frames[..=zero] {
            assert_eq!(f.meta.src, KA_MASTER);
            assert!(
                inst.poll_timeout().unwrap() > f.at,
                "no takeover before priority 0"
            );
            inst.handle_advert(f.at, f.meta.src, &f.advert).unwrap();
        }
        let deadline = inst.poll_timeout().unwrap();
        assert_eq!(deadline, frames[zero].at + ns(skew));
        let theirs = &frames[zero + 1];
        assert_eq!(theirs.meta.src, KA_BACKUP);
        let lag = theirs.at - deadline;
        assert!(
            lag < ms(2),
            "keepalived took over {lag:?} after our deadline"
        );

        inst.handle_timeout(deadline);
        let actions = drain(&mut inst);
        let Some(Action::Transmit(ours)) = actions.first() else {
            panic!("expected a transmit first, got {actions:?}");
        };
        assert_eq!(ours, &theirs.advert);
        let ident = u16::from_be_bytes([theirs.ip[4], theirs.ip[5]]);
        let IpAddr::V4(backup) = KA_BACKUP else {
            panic!("an IPv4 lab");
        };
        let bytes = emit_datagram(
            ours,
            backup,
            theirs.meta.dst,
            ident,
            V3Checksum::PseudoHeader,
        );
        assert_eq!(
            bytes, theirs.ip,
            "byte-identical to keepalived's takeover advert"
        );
    }
}

/// The block/unblock capture: keepalived's backup, deaf to the master,
/// became a second master; keepalived's master answered each of its
/// adverts within a millisecond. Ours answers each at once and counts
/// every one as a split brain.
#[test]
fn replay_one_way_partition_master_answers_like_keepalived() {
    let base = epoch();
    let frames = replay_frames(fixtures::V2_SPLIT_BRAIN, base);
    let rogue: Vec<&Rx> = frames.iter().filter(|f| f.meta.src == KA_BACKUP).collect();
    assert_eq!(rogue.len(), 5);
    for r in &rogue {
        let answer = frames
            .iter()
            .find(|f| f.meta.src == KA_MASTER && f.at > r.at)
            .unwrap();
        assert!(answer.at - r.at < ms(1), "keepalived answered within 1 ms");
    }

    let cfg = lab(Version::V2, Duration::from_secs(1), KA_MASTER, 150);
    let (mut inst, _) = master(cfg.clone(), base - Duration::from_secs(10));
    let ours_bytes = frames[0].ip[20..].to_vec();
    for r in &rogue {
        while let Some(t) = inst.poll_timeout().filter(|t| *t <= r.at) {
            inst.handle_timeout(t);
        }
        drain(&mut inst);
        inst.handle_advert(r.at, r.meta.src, &r.advert).unwrap();
        let actions = drain(&mut inst);
        assert_eq!(actions.len(), 2);
        assert_eq!(
            actions[0],
            Action::SplitBrain {
                peer: KA_BACKUP,
                peer_priority: 100
            }
        );
        let Action::Transmit(answer) = &actions[1] else {
            panic!("expected an answer, got {actions:?}");
        };
        let answer_bytes = answer.to_bytes(KA_MASTER, VRRP_MCAST_V4, V3Checksum::PseudoHeader);
        assert_eq!(answer_bytes, ours_bytes);
        assert_eq!(inst.poll_timeout(), Some(r.at + Duration::from_secs(1)));
    }
    assert_eq!((inst.split_brain_count(), inst.state()), (5, State::Master));
    // keepalived's next periodic advert after the last answer came
    // 1.002 s later; ours is due exactly 1 s after the answer.
    let last = rogue[4].at;
    let next = frames
        .iter()
        .rev()
        .find(|f| f.meta.src == KA_MASTER)
        .unwrap();
    let ours = inst.poll_timeout().unwrap();
    assert!(next.at >= ours && next.at - ours < ms(5));
    assert_eq!(ours, last + Duration::from_secs(1));
}

/// The unicast split-brain capture from the other side: our instance as
/// 10.99.0.2, master while deaf, yields to keepalived's master
/// (priority 150) on the first of its adverts it hears.
#[test]
fn replay_unicast_split_brain_resolution() {
    let base = epoch();
    let frames = replay_frames(fixtures::V2_UNICAST_SPLIT_BRAIN, base);
    let cfg = InstanceConfig {
        unicast_peers: vec![KA_MASTER],
        ..lab(Version::V2, Duration::from_secs(1), KA_BACKUP, 100)
    };
    let (mut inst, _) = master(cfg, base - Duration::from_secs(10));
    let first = frames.iter().find(|f| f.meta.src == KA_MASTER).unwrap();
    inst.handle_advert(first.at, first.meta.src, &first.advert)
        .unwrap();
    assert_eq!(
        drain(&mut inst),
        [
            Action::SplitBrain {
                peer: KA_MASTER,
                peer_priority: 150
            },
            changed(
                State::Master,
                State::Backup,
                Reason::HigherPriorityAdvert {
                    peer: KA_MASTER,
                    priority: 150
                }
            )
        ]
    );
    // Its own advert from the capture is dropped as our own.
    let own = frames.iter().find(|f| f.meta.src == KA_BACKUP).unwrap();
    assert_eq!(
        inst.handle_advert(own.at, own.meta.src, &own.advert),
        Err(DropReason::OwnAdvert)
    );
}
