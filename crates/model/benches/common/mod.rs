//! The full-scale hosts the benchmarks measure: 256 adapters x 256 domains
//! (65,536 queues), every queue bound to vfio_ap, 4,096 mdevs.
//!
//! Shared by the bench targets through `mod common;` (a subdirectory, so
//! cargo does not take it for a bench of its own).

#![allow(dead_code)] // each bench target uses a different part

use apmatrix_model::{CpuModel, Host, Mask256, MaskKind, MatrixAxis, Topology, SEED};
use uuid::Uuid;

pub const ADAPTERS: u16 = 256;
pub const DOMAINS: u16 = 256;
pub const QUEUES: u32 = ADAPTERS as u32 * DOMAINS as u32;
pub const MDEVS: usize = 4096;

/// How the 4,096 mdevs split the 65,536 APQNs into disjoint blocks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Mdev `i`: adapter `i / 16` x domains `16 * (i % 16) ..= +15`.
    Rows,
    /// Mdev `i`: domain `i / 16` x adapters `16 * (i % 16) ..= +15`.
    Columns,
}

impl Layout {
    /// (adapters, domains) of mdev `i`.
    pub fn block(self, i: usize) -> (Mask256, Mask256) {
        let one = Mask256::single((i / 16) as u8);
        let first = (i % 16) as u8 * 16;
        let sixteen = Mask256::range(first, first + 15);
        match self {
            Layout::Rows => (one, sixteen),
            Layout::Columns => (sixteen, one),
        }
    }

    /// The index of the mdev holding adapter `a` x domain `d`.
    pub fn holder(self, a: u8, d: u8) -> usize {
        match self {
            Layout::Rows => a as usize * 16 + d as usize / 16,
            Layout::Columns => d as usize * 16 + a as usize / 16,
        }
    }
}

/// The UUID of mdev `i`; ascending with `i`, so `mdevs()` iterates in index order.
pub fn uuid(i: usize) -> Uuid {
    Uuid::from_u128(0x5ca1_e000_0000_4000_8000_0000_0000_0000 + i as u128)
}

/// The guest name used for mdev `i`.
pub fn guest_name(i: usize) -> String {
    format!("guest-{i:04}")
}

/// 256 x 256 with apmask cleared: all 65,536 queues bound to vfio_ap.
pub fn vfio_host() -> Host {
    let mut host = Host::new(Topology::synthetic(ADAPTERS, DOMAINS), &SEED);
    let effects = host.set_mask(MaskKind::Apmask, Mask256::EMPTY).unwrap();
    assert_eq!(effects.rebound_queues(), QUEUES);
    host
}

/// [`vfio_host`] with 4,096 mdevs holding all 65,536 APQNs.
pub fn full_host(layout: Layout) -> Host {
    let mut host = vfio_host();
    for i in 0..MDEVS {
        let u = uuid(i);
        host.create_mdev(u).unwrap();
        let (adapters, domains) = layout.block(i);
        for a in adapters.iter() {
            host.assign(&u, MatrixAxis::Adapter, a as u64).unwrap();
        }
        for d in domains.iter() {
            host.assign(&u, MatrixAxis::Domain, d as u64).unwrap();
        }
    }
    assert_eq!(host.mdev_count(), MDEVS);
    host
}

/// [`vfio_host`] with 4,096 mdevs that have their 16 domains of
/// [`Layout::Rows`] but no adapter yet, so they hold no APQN and every mask
/// may still give queues back to the host.
pub fn planned_host() -> Host {
    let mut host = vfio_host();
    for i in 0..MDEVS {
        let u = uuid(i);
        host.create_mdev(u).unwrap();
        for d in Layout::Rows.block(i).1.iter() {
            host.assign(&u, MatrixAxis::Domain, d as u64).unwrap();
        }
    }
    assert_eq!(host.mdev_count(), MDEVS);
    host
}

/// Starts one guest on each of the first `n` mdevs.
pub fn start_guests(host: &mut Host, n: usize) {
    for i in 0..n {
        host.start_guest(&guest_name(i), Some(uuid(i)), CpuModel::default())
            .unwrap();
    }
}
