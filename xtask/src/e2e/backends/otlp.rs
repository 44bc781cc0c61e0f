//! OTLP/JSON traces (`TracesData`), as both Tempo (`/api/v2/traces/{id}`, inside `trace`) and
//! Jaeger (`/api/v3/traces/{id}`, inside `result`) return them.
//!
//! Two dialects exist: the OTLP/JSON spec writes ids as hex and `kind` as a number (Jaeger, through
//! the collector's pdata marshaller); Tempo marshals its protobuf with jsonpb, which writes ids as
//! base64 and `kind` as the enum's name ("mostly compatible", in Tempo's words). Both are read.

use anyhow::Context as _;
use base64::Engine as _;
use serde::Deserialize;

use super::{Span, SpanKind};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracesData {
    #[serde(default)]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    #[serde(default)]
    resource: Resource,
    #[serde(default)]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Debug, Default, Deserialize)]
struct Resource {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: AnyValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    string_value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ScopeSpans {
    #[serde(default)]
    spans: Vec<OtlpSpan>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan {
    span_id: String,
    #[serde(default)]
    parent_span_id: String,
    name: String,
    #[serde(default)]
    kind: serde_json::Value,
}

impl TracesData {
    /// Flattens the resource/scope nesting into spans that each know their service.
    pub fn spans(self) -> anyhow::Result<Vec<Span>> {
        let mut spans = Vec::new();
        for resource_spans in self.resource_spans {
            let service = resource_spans
                .resource
                .attributes
                .iter()
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.string_value.clone())
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                let parent = hex_id(&span.parent_span_id, 8)
                    .with_context(|| format!("span {:?}: parentSpanId", span.name))?;
                spans.push(Span {
                    span_id: hex_id(&span.span_id, 8)
                        .with_context(|| format!("span {:?}: spanId", span.name))?,
                    parent_span_id: Some(parent).filter(|id| !id.is_empty()),
                    kind: kind(&span.kind),
                    name: span.name,
                    service: service.clone(),
                });
            }
        }
        Ok(spans)
    }
}

/// An id of `bytes` bytes as lowercase hex, from either hex or base64; "" stays "".
fn hex_id(id: &str, bytes: usize) -> anyhow::Result<String> {
    if id.is_empty() {
        return Ok(String::new());
    }
    if id.len() == bytes * 2 && id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Ok(id.to_ascii_lowercase());
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(id)
        .with_context(|| format!("{id:?} is neither hex nor base64"))?;
    anyhow::ensure!(
        raw.len() == bytes,
        "{id:?} decodes to {} bytes, not {bytes}",
        raw.len()
    );
    Ok(raw.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// `kind` as a number (OTLP/JSON) or as the enum's name (jsonpb).
fn kind(value: &serde_json::Value) -> SpanKind {
    let number = match value {
        serde_json::Value::Number(number) => number.as_u64().unwrap_or(0),
        serde_json::Value::String(name) => match name.trim_start_matches("SPAN_KIND_") {
            "INTERNAL" => 1,
            "SERVER" => 2,
            "CLIENT" => 3,
            "PRODUCER" => 4,
            "CONSUMER" => 5,
            _ => 0,
        },
        _ => 0,
    };
    match number {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex and base64 spellings of one id read the same.
    #[test]
    fn ids_read_from_hex_and_base64() {
        assert_eq!(hex_id("00F067AA0BA902B7", 8).unwrap(), "00f067aa0ba902b7");
        assert_eq!(hex_id("APBnqgupArc=", 8).unwrap(), "00f067aa0ba902b7");
        assert_eq!(hex_id("", 8).unwrap(), "");
        assert!(hex_id("not an id", 8).is_err());
    }

    /// Kinds read from numbers and from enum names.
    #[test]
    fn kinds_read_from_numbers_and_names() {
        assert_eq!(kind(&serde_json::json!(2)), SpanKind::Server);
        assert_eq!(
            kind(&serde_json::json!("SPAN_KIND_CLIENT")),
            SpanKind::Client
        );
        assert_eq!(kind(&serde_json::Value::Null), SpanKind::Unspecified);
    }
}
