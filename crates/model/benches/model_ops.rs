//! Latency of the model's operations at the full scale: 256 adapters
//! x 256 domains (65,536 queues, all bound to vfio_ap) carrying 4,096 mdevs.
//!
//! Targets (docs/PERFORMANCE.md): assign/unassign median <= 5 us; a mask
//! write re-binding all 65,536 queues <= 1 ms.
//!
//! Assign and unassign are measured separately: each sample times only the
//! operation and undoes it untimed afterwards, so every timed assign really
//! adds an adapter (domain) to an mdev with 16 domains (adapters) while the
//! other 4,095 mdevs hold every other APQN. The per-operation clock reads
//! this costs are measured as `clock/overhead`; `assign_unassign_pair` times
//! the round trip without them as a cross-check.
//!
//! `cargo bench -p apmatrix-model --bench model_ops -- --measurement-time 3`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use apmatrix_model::{Errno, Host, MaskKind, MatrixAxis};
use common::{full_host, planned_host, start_guests, uuid, Layout, MDEVS, QUEUES};
use criterion::{criterion_group, criterion_main, Criterion};

/// The mdev whose matrix the assign/unassign benchmarks change: with
/// [`Layout::Rows`] adapter 0xaa x domains 0xa0-0xaf, with
/// [`Layout::Columns`] domain 0xaa x adapters 0xa0-0xaf.
const TARGET: usize = 0xaa * 16 + 0xa;
const TARGET_ID: u64 = 0xaa;

/// Runs `op` then `undo`, `iters` times, and returns the time spent in `op`
/// alone. `op` says whether it did what it should; that is checked after its
/// clock stops.
fn time_op(
    host: &mut Host,
    iters: u64,
    mut op: impl FnMut(&mut Host) -> bool,
    mut undo: impl FnMut(&mut Host),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let ok = op(black_box(&mut *host));
        total += start.elapsed();
        assert!(ok, "the measured operation did not do what it should");
        undo(host);
    }
    total
}

/// A full host whose target mdev lacks its adapter (Rows) or domain
/// (Columns), optionally used by a running guest.
fn host_with_gap(layout: Layout, guest: bool) -> (Host, MatrixAxis) {
    let mut host = full_host(layout);
    let axis = match layout {
        Layout::Rows => MatrixAxis::Adapter,
        Layout::Columns => MatrixAxis::Domain,
    };
    host.unassign(&uuid(TARGET), axis, TARGET_ID).unwrap();
    if guest {
        host.start_guest(
            "target",
            Some(uuid(TARGET)),
            apmatrix_model::CpuModel::default(),
        )
        .unwrap();
    }
    (host, axis)
}

fn clock(c: &mut Criterion) {
    let mut host = apmatrix_model::Host::seed_example();
    c.bench_function("clock/overhead", |b| {
        b.iter_custom(|iters| time_op(&mut host, iters, |_| true, |_| ()))
    });
}

