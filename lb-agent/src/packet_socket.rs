//! Sending whole Ethernet frames on an AF_PACKET socket (gratuitous ARP, the VIP probe).

use std::{io, os::fd::RawFd};

/// Sends `frame` out of interface `ifindex` to `dst_mac`.
pub fn send_frame(
    fd: RawFd,
    ifindex: u32,
    ethertype: u16,
    dst_mac: [u8; 6],
    frame: &[u8],
) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&dst_mac);
    // SAFETY: sendto with a valid buffer and an address of the right length.
    let rc = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
