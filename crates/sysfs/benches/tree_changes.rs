//! What a served change costs beyond the model's own operation: the copy
//! of the host the server keeps to compare against, and `tree_changes`
//! (the entries the kernel must forget), at the model benchmarks' full
//! scale: 256 adapters x 256 domains, all bound to vfio_ap, 4,080 mdevs
//! holding 16 APQNs each (adapters 0-254; adapter 255 is free).
//!
//! And `seed`: the change loop of `scripts/bench-fuse` on the seed host,
//! limited to what the kernel holds in that loop, as the server limits it.
//!
//! `cargo bench -p apmatrix-sysfs --bench tree_changes -- --measurement-time 3`

use std::hint::black_box;

use std::collections::BTreeSet;

use apmatrix_model::{Host, Mask256, MaskKind, MatrixAxis, Topology, SEED};
use apmatrix_sysfs::{tree_changes, tree_changes_known, Cached, Dir};
use criterion::{criterion_group, criterion_main, Criterion};
use uuid::Uuid;

const MDEVS: usize = 4080;

fn uuid(i: usize) -> Uuid {
    Uuid::from_u128(0x5ca1_e000_0000_4000_8000_0000_0000_0000 + i as u128)
}

/// Mdev `i`: adapter `i / 16` x domains `16 * (i % 16) ..= +15`.
fn full_host() -> Host {
    let mut host = Host::new(Topology::synthetic(256, 256), &SEED);
    host.set_mask(MaskKind::Apmask, Mask256::EMPTY).unwrap();
    for i in 0..MDEVS {
        let u = uuid(i);
        host.create_mdev(u).unwrap();
        host.assign(&u, MatrixAxis::Adapter, (i / 16) as u64)
            .unwrap();
        let first = (i % 16) as u64 * 16;
        for d in first..first + 16 {
            host.assign(&u, MatrixAxis::Domain, d).unwrap();
        }
    }
    host
}

/// The server's cost of one change `op` on `host`: a copy before it, then
/// the tree's changes.
fn bench_change(c: &mut Criterion, name: &str, host: &Host, op: impl Fn(&mut Host)) {
    let mut after = host.clone();
    op(&mut after);
    let changes = tree_changes(host, &after);
    assert!(!changes.is_empty(), "{name} must change the tree");
    eprintln!("{name}: {} tree changes", changes.len());
    c.bench_function(&format!("changes_since/{name}"), |b| {
        b.iter(|| black_box(black_box(&after).changes_since(black_box(host))))
    });
    c.bench_function(&format!("tree_changes/{name}"), |b| {
        b.iter(|| black_box(tree_changes(black_box(host), black_box(&after))))
    });
}

fn benches(c: &mut Criterion) {
    let host = full_host();
    c.bench_function("clone/full_host", |b| b.iter(|| black_box(host.clone())));
    bench_change(c, "unassign_domain", &host, |h| {
        h.unassign(&uuid(0xaa * 16 + 0xa), MatrixAxis::Domain, 0xa5)
            .unwrap();
    });
    bench_change(c, "apmask_gives_back_adapter_255", &host, |h| {
        let mut mask = Mask256::EMPTY;
        mask.set(255);
        h.set_mask(MaskKind::Apmask, mask).unwrap();
    });
    bench_change(c, "create_mdev", &host, |h| {
        h.create_mdev(uuid(MDEVS)).unwrap();
    });
    bench_change(c, "remove_mdev", &host, |h| {
        h.remove_mdev(&uuid(7)).unwrap();
    });
}

/// What the kernel holds in `scripts/bench-fuse`'s `change` loop: the
/// paths to the mdev's two attributes, the tree's top directories, and the
/// listing of `bus/ap/devices`.
struct Held(BTreeSet<String>, Vec<Dir>);

impl Cached for Held {
    fn holds(&self, path: &str) -> bool {
        self.0.contains(path)
    }
    fn holds_dir(&self, dir: Dir) -> bool {
        self.1.contains(&dir)
    }
    fn holds_listing(&self, path: &str) -> bool {
        path == "bus/ap/devices"
    }
    fn names_in(&self, path: &str) -> Option<Vec<String>> {
        let prefix = format!("{path}/");
        let names = self.0.iter().filter_map(|p| p.strip_prefix(&prefix));
        Some(
            names
                .filter(|n| !n.contains('/'))
                .map(String::from)
                .collect(),
        )
    }
}

/// The change loop of `scripts/bench-fuse` on the seed host: an mdev with
/// adapters 4-6 x 6 domains, domain 4 unassigned, limited to what the
/// kernel holds then.
fn seed_change(c: &mut Criterion) {
    let mut host = Host::seed_example();
    let apmask = host.apmask().and_not(&Mask256::range(4, 6));
    host.set_mask(MaskKind::Apmask, apmask).unwrap();
    let u = uuid(0);
    host.create_mdev(u).unwrap();
    for a in [4, 5, 6] {
        host.assign(&u, MatrixAxis::Adapter, a).unwrap();
    }
    for d in [4, 5, 6, 0x47, 0xab, 0xff] {
        host.assign(&u, MatrixAxis::Domain, d).unwrap();
    }
    let mdev = format!("devices/vfio_ap/matrix/{u}");
    let held = Held(
        [
            "",
            "bus",
            "bus/ap",
            "bus/ap/apmask",
            "bus/ap/devices",
            "devices",
            "devices/vfio_ap",
            "devices/vfio_ap/matrix",
        ]
        .into_iter()
        .map(String::from)
        .chain([
            mdev.clone(),
            format!("{mdev}/assign_domain"),
            format!("{mdev}/unassign_domain"),
        ])
        .collect(),
        vec![
            Dir::Root,
            Dir::Bus,
            Dir::BusAp,
            Dir::BusApDevices,
            Dir::Devices,
            Dir::DevicesVfioAp,
            Dir::Matrix,
            Dir::Mdev(u),
        ],
    );
    let mut after = host.clone();
    after.unassign(&u, MatrixAxis::Domain, 4).unwrap();
    c.bench_function("tree_changes_known/seed_unassign_domain", |b| {
        b.iter(|| {
            black_box(tree_changes_known(
                black_box(&host),
                black_box(&after),
                &held,
            ))
        })
    });
}

criterion_group! {
    name = seed;
    config = Criterion::default().sample_size(30);
    targets = seed_change
}

criterion_group! {
    name = tree;
    config = Criterion::default().sample_size(30);
    targets = benches
}
criterion_main!(seed, tree);
