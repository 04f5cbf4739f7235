//! Spec fix-ups that progenitor 0.15.1 needs. Each is one named function that returns how
//! many places it changed; [`apply`] turns "changed nothing" into an error, so a fix-up
//! that no longer matches its spec fails loudly instead of silently doing nothing.

use anyhow::{bail, Result};
use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use serde_json::{json, Map, Value};

use crate::spec::{operations_mut, ref_name};

/// Runs one fix-up and fails when it matched nothing.
pub fn apply(
    spec: &str,
    name: &str,
    doc: &mut Value,
    fixup: impl FnOnce(&mut Value) -> Result<usize>,
) -> Result<usize> {
    let n = fixup(doc)?;
    if n == 0 {
        bail!("fix-up `{name}` matched nothing in {spec}: the spec changed; update or remove the fix-up");
    }
    Ok(n)
}

/// Our API answers errors as `application/problem+json` (RFC 9457); progenitor reads
/// only `application/json`. Renames that media type in every response (the shared ones
/// under `components/responses` included); the body is JSON either way.
pub fn problem_json_as_json(doc: &mut Value) -> Result<usize> {
    let mut changed = 0;
    let mut rename = |response: &mut Value| {
        if let Some(Value::Object(content)) = response.get_mut("content") {
            if let Some(schema) = content.remove("application/problem+json") {
                content.insert("application/json".into(), schema);
                changed += 1;
            }
        }
    };
    if let Some(Value::Object(shared)) = doc.pointer_mut("/components/responses") {
        for response in shared.values_mut() {
            rename(response);
        }
    }
    for (_, _, op) in operations_mut(doc) {
        if let Some(Value::Object(responses)) = op.get_mut("responses") {
            for response in responses.values_mut() {
                rename(response);
            }
        }
    }
    Ok(changed)
}

/// Ozon publishes `info.version` as the JSON number `2.1`; openapiv3 wants a string.
pub fn stringify_numeric_version(doc: &mut Value) -> Result<usize> {
    let Some(version) = doc.pointer_mut("/info/version") else {
        return Ok(0);
    };
    if let Value::Number(n) = version {
        *version = Value::String(n.to_string());
        return Ok(1);
    }
    Ok(0)
}

/// Allegro lists every messaging body and response under two vendor media types
/// (public.v1 and beta.v1); progenitor takes one media type per operation and only
/// `application/json`. This keeps the `version` one, renamed to `application/json`
/// (the request hook restores it on the wire), and drops parameters whose
/// `x-allegro-versions` does not name `version`.
pub fn select_allegro_media_version(doc: &mut Value, version: &str) -> Result<usize> {
    let vendor = format!("application/vnd.allegro.{version}+json");
    let mut changed = 0;
    for (_, _, op) in operations_mut(doc) {
        if let Some(Value::Array(params)) = op.get_mut("parameters") {
            let before = params.len();
            params.retain(
                |p| match p.get("x-allegro-versions").and_then(Value::as_array) {
                    Some(vs) => vs.iter().any(|v| v == version),
                    None => true,
                },
            );
            for p in params.iter_mut() {
                if let Some(p) = p.as_object_mut() {
                    p.remove("x-allegro-versions");
                }
            }
            changed += before - params.len();
        }
        let select = |content: &mut Map<String, Value>| -> Result<usize> {
            if !content
                .keys()
                .any(|k| k.starts_with("application/vnd.allegro."))
            {
                return Ok(0);
            }
            match content.remove(&vendor) {
                Some(media) => {
                    content.retain(|k, _| !k.starts_with("application/vnd.allegro."));
                    content.insert("application/json".into(), media);
                    Ok(1)
                }
                None => bail!("an Allegro operation has no {vendor} body or response"),
            }
        };
        if let Some(Value::Object(c)) = op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
        {
            changed += select(c)?;
        }
        if let Some(Value::Object(responses)) = op.get_mut("responses") {
            for resp in responses.values_mut() {
                if let Some(Value::Object(c)) = resp.get_mut("content") {
                    changed += select(c)?;
                }
            }
        }
    }
    Ok(changed)
}

