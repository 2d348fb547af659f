//! udev's side of the emulated host: the monitor messages a real udevd
//! would broadcast for the kernel's uevents, sent into the private network
//! namespace of `apmatrix exec`, so that libudev clients (libvirt's node
//! devices, `udevadm monitor`) learn of changes as on a real host.

mod broadcast;
pub mod message;

pub use broadcast::Broadcaster;
