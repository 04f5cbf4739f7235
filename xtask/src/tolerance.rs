//! Fix-ups that make the generated types decode what vendors really send.
//!
//! - [`open_enums`]: every string `enum` (and every `x-open-enum` list of documented
//!   values on a plain string) becomes an open enum generated into the module's `enums`,
//!   so an unknown value is kept in `Other(String)` instead of failing the response.
//! - [`relax_response_schemas`]: in schemas reachable from success responses, no field is
//!   required and every array may be `null`: a missing or null field costs that field,
//!   never the object. (Request-only schemas keep their `required` lists.)
//! - [`tolerant_scalars`]: in those schemas, id-like fields take `FlexId` (string or
//!   number), booleans `FlexBool` (`true` or `"true"`), integers `FlexInt` (`5` or `"5"`).
//! - [`flex_datetimes`]: every `date-time` takes `FlexDateTime` (offsets, `{"$date": …}`,
//!   epochs).
//! - [`lenient_list_items`]: the listed items of every success envelope take
//!   `Lenient<T>`, so one malformed element never fails its page.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::spec::{pascal, reachable, ref_name, success_response_schemas, METHODS};

/// The Rust crate that owns a generated module, for `x-rust-type` paths.
pub struct Owner<'a> {
    /// Package name, e.g. `inbox-allegro`.
    pub package: &'a str,
    /// Module inside it, e.g. `public_v1`.
    pub module: &'a str,
}

fn rust_type(package: &str, path: String) -> Value {
    json!({"x-rust-type": {"crate": package, "version": "*", "path": path}})
}

fn core_type(name: &str) -> Value {
    rust_type("inbox-core", format!("inbox_core::{name}"))
}

/// Calls `f(schema, suggested_name)` on every schema in the document, depth first;
/// `f` returns `true` when it replaced the schema (its children are then not visited).
fn visit_all(doc: &mut Value, f: &mut dyn FnMut(&mut Value, &str) -> bool) {
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        for (name, s) in schemas.iter_mut() {
            visit(s, &pascal(name), f);
        }
    }
    if let Some(Value::Object(params)) = doc.pointer_mut("/components/parameters") {
        for (name, p) in params.iter_mut() {
            if let Some(s) = p.get_mut("schema") {
                visit(s, &pascal(name), f);
            }
        }
    }
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for item in paths.values_mut() {
            for method in METHODS {
                let Some(op) = item.get_mut(method) else {
                    continue;
                };
                let op_name = pascal(
                    op.get("operationId")
                        .and_then(Value::as_str)
                        .unwrap_or(method),
                );
                if let Some(Value::Array(params)) = op.get_mut("parameters") {
                    for p in params.iter_mut() {
                        let pname =
                            pascal(p.get("name").and_then(Value::as_str).unwrap_or("param"));
                        if let Some(s) = p.get_mut("schema") {
                            visit(s, &format!("{op_name}{pname}"), f);
                        }
                    }
                }
                if let Some(Value::Object(content)) =
                    op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
                {
                    for media in content.values_mut() {
                        if let Some(s) = media.get_mut("schema") {
                            visit(s, &format!("{op_name}Body"), f);
                        }
                    }
                }
            }
        }
    }
}

fn visit(schema: &mut Value, name: &str, f: &mut dyn FnMut(&mut Value, &str) -> bool) {
    if schema.get("$ref").is_some() || f(schema, name) {
        return;
    }
    let Value::Object(map) = schema else { return };
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for (p, s) in props.iter_mut() {
            visit(s, &format!("{name}{}", pascal(p)), f);
        }
    }
    if let Some(items) = map.get_mut("items") {
        visit(items, &format!("{name}Item"), f);
    }
    if let Some(extra @ Value::Object(_)) = map.get_mut("additionalProperties") {
        visit(extra, &format!("{name}Value"), f);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(parts)) = map.get_mut(key) {
            for (i, s) in parts.iter_mut().enumerate() {
                visit(s, &format!("{name}Variant{i}"), f);
            }
        }
    }
}

