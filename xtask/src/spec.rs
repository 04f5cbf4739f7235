//! Small helpers for walking an OpenAPI document held as `serde_json::Value`.

use anyhow::{Context, Result};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// Reads a YAML or JSON spec into a `Value`, keeping key order.
pub fn load(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    } else {
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The HTTP methods an OpenAPI path item may hold.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation as (path, method, operation object).
pub fn operations_mut(doc: &mut Value) -> Vec<(String, String, &mut Map<String, Value>)> {
    let mut out = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                for (method, op) in item.iter_mut() {
                    if METHODS.contains(&method.as_str()) {
                        if let Some(op) = op.as_object_mut() {
                            out.push((path.clone(), method.clone(), op));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The component name a `$ref` points at (`#/components/schemas/X` → `X`).
pub fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.rsplit('/').next()
}

/// Schema names reachable from `start` through `$ref`s, properties, items and compositions.
pub fn reachable(doc: &Value, start: &[Value]) -> BTreeSet<String> {
    let schemas = doc
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or(Value::Null);
    let mut seen = BTreeSet::new();
    let mut stack: Vec<Value> = start.to_vec();
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    if let Some(name) = r.strip_prefix("#/components/schemas/") {
                        if seen.insert(name.to_string()) {
                            if let Some(s) = schemas.get(name) {
                                stack.push(s.clone());
                            }
                        }
                    }
                }
                stack.extend(map.into_iter().map(|(_, v)| v));
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    seen
}

/// Schemas of the 2xx JSON responses of every operation (after responses are resolved).
pub fn success_response_schemas(doc: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for item in paths.values() {
        for method in METHODS {
            let Some(responses) = item
                .pointer(&format!("/{method}/responses"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for (code, resp) in responses {
                if !code.starts_with('2') {
                    continue;
                }
                let resp = resolve_response(doc, resp);
                if let Some(content) = resp.get("content").and_then(Value::as_object) {
                    for media in content.values() {
                        if let Some(s) = media.get("schema") {
                            out.push(s.clone());
                        }
                    }
                }
            }
        }
    }
    out
}

/// A response object with a `#/components/responses/X` reference resolved.
pub fn resolve_response<'a>(doc: &'a Value, resp: &'a Value) -> &'a Value {
    match resp.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/components/responses/")
            .and_then(|n| doc.pointer(&format!("/components/responses/{n}")))
            .unwrap_or(resp),
        None => resp,
    }
}

/// `snake_case` or `camelCase` or `kebab-case` → `PascalCase`.
pub fn pascal(s: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        } else {
            upper = true;
        }
    }
    out
}
