//! Prometheus metrics in the text exposition format, kept by hand (a few counters and one
//! histogram do not need a metrics framework).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) -> count
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route -> latency histogram
    latency: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
    pub(crate) store_busy_retries: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) requests_limited: AtomicU64,
    /// Requests hyper could not parse, answered before routing (src/wire.rs).
    pub(crate) requests_unparsed: AtomicU64,
    /// `POST /v1/ingest` batches accepted (heartbeats included) and refused.
    pub(crate) ingest_batches: AtomicU64,
    pub(crate) ingest_heartbeats: AtomicU64,
    pub(crate) ingest_rejected: AtomicU64,
    /// Findings of accepted batches, by what the store did with them.
    pub(crate) ingest_inserted: AtomicU64,
    pub(crate) ingest_updated: AtomicU64,
    pub(crate) ingest_stale: AtomicU64,
    /// Node enrollments granted.
    pub(crate) enrollments: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Escapes a label value (backslash, quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finish(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        *lock(&self.requests)
            .entry((method.to_string(), route.to_string(), status))
            .or_insert(0) += 1;
        let secs = elapsed.as_secs_f64();
        let mut lat = lock(&self.latency);
        let h = lat.entry(route.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP ward_api_requests_total HTTP requests served, by method, route and status.\n",
        );
        out.push_str("# TYPE ward_api_requests_total counter\n");
        for ((m, r, s), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "ward_api_requests_total{{method=\"{}\",route=\"{}\",status=\"{s}\"}} {n}",
                esc(m),
                esc(r)
            );
        }
        out.push_str(
            "# HELP ward_api_request_duration_seconds Time to answer a request, by route.\n",
        );
        out.push_str("# TYPE ward_api_request_duration_seconds histogram\n");
        for (r, h) in lock(&self.latency).iter() {
            let r = esc(r);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "ward_api_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "ward_api_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ward_api_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ward_api_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        let _ = write!(
            out,
            "# HELP ward_api_in_flight_requests Requests being served now.\n\
             # TYPE ward_api_in_flight_requests gauge\n\
             ward_api_in_flight_requests {}\n\
             # HELP ward_api_store_busy_retries_total Store calls retried because SQLite was busy.\n\
             # TYPE ward_api_store_busy_retries_total counter\n\
             ward_api_store_busy_retries_total {}\n\
             # HELP ward_api_auth_failures_total Requests refused with 401 or 403.\n\
             # TYPE ward_api_auth_failures_total counter\n\
             ward_api_auth_failures_total {}\n\
             # HELP ward_api_connections_refused_total Connections closed at once: their client address had max_connections_per_client open.\n\
             # TYPE ward_api_connections_refused_total counter\n\
             ward_api_connections_refused_total {}\n\
             # HELP ward_api_requests_limited_total Requests answered 429: their client address had max_requests_per_client in progress.\n\
             # TYPE ward_api_requests_limited_total counter\n\
             ward_api_requests_limited_total {}\n\
             # HELP ward_api_requests_unparsed_total Requests that could not be parsed (request line, header, Content-Length, size), answered 400, 414 or 431 before routing.\n\
             # TYPE ward_api_requests_unparsed_total counter\n\
             ward_api_requests_unparsed_total {}\n",
            self.in_flight.load(Ordering::Relaxed),
            self.store_busy_retries.load(Ordering::Relaxed),
            self.auth_failures.load(Ordering::Relaxed),
            self.connections_refused.load(Ordering::Relaxed),
            self.requests_limited.load(Ordering::Relaxed),
            self.requests_unparsed.load(Ordering::Relaxed),
        );
        let _ = write!(
            out,
            "# HELP ward_api_ingest_batches_total POST /v1/ingest batches accepted (heartbeats included).\n\
             # TYPE ward_api_ingest_batches_total counter\n\
             ward_api_ingest_batches_total {}\n\
             # HELP ward_api_ingest_heartbeats_total Accepted ingest batches without findings.\n\
             # TYPE ward_api_ingest_heartbeats_total counter\n\
             ward_api_ingest_heartbeats_total {}\n\
             # HELP ward_api_ingest_rejected_total Ingest batches refused (auth, malformed, too large, store unavailable); nothing of them was written.\n\
             # TYPE ward_api_ingest_rejected_total counter\n\
             ward_api_ingest_rejected_total {}\n\
             # HELP ward_api_ingest_findings_total Findings of accepted ingest batches, by what the store did: inserted (new name), updated (merged or an unchanged replay), stale (older than the stored state).\n\
             # TYPE ward_api_ingest_findings_total counter\n\
             ward_api_ingest_findings_total{{result=\"inserted\"}} {}\n\
             ward_api_ingest_findings_total{{result=\"updated\"}} {}\n\
             ward_api_ingest_findings_total{{result=\"stale\"}} {}\n\
             # HELP ward_api_enrollments_total Node tokens issued by POST /v1/enroll.\n\
             # TYPE ward_api_enrollments_total counter\n\
             ward_api_enrollments_total {}\n",
            self.ingest_batches.load(Ordering::Relaxed),
            self.ingest_heartbeats.load(Ordering::Relaxed),
            self.ingest_rejected.load(Ordering::Relaxed),
            self.ingest_inserted.load(Ordering::Relaxed),
            self.ingest_updated.load(Ordering::Relaxed),
            self.ingest_stale.load(Ordering::Relaxed),
            self.enrollments.load(Ordering::Relaxed),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.start();
        m.finish("GET", "/v1/findings", 200, Duration::from_millis(3));
        m.start();
        m.finish("GET", "/v1/findings", 200, Duration::from_millis(30));
        let t = m.render();
        assert!(t.contains(
            "ward_api_requests_total{method=\"GET\",route=\"/v1/findings\",status=\"200\"} 2"
        ));
        assert!(t.contains(
            "ward_api_request_duration_seconds_bucket{route=\"/v1/findings\",le=\"0.005\"} 1"
        ));
        assert!(t.contains(
            "ward_api_request_duration_seconds_bucket{route=\"/v1/findings\",le=\"0.05\"} 2"
        ));
        assert!(t.contains("ward_api_in_flight_requests 0"));
    }
}
