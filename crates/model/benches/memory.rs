//! The memory a full-scale host takes: 256 adapters x 256 domains (65,536
//! queues, all bound to vfio_ap), 4,096 mdevs holding every APQN in disjoint
//! 1 x 16 blocks, and a running guest on every mdev.
//!
//! A counting global allocator wraps the system allocator; the host's heap is
//! the bytes allocated minus the bytes freed while building it (garbage such
//! as returned `Effects` and formatted names is freed before each reading).
//! Target (docs/PERFORMANCE.md): the whole state at most 8 MiB. Exits with
//! status 1 if the state (heap + `size_of::<Host>()`) exceeds it.
//!
//! `cargo bench -p apmatrix-model --bench memory`

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use apmatrix_model::{Driver, Guest, Host, Mask256, MaskKind, Mdev, Topology, SEED};
use common::{guest_name, start_guests, uuid, Layout as Blocks, ADAPTERS, DOMAINS, MDEVS, QUEUES};

const TARGET_BYTES: usize = 8 * 1024 * 1024;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
/// The same, rounded the way glibc malloc sizes its chunks (an estimate of
/// what the process really pays, allocator overhead included).
static CHUNK_ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static CHUNK_FREED: AtomicUsize = AtomicUsize::new(0);

/// glibc: 8 bytes of header, 16-byte granules, 32 bytes at least; from the
/// default mmap threshold (128 KiB) on, whole pages.
fn chunk(size: usize) -> usize {
    if size >= 128 * 1024 {
        (size + 16).div_ceil(4096) * 4096
    } else {
        ((size + 8 + 15) & !15).max(32)
    }
}

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        note_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            note_free(layout.size());
            note_alloc(new_size);
        }
        p
    }
}

fn note_alloc(size: usize) {
    ALLOCATED.fetch_add(size, Relaxed);
    CHUNK_ALLOCATED.fetch_add(chunk(size), Relaxed);
    ALLOCS.fetch_add(1, Relaxed);
}

fn note_free(size: usize) {
    FREED.fetch_add(size, Relaxed);
    CHUNK_FREED.fetch_add(chunk(size), Relaxed);
    FREES.fetch_add(1, Relaxed);
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap: (requested bytes, glibc chunk bytes, allocations).
#[derive(Copy, Clone)]
struct Live {
    bytes: usize,
    chunks: usize,
    allocs: usize,
}

fn live() -> Live {
    Live {
        bytes: ALLOCATED.load(Relaxed) - FREED.load(Relaxed),
        chunks: CHUNK_ALLOCATED.load(Relaxed) - CHUNK_FREED.load(Relaxed),
        allocs: ALLOCS.load(Relaxed) - FREES.load(Relaxed),
    }
}

fn since(base: Live) -> Live {
    let now = live();
    Live {
        bytes: now.bytes - base.bytes,
        chunks: now.chunks - base.chunks,
        allocs: now.allocs - base.allocs,
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn row(what: &str, l: Live) {
    println!(
        "  {what:<44} {:>10} B {:>8.3} MiB {:>10} B {:>8}",
        l.bytes,
        mib(l.bytes),
        l.chunks,
        l.allocs
    );
}

fn main() {
    // Arguments (`--bench`, criterion's options) are not ours: ignore them.
    let base = live();

    let mut host = Host::new(Topology::synthetic(ADAPTERS, DOMAINS), &SEED);
    let booted = since(base);

    let effects = host.write_mask(MaskKind::Apmask, b"0x\n").unwrap();
    assert_eq!(effects.rebound_queues(), QUEUES);
    drop(effects);
    let unbound = since(base);

    for i in 0..MDEVS {
        let u = uuid(i);
        host.write_create(format!("{u}\n").as_bytes()).unwrap();
        let (adapters, domains) = Blocks::Rows.block(i);
        for a in adapters.iter() {
            host.assign(&u, apmatrix_model::MatrixAxis::Adapter, a as u64)
                .unwrap();
        }
        for d in domains.iter() {
            host.assign(&u, apmatrix_model::MatrixAxis::Domain, d as u64)
                .unwrap();
        }
    }
    let with_mdevs = since(base);

    start_guests(&mut host, MDEVS);
    let with_guests = since(base);

    let heap = with_guests;
    let size = std::mem::size_of::<Host>();
    let state = heap.bytes + size;

    // A clone must take about the same: a cross-check of the counting.
    let before_clone = live();
    let copy = host.clone();
    let cloned = since(before_clone);
    drop(copy);

    // The host really is the full-scale one (checked after measuring, as
    // these checks allocate).
    assert_eq!(host.mdev_count(), MDEVS);
    assert_eq!(host.guests().count(), MDEVS);
    assert_eq!(host.queues_bound_to(Driver::VfioAp).len(), QUEUES as usize);
    let held: u32 = host
        .mdevs()
        .map(|m| m.adapters.count() * m.domains.count())
        .sum();
    assert_eq!(held, QUEUES);
    assert!(host
        .guest(&guest_name(MDEVS - 1))
        .is_some_and(|g| g.crycb.apm == Mask256::single(255)));

    println!(
        "apmatrix-model state at full scale: {ADAPTERS} adapters x {DOMAINS} domains = {QUEUES} queues \
         bound to vfio_ap, {MDEVS} mdevs holding all of them, {MDEVS} running guests"
    );
    println!(
        "  {:<44} {:>25} {:>12} {:>8}",
        "live heap of the Host after", "requested", "glibc est.", "allocs"
    );
    row("boot (topology, binding and occupancy tables)", booted);
    row("apmask cleared (65,536 queues to vfio_ap)", unbound);
    row(
        &format!("+ {MDEVS} mdevs (1 adapter x 16 domains each)"),
        with_mdevs,
    );
    row(&format!("+ {MDEVS} guests (one per mdev)"), with_guests);
    row("a clone of the finished Host (cross-check)", cloned);
    println!(
        "  per mdev: {:.0} B; per guest: {:.0} B (size_of Mdev {} B, Guest {} B)",
        (with_mdevs.bytes - unbound.bytes) as f64 / MDEVS as f64,
        (with_guests.bytes - with_mdevs.bytes) as f64 / MDEVS as f64,
        std::mem::size_of::<Mdev>(),
        std::mem::size_of::<Guest>(),
    );
    println!("  size_of::<Host>() = {size} B");
    let verdict = if state <= TARGET_BYTES {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "state = heap {} B + size_of {size} B = {state} B = {:.3} MiB (glibc estimate {:.3} MiB); \
         target <= 8 MiB ({TARGET_BYTES} B): {verdict}",
        heap.bytes,
        mib(state),
        mib(heap.chunks + size),
    );
    if state > TARGET_BYTES {
        std::process::exit(1);
    }
}
