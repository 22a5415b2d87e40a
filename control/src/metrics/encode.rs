//! Small helpers over `prometheus-client`'s encoder: one family with its help and type, then
//! its samples with their labels.

use std::fmt;

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// A sample's labels: name and value pairs.
pub(super) type Labels = Vec<(&'static str, String)>;

/// One label.
pub(super) fn label(name: &'static str, value: impl ToString) -> (&'static str, String) {
    (name, value.to_string())
}

/// A gauge family: `rows` are its samples.
pub(super) fn gauges<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family of one sample without labels.
pub(super) fn gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: V,
) -> fmt::Result {
    gauges(encoder, name, help, [(Labels::new(), value)])
}

/// A counter family (`name` without `_total`: the encoder adds it to the samples).
pub(super) fn counters<V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter family of one sample without labels.
pub(super) fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> fmt::Result {
    counters(encoder, name, help, [(Labels::new(), value)])
}

/// One histogram sample: per-bucket counts (not cumulative) under each upper bound, the last
/// bound `+Inf`, and the sum of the observations.
#[derive(Debug, Clone)]
pub(super) struct HistogramRow {
    /// The sample's labels.
    pub(super) labels: Labels,
    /// `(upper bound, count in this bucket)`, ascending, ending at `f64::INFINITY`.
    pub(super) buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub(super) sum: f64,
}

/// A histogram family.
pub(super) fn histograms(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[HistogramRow],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for row in rows {
        let count = row.buckets.iter().map(|(_, n)| n).sum();
        let mut sample = family.encode_family(&row.labels)?;
        sample.encode_histogram::<Labels>(row.sum, count, &row.buckets, None)?;
    }
    Ok(())
}
