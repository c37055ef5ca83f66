//! Traffic from the client namespace: which real answers, over real sockets.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::netns::Netns;

const TIMEOUT: Duration = Duration::from_secs(2);

/// One HTTP GET on a new connection; returns the name of the real that served it.
pub fn http_get(addr: SocketAddr) -> Result<String> {
    get_on(TcpStream::connect_timeout(&addr, TIMEOUT)?)
}

/// Sends one GET on a connected stream; the real named in the answer.
fn get_on(mut stream: TcpStream) -> Result<String> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    stream.read_to_string(&mut resp)?;
    resp.lines()
        .find_map(|l| l.strip_prefix("X-Served-By: "))
        .map(|s| s.trim().to_owned())
        .context("no X-Served-By header")
}

/// One HTTP GET on a new connection from a port chosen before connecting, so a failure can be
/// traced (`lb-agent explain`): (our address, the real that served it or the error).
pub fn http_get_traced(addr: SocketAddr) -> Result<(SocketAddr, Result<String>)> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SockAddr::from(SocketAddr::from((
        Ipv4Addr::UNSPECIFIED,
        0,
    ))))?;
    let local = s
        .local_addr()?
        .as_socket()
        .context("bound socket has no address")?;
    let served = (|| {
        s.connect_timeout(&SockAddr::from(addr), TIMEOUT)?;
        get_on(s.into())
    })();
    Ok((local, served))
}

/// `n` GETs on new connections from the client namespace; the name of the real per request
/// (or the error).
pub fn http_many(
    client: &Netns,
    addr: SocketAddr,
    n: usize,
) -> Result<Vec<Result<String, String>>> {
    client.enter(move || {
        (0..n)
            .map(|_| http_get(addr).map_err(|e| format!("{e:#}")))
            .collect()
    })
}

/// `n` UDP datagrams from distinct source ports; the real that answered each.
pub fn udp_many(client: &Netns, addr: SocketAddr, n: usize) -> Result<Vec<Result<String, String>>> {
    client.enter(move || {
        (0..n)
            .map(|i| -> Result<String, String> {
                let any: SocketAddr = if addr.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(any).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(TIMEOUT))
                    .map_err(|e| e.to_string())?;
                s.connect(addr).map_err(|e| e.to_string())?;
                s.send(format!("ping {i}").as_bytes())
                    .map_err(|e| e.to_string())?;
                let mut buf = [0u8; 512];
                let n = s.recv(&mut buf).map_err(|e| format!("no reply: {e}"))?;
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                Ok(text.split(' ').next().unwrap_or("").to_owned())
            })
            .collect()
    })
}

/// A long-lived TCP connection in line mode: each `ping` gets "<real> <line>" back.
pub struct LongConn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub real: String,
}

impl LongConn {
    pub fn open(client: &Netns, addr: SocketAddr) -> Result<LongConn> {
        Self::open_with(client, addr, TIMEOUT)
    }

    /// As `open`, waiting up to `timeout` for each answer (long enough for TCP to retransmit
    /// across an outage).
    pub fn open_with(client: &Netns, addr: SocketAddr, timeout: Duration) -> Result<LongConn> {
        let stream = client.enter(move || TcpStream::connect_timeout(&addr, TIMEOUT))??;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut c = LongConn {
            stream,
            reader,
            real: String::new(),
        };
        c.real = c.ping(0)?;
        Ok(c)
    }

    /// The client side of the connection.
    pub fn local(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    /// Sends one line and returns the real that answered it.
    pub fn ping(&mut self, seq: u64) -> Result<String> {
        writeln!(self.stream, "seq {seq}")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let real = parts.next().unwrap_or("").to_owned();
        if parts.next() != Some("seq") || parts.next() != Some(seq.to_string().as_str()) {
            bail!("unexpected answer {line:?} to seq {seq}");
        }
        Ok(real)
    }
}

/// Counts of each real in a list of answers; errors counted under "error".
pub fn tally(results: &[Result<String, String>]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in results {
        let k = match r {
            Ok(n) => n.clone(),
            Err(_) => "error".to_owned(),
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Sends a UDP datagram through the VIP every `interval` from one socket (one flow), and
/// records which were answered: lost probes are what a client would have seen.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sender: Option<std::thread::JoinHandle<Vec<std::time::Instant>>>,
    receiver: Option<std::thread::JoinHandle<Vec<(u64, std::time::Instant)>>>,
}

/// What a prober saw.
#[derive(Debug)]
pub struct ProbeReport {
    pub sent: usize,
    pub answered: usize,
    pub lost: usize,
    /// The longest stretch without an answer (between consecutive answered probes' sends).
    pub longest_gap: Duration,
    /// Send times of the probes that got no answer.
    pub lost_at: Vec<std::time::Instant>,
    /// The same, as wall-clock times (to compare with agent logs).
    pub lost_wall: Vec<std::time::SystemTime>,
    /// Sequence numbers of the lost probes.
    pub lost_seq: Vec<usize>,
}

impl Prober {
    pub fn start(client: &Netns, addr: SocketAddr, interval: Duration) -> Result<Prober> {
        let sock = client.enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))??;
        sock.connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let rsock = sock.try_clone()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s1 = stop.clone();
        let sender = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let start = std::time::Instant::now();
            let mut seq: u64 = 0;
            while !s1.load(std::sync::atomic::Ordering::Relaxed) {
                let due = start + interval * seq as u32;
                let now = std::time::Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let _ = sock.send(format!("probe {seq}").as_bytes());
                sent.push(std::time::Instant::now());
                seq += 1;
            }
            sent
        });
        let s2 = stop.clone();
        let receiver = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                match rsock.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if let Some(seq) =
                            text.split_whitespace().nth(2).and_then(|s| s.parse().ok())
                        {
                            got.push((seq, std::time::Instant::now()));
                        }
                    }
                    Err(_) => {
                        if s2.load(std::sync::atomic::Ordering::Relaxed) {
                            return got;
                        }
                    }
                }
            }
        });
        Ok(Prober {
            stop,
            sender: Some(sender),
            receiver: Some(receiver),
        })
    }

    /// Stops probing; probes sent in the last 300 ms are not judged (their answers may still
    /// be on the way when the receiver stops).
    pub fn finish(mut self) -> ProbeReport {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = self
            .sender
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let got = self
            .receiver
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let cutoff = sent.len().saturating_sub(30);
        let answered: std::collections::BTreeSet<u64> = got
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| (*s as usize) < cutoff)
            .collect();
        let lost_seq: Vec<usize> = (0..cutoff)
            .filter(|i| !answered.contains(&(*i as u64)))
            .collect();
        let lost_at: Vec<std::time::Instant> = lost_seq.iter().map(|i| sent[*i]).collect();
        let mut longest_gap = Duration::ZERO;
        let mut prev: Option<std::time::Instant> = None;
        for s in &answered {
            let t = sent[*s as usize];
            if let Some(p) = prev {
                longest_gap = longest_gap.max(t - p);
            }
            prev = Some(t);
        }
        let (wall, mono) = (std::time::SystemTime::now(), std::time::Instant::now());
        let lost_wall = lost_at.iter().map(|t| wall - (mono - *t)).collect();
        ProbeReport {
            lost_seq,
            lost_wall,
            sent: cutoff,
            answered: answered.len(),
            lost: cutoff - answered.len(),
            longest_gap,
            lost_at,
        }
    }
}

