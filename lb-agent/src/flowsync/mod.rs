//! Flow-state sharing between nodes (`flow_sync:`): the connection-table entries one node
//! makes reach its peers, so whichever node a flow lands on after a failover, a reload that
//! changed the reals or an ECMP change sends it to the real it began on.
//!
//! - New flows: the data path publishes each new entry of a synced service to its CPU's queue
//!   (plain stores); a thread drains them every `batch_interval`, turns real ids into addresses and
//!   sends the records in datagrams to each peer (or a multicast group).
//! - Receiving: datagrams from peers only, authenticated when a key is set, each record mapped
//!   to this node's own real ids and written into the connection table.
//! - Refresh: while this node forwards, its whole table is re-sent every `refresh_interval`.
//! - Bulk sync: at start the node asks a peer for its whole table over TCP (flow control and
//!   retransmission come with it) and reports the end to the node core, which holds back
//!   preemption (VRRP) or announcement (BGP) until then, bounded by `bulk_sync_timeout`.
//!
//! The sync runs on threads of its own with blocking sockets: its work is map system calls,
//! which block anyway, and none of it may hold up the node loop or the IO runtime.

pub mod directory;
pub mod queue;
pub mod stats;
pub mod wire;

use std::{
    io::{self, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsFd as _,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use socket2::{Domain, Socket, Type};
use tracing::{debug, info, warn};

use crate::config::{FlowSyncCfg, SyncKey};
use directory::{Directory, Handles, Published, Tables};
use queue::FlowQueue;
use stats::Stats;
use wire::{Body, Builder, Key, Kind, Record, MAX_BULK_MESSAGE, MAX_DATAGRAM};

/// How long the receiver waits on its socket before looking at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// Refresh datagrams per millisecond, so a whole table does not overrun a peer's socket.
const REFRESH_PER_MS: usize = 8;
/// Receive buffer of the UDP socket.
const RCVBUF: i32 = 16 << 20;
/// Bulk syncs served at once.
const MAX_SERVES: usize = 2;
/// Connecting to a peer for the bulk sync.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The running sync, as the agent holds it.
pub struct FlowSync {
    /// This node forwards (XDP attached somewhere): it refreshes its table to the peers.
    active: Arc<AtomicBool>,
    ctx: Arc<Ctx>,
}

impl Drop for FlowSync {
    fn drop(&mut self) {
        self.ctx.stop.store(true, Ordering::Relaxed);
    }
}

impl FlowSync {
    /// What `status` and the metrics show; `holding`: the node waits for the bulk sync,
    /// `publish_failed`: the data path's count of new flows it had no queue for.
    pub fn snapshot(
        &self,
        holding: bool,
        publish_failed: u64,
    ) -> crate::control::snapshot::FlowSyncSnap {
        let c = &self.ctx;
        c.stats.snapshot(
            &c.peers,
            c.cfg.port,
            c.key.is_some(),
            holding,
            publish_failed,
        )
    }

    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
    }

    /// The services and reals as the data path holds them now (after each change).
    pub fn set_directory(&self, d: Directory) {
        if let Ok(mut g) = self.ctx.dir.write() {
            *g = Some(Arc::new(d));
        }
    }
}

/// Reads the key the config names.
pub fn load_key(k: &SyncKey) -> Result<Key> {
    let secret = match k {
        SyncKey::Inline(s) => s.clone(),
        SyncKey::File(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading flow_sync.key_file {}", p.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    if secret.len() < 16 {
        anyhow::bail!("the flow_sync key must have at least 16 characters");
    }
    Ok(Key::new(secret.as_bytes()))
}

/// Whether `ip` is one of this host's addresses (binding to it succeeds).
fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Starts the sync. `bulk_done` is called once, when the bulk sync of this start has ended
/// (done, timed out, or no peer answered).
pub fn start(
    cfg: FlowSyncCfg,
    handles: Handles,
    bulk_done: impl FnOnce() + Send + 'static,
) -> Result<FlowSync> {
    let key = cfg.key.as_ref().map(load_key).transpose()?;
    let peers: Vec<IpAddr> = cfg
        .peers
        .iter()
        .copied()
        .filter(|p| !is_local(*p))
        .collect();
    let sock = udp_socket(&cfg).context("opening the flow_sync UDP socket")?;
    let listener = tcp_listener(&cfg).context("opening the flow_sync TCP listener")?;
    let active = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(Ctx {
        cfg: cfg.clone(),
        key,
        peers: peers.clone(),
        handles,
        stats: Stats::default(),
        stop: AtomicBool::new(false),
        sender: rand_u32(),
        dir: RwLock::new(None),
    });
    let queue = FlowQueue::open(ctx.handles.events.as_fd(), ctx.handles.heads.as_fd())?;
    {
        let (ctx, tx) = (ctx.clone(), sock.try_clone()?);
        spawn("lb-sync-tx", move || publisher(&ctx, queue, &tx))?;
    }
    if !cfg.refresh_interval.is_zero() {
        let (ctx, tx, active) = (ctx.clone(), sock.try_clone()?, active.clone());
        spawn("lb-sync-refresh", move || refresher(&ctx, &tx, &active))?;
    }
    {
        let ctx = ctx.clone();
        spawn("lb-sync-rx", move || receiver(&ctx, &sock))?;
    }
    {
        let ctx = ctx.clone();
        spawn("lb-sync-bulk", move || bulk_server(&ctx, &listener))?;
    }
    {
        let ctx = ctx.clone();
        spawn("lb-sync-join", move || {
            bulk_client(&ctx);
            bulk_done();
        })?;
    }
    info!(
        peers = ?peers,
        port = cfg.port,
        authenticated = ctx.key.is_some(),
        "flow sync started"
    );
    Ok(FlowSync { active, ctx })
}

/// What every sync thread shares.
struct Ctx {
    cfg: FlowSyncCfg,
    key: Option<Key>,
    peers: Vec<IpAddr>,
    handles: Handles,
    stats: Stats,
    stop: AtomicBool,
    /// Random per start: this node's own multicast datagrams are recognised by it.
    sender: u32,
    /// Set by the agent after each data-path change (None before the first).
    dir: RwLock<Option<Arc<Directory>>>,
}

impl Ctx {
    fn directory(&self) -> Option<Arc<Directory>> {
        self.dir.read().ok().and_then(|g| g.clone())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn is_peer(&self, ip: IpAddr) -> bool {
        self.peers.contains(&ip.to_canonical())
    }

    fn destinations(&self) -> Vec<SocketAddr> {
        match self.cfg.group {
            Some(g) => vec![SocketAddr::new(g, self.cfg.port)],
            None => self
                .peers
                .iter()
                .map(|p| SocketAddr::new(*p, self.cfg.port))
                .collect(),
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .with_context(|| format!("starting {name}"))?;
    Ok(())
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_ne_bytes(b)
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn domain(cfg: &FlowSyncCfg) -> Domain {
    if cfg.peers.first().is_some_and(IpAddr::is_ipv6) {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

fn any(cfg: &FlowSyncCfg) -> IpAddr {
    match domain(cfg) {
        Domain::IPV6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => Ipv4Addr::UNSPECIFIED.into(),
    }
}

fn udp_socket(cfg: &FlowSyncCfg) -> io::Result<UdpSocket> {
    let s = Socket::new(domain(cfg), Type::DGRAM, None)?;
    s.set_reuse_address(true)?;
    if domain(cfg) == Domain::IPV6 {
        s.set_only_v6(true)?;
    }
    if let Some(ifname) = &cfg.interface {
        s.bind_device(Some(ifname.as_bytes()))?;
    }
    // Root may exceed rmem_max: a refresh or a burst of new flows should not be dropped here.
    if crate::vrrp::io::setsockopt_int(&s, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err()
    {
        let _ = s.set_recv_buffer_size(RCVBUF as usize);
    }
    // Bound to the group's port on any address when a group is used (the group's datagrams
    // are addressed to it), else to the source address if given.
    let local = match (cfg.group, cfg.source) {
        (None, Some(src)) => src,
        _ => any(cfg),
    };
    s.bind(&SocketAddr::new(local, cfg.port).into())?;
    if let (Some(g), Some(ifname)) = (cfg.group, &cfg.interface) {
        let ifindex = ifindex(ifname)?;
        match g {
            IpAddr::V4(g) => {
                s.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(ifindex))?;
                s.set_multicast_loop_v4(false)?;
            }
            IpAddr::V6(g) => {
                s.join_multicast_v6(&g, ifindex)?;
                s.set_multicast_if_v6(ifindex)?;
                s.set_multicast_loop_v6(false)?;
            }
        }
    }
    s.set_read_timeout(Some(POLL))?;
    Ok(s.into())
}

fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

fn tcp_listener(cfg: &FlowSyncCfg) -> io::Result<TcpListener> {
    let s = Socket::new(domain(cfg), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if domain(cfg) == Domain::IPV6 {
        s.set_only_v6(true)?;
    }
    s.bind(&SocketAddr::new(cfg.source.unwrap_or_else(|| any(cfg)), cfg.port).into())?;
    s.listen(16)?;
    Ok(s.into())
}

/// Sends records in datagrams to every destination; the records sent.
fn send_records(
    ctx: &Ctx,
    sock: &UdpSocket,
    recs: impl IntoIterator<Item = Record>,
    seq: &mut u32,
    paced: bool,
) -> u64 {
    let dests = ctx.destinations();
    let mut b = Builder::new(Kind::Flows, ctx.sender, ctx.key.clone(), MAX_DATAGRAM);
    let mut sent = 0usize;
    let mut flush = |b: &mut Builder, n: u64, seq: &mut u32| {
        *seq = seq.wrapping_add(1);
        let msg = b.finish(*seq, unix_us(), None);
        for d in &dests {
            let ok = sock.send_to(&msg, d).is_ok();
            ctx.stats.with(|c| {
                if ok {
                    c.datagrams_sent += 1;
                    c.bytes_sent += msg.len() as u64;
                    c.records_sent += n;
                } else {
                    c.send_errors += 1;
                }
            });
        }
        sent += 1;
        if paced && sent.is_multiple_of(REFRESH_PER_MS) {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let (mut n, mut total) = (0u64, 0u64);
    for r in recs {
        if !b.push(&r) {
            flush(&mut b, n, seq);
            n = 0;
            if !b.push(&r) {
                continue;
            }
        }
        n += 1;
        total += 1;
    }
    if !b.is_empty() {
        flush(&mut b, n, seq);
    }
    total
}

/// Drains the data path's new flows every batch interval and sends them.
fn publisher(ctx: &Ctx, mut queue: FlowQueue, sock: &UdpSocket) {
    let mut seq = 0u32;
    let mut events: Vec<Published> = Vec::new();
    while !ctx.stopped() {
        std::thread::sleep(ctx.cfg.batch_interval);
        events.clear();
        let lost = queue.drain(&mut events);
        if lost > 0 {
            ctx.stats.with(|c| c.lost += lost);
        }
        if events.is_empty() {
            continue;
        }
        let dir = ctx.directory().unwrap_or_default();
        let now = crate::dataplane::explain::monotonic_ns();
        let recs: Vec<Record> = events.iter().filter_map(|e| dir.record(e, now)).collect();
        let stale = (events.len() - recs.len()) as u64;
        if stale > 0 {
            ctx.stats.with(|c| c.drop("real_reassigned", stale));
        }
        send_records(ctx, sock, recs, &mut seq, false);
    }
}

/// Re-sends the whole table every refresh interval while this node forwards (a thread of its
/// own: a large table takes seconds, paced, and new flows must not wait for it).
fn refresher(ctx: &Ctx, sock: &UdpSocket, active: &AtomicBool) {
    let every = ctx.cfg.refresh_interval;
    // Sequence numbers of their own: the two senders never share one.
    let mut seq = 1u32 << 31;
    while !ctx.stopped() {
        std::thread::sleep(every);
        if !active.load(Ordering::Relaxed) {
            continue;
        }
        let dir = ctx.directory().unwrap_or_default();
        match ctx.handles.tables() {
            Ok(t) => {
                let n = send_records(ctx, sock, t.records(&dir), &mut seq, true);
                ctx.stats.with(|c| c.refreshed += n);
            }
            Err(e) => warn!(error = %e, "reading the connection table for a refresh"),
        }
    }
}

/// Writes records into the table, counting what was applied and why the rest was not.
fn apply(ctx: &Ctx, tables: &mut Tables, recs: &[Record]) -> u64 {
    let Some(dir) = ctx.directory() else {
        ctx.stats.with(|c| c.drop("not_ready", recs.len() as u64));
        return 0;
    };
    let mut applied = 0;
    for r in recs {
        match tables.apply(&dir, r) {
            Ok(()) => applied += 1,
            Err(why) => ctx.stats.with(|c| c.drop(why.label(), 1)),
        }
    }
    applied
}

fn receiver(ctx: &Ctx, sock: &UdpSocket) {
    let mut tables = match ctx.handles.tables() {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "flow sync cannot open the connection table; not receiving");
            return;
        }
    };
    // One byte more than the largest datagram accepted, so an oversized one shows.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    while !ctx.stopped() {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                debug!(error = %e, "flow sync receive");
                continue;
            }
        };
        if !ctx.is_peer(from.ip()) {
            ctx.stats.with(|c| c.drop("not_peer", 1));
            continue;
        }
        let msg = match wire::parse(&buf[..n], ctx.key.as_ref(), MAX_DATAGRAM) {
            Ok(m) => m,
            Err(why) => {
                ctx.stats.with(|c| c.drop(why.label(), 1));
                continue;
            }
        };
        if msg.header.sender == ctx.sender {
            continue;
        }
        let Body::Records(recs) = msg.body else {
            ctx.stats.with(|c| c.drop("bad_kind", 1));
            continue;
        };
        let applied = apply(ctx, &mut tables, &recs);
        let now_us = unix_us();
        let now = Instant::now();
        ctx.stats.with(|c| {
            c.heard(from.ip().to_canonical(), now, recs.len() as u64);
            c.records_received += recs.len() as u64;
            c.records_applied += applied;
            let transit = now_us.saturating_sub(msg.header.sent_us);
            for r in recs.iter().filter(|r| r.age_us != wire::AGE_UNKNOWN) {
                c.lag(u64::from(r.age_us) + transit);
            }
        });
    }
}

/// Writes one length-prefixed message.
fn write_msg(s: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    s.write_all(&(msg.len() as u32).to_be_bytes())?;
    s.write_all(msg)
}

/// Reads one length-prefixed message (refusing one longer than the bulk limit).
fn read_msg(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_BULK_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too long",
        ));
    }
    buf.resize(len, 0);
    s.read_exact(buf)
}

fn bulk_server(ctx: &Arc<Ctx>, listener: &TcpListener) {
    let serving = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for conn in listener.incoming() {
        if ctx.stopped() {
            return;
        }
        let Ok(conn) = conn else { continue };
        // Each serve walks the whole table: a few at once, no more.
        if serving.fetch_add(1, Ordering::AcqRel) >= MAX_SERVES {
            serving.fetch_sub(1, Ordering::AcqRel);
            ctx.stats.with(|c| c.drop("bulk_busy", 1));
            continue;
        }
        let (ctx, serving) = (ctx.clone(), serving.clone());
        let done = serving.clone();
        let started = spawn("lb-sync-serve", move || {
            if let Err(e) = serve(&ctx, conn) {
                debug!(error = %e, "bulk sync for a peer ended");
            }
            serving.fetch_sub(1, Ordering::AcqRel);
        });
        if started.is_err() {
            done.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Sends the whole table to a peer that asked for it.
fn serve(ctx: &Ctx, mut conn: TcpStream) -> Result<()> {
    let peer = conn.peer_addr()?.ip().to_canonical();
    if !ctx.is_peer(peer) {
        ctx.stats.with(|c| c.drop("not_peer", 1));
        return Ok(());
    }
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    read_msg(&mut conn, &mut buf)?;
    match wire::parse(&buf, ctx.key.as_ref(), MAX_BULK_MESSAGE) {
        Ok(m) if m.body == Body::Request => {}
        Ok(_) => {
            ctx.stats.with(|c| c.drop("bad_kind", 1));
            return Ok(());
        }
        Err(why) => {
            ctx.stats.with(|c| c.drop(why.label(), 1));
            return Ok(());
        }
    }
    let t0 = Instant::now();
    let dir = ctx.directory().unwrap_or_default();
    let tables = ctx.handles.tables()?;
    let mut b = Builder::new(
        Kind::BulkPage,
        ctx.sender,
        ctx.key.clone(),
        MAX_BULK_MESSAGE,
    );
    let (mut seq, mut total) = (0u32, 0u64);
    for r in tables.records(&dir) {
        if !b.push(&r) {
            seq += 1;
            write_msg(&mut conn, &b.finish(seq, unix_us(), None))?;
            b.push(&r);
        }
        total += 1;
    }
    if !b.is_empty() {
        seq += 1;
        write_msg(&mut conn, &b.finish(seq, unix_us(), None))?;
    }
    let mut end = Builder::new(Kind::BulkEnd, ctx.sender, ctx.key.clone(), MAX_BULK_MESSAGE);
    write_msg(&mut conn, &end.finish(seq + 1, unix_us(), Some(total)))?;
    conn.flush()?;
    ctx.stats.with(|c| c.bulk_served += 1);
    let took_ms = t0.elapsed().as_millis() as u64;
    info!(%peer, records = total, took_ms, "sent the connection table to a peer");
    Ok(())
}

/// Asks the peers in turn for their whole table until one sends it, within the timeout.
fn bulk_client(ctx: &Ctx) {
    let t0 = Instant::now();
    let deadline = t0 + ctx.cfg.bulk_sync_timeout;
    // The records are mapped to this node's reals: wait for the first data-path state.
    while ctx.directory().is_none() && Instant::now() < deadline && !ctx.stopped() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut outcome = "no peer answered";
    for peer in &ctx.peers {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            outcome = "timed out";
            break;
        }
        match fetch(ctx, *peer, deadline) {
            Ok((records, applied)) => {
                let took = t0.elapsed();
                info!(%peer, records, applied, took_ms = took.as_millis() as u64, "bulk sync done");
                ctx.stats.with(|c| {
                    c.bulk.state = "done";
                    c.bulk.peer = Some(*peer);
                    c.bulk.records = records;
                    c.bulk.applied = applied;
                    c.bulk.took = Some(took);
                });
                return;
            }
            Err(e) => {
                let timed_out = Instant::now() >= deadline;
                if timed_out {
                    outcome = "timed out";
                }
                info!(%peer, error = %format!("{e:#}"), "bulk sync from this peer failed");
                if timed_out {
                    break;
                }
            }
        }
    }
    warn!(
        outcome,
        "bulk sync did not complete; going on without a peer's table"
    );
    ctx.stats.with(|c| {
        c.bulk.state = outcome;
        c.bulk.took = Some(t0.elapsed());
    });
}

/// One bulk sync from `peer`: (records received, applied).
fn fetch(ctx: &Ctx, peer: IpAddr, deadline: Instant) -> Result<(u64, u64)> {
    let left = deadline.saturating_duration_since(Instant::now());
    let addr = SocketAddr::new(peer, ctx.cfg.port);
    let mut conn = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(left))
        .with_context(|| format!("connecting to {addr}"))?;
    let mut req = Builder::new(Kind::BulkRequest, ctx.sender, ctx.key.clone(), MAX_DATAGRAM);
    write_msg(&mut conn, &req.finish(0, unix_us(), None))?;
    ctx.stats.with(|c| c.bulk.peer = Some(peer));
    let mut tables = ctx.handles.tables()?;
    let (mut records, mut applied) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(!left.is_zero(), "timed out after {records} records");
        conn.set_read_timeout(Some(left))?;
        read_msg(&mut conn, &mut buf).context("reading the table")?;
        let msg = wire::parse(&buf, ctx.key.as_ref(), MAX_BULK_MESSAGE)
            .map_err(|why| anyhow::anyhow!("the peer sent a bad message: {}", why.label()))?;
        match msg.body {
            Body::Records(recs) => {
                records += recs.len() as u64;
                applied += apply(ctx, &mut tables, &recs);
                ctx.stats.with(|c| {
                    c.bulk.records = records;
                    c.bulk.applied = applied;
                });
            }
            Body::End { total } => {
                anyhow::ensure!(
                    total == records,
                    "the peer announced {total} records and sent {records}"
                );
                return Ok((records, applied));
            }
            Body::Request => anyhow::bail!("the peer sent a request"),
        }
    }
}