/// Replaces string enums with generated open enums; returns the enums to emit.
pub fn open_enums(doc: &mut Value, owner: &Owner) -> Result<BTreeMap<String, Vec<String>>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut conflict = None;
    visit_all(doc, &mut |schema, name| {
        let values = match (schema.get("enum"), schema.get("x-open-enum")) {
            (Some(Value::Array(v)), _) | (None, Some(Value::Array(v))) => v.clone(),
            _ => return false,
        };
        let Some(values) = values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        if let Some(existing) = found.get(name) {
            if existing != &values {
                conflict = Some(name.to_string());
            }
        }
        found.insert(name.to_string(), values);
        let description = schema.get("description").cloned();
        *schema = rust_type(
            owner.package,
            format!(
                "{}::{}::enums::{name}",
                owner.package.replace('-', "_"),
                owner.module
            ),
        );
        if let Some(d) = description {
            schema["description"] = d;
        }
        true
    });
    if let Some(name) = conflict {
        bail!("two different enums would both be named {name}");
    }
    Ok(found)
}

/// Replaces every `format: date-time` string with `inbox_core::FlexDateTime`.
pub fn flex_datetimes(doc: &mut Value) -> Result<usize> {
    let mut n = 0;
    visit_all(doc, &mut |schema, _| {
        if schema.get("type").and_then(Value::as_str) == Some("string")
            && schema.get("format").and_then(Value::as_str) == Some("date-time")
        {
            *schema = core_type("FlexDateTime");
            n += 1;
            true
        } else {
            false
        }
    });
    Ok(n)
}

