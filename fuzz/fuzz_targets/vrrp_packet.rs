//! VRRP datagrams as a raw `IPPROTO_VRRP` socket hands them to the agent: anyone on the LAN
//! (or, for unicast peers, anyone who can route to us) chooses these bytes.
//!
//! Properties checked on every input:
//! - nothing panics: `parse_datagram*`, `VrrpPacket::new_checked` and every accessor after it,
//!   `Advert::parse` in each `ChecksumCheck` mode, on the datagram and on the raw bytes taken as
//!   a bare VRRP message;
//! - `ChecksumCheck::Either` accepts exactly what one of the two strict modes accepts;
//! - an accepted advert re-emitted (`emit_datagram`, `Advert::to_bytes`) in either checksum
//!   form parses again to an equal `Advert` and the same IP metadata.
#![no_main]

use std::net::Ipv4Addr;

use lb_agent::vrrp::packet::{
    self, Advert, ChecksumCheck, Ipv4Header, V3Checksum, Version, VrrpPacket, VRRP_MCAST_V4,
    VRRP_TTL,
};
use libfuzzer_sys::fuzz_target;

/// Nothing a socket returns is bigger (IPv4 total length is 16 bits); also bounds the work.
const MAX_INPUT: usize = 64 * 1024;

const CHECKS: [ChecksumCheck; 3] = [
    ChecksumCheck::Either,
    ChecksumCheck::PseudoHeader,
    ChecksumCheck::VrrpOnly,
];
const FORMS: [V3Checksum; 2] = [V3Checksum::PseudoHeader, V3Checksum::VrrpOnly];

/// Addresses for the raw-message pass (the lab's first load balancer to the VRRP group, as in
/// the captured seeds).
const SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    datagram(data);
    // The same bytes as a bare VRRP message (what `Advert::parse` sees after the IP header).
    message(data, SRC, VRRP_MCAST_V4);
    // And the payload of a sane IP header with that header's addresses, so the checksummed
    // seeds reach the message checks with the addresses their checksums were made for.
    if let Ok(ip) = Ipv4Header::new_checked(data) {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let _ = (ip.version(), ip.header_len(), ip.tos(), ip.total_len());
        let _ = (ip.ident(), ip.is_fragment(), ip.ttl(), ip.protocol());
        let _ = (ip.checksum(), ip.verify_checksum());
        message(ip.payload(), src, dst);
    }
});

/// `parse_datagram` and friends on a whole IPv4 datagram.
fn datagram(data: &[u8]) {
    let results = CHECKS.map(|check| packet::parse_datagram_with(data, check));
    assert_eq!(
        packet::parse_datagram(data),
        results[0],
        "parse_datagram is Either"
    );
    let [either, pseudo, vrrp_only] = &results;
    assert_eq!(
        either.is_ok(),
        pseudo.is_ok() || vrrp_only.is_ok(),
        "Either must accept exactly what one strict mode accepts"
    );
    for ok in [pseudo, vrrp_only].into_iter().flatten() {
        assert_eq!(either.as_ref(), Ok(ok), "strict and Either disagree");
    }
    let Ok((meta, advert)) = either else {
        if let Err(e) = either {
            let _ = (e.label(), e.to_string());
        }
        return;
    };
    assert_eq!(meta.ttl, VRRP_TTL);
    check_advert(advert);
    for (form, ident) in FORMS.into_iter().zip([0u16, 0xffff]) {
        let bytes = packet::emit_datagram(advert, meta.src, meta.dst, ident, form);
        let again = packet::parse_datagram(&bytes);
        assert_eq!(
            again.as_ref(),
            Ok(&(*meta, advert.clone())),
            "re-emitted ({form:?}) does not round-trip: {bytes:02x?}"
        );
        assert_eq!(
            packet::parse_datagram_with(&bytes, strict(form)).as_ref(),
            Ok(&(*meta, advert.clone())),
            "re-emitted ({form:?}) refused by its own strict mode"
        );
    }
}