/// Allegro's attachment upload accepts six binary media types; progenitor panics on more
/// than one and rejects `image/*`. The body becomes one `application/octet-stream`
/// binary, and a required `Content-Type` header parameter carries the real type.
pub fn binary_upload_to_octet_stream(doc: &mut Value) -> Result<usize> {
    let mut changed = 0;
    for (_, _, op) in operations_mut(doc) {
        let Some(Value::Object(content)) =
            op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
        else {
            continue;
        };
        let binary: Vec<String> = content
            .iter()
            .filter(|(k, v)| {
                !k.contains("json")
                    && v.pointer("/schema/format").and_then(Value::as_str) == Some("binary")
            })
            .map(|(k, _)| k.clone())
            .collect();
        if binary.is_empty() || binary.len() != content.len() {
            continue;
        }
        content.clear();
        content.insert(
            "application/octet-stream".into(),
            json!({"schema": {"type": "string", "format": "binary"}}),
        );
        let params = op
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters is a list");
        params.push(json!({
            "name": "Content-Type",
            "in": "header",
            "required": true,
            "description": format!("The file's media type: one of {}.", binary.join(", ")),
            "schema": {"type": "string"}
        }));
        changed += 1;
    }
    Ok(changed)
}

/// progenitor cannot generate `multipart/form-data` bodies; those operations are
/// written by hand in the client crate's `lib.rs`.
pub fn drop_multipart_operations(doc: &mut Value) -> Result<usize> {
    let mut changed = 0;
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for item in paths.values_mut() {
            if let Value::Object(item) = item {
                let before = item.len();
                item.retain(|_, op| {
                    op.pointer("/requestBody/content/multipart~1form-data")
                        .is_none()
                });
                changed += before - item.len();
            }
        }
        paths.retain(|_, item| item.as_object().is_some_and(|m| !m.is_empty()));
    }
    Ok(changed)
}

/// Ozon declares its credentials as required `Client-Id` / `Api-Key` header parameters
/// on every operation; progenitor would make them arguments of every call. The client
/// sets them once, as sensitive headers, in its request hook instead.
pub fn strip_auth_header_params(doc: &mut Value, names: &[&str]) -> Result<usize> {
    let is_auth = |p: &Value, doc_params: &Map<String, Value>| -> bool {
        let p = match ref_name(p) {
            Some(n) => doc_params.get(n).unwrap_or(p),
            None => p,
        };
        p.get("in").and_then(Value::as_str) == Some("header")
            && p.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| names.contains(&n))
    };
    let doc_params = doc
        .pointer("/components/parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut changed = 0;
    for (_, _, op) in operations_mut(doc) {
        if let Some(Value::Array(params)) = op.get_mut("parameters") {
            let before = params.len();
            params.retain(|p| !is_auth(p, &doc_params));
            changed += before - params.len();
        }
    }
    if let Some(Value::Object(params)) = doc.pointer_mut("/components/parameters") {
        params.retain(|_, p| {
            !(p.get("in").and_then(Value::as_str) == Some("header")
                && p.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| names.contains(&n)))
        });
    }
    Ok(changed)
}

/// Removes component schemas no operation reaches (after a version was selected, the
/// other version's schemas would otherwise be generated too).
pub fn prune_unreachable_schemas(doc: &mut Value) -> Result<usize> {
    let roots: Vec<Value> = [
        doc.get("paths"),
        doc.pointer("/components/parameters"),
        doc.pointer("/components/responses"),
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let keep = crate::spec::reachable(doc, &roots);
    let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") else {
        return Ok(0);
    };
    let before = schemas.len();
    schemas.retain(|name, _| keep.contains(name));
    Ok(before - schemas.len())
}

