//! Proves that our Allegro and Ozon specs agree with the vendors' published specs on
//! paths, operation ids, parameter names and types, and schema property names and types
//! (recursively), for every operation we declare. Our additions that the published files
//! lack (Allegro's beta.v1 parameters and media type, extra error responses) are not
//! compared; everything present in both must match.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::spec::{self, METHODS};

/// One of our specs and the published file it must agree with.
struct Pair {
    ours: &'static str,
    theirs: &'static str,
    /// The media type compared in bodies and responses.
    media: &'static str,
    /// The version our `x-allegro-versions` annotations must name for a parameter to count.
    version: Option<&'static str>,
}

const PAIRS: [Pair; 2] = [
    Pair {
        ours: "allegro.yaml",
        theirs: "allegro-swagger.yaml",
        media: "application/vnd.allegro.public.v1+json",
        version: Some("public.v1"),
    },
    Pair {
        ours: "ozon.yaml",
        theirs: "ozon-seller-swagger.json",
        media: "application/json",
        version: None,
    },
];

/// Runs the check for every pair; fails with the list of disagreements.
pub fn run(root: &Path, upstream_dir: &Path) -> Result<()> {
    let mut problems = Vec::new();
    for pair in PAIRS {
        let ours = spec::load(&root.join("specs").join(pair.ours))?;
        let theirs = spec::load(&upstream_dir.join(pair.theirs))?;
        let found = compare(&ours, &theirs, &pair);
        println!(
            "specs/{} vs {}: {} operations compared, {} disagreements",
            pair.ours,
            pair.theirs,
            count_ops(&ours),
            found.len()
        );
        problems.extend(
            found
                .into_iter()
                .map(|p| format!("specs/{}: {p}", pair.ours)),
        );
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        bail!("{} disagreements with the published specs", problems.len());
    }
    Ok(())
}

fn count_ops(doc: &Value) -> usize {
    spec::operations_mut(&mut doc.clone()).len()
}

fn compare(ours: &Value, theirs: &Value, pair: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    let Some(paths) = ours.get("paths").and_then(Value::as_object) else {
        return vec!["no paths".into()];
    };
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{} {path}", method.to_uppercase());
            let Some(up) = theirs.pointer(&format!(
                "/paths/{}/{method}",
                path.replace('~', "~0").replace('/', "~1")
            )) else {
                out.push(format!("{at}: not in the published spec"));
                continue;
            };
            if op.get("operationId") != up.get("operationId") {
                out.push(format!(
                    "{at}: operationId {} vs published {}",
                    op["operationId"], up["operationId"]
                ));
            }
            compare_params(ours, op, theirs, up, pair, &at, &mut out);
            let body = |op: &Value| op.pointer("/requestBody/content").cloned();
            compare_content(
                ours,
                body(op),
                theirs,
                body(up),
                pair,
                &format!("{at} request body"),
                &mut out,
            );
            if let Some(responses) = up.get("responses").and_then(Value::as_object) {
                for (code, resp) in responses.iter().filter(|(c, _)| c.starts_with('2')) {
                    let mine = op.pointer(&format!("/responses/{code}"));
                    let Some(mine) = mine else {
                        out.push(format!("{at}: no {code} response"));
                        continue;
                    };
                    let theirs_c = spec::resolve_response(theirs, resp).get("content").cloned();
                    let ours_c = spec::resolve_response(ours, mine).get("content").cloned();
                    compare_content(
                        ours,
                        ours_c,
                        theirs,
                        theirs_c,
                        pair,
                        &format!("{at} {code} response"),
                        &mut out,
                    );
                }
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .map(|t| resolve(doc, t))
            .unwrap_or(v),
        None => v,
    }
}

