//! Prometheus text exposition of what the server does: requests by app and status, a
//! latency histogram, cold starts and their duration, loaded apps, instances in use,
//! refusals.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Data {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    cold_starts: BTreeMap<String, Histogram>,
    swaps: BTreeMap<String, u64>,
    refusals: BTreeMap<(String, String), u64>,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    data: Mutex<Data>,
}

/// Gauges read when the metrics are rendered.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Apps loaded now.
    pub loaded_apps: usize,
    /// Instances in use, by app.
    pub instances: Vec<(String, usize)>,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request answered with `status` after `duration`; `app` is the route, or `""`.
    pub fn request(&self, app: &str, status: u16, duration: Duration) {
        let mut d = self.data();
        *d.requests.entry((app.to_string(), status)).or_default() += 1;
        d.latency
            .entry(app.to_string())
            .or_default()
            .observe(duration);
    }

    /// A cold start that took `duration`.
    pub fn cold_start(&self, app: &str, duration: Duration) {
        self.data()
            .cold_starts
            .entry(app.to_string())
            .or_default()
            .observe(duration);
    }

    /// A new release swapped in.
    pub fn swap(&self, app: &str) {
        *self.data().swaps.entry(app.to_string()).or_default() += 1;
    }

    /// A refusal (`reason`: `unverified`, `unbounded`, `concurrency`, `capacity`, ...).
    pub fn refusal(&self, app: &str, reason: &str) {
        *self
            .data()
            .refusals
            .entry((app.to_string(), reason.to_string()))
            .or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let d = self.data();
        let mut out = String::new();
        out.push_str(
            "# HELP pack_serve_requests_total Requests answered, by app (route) and status.\n",
        );
        out.push_str("# TYPE pack_serve_requests_total counter\n");
        for ((app, status), n) in &d.requests {
            let _ = writeln!(
                out,
                "pack_serve_requests_total{{app=\"{}\",status=\"{status}\"}} {n}",
                escape(app)
            );
        }
        out.push_str("# HELP pack_serve_request_duration_seconds From a request's arrival to its response head.\n");
        out.push_str("# TYPE pack_serve_request_duration_seconds histogram\n");
        for (app, h) in &d.latency {
            h.write(
                &mut out,
                "pack_serve_request_duration_seconds",
                &format!("app=\"{}\"", escape(app)),
            );
        }
        out.push_str("# HELP pack_serve_cold_start_duration_seconds Resolve, verify, select, load and link of an app.\n");
        out.push_str("# TYPE pack_serve_cold_start_duration_seconds histogram\n");
        for (app, h) in &d.cold_starts {
            h.write(
                &mut out,
                "pack_serve_cold_start_duration_seconds",
                &format!("app=\"{}\"", escape(app)),
            );
        }
        out.push_str("# HELP pack_serve_cold_starts_total Cold starts, by app.\n");
        out.push_str("# TYPE pack_serve_cold_starts_total counter\n");
        for (app, h) in &d.cold_starts {
            let _ = writeln!(
                out,
                "pack_serve_cold_starts_total{{app=\"{}\"}} {}",
                escape(app),
                h.count
            );
        }
        out.push_str("# HELP pack_serve_swaps_total New releases swapped in, by app.\n");
        out.push_str("# TYPE pack_serve_swaps_total counter\n");
        for (app, n) in &d.swaps {
            let _ = writeln!(out, "pack_serve_swaps_total{{app=\"{}\"}} {n}", escape(app));
        }
        out.push_str("# HELP pack_serve_refusals_total Refused bundles, releases and requests, by app and reason.\n");
        out.push_str("# TYPE pack_serve_refusals_total counter\n");
        for ((app, reason), n) in &d.refusals {
            let _ = writeln!(
                out,
                "pack_serve_refusals_total{{app=\"{}\",reason=\"{}\"}} {n}",
                escape(app),
                escape(reason)
            );
        }
        out.push_str("# HELP pack_serve_loaded_apps Apps loaded now.\n");
        out.push_str("# TYPE pack_serve_loaded_apps gauge\n");
        let _ = writeln!(out, "pack_serve_loaded_apps {}", gauges.loaded_apps);
        out.push_str("# HELP pack_serve_instances_in_use Instances alive now, by app.\n");
        out.push_str("# TYPE pack_serve_instances_in_use gauge\n");
        for (app, n) in &gauges.instances {
            let _ = writeln!(
                out,
                "pack_serve_instances_in_use{{app=\"{}\"}} {n}",
                escape(app)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.request("/hello", 200, Duration::from_micros(700));
        m.request("/hello", 200, Duration::from_millis(20));
        m.request("/a\"b", 504, Duration::from_secs(1));
        m.cold_start("/hello", Duration::from_millis(3));
        m.refusal("/hello", "concurrency");
        let text = m.render(&Gauges {
            loaded_apps: 1,
            instances: vec![("/hello".into(), 2)],
        });
        assert!(text.contains("pack_serve_requests_total{app=\"/hello\",status=\"200\"} 2\n"));
        assert!(text.contains("pack_serve_requests_total{app=\"/a\\\"b\",status=\"504\"} 1\n"));
        assert!(text.contains(
            "pack_serve_request_duration_seconds_bucket{app=\"/hello\",le=\"0.001\"} 1\n"
        ));
        assert!(text.contains(
            "pack_serve_request_duration_seconds_bucket{app=\"/hello\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains("pack_serve_cold_starts_total{app=\"/hello\"} 1\n"));
        assert!(
            text.contains("pack_serve_refusals_total{app=\"/hello\",reason=\"concurrency\"} 1\n")
        );
        assert!(text.contains("pack_serve_loaded_apps 1\n"));
        assert!(text.contains("pack_serve_instances_in_use{app=\"/hello\"} 2\n"));
    }
}
