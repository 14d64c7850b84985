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
        let requests = d
            .requests
            .iter()
            .map(|((app, status), n)| (format!("{},status=\"{status}\"", app_label(app)), *n));
        family(
            &mut out,
            ("pack_serve_requests_total", "counter"),
            "Requests answered, by app (route) and status.",
            requests,
        );
        for (name, help, histograms) in [
            (
                "pack_serve_request_duration_seconds",
                "From a request's arrival to its response head.",
                &d.latency,
            ),
            (
                "pack_serve_cold_start_duration_seconds",
                "Resolve, verify, select, load and link of an app.",
                &d.cold_starts,
            ),
        ] {
            family(&mut out, (name, "histogram"), help, []);
            for (app, h) in histograms {
                h.write(&mut out, name, &app_label(app));
            }
        }
        let cold_starts = d
            .cold_starts
            .iter()
            .map(|(app, h)| (app_label(app), h.count));
        family(
            &mut out,
            ("pack_serve_cold_starts_total", "counter"),
            "Cold starts, by app.",
            cold_starts,
        );
        let swaps = d.swaps.iter().map(|(app, n)| (app_label(app), *n));
        family(
            &mut out,
            ("pack_serve_swaps_total", "counter"),
            "New releases swapped in, by app.",
            swaps,
        );
        let refusals = d.refusals.iter().map(|((app, reason), n)| {
            (
                format!("{},reason=\"{}\"", app_label(app), escape(reason)),
                *n,
            )
        });
        family(
            &mut out,
            ("pack_serve_refusals_total", "counter"),
            "Refused bundles, releases and requests, by app and reason.",
            refusals,
        );
        let loaded = [(String::new(), gauges.loaded_apps as u64)];
        family(
            &mut out,
            ("pack_serve_loaded_apps", "gauge"),
            "Apps loaded now.",
            loaded,
        );
        let instances = gauges
            .instances
            .iter()
            .map(|(app, n)| (app_label(app), *n as u64));
        family(
            &mut out,
            ("pack_serve_instances_in_use", "gauge"),
            "Instances alive now, by app.",
            instances,
        );
        out
    }
}

/// A metric family `(name, type)`: its `# HELP` and `# TYPE` lines, then a sample for
/// each `(labels, value)` (no braces for empty labels).
fn family(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The `app` label of an app's series.
fn app_label(app: &str) -> String {
    format!("app=\"{}\"", escape(app))
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
        assert!(text.contains(
            "# HELP pack_serve_loaded_apps Apps loaded now.\n# TYPE pack_serve_loaded_apps gauge\n"
        ));
        assert!(text.contains("# TYPE pack_serve_cold_start_duration_seconds histogram\n"));
        assert_eq!(text.matches("# TYPE ").count(), 8, "{text}");
        assert!(text.contains("pack_serve_instances_in_use{app=\"/hello\"} 2\n"));
    }
}
