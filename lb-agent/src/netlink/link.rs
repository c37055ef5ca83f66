//! Interfaces: index, MAC and whether the link is up (for `track_interface`).

use std::collections::HashMap;

use anyhow::Result;
use futures::TryStreamExt as _;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};

use super::Netlink;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Administratively up and with carrier (operstate up, or unknown for veth/dummy).
    pub up: bool,
}

fn from_message(m: &LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = None;
    let mut oper = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut b = [0u8; 6];
                b.copy_from_slice(a);
                mac = Some(b);
            }
            LinkAttribute::OperState(s) => oper = Some(*s),
            _ => {}
        }
    }
    let admin = m.header.flags.contains(LinkFlags::Up);
    let carrier = m.header.flags.contains(LinkFlags::LowerUp);
    let up = admin && carrier && !matches!(oper, Some(State::Down | State::LowerLayerDown));
    Link {
        index: m.header.index,
        name,
        mac,
        up,
    }
}

impl Netlink {
    /// All interfaces by index.
    pub async fn links(&self) -> Result<HashMap<u32, Link>> {
        let mut out = HashMap::new();
        let mut s = self.handle.link().get().execute();
        while let Some(m) = s.try_next().await? {
            let l = from_message(&m);
            out.insert(l.index, l);
        }
        Ok(out)
    }

    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(from_message(&m))),
            Ok(None) => Ok(None),
            // ENODEV comes back as an error message.
            Err(rtnetlink::Error::NetlinkError(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
