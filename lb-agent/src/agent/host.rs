//! The host worker: every netlink conversation (VIPs, neighbour resolution, link and neighbour
//! reads) runs here, on its own task with a timeout per request, so nothing the node loop does
//! (sending adverts above all) ever waits on the kernel's netlink. It reports back as node
//! events: links when they change (and every second), the watched neighbours every second,
//! failures of what it was asked.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use futures::StreamExt as _;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::{config::Vip, netlink::Netlink, node::Event};

/// How often links and neighbours are read back.
const REFRESH: Duration = Duration::from_secs(1);
/// Longest a netlink request may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// After asking the kernel to resolve reals, read the answers this soon (on a LAN they take
/// well under a millisecond) instead of at the next refresh.
const RESOLVE_READBACK: Duration = Duration::from_millis(20);

/// What the node loop asks of the host.
#[derive(Debug)]
pub enum Request {
    AddVip(Vip),
    RemoveVip(Vip),
    Resolve { ifindex: u32, ip: IpAddr },
    Watch(Vec<(IpAddr, String)>),
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Option<T> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            warn!(error = %format!("{e:#}"), "{what} failed");
            None
        }
        Err(_) => {
            warn!(timeout = ?TIMEOUT, "{what} timed out");
            None
        }
    }
}

async fn ifindex(nl: &Netlink, name: &str) -> Option<u32> {
    timed("reading an interface", nl.link_by_name(name))
        .await
        .flatten()
        .map(|l| l.index)
}

/// Runs until the node loop goes away. Must run on a runtime other than the node loop's.
pub async fn run(mut requests: mpsc::Receiver<Request>, events: mpsc::Sender<Event>) {
    let nl = match Netlink::connect() {
        Ok(n) => n,
        Err(e) => {
            error!(error = %format!("{e:#}"), "no netlink connection: VIPs and neighbours cannot be managed");
            return;
        }
    };
    let mut link_events = match link_events() {
        Ok(rx) => Some(rx),
        Err(e) => {
            warn!(error = %format!("{e:#}"), "no link events; links are read every second");
            None
        }
    };
    let mut watch: Vec<(IpAddr, String)> = Vec::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut readback: Option<tokio::time::Instant> = None;
    loop {
        let link_event = async {
            match link_events.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let soon = async {
            match readback {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let sent = tokio::select! {
            req = requests.recv() => {
                let Some(req) = req else { return };
                if matches!(req, Request::Resolve { .. }) && readback.is_none() {
                    readback = Some(tokio::time::Instant::now() + RESOLVE_READBACK);
                }
                serve(&nl, req, &mut watch, &events).await
            }
            () = soon => {
                readback = None;
                read_neighbours(&nl, &watch, &events).await
            }
            _ = refresh.tick() => {
                read_links(&nl, &events).await && read_neighbours(&nl, &watch, &events).await
            }
            Some(()) = link_event => read_links(&nl, &events).await,
        };
        if !sent {
            return;
        }
    }
}

/// Carries out one request; false once the node loop is gone.
async fn serve(
    nl: &Netlink,
    req: Request,
    watch: &mut Vec<(IpAddr, String)>,
    events: &mpsc::Sender<Event>,
) -> bool {
    match req {
        Request::AddVip(v) => {
            if let Some(idx) = ifindex(nl, &v.dev).await {
                timed(
                    "adding a VIP",
                    nl.add_address(idx, v.addr, v.prefix, v.label.as_deref()),
                )
                .await;
            } else {
                error!(vip = %v.addr, dev = %v.dev, "VIP interface not found");
            }
            true
        }
        Request::RemoveVip(v) => {
            if let Some(idx) = ifindex(nl, &v.dev).await {
                timed("removing a VIP", nl.del_address(idx, v.addr)).await;
            }
            events.send(Event::VipRemoved(v.addr)).await.is_ok()
        }
        Request::Resolve { ifindex, ip } => {
            if timed(
                "asking the kernel to resolve a real",
                nl.resolve(ifindex, ip),
            )
            .await
            .is_none()
            {
                return events.send(Event::ResolveFailed(ip)).await.is_ok();
            }
            true
        }
        Request::Watch(list) => {
            *watch = list;
            read_neighbours(nl, watch, events).await
        }
    }
}

async fn read_links(nl: &Netlink, events: &mpsc::Sender<Event>) -> bool {
    match timed("reading links", nl.links()).await {
        Some(l) => events.send(Event::Links(l)).await.is_ok(),
        None => true,
    }
}

/// The watched addresses' entries (the table itself may hold many thousands).
async fn read_neighbours(
    nl: &Netlink,
    watch: &[(IpAddr, String)],
    events: &mpsc::Sender<Event>,
) -> bool {
    if watch.is_empty() {
        return true;
    }
    match timed("reading neighbours", nl.neighbours()).await {
        Some(all) => {
            let mine: HashMap<_, _> = all
                .into_iter()
                .filter(|(ip, _)| watch.iter().any(|(w, _)| w == ip))
                .collect();
            events.send(Event::Neighbours(mine)).await.is_ok()
        }
        None => true,
    }
}

/// A message per netlink link event (carrier, admin state), so link failures are acted on at
/// once rather than at the next read.
fn link_events() -> anyhow::Result<mpsc::Receiver<()>> {
    use anyhow::Context as _;
    use rtnetlink::sys::{AsyncSocket as _, SocketAddr};
    let (mut conn, _handle, mut messages) =
        rtnetlink::new_connection().context("opening rtnetlink for link events")?;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))
        .context("subscribing to link events")?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while messages.next().await.is_some() {
            if tx.try_send(()).is_err() && tx.is_closed() {
                return;
            }
        }
    });
    info!("subscribed to link events");
    Ok(rx)
}
