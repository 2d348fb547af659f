//! Sends the uevents the model announces as udev monitor messages.

use std::io;
use std::os::fd::OwnedFd;

use apmatrix_model::uevent::{self, Announcer, Device, Uevent};
use apmatrix_model::Host;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

use super::message;

/// libudev's monitor group for messages from udevd ("udev"; the kernel's
/// own is group 1).
const UDEV_GROUP: u32 = 2;

/// A netlink socket in the namespace the clients share, and what the bus
/// remembers to announce.
pub struct Broadcaster {
    socket: OwnedFd,
    announcer: Announcer,
    seqnum: u64,
}

impl Broadcaster {
    /// A broadcaster on a socket of the caller's network namespace. Only
    /// call this in a namespace of our own: everything sent reaches every
    /// udev monitor there.
    pub fn new() -> io::Result<Self> {
        let socket = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )?;
        rustix::net::bind(&socket, &SocketAddrNetlink::new(0, 0))?;
        Ok(Broadcaster {
            socket,
            announcer: Announcer::default(),
            // Any nonzero start: monitors only need SEQNUM to be there.
            seqnum: 1000,
        })
    }

    /// Sends the events of `before` becoming `after`.
    pub fn changed(&mut self, before: &Host, after: &Host) {
        for event in self.announcer.between(before, after) {
            self.send(&event);
        }
    }

    /// Sends the event a write to `device`'s `uevent` asks for.
    pub fn synthetic(&mut self, host: &Host, device: &Device, input: &[u8]) {
        if let Some(event) = uevent::synthetic(host, device, input) {
            self.send(&event);
        }
    }

    fn send(&mut self, event: &Uevent) {
        self.seqnum += 1;
        let mut properties = event.properties(self.seqnum);
        // udevd adds when it first saw the device, in CLOCK_MONOTONIC µs.
        properties.push(("USEC_INITIALIZED".into(), monotonic_usec().to_string()));
        let devtype = event
            .env
            .iter()
            .find(|(k, _)| k == "DEVTYPE")
            .map(|(_, v)| v.as_str());
        let bytes = message::encode(&properties, event.subsystem, devtype);
        let to = SocketAddrNetlink::new(0, 1 << (UDEV_GROUP - 1));
        // A monitor whose buffer is full loses the message, as with udevd;
        // with no monitor at all the kernel drops it (ECONNREFUSED).
        let _ = rustix::net::sendto(&self.socket, &bytes, SendFlags::DONTWAIT, &to);
    }
}

fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
}
