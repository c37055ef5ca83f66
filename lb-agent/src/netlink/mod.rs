//! rtnetlink: interfaces, addresses (the VIPs) and neighbours (the reals' MACs).

pub mod addr;
pub mod link;
pub mod neigh;

use anyhow::{Context as _, Result};
use rtnetlink::Handle;

/// A netlink connection whose background task runs on the current tokio runtime.
#[derive(Clone)]
pub struct Netlink {
    pub(crate) handle: Handle,
}

impl Netlink {
    pub fn connect() -> Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }
}
