//! VRRP (v2 RFC 3768, v3 RFC 5798 / RFC 9568), keepalived-compatible: the advertisement wire
//! format ([`packet`]), the timer arithmetic of the RFCs ([`timers`]), the sans-IO protocol
//! core ([`state`]), and the agent's side of it: sockets ([`io`]) and gratuitous ARP ([`garp`]).
//!
//! Nothing in `packet`, `timers` or `state` reads a clock or touches a socket: the driver
//! feeds received datagrams and the current time in, and polls actions and the next deadline
//! out. That keeps every protocol rule testable at exact virtual times (see `sim`).

pub mod garp;
pub mod io;
pub mod packet;
pub mod state;
pub mod timers;

#[cfg(test)]
mod pcap;
#[cfg(test)]
mod sim;