/// Puts `inbox_core::path_segment` in place of progenitor's `encode_path` for every path
/// parameter of the generated code. `encode_path` leaves `.` and `\` alone, so an id such
/// as `..` or `a\b` is collapsed or turned into `/` by URL parsing and the request
/// reaches another route; `path_segment` encodes everything but unreserved characters and
/// refuses `""`, `.` and `..` with `Error::InvalidRequest` before any request. Returns
/// the rewritten code and how many calls it replaced.
pub fn strict_path_segments(code: &str) -> Result<(String, usize)> {
    const CALL: &str = "encode_path(&";
    const TAIL: &str = ".to_string())";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    let mut count = 0;
    while let Some(at) = rest.find(CALL) {
        let (before, from) = rest.split_at(at);
        let arg_start = CALL.len();
        let Some(end) = from.get(arg_start..).and_then(|a| a.find(TAIL)) else {
            bail!("strict_path_segments: an encode_path call is not of the form encode_path(&x.to_string())");
        };
        let arg = &from[arg_start..arg_start + end];
        if !arg.chars().all(|c| c.is_alphanumeric() || c == '_') {
            bail!("strict_path_segments: unexpected encode_path argument {arg:?}");
        }
        out.push_str(before);
        out.push_str(&format!(
            "::inbox_core::path_segment(&{arg}.to_string()).map_err(Error::InvalidRequest)?"
        ));
        rest = &from[arg_start + end + TAIL.len()..];
        count += 1;
    }
    out.push_str(rest);
    if count == 0 {
        bail!("fix-up `strict_path_segments` matched nothing");
    }
    Ok((out, count))
}

/// Splits every multi-line doc attribute of the generated tokens into one attribute per
/// line (each line after a space), so that the code is written with `///` lines.
/// Otherwise prettyplease writes a `/** … */` block whose continuation lines rustfmt
/// indents with the item, and rustdoc reads those as indented code blocks: rendered as
/// code on docs.rs and compiled as doctests. Returns the tokens and how many attributes
/// it split; fails when it split none.
pub fn line_doc_comments(tokens: TokenStream) -> Result<(TokenStream, usize)> {
    let mut count = 0;
    let out = split_docs(tokens, &mut count);
    if count == 0 {
        bail!("fix-up `line_doc_comments` matched nothing: progenitor wrote no multi-line doc");
    }
    Ok((out, count))
}

fn split_docs(tokens: TokenStream, count: &mut usize) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    let mut rest = trees.as_slice();
    while let Some((first, tail)) = rest.split_first() {
        if let Some((taken, inner, text)) = doc_attribute(rest) {
            if text.contains('\n') {
                *count += 1;
            }
            for line in text.lines() {
                let line = match line {
                    "" => String::new(),
                    l => format!(" {l}"),
                };
                out.extend(doc_tokens(inner, &line));
            }
            rest = rest.get(taken..).unwrap_or_default();
            continue;
        }
        match first {
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), split_docs(g.stream(), count));
                group.set_span(g.span());
                out.extend([TokenTree::Group(group)]);
            }
            other => out.extend([other.clone()]),
        }
        rest = tail;
    }
    out
}

/// `#[doc = "…"]` or `#![doc = "…"]` at the start of `trees`: how many trees it spans,
/// whether it is an inner attribute, and its text.
fn doc_attribute(trees: &[TokenTree]) -> Option<(usize, bool, String)> {
    let TokenTree::Punct(hash) = trees.first()? else {
        return None;
    };
    if hash.as_char() != '#' {
        return None;
    }
    let inner = matches!(trees.get(1), Some(TokenTree::Punct(p)) if p.as_char() == '!');
    let at = if inner { 2 } else { 1 };
    let TokenTree::Group(group) = trees.get(at)? else {
        return None;
    };
    if group.delimiter() != Delimiter::Bracket {
        return None;
    }
    let body: Vec<TokenTree> = group.stream().into_iter().collect();
    match body.as_slice() {
        [TokenTree::Ident(name), TokenTree::Punct(eq), TokenTree::Literal(text)]
            if name == "doc" && eq.as_char() == '=' =>
        {
            let text = syn::parse2::<syn::LitStr>(TokenTree::Literal(text.clone()).into()).ok()?;
            Some((at + 1, inner, text.value()))
        }
        _ => None,
    }
}