fn assign_unassign(c: &mut Criterion) {
    let t = uuid(TARGET);
    for (layout, name) in [(Layout::Rows, "adapter"), (Layout::Columns, "domain")] {
        for guest in [false, true] {
            let (mut host, axis) = host_with_gap(layout, guest);
            let suffix = if guest { "/running_guest" } else { "" };
            let sysfs = format!("{TARGET_ID:#x}\n");
            let sysfs = sysfs.as_bytes();
            let assign = |h: &mut Host| h.assign(&t, axis, TARGET_ID).unwrap();
            let unassign = |h: &mut Host| h.unassign(&t, axis, TARGET_ID).unwrap();
            // With a guest, every change must reach its CRYCB (hot plug).
            let updates = usize::from(guest);

            c.bench_function(&format!("assign/{name}/typed{suffix}"), |b| {
                b.iter_custom(|iters| {
                    time_op(
                        &mut host,
                        iters,
                        |h| {
                            h.assign(&t, axis, TARGET_ID)
                                .is_ok_and(|e| e.guest_updates.len() == updates)
                        },
                        |h| drop(unassign(h)),
                    )
                })
            });
            c.bench_function(&format!("unassign/{name}/typed{suffix}"), |b| {
                assign(&mut host);
                b.iter_custom(|iters| {
                    time_op(
                        &mut host,
                        iters,
                        |h| {
                            h.unassign(&t, axis, TARGET_ID)
                                .is_ok_and(|e| e.guest_updates.len() == updates)
                        },
                        |h| drop(assign(h)),
                    )
                });
                unassign(&mut host);
            });
            if guest {
                continue;
            }
            c.bench_function(&format!("assign/{name}/write_assign"), |b| {
                b.iter_custom(|iters| {
                    time_op(
                        &mut host,
                        iters,
                        |h| h.write_assign(&t, axis, sysfs).is_ok(),
                        |h| drop(unassign(h)),
                    )
                })
            });
            c.bench_function(&format!("unassign/{name}/write_unassign"), |b| {
                assign(&mut host);
                b.iter_custom(|iters| {
                    time_op(
                        &mut host,
                        iters,
                        |h| h.write_unassign(&t, axis, sysfs).is_ok(),
                        |h| drop(assign(h)),
                    )
                });
                unassign(&mut host);
            });
            c.bench_function(&format!("assign_unassign_pair/{name}/typed"), |b| {
                b.iter(|| {
                    let h = black_box(&mut host);
                    h.assign(&t, axis, TARGET_ID).unwrap();
                    h.unassign(&t, axis, TARGET_ID).unwrap()
                })
            });
            // Everything is occupied: the model must refuse an assignment and
            // name the holder. It was once a linear search over the mdevs, so
            // a holder early and late in UUID order are both measured; the
            // APQN-to-holder index makes them alike.
            for (other, position) in [(0u64, "early"), (0xff, "late")] {
                let holder = match layout {
                    Layout::Rows => layout.holder(other as u8, 0xa0),
                    Layout::Columns => layout.holder(0xa0, other as u8),
                };
                c.bench_function(
                    &format!(
                        "assign_refused_eaddrinuse/{name}/holder_{position}_{holder}_of_{MDEVS}"
                    ),
                    |b| {
                        b.iter_custom(|iters| {
                            time_op(
                                &mut host,
                                iters,
                                |h| {
                                    h.assign(&t, axis, other)
                                        .is_err_and(|e| e.errno() == Errno::EADDRINUSE)
                                },
                                |_| (),
                            )
                        })
                    },
                );
            }
        }
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`). Unlike the
/// wall clock it stops while the thread is preempted, which on a shared
/// 2-core machine inflates millisecond operations; it costs a system call
/// (a few hundred ns), so it is used only for the millisecond-scale writes.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, the 64-bit layout above,
    // through a pointer to a live, writable one.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_time() -> Duration {
    unimplemented!("thread CPU time is only read on 64-bit Linux")
}

/// Which clock a benchmark reads.
#[derive(Copy, Clone)]
enum Clock {
    Wall,
    ThreadCpu,
}

impl Clock {
    fn now(self) -> Duration {
        match self {
            Clock::Wall => {
                thread_local!(static EPOCH: Instant = Instant::now());
                EPOCH.with(|e| e.elapsed())
            }
            Clock::ThreadCpu => thread_cpu_time(),
        }
    }
}

fn mask_writes(c: &mut Criterion) {
    let all = format!("0x{}\n", "f".repeat(64)).into_bytes();
    let none = b"0x\n".to_vec();
    let clocks: &[(Clock, &str)] = if cfg!(all(target_os = "linux", target_pointer_width = "64")) {
        &[(Clock::Wall, ""), (Clock::ThreadCpu, "/thread_cpu_time")]
    } else {
        &[(Clock::Wall, "")]
    };
    // Every write flips all 256 adapters between the host and vfio_ap.
    for guests in [0, 1024, MDEVS] {
        let mut host = planned_host();
        start_guests(&mut host, guests);
        let mut to_host = true;
        for &(clock, suffix) in clocks {
            c.bench_function(
                &format!("mask_write/rebind_all_{QUEUES}/{MDEVS}_mdevs_{guests}_guests{suffix}"),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let input = if to_host { &all } else { &none };
                            let start = clock.now();
                            let effects = black_box(&mut host).write_mask(MaskKind::Apmask, input);
                            total += clock.now() - start;
                            assert_eq!(effects.unwrap().rebound_queues(), QUEUES);
                            to_host = !to_host;
                        }
                        total
                    })
                },
            );
        }
    }
    // Refused: the 4,096 mdevs hold every APQN.
    let mut host = full_host(Layout::Rows);
    for (input, what) in [
        (b"+17\n".to_vec(), "adapter_17"),
        (b"+255\n".to_vec(), "adapter_255"),
        (all.clone(), "all_adapters"),
    ] {
        c.bench_function(&format!("mask_write/refused_eaddrinuse/{what}"), |b| {
            b.iter_custom(|iters| {
                time_op(
                    &mut host,
                    iters,
                    |h| {
                        h.write_mask(MaskKind::Apmask, &input)
                            .is_err_and(|e| e.errno() == Errno::EADDRINUSE)
                    },
                    |_| (),
                )
            })
        });
    }
    assert!(host.apmask().is_empty());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = clock, assign_unassign, mask_writes
}
criterion_main!(benches);
