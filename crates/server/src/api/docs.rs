//! The contract, served: `GET /openapi.yaml` (the spec as written) and `GET /docs`, a
//! page of every operation rendered from it on the server — one self-contained HTML
//! document, no script and no asset from any network.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_yaml::Value;

use crate::text::html_escape;

/// `GET /openapi.yaml`: the contract.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        inbox_api_client::SPEC,
    )
        .into_response()
}

/// `GET /docs`: the documentation page.
pub async fn page() -> Html<&'static str> {
    Html(PAGE.as_str())
}

static PAGE: LazyLock<String> = LazyLock::new(|| render(inbox_api_client::SPEC));

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A schema in a few words: its `$ref` name, or its type.
fn schema_name(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match text(v, "type") {
        "array" => format!("array of {}", schema_name(v.get("items"))),
        "" => "any".into(),
        t => t.to_string(),
    }
}

/// The page for `spec` (a broken spec renders as its text alone).
fn render(spec: &str) -> String {
    let parsed: Value = serde_yaml::from_str(spec).unwrap_or(Value::Null);
    let info = parsed.get("info").cloned().unwrap_or(Value::Null);
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         .op{{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}}\
         .m{{display:inline-block;min-width:4.5rem;font-weight:700}}code,pre{{background:#f5f5f5;padding:0 .2rem}}\
         pre{{padding:1rem;overflow:auto}}table{{border-collapse:collapse}}td,th{{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}}</style>\
         </head><body><h1>{title} <small>{version}</small></h1><p>{description}</p>\
         <p>The contract: <a href=\"/openapi.yaml\">/openapi.yaml</a> (OpenAPI 3.0.3).</p>",
        title = html_escape(text(&info, "title")),
        version = html_escape(text(&info, "version")),
        description = html_escape(text(&info, "description")),
    );
    let params = parsed
        .get("components")
        .and_then(|c| c.get("parameters"))
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(paths) = parsed.get("paths").and_then(Value::as_mapping) {
        for (path, item) in paths {
            let path = path.as_str().unwrap_or_default();
            let Some(item) = item.as_mapping() else {
                continue;
            };
            for (method, op) in item {
                let method = method.as_str().unwrap_or_default();
                if method == "parameters" {
                    continue;
                }
                let _ = write!(
                    html,
                    "<div class=\"op\" id=\"{id}\"><h3><span class=\"m\">{m}</span> <code>{p}</code></h3><p>{summary}</p><p>{desc}</p>",
                    id = html_escape(text(op, "operationId")),
                    m = html_escape(&method.to_uppercase()),
                    p = html_escape(path),
                    summary = html_escape(text(op, "summary")),
                    desc = html_escape(text(op, "description")),
                );
                let mut all: Vec<Value> = Vec::new();
                for list in [item.get("parameters"), op.get("parameters")]
                    .into_iter()
                    .flatten()
                {
                    all.extend(list.as_sequence().cloned().unwrap_or_default());
                }
                if !all.is_empty() {
                    html.push_str(
                        "<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>",
                    );
                    for p in &all {
                        let p = match p.get("$ref").and_then(Value::as_str) {
                            Some(r) => params
                                .get(r.rsplit('/').next().unwrap_or_default())
                                .cloned()
                                .unwrap_or(Value::Null),
                            None => p.clone(),
                        };
                        let _ = write!(
                            html,
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            html_escape(text(&p, "name")),
                            html_escape(text(&p, "in")),
                            html_escape(&schema_name(p.get("schema"))),
                            html_escape(text(&p, "description")),
                        );
                    }
                    html.push_str("</table>");
                }
                if let Some(content) = op
                    .get("requestBody")
                    .and_then(|b| b.get("content"))
                    .and_then(Value::as_mapping)
                {
                    for (kind, media) in content {
                        let _ = write!(
                            html,
                            "<p>Body <code>{}</code>: {}</p>",
                            html_escape(kind.as_str().unwrap_or_default()),
                            html_escape(&schema_name(media.get("schema")))
                        );
                    }
                }
                if let Some(responses) = op.get("responses").and_then(Value::as_mapping) {
                    html.push_str("<p>Answers: ");
                    for (status, r) in responses {
                        let status = match status {
                            Value::Number(n) => n.to_string(),
                            other => other.as_str().unwrap_or_default().to_string(),
                        };
                        let described = r
                            .get("$ref")
                            .and_then(Value::as_str)
                            .map(|r| r.rsplit('/').next().unwrap_or(r).to_string())
                            .unwrap_or_else(|| text(r, "description").to_string());
                        let _ = write!(
                            html,
                            "<code>{}</code> {}; ",
                            html_escape(&status),
                            html_escape(&described)
                        );
                    }
                    html.push_str("</p>");
                }
                html.push_str("</div>");
            }
        }
    }
    let _ = write!(
        html,
        "<h2>The spec</h2><pre>{}</pre></body></html>",
        html_escape(spec)
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_operation_of_the_spec_and_loads_nothing_from_elsewhere() {
        let page = render(inbox_api_client::SPEC);
        let spec: Value = serde_yaml::from_str(inbox_api_client::SPEC).unwrap();
        let mut operations = 0;
        for (_, item) in spec["paths"].as_mapping().unwrap() {
            for (_, op) in item.as_mapping().unwrap() {
                if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                    assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
                    operations += 1;
                }
            }
        }
        assert!(operations >= 15, "{operations}");
        assert!(!page.contains("<script"));
        assert!(!page.contains("src=\"http"));
        assert!(!page.contains("href=\"http"));
    }
}
