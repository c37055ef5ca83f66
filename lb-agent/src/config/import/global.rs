//! `global_defs`.

use super::super::schema;
use super::ast::Stmt;
use super::convert::Cx;
use super::values::{self, NoteAt};
use std::net::IpAddr;

const EMAIL: &str = "lb sends no e-mail: use notify scripts";

pub fn global_defs(s: &Stmt, cx: &mut Cx, g: &mut schema::GlobalDefs) {
    let Some(block) = values::block(s, &mut cx.notes) else {
        return;
    };
    for d in block {
        let n = &mut cx.notes;
        match d.keyword.as_str() {
            "router_id" => {
                if let Some(v) = values::value(d, n) {
                    g.router_id = Some(router_id(d, v, n));
                }
            }
            "vrrp_mcast_group4" | "vrrp_mcast_group6" => match values::ip(d, n) {
                Some(IpAddr::V4(a)) if a.is_multicast() && d.keyword.ends_with('4') => {
                    g.vrrp_mcast_group4 = Some(a)
                }
                Some(IpAddr::V6(a)) if a.is_multicast() && d.keyword.ends_with('6') => {
                    g.vrrp_mcast_group6 = Some(a)
                }
                Some(a) => n.warning(
                    d,
                    format!(
                        "`{} {a}`: not a multicast address of that family; ignored",
                        d.keyword
                    ),
                ),
                None => {}
            },
            "vrrp_garp_master_repeat" => {
                g.vrrp_garp_master_repeat = values::u32_in(d, n, 0, 100);
            }
            "vrrp_garp_master_delay" => g.vrrp_garp_master_delay = values::whole_seconds(d, n),
            "vrrp_garp_master_refresh" => g.vrrp_garp_master_refresh = values::whole_seconds(d, n),
            "vrrp_garp_interval" => g.vrrp_garp_interval = values::seconds(d, n),
            "vrrp_version" => {
                if let Some(v) = values::u32_in(d, n, 2, 3) {
                    cx.default_version = v as u8;
                    n.converted(
                        d,
                        format!(
                            "`vrrp_version {v}`: lb has no global default; written as \
                             `version: {v}` in every instance that sets none"
                        ),
                    );
                }
            }
            "default_interface" => {
                if let Some(v) = values::value(d, n) {
                    cx.default_interface = Some(v.to_owned());
                    n.converted(
                        d,
                        format!(
                            "`default_interface {v}`: lb has no global default; used as the \
                             interface of instances and virtual servers that name none"
                        ),
                    );
                }
            }
            "enable_script_security" => {
                values::flag(d, n);
                n.converted(
                    d,
                    "`enable_script_security`: always on in lb (it refuses a world-writable \
                     config and needs absolute script paths)"
                        .into(),
                );
            }
            "script_user" => n.not_imported(d, Some("lb runs scripts as its own user")),
            "notification_email"
            | "notification_email_from"
            | "smtp_server"
            | "smtp_helo_name"
            | "smtp_connect_timeout"
            | "smtp_alert"
            | "smtp_alert_vrrp"
            | "smtp_alert_checker"
            | "email_faults" => n.not_imported(d, Some(EMAIL)),
            "startup_script"
            | "shutdown_script"
            | "startup_script_timeout"
            | "shutdown_script_timeout" => {
                n.not_imported(d, Some("run it from the service manager instead"))
            }
            "lvs_id" => n.not_imported(d, Some("old name of router_id; set router_id")),
            "vrrp_gna_interval"
            | "vrrp_garp_lower_prio_repeat"
            | "vrrp_garp_lower_prio_delay"
            | "vrrp_garp_master_refresh_repeat"
            | "vrrp_garp_extra_if" => n.not_imported(d, Some("no equivalent in lb")),
            "vrrp_strict"
            | "vrrp_skip_check_adv_addr"
            | "vrrp_check_unicast_src"
            | "vrrp_iptables"
            | "vrrp_ipsets"
            | "vrrp_no_swap"
            | "checker_no_swap"
            | "vrrp_priority"
            | "checker_priority"
            | "vrrp_rt_priority"
            | "checker_rt_priority"
            | "vrrp_lower_priority_dont_send_advert"
            | "max_auto_priority"
            | "lvs_sync_daemon"
            | "lvs_timeouts"
            | "lvs_flush"
            | "dynamic_interfaces"
            | "nftables"
            | "nftables_priority"
            | "nftables_counters"
            | "nftables_ifindex" => n.not_imported(d, Some("no equivalent in lb")),
            _ => n.not_imported(d, None),
        }
    }
}

/// lb names files after the router id: letters, digits, `-`, `_`, `.`, 1 to 64 of them.
fn router_id(d: &Stmt, v: &str, n: &mut super::report::Notes) -> String {
    let mut id: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() {
        id = "lb".into();
    }
    if id != v {
        n.warning(
            d,
            format!(
                "`router_id {v}`: lb names files after it, so only letters, digits, `-`, `_` \
                 and `.` (at most 64) are allowed; written as `{id}`"
            ),
        );
    }
    id
}
