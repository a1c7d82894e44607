//! The metric readings in the Prometheus text exposition format (version 0.0.4), for
//! users without a collector: serve it on their own `/metrics`.
//!
//! Names as the OpenTelemetry-to-Prometheus compatibility specification maps them:
//! dots become underscores, the unit becomes a suffix (`_seconds`), counters end in
//! `_total`, histograms expand into `_bucket{le=...}`, `_sum` and `_count`.

use std::fmt::Write as _;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

/// Renders every reading.
pub(crate) fn render(readings: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in readings.scope_metrics() {
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::F64(data) => write_metric(&mut out, metric, data),
                AggregatedMetrics::U64(data) => write_metric(&mut out, metric, data),
                AggregatedMetrics::I64(data) => write_metric(&mut out, metric, data),
            }
        }
    }
    out
}

fn write_metric<T: Copy + Into<f64Like>>(out: &mut String, metric: &Metric, data: &MetricData<T>) {
    let base = name(metric.name(), metric.unit());
    let help = metric
        .description()
        .replace('\\', "\\\\")
        .replace('\n', "\\n");
    match data {
        MetricData::Gauge(gauge) => {
            let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} gauge");
            for point in gauge.data_points() {
                sample(
                    out,
                    &base,
                    "",
                    point.attributes(),
                    None,
                    point.value().into(),
                );
            }
        }
        MetricData::Sum(sum) => {
            let (full, kind) = if sum.is_monotonic() {
                (format!("{base}_total"), "counter")
            } else {
                (base.clone(), "gauge")
            };
            let _ = writeln!(out, "# HELP {full} {help}\n# TYPE {full} {kind}");
            for point in sum.data_points() {
                sample(
                    out,
                    &full,
                    "",
                    point.attributes(),
                    None,
                    point.value().into(),
                );
            }
        }
        MetricData::Histogram(histogram) => {
            let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} histogram");
            for point in histogram.data_points() {
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = point.bounds().collect();
                for (i, count) in point.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), |b| number(*b));
                    sample(
                        out,
                        &base,
                        "_bucket",
                        point.attributes(),
                        Some(&le),
                        f64Like(cumulative as f64),
                    );
                }
                sample(
                    out,
                    &base,
                    "_sum",
                    point.attributes(),
                    None,
                    point.sum().into(),
                );
                sample(
                    out,
                    &base,
                    "_count",
                    point.attributes(),
                    None,
                    f64Like(point.count() as f64),
                );
            }
        }
        // courier records no exponential histograms.
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// A value as Prometheus prints it.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
struct f64Like(f64);

impl From<f64> for f64Like {
    fn from(v: f64) -> f64Like {
        f64Like(v)
    }
}

impl From<u64> for f64Like {
    #[allow(clippy::cast_precision_loss)]
    fn from(v: u64) -> f64Like {
        f64Like(v as f64)
    }
}

impl From<i64> for f64Like {
    #[allow(clippy::cast_precision_loss)]
    fn from(v: i64) -> f64Like {
        f64Like(v as f64)
    }
}

fn sample<'a>(
    out: &mut String,
    base: &str,
    suffix: &str,
    attributes: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: f64Like,
) {
    let mut labels: Vec<String> = attributes
        .map(|kv| {
            format!(
                "{}=\"{}\"",
                label_name(kv.key.as_str()),
                escape(&kv.value.to_string())
            )
        })
        .collect();
    labels.sort();
    if let Some(le) = le {
        labels.push(format!("le=\"{le}\""));
    }
    let _ = if labels.is_empty() {
        writeln!(out, "{base}{suffix} {}", number(value.0))
    } else {
        writeln!(
            out,
            "{base}{suffix}{{{}}} {}",
            labels.join(","),
            number(value.0)
        )
    };
}

/// `http.client.request.duration` + `s` → `http_client_request_duration_seconds`.
fn name(metric: &str, unit: &str) -> String {
    let mut name = label_name(metric);
    let suffix = match unit {
        "s" => "_seconds",
        "ms" => "_milliseconds",
        "By" => "_bytes",
        "1" => "_ratio",
        // Annotations in braces (`{message}`) are not units.
        _ => "",
    };
    if !name.ends_with(suffix) {
        name.push_str(suffix);
    }
    name
}

fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_underscores_and_unit_suffixes() {
        assert_eq!(
            name("http.client.request.duration", "s"),
            "http_client_request_duration_seconds"
        );
        assert_eq!(
            name("courier.dedup.hits", "{message}"),
            "courier_dedup_hits"
        );
        assert_eq!(
            name("courier.breaker.state", "{state}"),
            "courier_breaker_state"
        );
        assert_eq!(name("pool.usage", "1"), "pool_usage_ratio");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
    }
}