/// The VRRP message layer alone: the zero-copy view and `Advert::parse`.
fn message(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    if let Ok(pkt) = VrrpPacket::new_checked(data) {
        accessors(&pkt, src, dst);
    }
    // `Advert::parse` checks lengths itself: it must cope with an unchecked view.
    let unchecked = VrrpPacket::new_unchecked(data);
    let results = CHECKS.map(|check| Advert::parse(&unchecked, src, dst, check));
    let [either, pseudo, vrrp_only] = &results;
    assert_eq!(either.is_ok(), pseudo.is_ok() || vrrp_only.is_ok());
    for (check, r) in CHECKS.into_iter().zip(&results) {
        let Ok(advert) = r else { continue };
        check_advert(advert);
        // A parsed advert is one `new_checked` accepts, with the same fields.
        let pkt = match VrrpPacket::new_checked(data) {
            Ok(pkt) => pkt,
            Err(e) => panic!("Advert::parse ({check:?}) accepted what new_checked refuses: {e}"),
        };
        assert_eq!(pkt.vrid(), advert.vrid);
        assert_eq!(pkt.priority(), advert.priority);
        assert_eq!(pkt.interval_cs(), advert.interval_cs);
        assert!(pkt.addresses().eq(advert.addresses.iter().copied()));
        for form in FORMS {
            let bytes = advert.to_bytes(src, dst, form);
            assert_eq!(bytes.len(), advert.buffer_len());
            let view = match VrrpPacket::new_checked(&bytes[..]) {
                Ok(view) => view,
                Err(e) => panic!("emitted advert refused by new_checked: {e}: {bytes:02x?}"),
            };
            assert_eq!(
                Advert::parse(&view, src, dst, strict(form)).as_ref(),
                Ok(advert),
                "to_bytes ({form:?}) does not round-trip: {bytes:02x?}"
            );
        }
    }
}

/// Every read accessor of a checked view: none may panic after `new_checked`.
fn accessors<T: AsRef<[u8]>>(pkt: &VrrpPacket<T>, src: Ipv4Addr, dst: Ipv4Addr) {
    let _ = (pkt.version(), pkt.msg_type(), pkt.vrid(), pkt.priority());
    let _ = (pkt.auth_type(), pkt.advert_interval(), pkt.interval_cs());
    let _ = (
        pkt.checksum(),
        pkt.reserved(),
        pkt.auth_data(),
        pkt.message_len(),
    );
    let count = usize::from(pkt.addr_count());
    assert!(count > 0, "new_checked accepted a zero count");
    assert_eq!(pkt.addresses().len(), count);
    assert_eq!(pkt.addresses().count(), count);
    for i in 0..=count {
        assert_eq!(
            pkt.address(i).is_some(),
            i < count,
            "address({i}) of {count}"
        );
    }
    let v2 = pkt.version() == Version::V2.number();
    assert_eq!(pkt.auth_type().is_some(), v2);
    assert_eq!(pkt.auth_data().is_some(), v2, "v2 auth data in bounds");
    for form in FORMS {
        let _ = pkt.compute_checksum(src, dst, form);
    }
    for check in CHECKS {
        let _ = pkt.verify_checksum(src, dst, check);
    }
    let _ = pkt.check_len();
}

/// What every accepted advert satisfies (RFC 3768 / RFC 9568 field ranges).
fn check_advert(advert: &Advert) {
    assert!(!advert.addresses.is_empty() && advert.addresses.len() <= 255);
    assert!(advert.interval_cs > 0);
    match advert.version {
        Version::V2 => assert_eq!(advert.interval_cs % 100, 0),
        Version::V3 => {
            assert!(advert.interval_cs <= packet::V3_MAX_INTERVAL_CS);
            assert_eq!(advert.auth, packet::Auth::None);
        }
    }
    let _ = advert.interval();
}

fn strict(form: V3Checksum) -> ChecksumCheck {
    match form {
        V3Checksum::PseudoHeader => ChecksumCheck::PseudoHeader,
        V3Checksum::VrrpOnly => ChecksumCheck::VrrpOnly,
    }
}
