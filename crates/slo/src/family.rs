//! What the caller declares its services export: only what an SLI is checked against.

/// A metric family a service exports.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family's name, e.g. `http_requests_total`; for a histogram without `_bucket`.
    pub name: String,
    pub kind: Kind,
    /// Every label its series carry (besides the scrape's `job` and `instance`).
    pub labels: Vec<Label>,
}

impl Family {
    /// A counter.
    pub fn counter(name: impl Into<String>, labels: Vec<Label>) -> Self {
        Self {
            name: name.into(),
            kind: Kind::Counter,
            labels,
        }
    }

    /// A gauge.
    pub fn gauge(name: impl Into<String>, labels: Vec<Label>) -> Self {
        Self {
            name: name.into(),
            kind: Kind::Gauge,
            labels,
        }
    }

    /// A histogram with these bucket bounds (`+Inf` implied).
    pub fn histogram(name: impl Into<String>, buckets: Vec<f64>, labels: Vec<Label>) -> Self {
        Self {
            name: name.into(),
            kind: Kind::Histogram { buckets },
            labels,
        }
    }
}

/// The Prometheus type of a family.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Upper bounds of the buckets; a latency threshold must be one of them.
    Histogram {
        buckets: Vec<f64>,
    },
}

impl Kind {
    /// `counter`, `gauge` or `histogram`, as Prometheus' `# TYPE` line says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram { .. } => "histogram",
        }
    }
}

/// One label of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub name: String,
    /// The values it takes, when they are a closed set: a matcher must match one of them.
    /// `None`: any value (an id, a route).
    pub values: Option<Vec<String>>,
}

impl Label {
    /// A label whose values are not a closed set.
    pub fn open(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            values: None,
        }
    }

    /// A label that takes only these values.
    pub fn one_of<V: Into<String>>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Self {
            name: name.into(),
            values: Some(values.into_iter().map(Into::into).collect()),
        }
    }
}

/// A service an SLO may name, as the caller declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// How the spec names it, and the alerts' and the dashboard's `service` label: usually its
    /// scrape job.
    pub name: String,
    /// The families it exports; an SLI of this service may read only these.
    pub families: Vec<Family>,
}
