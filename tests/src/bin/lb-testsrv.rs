//! A tiny real server for tests and the lab. Answers HTTP GETs (keep-alive) and text lines on
//! TCP, and datagrams on UDP, always naming itself, so a client can tell which real served it.
//!
//!   lb-testsrv --name r1 --tcp 0.0.0.0:80 --udp 10.99.0.100:80
//!
//! Bind UDP to the VIP itself: a reply must leave from the address the client sent to.
//! `--status 503` makes HTTP answers fail (health-check tests); `--body TEXT` changes the body.
//! The line `BULK n` gets `n` bytes back in one write (large replies: path MTU tests).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::Arc,
    thread,
};

struct Opts {
    name: String,
    tcp: Vec<String>,
    udp: Vec<String>,
    status: u16,
    body: Option<String>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        name: "real".into(),
        tcp: vec![],
        udp: vec![],
        status: 200,
        body: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--name" => o.name = val()?,
            "--tcp" => o.tcp.push(val()?),
            "--udp" => o.udp.push(val()?),
            "--status" => o.status = val()?.parse().map_err(|_| "bad --status")?,
            "--body" => o.body = Some(val()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn serve_tcp(stream: TcpStream, o: &Opts) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.starts_with("GET ") || line.starts_with("HEAD ") {
            // Skip headers up to the blank line.
            let mut close = false;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h)? == 0 {
                    return Ok(());
                }
                if h.to_ascii_lowercase().starts_with("connection: close") {
                    close = true;
                }
                if h == "\r\n" || h == "\n" {
                    break;
                }
            }
            let body = o.body.clone().unwrap_or_else(|| format!("{}\n", o.name));
            let reason = if o.status == 200 { "OK" } else { "Error" };
            write!(
                w,
                "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nX-Served-By: {}\r\n{}\r\n{body}",
                o.status,
                body.len(),
                o.name,
                if close { "Connection: close\r\n" } else { "" }
            )?;
            if close {
                return Ok(());
            }
        } else if let Some(n) = line.trim().strip_prefix("BULK ") {
            let n: usize = n.parse().unwrap_or(0);
            w.write_all(&vec![b'x'; n])?;
        } else {
            write!(w, "{} {}", o.name, line)?;
        }
    }
}

fn main() {
    let o = match parse() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("lb-testsrv: {e}");
            std::process::exit(2);
        }
    };
    let mut handles = Vec::new();
    for addr in o.tcp.clone() {
        let l = TcpListener::bind(&addr).unwrap_or_else(|e| {
            eprintln!("lb-testsrv: bind tcp {addr}: {e}");
            std::process::exit(1);
        });
        let o = o.clone();
        handles.push(thread::spawn(move || {
            for s in l.incoming().flatten() {
                let o = o.clone();
                thread::spawn(move || {
                    let _ = serve_tcp(s, &o);
                });
            }
        }));
    }
    for addr in o.udp.clone() {
        let s = UdpSocket::bind(&addr).unwrap_or_else(|e| {
            eprintln!("lb-testsrv: bind udp {addr}: {e}");
            std::process::exit(1);
        });
        let o = o.clone();
        handles.push(thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let mut reply = format!("{} ", o.name).into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.send_to(&reply, from);
            }
        }));
    }
    // Tell the parent we are listening.
    println!("ready");
    let _ = std::io::stdout().flush();
    for h in handles {
        let _ = h.join();
    }
}