fn compare_params(
    ours: &Value,
    op: &Value,
    theirs: &Value,
    up: &Value,
    pair: &Pair,
    at: &str,
    out: &mut Vec<String>,
) {
    let collect = |doc: &Value, op: &Value, filter: bool| -> Vec<(String, String, Value)> {
        op.get("parameters")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| resolve(doc, p))
                    .filter(|p| {
                        !filter
                            || match (
                                p.get("x-allegro-versions").and_then(Value::as_array),
                                pair.version,
                            ) {
                                (Some(vs), Some(v)) => vs.iter().any(|x| x == v),
                                _ => true,
                            }
                    })
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap_or("").to_string(),
                            p["in"].as_str().unwrap_or("").to_string(),
                            p.get("schema").cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mine = collect(ours, op, true);
    let published = collect(theirs, up, false);
    let names = |v: &[(String, String, Value)]| {
        v.iter()
            .map(|(n, i, _)| format!("{i}:{n}"))
            .collect::<BTreeSet<_>>()
    };
    if names(&mine) != names(&published) {
        out.push(format!(
            "{at}: parameters {:?} vs published {:?}",
            names(&mine),
            names(&published)
        ));
        return;
    }
    for (name, _, schema) in &mine {
        if let Some((_, _, theirs_s)) = published.iter().find(|(n, _, _)| n == name) {
            compare_schema(
                ours,
                schema,
                theirs,
                theirs_s,
                &format!("{at} parameter {name}"),
                out,
                0,
            );
        }
    }
}

fn compare_content(
    ours: &Value,
    mine: Option<Value>,
    theirs: &Value,
    published: Option<Value>,
    pair: &Pair,
    at: &str,
    out: &mut Vec<String>,
) {
    let Some(published) = published else { return };
    let Some(mine) = mine else {
        out.push(format!("{at}: missing"));
        return;
    };
    let keys = |c: &Value| {
        c.as_object()
            .map(|m| m.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default()
    };
    let published_keys = keys(&published);
    if !published_keys.iter().all(|k| keys(&mine).contains(k)) {
        out.push(format!(
            "{at}: media types {:?} vs published {:?}",
            keys(&mine),
            published_keys
        ));
        return;
    }
    let media = if published_keys.contains(pair.media) {
        pair.media.to_string()
    } else {
        published_keys.iter().next().cloned().unwrap_or_default()
    };
    let (Some(a), Some(b)) = (
        mine.pointer(&format!("/{}/schema", media.replace('/', "~1"))),
        published.pointer(&format!("/{}/schema", media.replace('/', "~1"))),
    ) else {
        return;
    };
    compare_schema(ours, a, theirs, b, at, out, 0);
}

fn kind(s: &Value) -> (Option<String>, Option<String>) {
    let ty = s
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            // The published Ozon spec omits `type: array` on `chats` but gives `items`.
            s.get("items").map(|_| "array".to_owned())
        });
    (
        ty,
        s.get("format").and_then(Value::as_str).map(str::to_owned),
    )
}

fn compare_schema(
    ours: &Value,
    a: &Value,
    theirs: &Value,
    b: &Value,
    at: &str,
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > 12 {
        return;
    }
    let a = resolve(ours, a);
    let b = resolve(theirs, b);
    if kind(a) != kind(b) {
        out.push(format!(
            "{at}: type {:?} vs published {:?}",
            kind(a),
            kind(b)
        ));
        return;
    }
    if let (Some(x), Some(y)) = (a.get("enum"), b.get("enum")) {
        if x != y {
            out.push(format!("{at}: enum {x} vs published {y}"));
        }
    }
    let props = |s: &Value| {
        s.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (pa, pb) = (props(a), props(b));
    let (ka, kb): (BTreeSet<_>, BTreeSet<_>) =
        (pa.keys().cloned().collect(), pb.keys().cloned().collect());
    if ka != kb {
        out.push(format!("{at}: properties {ka:?} vs published {kb:?}"));
    }
    for (name, sa) in &pa {
        if let Some(sb) = pb.get(name) {
            compare_schema(
                ours,
                sa,
                theirs,
                sb,
                &format!("{at}.{name}"),
                out,
                depth + 1,
            );
        }
    }
    if let (Some(ia), Some(ib)) = (a.get("items"), b.get("items")) {
        compare_schema(ours, ia, theirs, ib, &format!("{at}[]"), out, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(prop_type: &str) -> Value {
        json!({"paths": {"/x": {"post": {
            "operationId": "X",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/R"}}}}}
        }}}, "components": {"schemas": {"R": {"type": "object", "properties": {"id": {"type": prop_type}}}}}})
    }

    #[test]
    fn agreement_passes_and_a_changed_property_type_fails() {
        let pair = &PAIRS[1];
        assert!(compare(&doc("string"), &doc("string"), pair).is_empty());
        let found = compare(&doc("integer"), &doc("string"), pair);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("200 response.id"), "{found:?}");
    }
}
