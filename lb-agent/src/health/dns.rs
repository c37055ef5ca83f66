//! `DNS_CHECK`: one query to the real (UDP, or TCP with its two-byte length prefix), encoded and
//! decoded with `hickory-proto`. Up when a response with the query's id (and question) arrives
//! within the timeout, and, if asked, with the expected response code or a non-empty answer.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    time::Instant,
};

use super::probe::{fmt_duration, Outcome, Target};

/// `DNS_CHECK` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    pub connect_port: Option<u16>,
    pub name: String,
    pub qtype: String,
    pub tcp: bool,
    /// Only this response code is up (`None`: any response).
    pub rcode: Option<u16>,
    pub require_answer: bool,
    pub bind_to: Option<std::net::IpAddr>,
    pub connect_timeout: Duration,
    /// Ask on the VIP through the real (see `super::vip`).
    pub probe_vip: Option<std::net::IpAddr>,
}

/// A record type from its mnemonic (`SOA`) or number.
pub fn record_type(s: &str) -> Option<RecordType> {
    match s.parse::<u16>() {
        Ok(n) => Some(RecordType::from(n)),
        Err(_) => RecordType::from_str(&s.to_ascii_uppercase()).ok(),
    }
}

/// A response code from its name (RFC 1035 / 6895) or number.
pub fn rcode(s: &str) -> Option<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return (n < 4096).then_some(n);
    }
    Some(match s.to_ascii_uppercase().as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        _ => return None,
    })
}

/// The query, with `id`.
pub fn query(c: &DnsCheck, id: u16) -> Result<Vec<u8>, String> {
    let name = Name::from_ascii(&c.name).map_err(|e| format!("name {}: {e}", c.name))?;
    let qtype = record_type(&c.qtype).ok_or_else(|| format!("record type {}", c.qtype))?;
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name, qtype));
    m.to_vec().map_err(|e| format!("encoding the query: {e}"))
}

/// Judges a response to the query with `id`: `Ok(reason)` up, `Err(reason)` down, `None` not
/// an answer to it (another id: keep waiting).
pub fn judge(c: &DnsCheck, id: u16, bytes: &[u8]) -> Option<Result<String, String>> {
    let m = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => return Some(Err(format!("malformed DNS response: {e}"))),
    };
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return None;
    }
    let code = u16::from(m.metadata.response_code);
    let name = m.metadata.response_code.to_str().to_owned();
    if let Some(want) = c.rcode {
        if code != want {
            return Some(Err(format!("rcode {name}")));
        }
    }
    if c.require_answer && m.answers.is_empty() {
        return Some(Err(format!("rcode {name}, no answer")));
    }
    Some(Ok(format!("rcode {name}, {} answer(s)", m.answers.len())))
}

fn query_id() -> u16 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0x5eed);
    (n ^ (n >> 16)) as u16
}

pub async fn check(c: &DnsCheck, target: &Target) -> Outcome {
    let start = Instant::now();
    let addr = target.socket_addr(c.connect_port);
    let id = query_id();
    let result = match query(c, id) {
        Err(e) => Err(e),
        Ok(q) => {
            if let Some(vip) = c.probe_vip {
                super::vip::udp_exchange(target, vip, addr.port(), &q, c.connect_timeout, |r| {
                    judge(c, id, r)
                })
                .await
            } else if c.tcp {
                over_tcp(c, addr, id, &q).await
            } else {
                over_udp(c, addr, id, &q).await
            }
        }
    };
    match result {
        Ok(reason) => Outcome::up(reason, start.elapsed()),
        Err(reason) => Outcome::down(reason, start.elapsed()),
    }
}

async fn over_udp(c: &DnsCheck, addr: SocketAddr, id: u16, q: &[u8]) -> Result<String, String> {
    let sock = super::udp::connected(addr, c.bind_to).await?;
    sock.send(q).await.map_err(|e| super::udp::send_error(&e))?;
    let deadline = Instant::now() + c.connect_timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Err(format!("no answer in {}", fmt_duration(c.connect_timeout))),
            Ok(Err(e)) => return Err(super::udp::recv_error(&e)),
            Ok(Ok(n)) => n,
        };
        if let Some(verdict) = judge(c, id, &buf[..n]) {
            return verdict;
        }
    }
}