/// Calls `f` on every inline object schema inside the schemas reachable from success
/// responses (component schemas and inline response schemas).
fn for_response_objects(doc: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    let starts = success_response_schemas(doc);
    let names = reachable(doc, &starts);
    fn walk(s: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
        let Value::Object(map) = s else { return };
        if map.contains_key("$ref") || map.contains_key("x-rust-type") {
            return;
        }
        f(map);
        if let Some(Value::Object(props)) = map.get_mut("properties") {
            for p in props.values_mut() {
                walk(p, f);
            }
        }
        if let Some(items) = map.get_mut("items") {
            walk(items, f);
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(Value::Array(parts)) = map.get_mut(key) {
                parts.iter_mut().for_each(|p| walk(p, f));
            }
        }
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        for name in &names {
            if let Some(s) = schemas.get_mut(name) {
                walk(s, f);
            }
        }
    }
    // Inline (non-$ref) success response schemas.
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for item in paths.values_mut() {
            for method in METHODS {
                let Some(Value::Object(responses)) =
                    item.pointer_mut(&format!("/{method}/responses"))
                else {
                    continue;
                };
                for (code, resp) in responses.iter_mut() {
                    if !code.starts_with('2') {
                        continue;
                    }
                    if let Some(Value::Object(content)) = resp.get_mut("content") {
                        for media in content.values_mut() {
                            if let Some(s) = media.get_mut("schema") {
                                walk(s, f);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Drops `required` and lets arrays be null in every response-reachable object.
pub fn relax_response_schemas(doc: &mut Value) -> Result<usize> {
    let mut n = 0;
    for_response_objects(doc, &mut |map| {
        if map.remove("required").is_some() {
            n += 1;
        }
        // A nullable object would become a newtype over `Option`; as an optional field
        // it is already `Option<T>`, which takes `null`.
        if map.get("type").and_then(Value::as_str) == Some("object")
            && map.contains_key("properties")
            && map.remove("nullable").is_some()
        {
            n += 1;
        }
        if map.get("additionalProperties") == Some(&Value::Bool(false)) {
            map.remove("additionalProperties");
            n += 1;
        }
        if let Some(Value::Object(props)) = map.get_mut("properties") {
            for p in props.values_mut() {
                // Arrays and free-form maps would otherwise decode with a default that
                // refuses `null`.
                let ty = p.get("type").and_then(Value::as_str);
                let map_like = ty == Some("object") && p.get("properties").is_none();
                if (ty == Some("array") || map_like) && p.get("nullable").is_none() {
                    p["nullable"] = Value::Bool(true);
                    n += 1;
                }
            }
        }
    });
    Ok(n)
}

fn id_like(name: &str) -> bool {
    name == "id" || name.ends_with("_id") || (name.ends_with("Id") && name.len() > 2)
}

/// Tolerant ids, booleans and integers in response-reachable objects.
pub fn tolerant_scalars(doc: &mut Value) -> Result<usize> {
    let mut n = 0;
    for_response_objects(doc, &mut |map| {
        let Some(Value::Object(props)) = map.get_mut("properties") else {
            return;
        };
        for (name, p) in props.iter_mut() {
            if p.get("enum").is_some() || p.get("x-rust-type").is_some() || p.get("$ref").is_some()
            {
                continue;
            }
            let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
            let replacement = match ty {
                "string" | "integer" if id_like(name) => "FlexId",
                "boolean" => "FlexBool",
                "integer" => "FlexInt",
                _ => continue,
            };
            let description = p.get("description").cloned();
            *p = core_type(replacement);
            if let Some(d) = description {
                p["description"] = d;
            }
            n += 1;
        }
    });
    Ok(n)
}

/// Wraps the items of every array in a success envelope as `Lenient<T>`. An envelope is
/// a schema that is a success response body and never part of another schema.
pub fn lenient_list_items(doc: &mut Value) -> Result<usize> {
    let schemas = doc
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or(Value::Null);
    let nested: Vec<Value> = schemas
        .as_object()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let mut inner = std::collections::BTreeSet::new();
    for s in &nested {
        // Names referenced from inside another schema (not the schema itself).
        inner.extend(reachable(doc, std::slice::from_ref(s)));
    }
    let mut envelopes = Vec::new();
    for s in success_response_schemas(doc) {
        if let Some(name) = ref_name(&s) {
            if !inner.contains(name) {
                envelopes.push(name.to_string());
            }
        }
    }
    envelopes.sort();
    envelopes.dedup();
    let mut n = 0;
    for name in envelopes {
        let Some(Value::Object(props)) =
            doc.pointer_mut(&format!("/components/schemas/{name}/properties"))
        else {
            continue;
        };
        for p in props.values_mut() {
            let is_array = p.get("type").and_then(Value::as_str) == Some("array");
            let Some(items) = p.get_mut("items") else {
                continue;
            };
            if is_array && items.get("$ref").is_some() {
                let mut wrapped = core_type("Lenient");
                wrapped["x-rust-type"]["parameters"] = json!([items.clone()]);
                *items = wrapped;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_become_open_enums_named_after_their_place() {
        let mut doc = json!({"components": {"schemas": {"Msg": {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["A", "B"]},
            "kind": {"type": "string", "x-open-enum": ["x"]}
        }}}}});
        let owner = Owner {
            package: "inbox-x",
            module: "generated",
        };
        let found = open_enums(&mut doc, &owner).unwrap();
        assert_eq!(found["MsgStatus"], ["A", "B"]);
        assert_eq!(found["MsgKind"], ["x"]);
        assert_eq!(
            doc.pointer("/components/schemas/Msg/properties/status/x-rust-type/path")
                .unwrap(),
            "inbox_x::generated::enums::MsgStatus"
        );
    }

    #[test]
    fn only_response_schemas_are_relaxed() {
        let mut doc = json!({
            "paths": {"/a": {"post": {
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}},
                "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Out"}}}}}
            }}},
            "components": {"schemas": {
                "In": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                "Out": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "integer"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}
                }},
                "Item": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
            }}
        });
        relax_response_schemas(&mut doc).unwrap();
        tolerant_scalars(&mut doc).unwrap();
        lenient_list_items(&mut doc).unwrap();
        let s = &doc["components"]["schemas"];
        assert_eq!(s["In"]["required"], json!(["id"]));
        assert!(s["Out"].get("required").is_none());
        assert!(s["Item"].get("required").is_none());
        assert_eq!(
            s["Out"]["properties"]["id"]["x-rust-type"]["path"],
            "inbox_core::FlexId"
        );
        assert_eq!(
            s["Item"]["properties"]["ok"]["x-rust-type"]["path"],
            "inbox_core::FlexBool"
        );
        assert_eq!(s["Out"]["properties"]["items"]["nullable"], true);
        assert_eq!(
            s["Out"]["properties"]["items"]["items"]["x-rust-type"]["parameters"][0]["$ref"],
            "#/components/schemas/Item"
        );
        assert_eq!(s["In"]["properties"]["id"]["type"], "string");
    }
}
