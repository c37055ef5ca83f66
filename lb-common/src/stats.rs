//! Indices of `LB_STATS`: every decision the data path makes is counted under one of these.
//! Each packet is counted once under exactly one verdict (`PASS_*`, `DROP_*`, `TX`, `REDIRECT`);
//! the `INFO_*` counters describe how it was handled and may add up to more than the packets.

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident = $idx:expr, $label:expr;)*) => {
        $($(#[$doc])* pub const $name: u32 = $idx;)*
        /// Number of counters.
        pub const COUNT: u32 = [$($idx),*].len() as u32;
        /// Stable label of each counter (metrics, status), indexed like the counters.
        pub const NAMES: [&str; COUNT as usize] = [$($label),*];
    };
}

stats! {
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...). Passed untouched.
    PASS_NOT_IP = 0, "pass_not_ip";
    /// Frame shorter than an Ethernet header.
    PASS_TRUNCATED_ETH = 1, "pass_truncated_eth";
    /// 802.1Q tag cut short.
    PASS_TRUNCATED_VLAN = 2, "pass_truncated_vlan";
    /// More than one VLAN tag (QinQ); not balanced.
    PASS_VLAN_STACKED = 3, "pass_vlan_stacked";
    /// IPv4 or IPv6 header, or an IPv6 extension header, cut short.
    PASS_TRUNCATED_IP = 4, "pass_truncated_ip";
    /// IP version field not the EtherType's, IPv4 header length below 20 bytes, or a length
    /// (IPv4 total, IPv6 payload) inconsistent with the header or longer than the packet (an
    /// IPv6 jumbogram's zero payload length included). The kernel drops these itself.
    PASS_BAD_IP_HEADER = 5, "pass_bad_ip_header";
    /// A fragment (first or not) to a VIP without a service that steers fragments, or any
    /// IPv6 fragment: passed (the kernel reassembles what is addressed to it).
    PASS_FRAGMENT = 6, "pass_fragment";
    /// Neither TCP nor UDP, and not an ICMP error about a service flow (ICMP echo to a VIP:
    /// the node's own stack answers).
    PASS_OTHER_PROTO = 7, "pass_other_proto";
    /// TCP or UDP header cut short.
    PASS_TRUNCATED_L4 = 8, "pass_truncated_l4";
    /// No virtual service for (destination, port, protocol).
    PASS_NO_SERVICE = 9, "pass_no_service";
    /// The service has no usable real (all down, none resolved yet, no sorry server): dropped.
    /// Passing it would hand an established flow's packet to a local stack that holds the VIP
    /// and answers with a reset; dropped, the client retransmits and recovers once a real is
    /// back (a new connection times out instead of being refused).
    DROP_NO_REAL = 10, "drop_no_real";
    /// A map the data path relies on was missing an entry (agent mid-update). Never expected.
    PASS_INTERNAL = 11, "pass_internal";
    /// To a virtual service from a broadcast, multicast, zero or loopback source, or from a
    /// multicast Ethernet source: spoofed, dropped.
    DROP_BAD_SOURCE = 12, "drop_bad_source";
    /// An ICMP error to a VIP whose quoted datagram is cut short.
    PASS_ICMP_TRUNCATED = 13, "pass_icmp_truncated";
    /// An ICMP error to a VIP that quotes no flow of a service that forwards ICMP errors (not
    /// TCP/UDP, not sent from that VIP, no such service, or `forward_icmp_errors: false`).
    PASS_ICMP_OTHER = 14, "pass_icmp_other";
    /// IPv6 to a VIP with more extension headers than the data path walks (4), or a routing
    /// header with segments left (the VIP is not the packet's final destination): passed.
    PASS_IPV6_EXT = 15, "pass_ipv6_ext";
    /// Forwarded to a real with XDP_TX. Not counted here by the data path, which updates one
    /// counter per forwarded packet (its real's): the agent derives it as the sum of the reals'
    /// packets minus `REDIRECT`.
    TX = 16, "tx";
    /// Forwarded to a real through another interface with XDP_REDIRECT.
    REDIRECT = 17, "redirect";
    /// New flow: real chosen (table or affinity) and remembered. Derived by the agent from the
    /// reals' `flows` counters, like `TX`. Connection-table hits are `TX + REDIRECT -
    /// INFO_FLOW_NEW`.
    INFO_FLOW_NEW = 18, "flow_new";
    /// Of the new flows: the remembered real had failed or was removed, so chosen again.
    INFO_FLOW_RESELECT = 19, "flow_reselect";
    /// The connection table refused an insert (forwarded anyway, by the Maglev choice).
    INFO_FLOW_INSERT_FAILED = 20, "flow_insert_failed";
    /// The real was chosen by client affinity (`persistence_timeout`).
    INFO_AFFINITY_HIT = 21, "affinity_hit";
    /// New flow with IPv4 options or IPv6 extension headers (balanced normally).
    INFO_IP_OPTIONS = 22, "ip_options";
    /// New flow with one 802.1Q tag (balanced normally, tag kept).
    INFO_VLAN = 23, "vlan";
    /// An ICMP error forwarded to the real the flow's connection-table entry names.
    INFO_ICMP_FLOW = 24, "icmp_to_flow_real";
    /// An ICMP error for a flow this node has no entry for: forwarded to the real the
    /// service's table names for it (the one a new packet of the flow would get).
    INFO_ICMP_TABLE = 25, "icmp_to_table_real";
    /// A fragment steered by its service's address hash (`fragments: true`).
    INFO_FRAGMENT = 26, "fragment_steered";
    /// New flow over IPv6.
    INFO_IPV6 = 27, "ipv6";
    /// A new flow of a synced service could not be published to the agent (no queue for this
    /// CPU: the maps were sized for fewer CPUs). Forwarded normally; peers do not learn it.
    /// Records overwritten before the agent read them are counted by the agent.
    INFO_FLOW_PUBLISH_FAILED = 28, "flow_publish_failed";
}

/// True for the counters that are verdicts (each packet lands in exactly one).
pub const fn is_verdict(idx: u32) -> bool {
    idx <= REDIRECT
}

/// True for the verdicts whose packets are dropped (the others of a non-forwarded packet pass
/// to the local stack).
pub const fn is_drop(idx: u32) -> bool {
    idx == DROP_BAD_SOURCE || idx == DROP_NO_REAL
}
