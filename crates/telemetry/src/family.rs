//! The declaration of a metric family: what each crate states once, next to the code that records
//! it, and what the recorder, the scrape tests and the generated `docs/metrics.md` are built from.

/// One Prometheus metric family a binary exports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricFamily {
    /// The family's name, e.g. `worker_jobs_total`; recording sites pass this one.
    pub name: &'static str,
    /// Counter, gauge or histogram (with its buckets).
    pub kind: Kind,
    /// What one sample means: the `# HELP` line and the doc's meaning column.
    pub help: &'static str,
    /// Every label its series carry.
    pub labels: &'static [Label],
}

impl MetricFamily {
    /// A counter.
    #[must_use]
    pub const fn counter(name: &'static str, help: &'static str, labels: &'static [Label]) -> Self {
        Self {
            name,
            kind: Kind::Counter,
            help,
            labels,
        }
    }

    /// A gauge.
    #[must_use]
    pub const fn gauge(name: &'static str, help: &'static str, labels: &'static [Label]) -> Self {
        Self {
            name,
            kind: Kind::Gauge,
            help,
            labels,
        }
    }

    /// A histogram with explicit bucket bounds.
    #[must_use]
    pub const fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [Label],
        buckets: &'static [f64],
    ) -> Self {
        Self {
            name,
            kind: Kind::Histogram { buckets },
            help,
            labels,
        }
    }

    /// The series names a scrape shows for this family: a classic histogram has only `_bucket`,
    /// `_sum` and `_count` series.
    #[must_use]
    pub fn series_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Histogram { .. } => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{}{suffix}", self.name))
                .collect(),
            Kind::Counter | Kind::Gauge => vec![self.name.to_owned()],
        }
    }
}

/// A family's type. Buckets belong to histograms only, so a counter with buckets cannot be
/// declared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Samples counted into `buckets` (upper bounds, ascending).
    Histogram {
        /// Upper bounds of the buckets, ascending; `+Inf` is implied.
        buckets: &'static [f64],
    },
}

impl Kind {
    /// `counter`, `gauge` or `histogram`, as Prometheus' `# TYPE` line says it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram { .. } => "histogram",
        }
    }
}

/// One label of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The label's name, e.g. `status`; recording sites pass this one.
    pub name: &'static str,
    /// What values it takes.
    pub values: LabelValues,
}

impl Label {
    /// A label with a closed set of values: recording sites pass only these.
    #[must_use]
    pub const fn one_of(name: &'static str, values: &'static [&'static str]) -> Self {
        Self {
            name,
            values: LabelValues::OneOf(values),
        }
    }

    /// A label whose values are not known in advance; `holds` says what they are, e.g.
    /// "the matched route template".
    #[must_use]
    pub const fn open(name: &'static str, holds: &'static str) -> Self {
        Self {
            name,
            values: LabelValues::Open(holds),
        }
    }
}

/// The values a label takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelValues {
    /// Exactly these.
    OneOf(&'static [&'static str]),
    /// Not a closed set; says what the values are.
    Open(&'static str),
}