async fn over_tcp(c: &DnsCheck, addr: SocketAddr, id: u16, q: &[u8]) -> Result<String, String> {
    let deadline = Instant::now() + c.connect_timeout;
    let mut stream = super::tcp::connect(addr, c.bind_to, c.connect_timeout).await?;
    let exchange = async {
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(q);
        stream
            .write_all(&framed)
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            let len = stream.read_u16().await.map_err(|e| format!("read: {e}"))?;
            let mut buf = vec![0u8; usize::from(len)];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if let Some(verdict) = judge(c, id, &buf) {
                return verdict;
            }
        }
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => Err(format!("no answer in {}", fmt_duration(c.connect_timeout))),
        Ok(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DnsCheck {
        DnsCheck {
            connect_port: None,
            name: "health.lab".into(),
            qtype: "A".into(),
            tcp: false,
            rcode: None,
            require_answer: false,
            bind_to: None,
            connect_timeout: Duration::from_millis(500),
            probe_vip: None,
        }
    }

    /// A response to `q` with `rcode` and `answers` A records.
    fn respond(q: &[u8], rcode: u16, answers: usize) -> Vec<u8> {
        let mut m = Message::from_vec(q).expect("query");
        m.metadata.message_type = MessageType::Response;
        m.metadata.response_code = hickory_proto::op::ResponseCode::from(0, rcode as u8);
        for _ in 0..answers {
            m.add_answer(hickory_proto::rr::Record::from_rdata(
                Name::from_ascii("health.lab.").expect("name"),
                60,
                hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
            ));
        }
        m.to_vec().expect("encode")
    }

    #[test]
    fn types_and_codes() {
        assert_eq!(record_type("soa"), Some(RecordType::SOA));
        assert_eq!(record_type("AAAA"), Some(RecordType::AAAA));
        assert_eq!(record_type("65"), Some(RecordType::HTTPS));
        assert_eq!(rcode("SERVFAIL"), Some(2));
        assert_eq!(rcode("noerror"), Some(0));
        assert_eq!(rcode("WHATEVER"), None);
    }

    #[test]
    fn judges_by_id_rcode_and_answers() {
        let c = cfg();
        let q = query(&c, 7).expect("query");
        assert!(judge(&c, 7, &respond(&q, 0, 1)).expect("an answer").is_ok());
        assert_eq!(judge(&c, 8, &respond(&q, 0, 1)), None, "another id");
        assert_eq!(judge(&c, 7, &q), None, "a query is no answer");
        assert!(
            judge(&c, 7, &respond(&q, 2, 0)).expect("answer").is_ok(),
            "any rcode"
        );
        let strict = DnsCheck {
            rcode: Some(0),
            require_answer: true,
            ..cfg()
        };
        let servfail = judge(&strict, 7, &respond(&q, 2, 0)).expect("answer");
        assert_eq!(servfail, Err("rcode Server Failure".into()));
        let empty = judge(&strict, 7, &respond(&q, 0, 0)).expect("answer");
        assert!(empty.is_err(), "{empty:?}");
        assert!(judge(&strict, 7, &[1, 2, 3]).expect("garbage").is_err());
    }

    #[tokio::test]
    async fn asks_a_real_udp_server() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = server.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let _ = server.send_to(&respond(&buf[..n], 2, 0), from).await;
            }
        });
        let t = Target::new("127.0.0.1".parse().expect("ip"), port);
        assert!(check(&cfg(), &t).await.ok, "any rcode is up by default");
        let want_noerror = DnsCheck {
            rcode: Some(0),
            ..cfg()
        };
        let out = check(&want_noerror, &t).await;
        assert!(!out.ok && out.reason.contains("Server Failure"), "{out:?}");
        // A closed port: ICMP port unreachable, down at once (not after the timeout).
        let closed = Target::new("127.0.0.1".parse().expect("ip"), 9);
        let patient = DnsCheck {
            connect_timeout: Duration::from_secs(5),
            ..cfg()
        };
        let out = check(&patient, &closed).await;
        assert!(!out.ok && out.reason.contains("unreachable"), "{out:?}");
        assert!(out.latency < patient.connect_timeout, "{out:?}");
    }
}
