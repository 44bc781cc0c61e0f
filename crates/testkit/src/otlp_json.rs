//! The OTLP/JSON `TracesData` that trace backends answer queries with.
//!
//! Two JSON dialects are read: the OTLP/JSON spec writes ids as hex and `kind` as a number
//! (Jaeger, through the collector's pdata marshaller); Tempo marshals its protobuf with jsonpb,
//! which writes ids as base64 and `kind` as the enum's name.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::model::{Span, SpanKind, Trace};

/// `TracesData`, as trace backends answer a query by id.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TracesData {
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
    value: HashMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct ScopeSpans {
    #[serde(default)]
    spans: Vec<OtlpSpan>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan {
    #[serde(default)]
    trace_id: String,
    span_id: String,
    #[serde(default)]
    parent_span_id: String,
    name: String,
    #[serde(default)]
    kind: Value,
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

impl TracesData {
    /// Flattens the resource/scope nesting into spans that each know their service.
    pub(crate) fn into_trace(self) -> anyhow::Result<Trace> {
        let mut spans = Vec::new();
        for resource_spans in self.resource_spans {
            let service = scalars(&resource_spans.resource.attributes)
                .remove("service.name")
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                let id = |id: &str, bytes: usize, field: &str| {
                    hex_id(id, bytes).with_context(|| format!("span {:?}: {field}", span.name))
                };
                let parent = id(&span.parent_span_id, 8, "parentSpanId")?;
                spans.push(Span {
                    trace_id: id(&span.trace_id, 16, "traceId")?,
                    span_id: id(&span.span_id, 8, "spanId")?,
                    parent_span_id: Some(parent).filter(|id| !id.is_empty()),
                    kind: kind(&span.kind),
                    attributes: scalars(&span.attributes),
                    name: span.name,
                    service: service.clone(),
                });
            }
        }
        Ok(Trace { spans })
    }
}

/// The attributes with a scalar value, as text; arrays, maps and bytes are left out.
fn scalars(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|attribute| {
            let text = attribute.value.iter().find_map(|(kind, value)| {
                match (kind.as_str(), value) {
                    ("stringValue", Value::String(text)) => Some(text.clone()),
                    // int64 is a string in OTLP/JSON, a number from some marshallers.
                    ("intValue" | "doubleValue", Value::String(text)) => Some(text.clone()),
                    ("intValue" | "doubleValue" | "boolValue", value) if !value.is_null() => {
                        Some(value.to_string())
                    }
                    _ => None,
                }
            })?;
            Some((attribute.key.clone(), text))
        })
        .collect()
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
fn kind(value: &Value) -> SpanKind {
    let number = match value {
        Value::Number(number) => number.as_u64().unwrap_or(0),
        Value::String(name) => match name.trim_start_matches("SPAN_KIND_") {
            "INTERNAL" => 1,
            "SERVER" => 2,
            "CLIENT" => 3,
            "PRODUCER" => 4,
            "CONSUMER" => 5,
            _ => 0,
        },
        _ => 0,
    };
    SpanKind::from_number(number)
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
        assert_eq!(kind(&Value::Null), SpanKind::Unspecified);
    }

    /// Scalar attributes of every kind read as text.
    #[test]
    fn scalar_attributes_read_as_text() {
        let attributes: Vec<KeyValue> = serde_json::from_value(serde_json::json!([
            {"key": "s", "value": {"stringValue": "x"}},
            {"key": "i", "value": {"intValue": "200"}},
            {"key": "b", "value": {"boolValue": true}},
            {"key": "d", "value": {"doubleValue": 0.5}},
            {"key": "a", "value": {"arrayValue": {"values": []}}},
        ]))
        .unwrap();
        let read = scalars(&attributes);
        let expected = [("b", "true"), ("d", "0.5"), ("i", "200"), ("s", "x")]
            .map(|(key, value)| (key.to_owned(), value.to_owned()));
        assert_eq!(read, BTreeMap::from(expected));
    }
}