/// Asks `addr` (an `lb-testsrv`) for `n` bytes on a new connection from `client`; returns how
/// many arrived before the transfer completed or stalled for `stall`.
pub fn bulk(client: &Netns, addr: SocketAddr, n: usize, stall: Duration) -> Result<usize> {
    client.enter(move || -> Result<usize> {
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.set_read_timeout(Some(stall))?;
        writeln!(s, "BULK {n}")?;
        let mut got = 0;
        let mut buf = vec![0u8; 65536];
        while got < n {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(got)
    })?
}

/// One HTTP GET from `src` (an address of the client namespace, bound before connecting);
/// the real that served it.
pub fn http_get_from(src: Ipv4Addr, addr: SocketAddr) -> Result<String> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SockAddr::from(SocketAddr::from((src, 0))))?;
    s.connect_timeout(&SockAddr::from(addr), TIMEOUT)?;
    get_on(s.into())
}

/// New connections through the VIP, one after another, until stopped: (sent, failed).
pub struct Requests {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Result<usize>>,
}

impl Requests {
    pub fn start(client: &Netns, addr: SocketAddr) -> Result<Requests> {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, f) = (stop.clone(), failed.clone());
        let thread = client.thread(move || {
            let mut sent = 0;
            while !s.load(Ordering::Relaxed) {
                sent += 1;
                if http_get(addr).is_err() {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            sent
        })?;
        Ok(Requests {
            stop,
            failed,
            thread,
        })
    }

    /// Stops; (requests sent, requests failed).
    pub fn finish(self) -> Result<(usize, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("request thread panicked"))??;
        Ok((sent, self.failed.load(Ordering::Relaxed)))
    }
}

/// Many UDP flows through a service, each from a socket of its own (its own source port): a
/// connection-table entry each on the balancer. `check` asks again from every socket and
/// tells which flows kept their real.
pub struct UdpFlows {
    socks: Vec<UdpSocket>,
    pub reals: Vec<String>,
}

/// How the flows fared: kept their real, answered by another, or not answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowsReport {
    pub same: usize,
    pub moved: usize,
    pub lost: usize,
}

impl std::fmt::Display for FlowsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} UDP flows: {} same, {} moved, {} unanswered",
            self.same + self.moved + self.lost,
            self.same,
            self.moved,
            self.lost
        )
    }
}

fn ask(s: &UdpSocket, seq: usize) -> Result<String> {
    s.send(format!("ping {seq}").as_bytes())?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf)?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Ok(text.split(' ').next().unwrap_or("").to_owned())
}

impl UdpFlows {
    pub fn open(client: &Netns, addr: SocketAddr, n: usize) -> Result<UdpFlows> {
        let socks = client.enter(move || -> Result<Vec<UdpSocket>> {
            (0..n)
                .map(|_| {
                    let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
                    s.set_read_timeout(Some(TIMEOUT))?;
                    s.connect(addr)?;
                    Ok(s)
                })
                .collect()
        })??;
        let reals = socks
            .iter()
            .enumerate()
            .map(|(i, s)| ask(s, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(UdpFlows { socks, reals })
    }

    pub fn check(&self) -> FlowsReport {
        let mut r = FlowsReport::default();
        for (i, (s, real)) in self.socks.iter().zip(&self.reals).enumerate() {
            match ask(s, i) {
                Ok(now) if now == *real => r.same += 1,
                Ok(_) => r.moved += 1,
                Err(_) => r.lost += 1,
            }
        }
        r
    }
}
