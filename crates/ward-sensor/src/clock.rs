//! CLOCK_BOOTTIME (what the kernel stamps events with) to wall clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Converts boot-time nanoseconds to wall-clock time.
///
/// The offset between CLOCK_REALTIME and CLOCK_BOOTTIME is sampled once at
/// creation; call [`BootClock::new`] again after a wall-clock step (NTP) if
/// exact alignment matters.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// realtime - boottime, in ns.
    offset_ns: i128,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    /// Samples the current offset.
    pub fn new() -> Self {
        // Take the narrowest of a few samples to limit preemption skew.
        let mut best = (i128::MAX, 0i128);
        for _ in 0..3 {
            let b0 = clock_ns(libc::CLOCK_BOOTTIME);
            let r = clock_ns(libc::CLOCK_REALTIME);
            let b1 = clock_ns(libc::CLOCK_BOOTTIME);
            if b1 - b0 < best.0 {
                best = (b1 - b0, r - (b0 + (b1 - b0) / 2));
            }
        }
        BootClock { offset_ns: best.1 }
    }

    /// Current CLOCK_BOOTTIME in ns.
    pub fn now_boot_ns() -> u64 {
        clock_ns(libc::CLOCK_BOOTTIME) as u64
    }

    /// Wall-clock time of a CLOCK_BOOTTIME timestamp.
    pub fn to_system_time(&self, boot_ns: u64) -> SystemTime {
        let ns = boot_ns as i128 + self.offset_ns;
        if ns >= 0 {
            UNIX_EPOCH + Duration::from_nanos(ns as u64)
        } else {
            UNIX_EPOCH
        }
    }

    /// Wall clock minus boot time, ns, as sampled at creation.
    pub fn offset_ns(&self) -> i128 {
        self.offset_ns
    }

    /// Unix time in ns of a CLOCK_BOOTTIME timestamp.
    pub fn to_unix_ns(&self, boot_ns: u64) -> i128 {
        boot_ns as i128 + self.offset_ns
    }
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}
