//! Timestamps: nanoseconds since the Unix epoch, rendered as RFC 3339 UTC
//! (`2026-11-21T23:04:33.123456789Z`), the form SCC uses for `eventTime`/`createTime`.

/// What a finding id says about time when events come from a live kernel: the boot they were
/// seen on and the offset that turned the kernel's boot-time stamp into wall-clock `time`.
///
/// Each process samples that offset itself (`ward_sensor::BootClock`), so two agents (or an
/// agent and its restart) differ by a few hundred ns; a finding id hashes `(boot_id, time -
/// offset_ns)`, the kernel's own stamp, so the same event gets the same id whoever saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClock {
    pub boot_id: String,
    /// Wall clock minus boot time, ns.
    pub offset_ns: i64,
}

impl IdClock {
    /// The kernel's boot-time stamp of an event whose wall-clock `time` this clock produced.
    pub fn boot_ns(&self, time: u64) -> i128 {
        time as i128 - self.offset_ns as i128
    }
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nanosecond precision.
pub fn format_rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.fraction]Z` or with a `+HH:MM`/`-HH:MM` offset.
/// Returns nanoseconds since the epoch, or None when the text is not such a time.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo as u32) {
        return None;
    }
    let mut secs = days_from_civil(y, mo as u32, d as u32) * 86_400;
    let mut nanos = 0i64;
    if b.len() > 10 {
        if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b.len() < 19 {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se;
        let mut i = 19;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &s[start..i];
            if frac.is_empty() {
                return None;
            }
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            nanos = digits.parse().ok()?;
        }
        match &s[i..] {
            "Z" | "z" => {}
            off if off.len() == 6
                && (off.starts_with('+') || off.starts_with('-'))
                && off.as_bytes()[3] == b':' =>
            {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                // RFC 3339: time-numoffset = ("+" / "-") time-hour ":" time-minute.
                if oh > 23 || om > 59 {
                    return None;
                }
                let o = oh * 3600 + om * 60;
                secs -= if off.starts_with('+') { o } else { -o };
            }
            _ => return None,
        }
    }
    if secs < 0 {
        return None;
    }
    Some(secs as u64 * 1_000_000_000 + nanos as u64)
}

/// Days in month `m` (1-12) of year `y` (proleptic Gregorian).
fn days_in_month(y: i64, m: u32) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2026-11-21T23:04:33Z = 1795302273
        assert_eq!(
            format_rfc3339(1_795_302_273_000_000_123),
            "2026-11-21T23:04:33.000000123Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ns in [0u64, 1_795_302_273_000_000_123, 951_782_400_500_000_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ns)), Some(ns));
        }
        assert_eq!(
            parse_rfc3339("2026-11-21"),
            Some(1_795_219_200 * 1_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T23:04:33+01:00"),
            Some((1_795_302_273 - 3600) * 1_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T23:04:33.5Z"),
            Some(1_795_302_273_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29"),
            Some(1_709_164_800 * 1_000_000_000)
        );
        assert!(parse_rfc3339("2000-02-29T00:00:00-23:59").is_some());
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-21T25:00:00Z",
            "2026-11-21T23:04:33",
            // Days the month does not have; offsets out of range or without ':'.
            "2026-02-30",
            "2026-02-29",
            "2026-04-31",
            "1900-02-29T00:00:00Z",
            "2026-11-21T23:04:33+99:99",
            "2026-11-21T23:04:33+24:00",
            "2026-11-21T23:04:33-01:60",
            "2026-11-21T23:04:33+01x00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
