//! Targeted conversion rules (the golden files cover the common shapes).

use std::fmt::Write as _;

use lb_agent::config::{
    import::{import_str, Report, Severity},
    schema,
};

fn import(text: &str) -> Report {
    import_str(text, "t.conf").unwrap_or_else(|e| panic!("{e}"))
}

fn notes(r: &Report) -> Vec<(usize, Severity)> {
    r.notes.iter().map(|n| (n.line, n.severity)).collect()
}

#[test]
fn version_is_always_written_and_v3_adverts_are_rounded_to_10ms() {
    let r = import(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n\
         vrrp_instance B {\n interface eth0\n virtual_router_id 2\n version 3\n advert_int 0.123\n virtual_ipaddress {\n  10.0.0.2\n }\n}\n",
    );
    let v: Vec<(Option<u8>, Option<String>)> = r
        .file
        .vrrp_instances
        .iter()
        .map(|i| (i.version, i.advert_int.map(|d| d.to_string())))
        .collect();
    assert_eq!(v, vec![(Some(2), None), (Some(3), Some("120ms".into()))]);
    assert_eq!(notes(&r), vec![(12, Severity::Warning)]);
}

#[test]
fn script_interval_zero_becomes_one_second_like_keepalived() {
    let r = import("vrrp_script s {\n script /bin/true\n interval 0\n}\n");
    assert_eq!(
        r.file.vrrp_scripts[0].interval.map(|d| d.to_string()),
        Some("1s".into())
    );
    assert_eq!(notes(&r), vec![(3, Severity::Warning)]);
}

#[test]
fn unknown_keywords_are_reported_with_their_line() {
    let r = import(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n frobnicate 3\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
    );
    assert_eq!(notes(&r), vec![(4, Severity::Unsupported)]);
    assert!(
        r.notes[0].message.contains("`frobnicate`"),
        "{}",
        r.notes[0]
    );
    assert_eq!(r.file.vrrp_instances.len(), 1);
}

#[test]
fn large_farms_raise_lb_map_sizes() {
    let mut conf = String::new();
    for i in 0..70u32 {
        let _ = writeln!(
            conf,
            "virtual_server 10.1.{}.{} 80 {{\n lb_algo mh\n lb_kind DR\n protocol TCP\n real_server 10.2.0.1 80 {{\n }}\n}}",
            i / 200,
            i % 200 + 1
        );
    }
    let r = import(&conf);
    assert_eq!(r.file.virtual_servers.len(), 70);
    assert_eq!(r.file.global_defs.max_services, Some(70));
    assert!(r
        .notes
        .iter()
        .any(|n| n.severity == Severity::Converted && n.message.contains("max_services: 70")));
}

#[test]
fn real_without_port_takes_the_virtual_port_and_no_checks_means_no_delay_loop() {
    let r = import(
        "virtual_server 10.0.0.1 8080 {\n lb_algo sh\n lb_kind DR\n protocol TCP\n real_server 10.0.1.1 {\n  weight 2\n }\n}\n",
    );
    let vs = &r.file.virtual_servers[0];
    assert_eq!(vs.real_servers[0].port, Some(8080));
    assert_eq!(vs.delay_loop, None);
    assert_eq!(vs.scheduler.as_deref(), Some("source_hash"));
    // The interface guess is the only warning; sh -> source_hash is a converted note.
    assert_eq!(
        notes(&r),
        vec![(1, Severity::Warning), (2, Severity::Converted)]
    );
}

#[test]
fn checks_differing_between_reals_stay_on_each_real() {
    let r = import(
        "virtual_server 10.0.0.1 80 {\n lb_algo sh\n lb_kind DR\n protocol TCP\n delay_loop 5\n\
          real_server 10.0.1.1 80 {\n  TCP_CHECK {\n   connect_timeout 1\n   retry 2\n  }\n }\n\
          real_server 10.0.1.2 80 {\n  TCP_CHECK {\n   connect_timeout 2\n   delay_loop 7\n  }\n }\n\
          real_server 10.0.1.3 80 {\n }\n}\n",
    );
    let vs = &r.file.virtual_servers[0];
    assert!(vs.checks.is_empty());
    assert_eq!(vs.fall, None);
    let reals: Vec<(Option<usize>, Option<u32>, Option<String>)> = vs
        .real_servers
        .iter()
        .map(|x| {
            (
                x.checks.as_ref().map(Vec::len),
                x.fall,
                x.delay_loop.map(|d| d.to_string()),
            )
        })
        .collect();
    assert_eq!(
        reals,
        vec![
            (Some(1), Some(2), None),
            (Some(1), None, Some("7s".into())),
            (None, None, None)
        ]
    );
}

#[test]
fn output_commands_are_absolute() {
    let r = import(
        "vrrp_script a {\n script \"pidof nginx\"\n}\nvrrp_script b {\n script \"/usr/bin/test -f /x && /bin/true\"\n}\n",
    );
    let argv: Vec<Vec<String>> = r
        .file
        .vrrp_scripts
        .iter()
        .map(|s| s.script.argv())
        .collect();
    assert!(argv.iter().all(|a| a[0].starts_with('/')), "{argv:?}");
    assert_eq!(
        r.file.vrrp_scripts[1].script,
        schema::Command::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            "/usr/bin/test -f /x && /bin/true".into()
        ])
    );
}

#[test]
fn empty_input_gives_an_empty_file_and_a_clean_header() {
    let r = import("# nothing here\n");
    assert_eq!(r.file, schema::File::default());
    let y = lb_agent::config::import::to_yaml(&r);
    assert!(y.contains("# No notes"), "{y}");
}
