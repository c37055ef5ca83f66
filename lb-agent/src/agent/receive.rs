//! VRRP receive: one task per interface socket, parsing every datagram and handing the node
//! an advert or the reason it was refused.

use std::{net::IpAddr, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tracing::warn;

use crate::{
    node::Event,
    vrrp::{
        io::VrrpSocket,
        packet::{self, VRRP_MCAST_V6},
    },
};

pub fn spawn(sock: Arc<VrrpSocket>, tx: mpsc::Sender<Event>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let got = match sock.recv(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    warn!(interface = %sock.ifname, error = %e, "VRRP receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let data = &buf[..got.len.min(buf.len())];
            let parsed = match got.v6 {
                None => packet::parse_datagram(data).map(|(meta, a)| (IpAddr::V4(meta.src), a)),
                Some((src, dst, hops)) => {
                    // Unicast (to us, not the group): the peer list vouches for the sender,
                    // and keepalived sends those with the default hop limit.
                    let multicast = dst.is_none_or(|d| d.is_multicast());
                    packet::parse_v6(data, src, dst.unwrap_or(VRRP_MCAST_V6), hops, multicast)
                        .map(|a| (IpAddr::V6(src), a))
                }
            };
            let ev = match parsed {
                Ok((src, advert)) => Event::Advert {
                    ifname: sock.ifname.clone(),
                    src,
                    advert,
                },
                Err(e) => Event::BadAdvert {
                    ifname: sock.ifname.clone(),
                    reason: e.label(),
                },
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
}
