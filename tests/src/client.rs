//! Traffic from the client namespace: which real answers, over real sockets.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::netns::Netns;

const TIMEOUT: Duration = Duration::from_secs(2);

/// One HTTP GET on a new connection; returns the name of the real that served it.
pub fn http_get(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    resp.lines()
        .find_map(|l| l.strip_prefix("X-Served-By: "))
        .map(|s| s.trim().to_owned())
        .context("no X-Served-By header")
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
                let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
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
        let stream = client.enter(move || TcpStream::connect_timeout(&addr, TIMEOUT))??;
        stream.set_read_timeout(Some(TIMEOUT))?;
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
