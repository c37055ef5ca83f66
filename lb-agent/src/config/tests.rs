//! Config parsing and validation: strictness, positions, every rule reported at once.

use super::*;

fn problems(yaml: &str) -> Vec<Located> {
    match parse(yaml, "t.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    }
}

fn has(ps: &[Located], path: &str, line: usize, needle: &str) -> bool {
    ps.iter()
        .any(|p| p.path == path && p.line == Some(line) && p.message.contains(needle))
}

#[test]
fn examples_are_valid() {
    for name in ["lb.yaml", "standalone.yaml", "lab-lb1.yaml", "lab-lb2.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.is_empty(), "{name} missing");
        if let Err(e) = parse(&text, name) {
            panic!("{e}");
        }
    }
}

#[test]
fn unknown_key_has_a_position() {
    let ps = problems("global_defs:\n  router_id: a\n  routerid: b\n");
    assert_eq!(ps.len(), 1);
    assert_eq!((ps[0].line, ps[0].column), (Some(3), Some(3)));
    assert!(ps[0].message.contains("unknown field `routerid`"), "{ps:?}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_line() {
    let yaml = "\
vrrp_instances:
  - name: A
    interface: eth0
    virtual_router_id: 300
    priority: 0
    version: 2
    advert_int: 1500ms
    authentication: { auth_type: PASS, auth_pass: toolongpassword }
    virtual_ipaddresses: [10.0.0.100/24]
    track_scripts: [nope]
  - name: B
    interface: eth0
    virtual_router_id: 300
    priority: 100
    advert_int: 5ms
    virtual_ipaddresses: [10.0.0.100/24]
vrrp_sync_groups:
  - { name: G, group: [A, C] }
virtual_servers:
  - address: 10.0.0.100
    port: 80
    interface: eth0
    table_size: 1000
    real_servers:
      - { address: 10.0.0.11, port: 8080 }
      - { address: 10.0.0.11, port: 80 }
      - { address: 10.0.0.11, port: 80 }
";
    let ps = problems(yaml);
    let expect = [
        (
            "vrrp_instances[0].virtual_router_id",
            4,
            "out of range 1..=255",
        ),
        ("vrrp_instances[0].priority", 5, "out of range 1..=255"),
        ("vrrp_instances[0].advert_int", 7, "whole seconds"),
        (
            "vrrp_instances[0].authentication.auth_pass",
            8,
            "1 to 8 bytes",
        ),
        (
            "vrrp_instances[0].track_scripts[0]",
            10,
            "not defined in vrrp_scripts",
        ),
        (
            "vrrp_instances[1].virtual_router_id",
            13,
            "out of range 1..=255",
        ),
        ("vrrp_instances[1].virtual_router_id", 13, "already used"),
        ("vrrp_instances[1].advert_int", 15, "10ms..=40.95s"),
        (
            "vrrp_instances[1].virtual_ipaddresses[0]",
            16,
            "already a VIP",
        ),
        ("vrrp_sync_groups[0].group[1]", 18, "not a vrrp_instance"),
        ("virtual_servers[0].table_size", 23, "prime"),
        (
            "virtual_servers[0].real_servers[0].port",
            25,
            "cannot change the port",
        ),
        // One address is one real in direct routing, whatever port is written.
        (
            "virtual_servers[0].real_servers[1].address",
            26,
            "listed twice",
        ),
        (
            "virtual_servers[0].real_servers[2].address",
            27,
            "listed twice",
        ),
    ];
    for (path, line, needle) in expect {
        assert!(
            has(&ps, path, line, needle),
            "missing {path}:{line} {needle}\n{ps:#?}"
        );
    }
    assert_eq!(ps.len(), expect.len(), "{ps:#?}");
}

#[test]
fn defaults_are_filled_in() {
    let c = match parse(
        "vrrp_instances:\n  - { name: V, interface: eth0, virtual_router_id: 1, priority: 100, virtual_ipaddresses: [10.0.0.1] }\n",
        "t",
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.router_id, "lb");
    assert_eq!(c.pin_path, std::path::PathBuf::from("/sys/fs/bpf/lb/lb"));
    assert_eq!(c.capacity.ring_size, 65537);
    let i = &c.instances[0];
    assert_eq!(i.version, Version::V3);
    assert_eq!(i.advert_int, std::time::Duration::from_secs(1));
    assert!(i.preempt);
    assert_eq!(i.vips[0].prefix, 32);
    assert_eq!(i.garp.repeat, 5);
    assert_eq!(i.mcast_group, std::net::Ipv4Addr::new(224, 0, 0, 18));
}

#[test]
fn world_writable_config_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("lbcfg{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let f = dir.join("lb.yaml");
    let _ = std::fs::write(&f, "virtual_servers: []\n");
    let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666));
    let e = load(&f).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("world-writable"), "{e}");
    let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600));
    assert!(load(&f).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn secrets_are_not_in_debug_output() {
    let c = match parse(
        "vrrp_instances:\n  - { name: V, interface: eth0, virtual_router_id: 1, priority: 100, version: 2, virtual_ipaddresses: [10.0.0.1], authentication: { auth_type: PASS, auth_pass: hunter2 } }\n",
        "t",
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("hunter2") && !dbg.contains("104, 117, 110"),
        "{dbg}"
    );
}

#[test]
fn every_unknown_key_and_every_problem_is_reported_at_once() {
    let text = "global_defs:\n  router_id: a\n  routerid: b\nvirtual_servers:\n  - address: 10.0.0.100\n    port: 80\n    protocol: tcp\n    interface: eth0\n    real_servers:\n      - { address: 10.0.0.2, port: 8080, wieght: 1 }\n";
    let e = crate::config::parse(text, "t.yaml").expect_err("invalid");
    let msgs: Vec<String> = e
        .problems
        .iter()
        .map(|p| format!("{}:{:?}:{}", p.path, p.line, p.message))
        .collect();
    assert_eq!(e.problems.len(), 3, "{msgs:#?}");
    assert!(
        msgs[0].starts_with("global_defs.routerid:Some(3):unknown field `routerid`, expected"),
        "{msgs:#?}"
    );
    assert!(
        msgs[1].starts_with(
            "virtual_servers[0].real_servers[0].wieght:Some(10):unknown field `wieght`"
        ),
        "{msgs:#?}"
    );
    assert!(
        msgs[2].contains("direct routing cannot change the port"),
        "{msgs:#?}"
    );
}

#[test]
fn multi_port_and_all_port_services() {
    let yaml = "\
virtual_servers:
  - address: 10.0.0.100
    ports: [80, 443, \"8000-8099\"]
    interface: eth0
    persistence_timeout: 300
    real_servers:
      - { address: 10.0.0.11 }
  - address: 10.0.0.100
    port: 0
    protocol: udp
    interface: eth0
    fragments: true
    checks: [ { tcp: { connect_port: 53, connect_timeout: 1s } } ]
    real_servers:
      - { address: 10.0.0.11 }
  - address: 10.0.0.101
    port: 0
    interface: eth0
    checks: [ { tcp: { connect_timeout: 1s } } ]
    real_servers:
      - { address: 10.0.0.11 }
  - address: 10.0.0.100
    port: 8050
    interface: eth0
    real_servers:
      - { address: 10.0.0.12 }
";
    let ps = problems(yaml);
    assert!(
        has(
            &ps,
            "virtual_servers[2].real_servers[0].checks",
            21,
            "no port to check"
        ),
        "{ps:#?}"
    );
    assert!(
        has(
            &ps,
            "virtual_servers[3].address",
            22,
            "already served by virtual_servers[0]"
        ),
        "{ps:#?}"
    );
    assert_eq!(ps.len(), 2, "{ps:#?}");
    let ok = yaml
        .split("  - address: 10.0.0.101")
        .next()
        .unwrap_or_default();
    let c = match parse(ok, "t.yaml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let s = &c.services[0];
    assert_eq!(s.port, 80);
    assert_eq!(s.ports.expand().len(), 102);
    assert_eq!(s.label(), "10.0.0.100:80,443,8000-8099/tcp");
    assert_eq!(s.reals[0].port, 80);
    let all = &c.services[1];
    assert_eq!((all.port, all.label()), (0, "10.0.0.100:*/udp".to_owned()));
    assert!(all.fragments && all.forward_icmp_errors);
}
