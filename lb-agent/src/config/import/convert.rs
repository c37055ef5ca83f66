//! The statement tree to lb's schema: which top-level blocks import, in which order.
//!
//! Order matters where one part needs another: `global_defs` (the default VRRP version and
//! interface) first, then `vrrp_script`s (tracked by instances), `vrrp_instance`s (their VIPs
//! tell on which interface each virtual server attaches), `vrrp_sync_group`s (their members
//! must exist), and last `virtual_server`s. Notes are sorted by file and line at the end.

use super::super::schema;
use super::ast::Stmt;
use super::global;
use super::lvs;
use super::report::{Notes, Report};
use super::values::NoteAt;
use super::vrrp;

/// Conversion state shared by the parts.
pub struct Cx {
    pub notes: Notes,
    /// `global_defs { vrrp_version }`, else keepalived's default, 2.
    pub default_version: u8,
    /// `global_defs { default_interface }`, for instances that name none.
    pub default_interface: Option<String>,
    /// The imported `track_file` blocks (instances and FILE_CHECKs refer to them).
    pub track_files: Vec<schema::TrackFile>,
}

pub fn convert(stmts: &[Stmt], notes: Notes) -> Report {
    let mut cx = Cx {
        notes,
        default_version: 2,
        default_interface: None,
        track_files: Vec::new(),
    };
    let mut file = schema::File::default();
    let (mut scripts, mut instances, mut groups, mut servers) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut vs_groups = Vec::new();
    let mut files = Vec::new();
    for s in stmts {
        match s.keyword.as_str() {
            "global_defs" => global::global_defs(s, &mut cx, &mut file.global_defs),
            "vrrp_script" => scripts.push(s),
            "track_file" | "vrrp_track_file" => files.push(s),
            "vrrp_instance" => instances.push(s),
            "vrrp_sync_group" => groups.push(s),
            "virtual_server" => servers.push(s),
            "virtual_server_group" => vs_groups.push(s),
            _ => top_level_unsupported(s, &mut cx.notes),
        }
    }
    file.vrrp_scripts = vrrp::scripts(&scripts, &mut cx);
    file.vrrp_track_files = vrrp::track_files(&files, &mut cx);
    cx.track_files.clone_from(&file.vrrp_track_files);
    file.vrrp_instances = vrrp::instances(&instances, &file.vrrp_scripts, &mut cx);
    file.vrrp_sync_groups = vrrp::sync_groups(&groups, &file.vrrp_instances, &mut cx);
    let vs_groups = lvs::groups(&vs_groups, &mut cx.notes);
    file.virtual_servers =
        lvs::virtual_servers(&servers, &vs_groups, &file.vrrp_instances, &mut cx);
    if let Some(first) = servers.first() {
        capacity(&mut file, first, &mut cx.notes);
    }
    Report {
        file,
        notes: cx.notes.into_sorted(),
    }
}

/// lb's default map sizes (`lb_common::maps::DEFAULT_MAX_SERVICES`, `DEFAULT_MAX_REALS`).
const LB_DEFAULT_MAX_SERVICES: usize = 64;
const LB_DEFAULT_MAX_REALS: usize = 4096;

/// lb sizes its maps from global_defs; a keepalived farm larger than lb's defaults needs them
/// written out (keepalived has no such limits).
fn capacity(file: &mut schema::File, at: &Stmt, n: &mut Notes) {
    let services = file.virtual_servers.len();
    let reals: usize = file
        .virtual_servers
        .iter()
        .map(|v| v.real_servers.len() + usize::from(v.sorry_server.is_some()))
        .sum();
    if services > LB_DEFAULT_MAX_SERVICES {
        file.global_defs.max_services = u32::try_from(services).ok();
        n.converted(
            at,
            format!(
                "{services} virtual servers are more than lb's default max_services \
                 ({LB_DEFAULT_MAX_SERVICES}); written as `max_services: {services}`"
            ),
        );
    }
    if reals > LB_DEFAULT_MAX_REALS {
        file.global_defs.max_reals = u32::try_from(reals).ok();
        n.converted(
            at,
            format!(
                "{reals} real and sorry servers are more than lb's default max_reals \
                 ({LB_DEFAULT_MAX_REALS}); written as `max_reals: {reals}`"
            ),
        );
    }
}

fn top_level_unsupported(s: &Stmt, n: &mut Notes) {
    let why = match s.keyword.as_str() {
        "{" => "a block with no keyword before it",
        "static_ipaddress" | "static_routes" | "static_rules" => {
            "lb does not manage static addresses, routes or rules: configure them in the OS"
        }
        "vrrp_track_process" | "track_process" => {
            "process tracking is not supported: use a \
             vrrp_script that checks the process"
        }
        "linkbeat_interfaces" => "lb watches links through netlink; nothing to configure",
        "bfd_instance" => "BFD is not supported",
        "garp_group" => "GARP groups are not supported (see vrrp_garp_* in global_defs)",
        "SSL" => {
            "lb verifies certificates with the system roots; client certificates are not \
                  supported"
        }
        "net_namespace"
        | "net_namespace_ipvs"
        | "instance"
        | "use_pid_dir"
        | "namespace_with_ipsets" => "run lb-agent in the namespace instead",
        _ => "unknown top-level keyword",
    };
    n.not_imported(s, Some(why));
}
