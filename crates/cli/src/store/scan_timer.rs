//! The AP bus's periodic scan while a server serves the host: the kernel
//! scans every `config_time` seconds (kernel.md §1, §9), and an HMC change
//! waiting in the LPAR's configuration shows then. A write to `config_time`
//! re-arms the timer, and so does every scan, whoever asked for it.

use std::time::{Duration, Instant};

use apmatrix_model::Host;

/// How often the server looks at the clock: a scan runs at most this late.
pub const TICK: Duration = Duration::from_millis(250);

/// When the next periodic scan is due.
#[derive(Debug)]
pub struct ScanClock {
    scans: u64,
    config_time: u32,
    due: Instant,
}

impl ScanClock {
    /// Armed at `now` for the host's `config_time`.
    pub fn new(host: &Host, now: Instant) -> ScanClock {
        let config_time = host.bus().config_time;
        ScanClock {
            scans: host.scans(),
            config_time,
            due: now + Duration::from_secs(config_time.into()),
        }
    }

    /// Whether the periodic scan is due at `now`. A scan or a new
    /// `config_time` since the last look re-arms the timer from `now`; so
    /// does saying yes (the caller scans).
    pub fn due(&mut self, host: &Host, now: Instant) -> bool {
        let seen = (host.scans(), host.bus().config_time);
        if seen != (self.scans, self.config_time) || now >= self.due {
            let due = now >= self.due && seen == (self.scans, self.config_time);
            *self = ScanClock::new(host, now);
            // The scan the caller runs is its own: count it already.
            self.scans += u64::from(due);
            return due;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apmatrix_model::{Op, WriteTarget};

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn scans_every_config_time_seconds() {
        let mut host = Host::seed_example();
        let t0 = Instant::now();
        let mut clock = ScanClock::new(&host, t0);
        assert!(!clock.due(&host, t0 + secs(29)));
        assert!(clock.due(&host, t0 + secs(30)));
        host.apply(&Op::Rescan).unwrap();
        assert!(!clock.due(&host, t0 + secs(31)), "just scanned");
        assert!(!clock.due(&host, t0 + secs(59)));
        assert!(clock.due(&host, t0 + secs(60)));
    }

    #[test]
    fn a_scan_or_a_new_config_time_rearms_the_timer() {
        let mut host = Host::seed_example();
        let t0 = Instant::now();
        let mut clock = ScanClock::new(&host, t0);
        // A write to scans at 20 s: the next periodic one is at 50 s.
        host.write(WriteTarget::Scans, b"1\n").unwrap();
        assert!(!clock.due(&host, t0 + secs(20)));
        assert!(!clock.due(&host, t0 + secs(49)));
        assert!(clock.due(&host, t0 + secs(50)));
        host.apply(&Op::Rescan).unwrap();
        // config_time 5 written at 52 s: due at 57 s.
        host.write(WriteTarget::ConfigTime, b"5\n").unwrap();
        assert!(!clock.due(&host, t0 + secs(52)));
        assert!(!clock.due(&host, t0 + secs(56)));
        assert!(clock.due(&host, t0 + secs(57)));
    }
}
