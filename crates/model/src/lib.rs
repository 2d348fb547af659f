//! apmatrix-model: an exact, I/O-free model of IBM Z crypto passthrough on a
//! Linux KVM host — the s390 AP bus with its `apmask`/`aqmask`, queue
//! binding, the `vfio_ap` matrix device and its mediated devices (mdevs), and
//! the guests that use them — with the kernel's errno for every refusal.
//!
//! The semantics are those of the vfio_ap "dynamic configuration" document
//! (`shared/spec/seed-system.md`); rules that differ between kernel
//! generations live in [`profile`].
//!
//! ```
//! use apmatrix_model::{Host, MaskKind, MatrixAxis, Errno};
//!
//! let mut host = Host::seed_example();
//! host.write_mask(MaskKind::Apmask, b"-5,-6\n").unwrap();
//! let mdev = host.write_create(b"669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4\n").unwrap().unwrap();
//! host.write_assign(&mdev, MatrixAxis::Adapter, b"5\n").unwrap();
//! host.write_assign(&mdev, MatrixAxis::Domain, b"0xab\n").unwrap();
//! assert_eq!(host.mdev(&mdev).unwrap().matrix_text(), "05.00ab\n");
//! // adapter 4 still belongs to the host:
//! let err = host.write_assign(&mdev, MatrixAxis::Adapter, b"4").unwrap_err();
//! assert_eq!(err.errno(), Errno::EADDRNOTAVAIL);
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod host;
pub mod ids;
pub mod mask;
pub mod parse;
pub mod profile;
pub mod topology;
pub mod uevent;
pub mod vfio;

pub use error::{ApError, ApqnList, Errno, MaskKind};
pub use host::{
    given_back, host_owns, reclaimed, ApqnState, Changes, Clash, Driver, Effects, Guest,
    GuestUpdate, Host, HostState, Occupancy, Op, Rebind, StateError, Unavailable, WriteTarget,
    Written,
};
pub use ids::{AdapterId, Apqn, DomainId, MatrixAxis};
pub use mask::Mask256;
pub use profile::{KernelProfile, SEED};
pub use topology::{Card, CardMode, Topology};
pub use vfio::{CpuModel, Crycb, GuestView, Mdev};