fn doc_tokens(inner: bool, line: &str) -> TokenStream {
    let mut out = TokenStream::new();
    out.extend([TokenTree::Punct(Punct::new('#', Spacing::Alone))]);
    if inner {
        out.extend([TokenTree::Punct(Punct::new('!', Spacing::Alone))]);
    }
    let body: TokenStream = [
        TokenTree::Ident(Ident::new("doc", Span::call_site())),
        TokenTree::Punct(Punct::new('=', Spacing::Alone)),
        TokenTree::Literal(Literal::string(line)),
    ]
    .into_iter()
    .collect();
    out.extend([TokenTree::Group(Group::new(Delimiter::Bracket, body))]);
    out
}

/// Fields of a page envelope that paging reads: they stay strict (a malformed one fails
/// the page, rather than ending a listing early without a word).
const PAGING_FIELDS: [&str; 10] = [
    "threads",
    "messages",
    "results",
    "chats",
    "next_page",
    "cursor",
    "has_next",
    "links",
    "next",
    "id",
];

/// Marks every optional field of the page envelopes `structs` — except [`PAGING_FIELDS`]
/// — `#[serde(default, deserialize_with = "::inbox_core::or_none")]`, so that a malformed
/// count, `previous` link, user id or status costs that field, not the page. Returns the
/// rewritten code and how many fields it marked; fails when a struct is missing or has no
/// such field.
pub fn tolerant_envelope_fields(code: &str, structs: &[&str]) -> Result<(String, usize)> {
    const MARK: &str = "        #[serde(default, deserialize_with = \"::inbox_core::or_none\")]";
    let mut lines: Vec<String> = code.lines().map(str::to_owned).collect();
    let mut total = 0;
    for name in structs {
        let header = format!("    pub struct {name} {{");
        let Some(start) = lines.iter().position(|l| *l == header) else {
            bail!("tolerant_envelope_fields: no struct {name}");
        };
        let mut marked = 0;
        let mut i = start + 1;
        while i < lines.len() && lines[i] != "    }" {
            let field = lines[i]
                .strip_prefix("        pub ")
                .and_then(|rest| rest.split_once(':'));
            if let Some((field, ty)) = field {
                let ty = if ty.trim().is_empty() {
                    lines
                        .get(i + 1)
                        .map(|l| l.trim().to_string())
                        .unwrap_or_default()
                } else {
                    ty.trim().to_string()
                };
                if ty.starts_with("::std::option::Option<") && !PAGING_FIELDS.contains(&field) {
                    lines.insert(i, MARK.to_string());
                    i += 1;
                    marked += 1;
                }
            }
            i += 1;
        }
        if marked == 0 {
            bail!("tolerant_envelope_fields: {name} has no optional field to mark");
        }
        total += marked;
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_docs_become_one_attribute_per_line() {
        let code: TokenStream =
            "#[doc = \"Lists.\\n\\n```ignore\\nlet r = client\\n    .send();\\n```\"] fn f() {} \
             impl C { #[doc = \"One.\\nTwo.\"] fn g() {} #[doc = \"single\"] fn h() {} }"
                .parse()
                .unwrap();
        let (out, n) = line_doc_comments(code).unwrap();
        assert_eq!(n, 2);
        let text = out.to_string();
        for line in [
            " Lists.",
            "",
            " ```ignore",
            " let r = client",
            "     .send();",
            " ```",
            " One.",
            " Two.",
            " single",
        ] {
            assert!(
                text.contains(&format!("# [doc = {line:?}]")),
                "{line:?} in {text}"
            );
        }
        assert!(!text.contains("\\n"), "{text}");
        let single: TokenStream = "#[doc = \"x\"] fn f() {}".parse().unwrap();
        assert!(line_doc_comments(single).is_err());
    }

    #[test]
    fn envelope_fields_but_paging_ones_become_tolerant() {
        let code = "    pub struct Page {\n        pub count: ::std::option::Option<i64>,\n        pub next: ::std::option::Option<String>,\n        pub status:\n            ::std::option::Option<S>,\n        pub items: Vec<T>,\n    }\n";
        let (out, n) = tolerant_envelope_fields(code, &["Page"]).unwrap();
        assert_eq!(n, 2, "{out}");
        assert!(out.contains("or_none\")]\n        pub count"), "{out}");
        assert!(out.contains("or_none\")]\n        pub status:"), "{out}");
        assert!(!out.contains("or_none\")]\n        pub next"), "{out}");
        assert!(tolerant_envelope_fields(code, &["Missing"]).is_err());
    }

    #[test]
    fn path_parameters_go_through_path_segment() {
        let code = "let url = format!(\"{}/t/{}/m/{}\", b, encode_path(&thread_id.to_string()), encode_path(&m.to_string()),);";
        let (out, n) = strict_path_segments(code).unwrap();
        assert_eq!(n, 2);
        assert!(!out.contains("encode_path("), "{out}");
        assert!(out.contains(
            "::inbox_core::path_segment(&thread_id.to_string()).map_err(Error::InvalidRequest)?"
        ));
        assert!(strict_path_segments("no paths here").is_err());
    }

    #[test]
    fn a_fixup_that_matches_nothing_fails_loudly() {
        let mut doc = json!({"info": {"version": "1"}});
        let err = apply(
            "x.yaml",
            "stringify_numeric_version",
            &mut doc,
            stringify_numeric_version,
        )
        .unwrap_err();
        assert!(err.to_string().contains("matched nothing"), "{err}");
        let mut doc = json!({"info": {"version": 2.1}});
        apply(
            "x.yaml",
            "stringify_numeric_version",
            &mut doc,
            stringify_numeric_version,
        )
        .unwrap();
        assert_eq!(doc["info"]["version"], "2.1");
    }

    #[test]
    fn allegro_version_selection_keeps_one_media_type_and_its_params() {
        let mut doc = json!({"paths": {"/t": {"get": {
            "parameters": [
                {"name": "offset", "in": "query", "x-allegro-versions": ["public.v1"]},
                {"name": "page.id", "in": "query", "x-allegro-versions": ["beta.v1"]},
                {"name": "limit", "in": "query"}
            ],
            "responses": {"200": {"content": {
                "application/vnd.allegro.public.v1+json": {"schema": {"$ref": "#/components/schemas/A"}},
                "application/vnd.allegro.beta.v1+json": {"schema": {"$ref": "#/components/schemas/B"}}
            }}}
        }}}});
        select_allegro_media_version(&mut doc, "beta.v1").unwrap();
        let op = &doc["paths"]["/t"]["get"];
        let names: Vec<_> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["page.id", "limit"]);
        assert_eq!(
            op["responses"]["200"]["content"],
            json!({"application/json": {"schema": {"$ref": "#/components/schemas/B"}}})
        );
    }

    #[test]
    fn problem_json_becomes_json_in_shared_and_inline_responses() {
        let problem = json!({"schema": {"$ref": "#/components/schemas/Problem"}});
        let mut doc = json!({
            "components": {"responses": {"NotFound": {"content": {"application/problem+json": problem}}}},
            "paths": {"/t": {"get": {"responses": {
                "200": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "409": {"content": {"application/problem+json": problem}},
                "404": {"$ref": "#/components/responses/NotFound"}
            }}}}
        });
        assert_eq!(problem_json_as_json(&mut doc).unwrap(), 2);
        assert_eq!(
            doc["components"]["responses"]["NotFound"]["content"],
            json!({"application/json": problem})
        );
        assert_eq!(
            doc["paths"]["/t"]["get"]["responses"]["409"]["content"],
            json!({"application/json": problem})
        );
        assert_eq!(
            problem_json_as_json(&mut doc).unwrap(),
            0,
            "nothing left to rename"
        );
    }
}
