//! VRRP receive: one task per interface socket, parsing every datagram and handing the node
//! an advert or the reason it was refused.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tracing::warn;

use crate::{
    node::Event,
    vrrp::{io::VrrpSocket, packet},
};

pub fn spawn(sock: Arc<VrrpSocket>, tx: mpsc::Sender<Event>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    warn!(interface = %sock.ifname, error = %e, "VRRP receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ev = match packet::parse_datagram(&buf[..n]) {
                Ok((meta, advert)) => Event::Advert {
                    ifname: sock.ifname.clone(),
                    src: meta.src,
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
