//! A property-based run of the HTTP API against its own contract: for every operation of
//! `specs/inbox-api.yaml`, inputs generated from the spec (parameters and bodies by their
//! schemas, plus hostile and malformed values, with and without a key; seeded, so every
//! run sends the same requests) are sent to `inbox serve` on the sandbox's four accounts.
//! Every answer must be one the operation declares, never a `5xx` it does not declare,
//! an error always a problem (RFC 9457) whose `status` is the HTTP status, and a JSON
//! answer valid against the declared schema.

use serde_json::{json, Map, Value};
use serde_yaml::Value as Yaml;

mod common;
use common::{api_key, ok, serve_store, start, stop, within, EXAMPLES};

const KEY: &str = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

/// Cases generated per operation.
const CASES: usize = 60;

/// A small seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The spec as JSON, with `$ref`s resolved where asked.
struct Spec {
    root: Value,
}

impl Spec {
    fn load() -> Spec {
        let yaml: Yaml = serde_yaml::from_str(inbox_api_client::SPEC).unwrap();
        Spec {
            root: serde_json::to_value(yaml).unwrap(),
        }
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                self.resolve(self.root.pointer(pointer).unwrap())
            }
            None => v,
        }
    }

    /// Whether `value` is valid against `schema`; why not, when it is not.
    fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        if value.is_null() {
            return match schema.get("nullable") == Some(&json!(true))
                || schema.get("type").is_none() && schema.get("allOf").is_none()
            {
                true => Ok(()),
                false => Err(format!("{at}: null where the schema does not allow it")),
            };
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, value, at)?;
            }
            return Ok(());
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.contains(value) {
                return Err(format!("{at}: {value} is not one of {options:?}"));
            }
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => {
                let Some(object) = value.as_object() else {
                    return Err(format!("{at}: not an object"));
                };
                for field in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let field = field.as_str().unwrap();
                    if !object.contains_key(field) {
                        return Err(format!("{at}: no {field}"));
                    }
                }
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (name, property) in properties {
                        if let Some(v) = object.get(name) {
                            self.check(property, v, &format!("{at}.{name}"))?;
                        }
                    }
                }
                Ok(())
            }
            Some("array") => {
                let Some(items) = value.as_array() else {
                    return Err(format!("{at}: not an array"));
                };
                for (i, item) in items.iter().enumerate() {
                    self.check(&schema["items"], item, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            Some("string") => match value.is_string() {
                true => Ok(()),
                false => Err(format!("{at}: not a string")),
            },
            Some("integer") => match value.is_i64() || value.is_u64() {
                true => Ok(()),
                false => Err(format!("{at}: not an integer")),
            },
            Some("number") => match value.is_number() {
                true => Ok(()),
                false => Err(format!("{at}: not a number")),
            },
            Some("boolean") => match value.is_boolean() {
                true => Ok(()),
                false => Err(format!("{at}: not a boolean")),
            },
            _ => Ok(()),
        }
    }
}

/// One operation of the spec.
struct Operation {
    method: String,
    path: String,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Map<String, Value>,
    public: bool,
}

fn operations(spec: &Spec) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in spec.root["paths"].as_object().unwrap() {
        // Parameters may stand on the path, shared by its operations, or on each.
        let shared: Vec<Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().map(|p| spec.resolve(p).clone()).collect())
            .unwrap_or_default();
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let mut parameters = shared.clone();
            parameters.extend(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| spec.resolve(p).clone())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            );
            let body = op
                .pointer("/requestBody/content/application~1json/schema")
                .map(|s| spec.resolve(s).clone());
            out.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                parameters,
                body,
                responses: op["responses"].as_object().unwrap().clone(),
                public: op.get("security") == Some(&json!([])),
            });
        }
    }
    // The destructive ones last, so that the others see the accounts.
    out.sort_by_key(|o| o.method == "DELETE");
    out
}

/// Texts a caller might send, friendly and hostile.
const TEXTS: [&str; 12] = [
    "x",
    "..",
    "%2e%2e",
    "a/b",
    "a\\b",
    "ozon",
    "allegro",
    "",
    "Dzień dobry — 你好",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "\u{0}",
];

/// A value for `schema`: usually a valid one, sometimes not.
fn generate(spec: &Spec, schema: &Value, rng: &mut Rng, depth: usize) -> Value {
    let schema = spec.resolve(schema);
    if rng.chance(8) {
        return rng
            .pick(&[json!(null), json!(-1), json!("?"), json!([]), json!({})])
            .clone();
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return rng.pick(options).clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") if depth < 3 => {
            let mut object = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    if required.contains(&name.as_str()) || rng.chance(50) {
                        object.insert(name.clone(), generate(spec, property, rng, depth + 1));
                    }
                }
            }
            Value::Object(object)
        }
        Some("array") if depth < 3 => {
            let n = rng.below(3);
            Value::Array(
                (0..n)
                    .map(|_| generate(spec, &schema["items"], rng, depth + 1))
                    .collect(),
            )
        }
        Some("integer") => rng
            .pick(&[
                json!(0),
                json!(1),
                json!(50),
                json!(200),
                json!(201),
                json!(-5),
                json!(u64::MAX),
            ])
            .clone(),
        Some("number") => rng
            .pick(&[json!(0.5), json!(1.0), json!(-3.0), json!(1e300)])
            .clone(),
        Some("boolean") => json!(rng.chance(50)),
        Some("string") if schema.get("format") == Some(&json!("date-time")) => rng
            .pick(&[json!("2026-01-01T00:00:00Z"), json!("yesterday")])
            .clone(),
        _ => json!(rng.pick(&TEXTS)),
    }
}

/// `text` as one path segment (dots encoded too, so that no client folds `..` away).
fn seg(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query or path value for a parameter, as text.
fn text_for(spec: &Spec, parameter: &Value, rng: &mut Rng, known: &[String]) -> String {
    if !known.is_empty() && rng.chance(50) {
        return rng.pick(known).clone();
    }
    match generate(spec, &parameter["schema"], rng, 0) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[test]
fn every_operation_answers_within_its_contract_for_generated_inputs() {
    let env = start(
        inbox_sandbox::Config {
            conversations: 2,
            messages_per_conversation: 2,
            ..inbox_sandbox::Config::default()
        },
        "api-properties",
    );
    let db = env.dir.join("inbox.db").to_str().unwrap().to_string();
    let config = env.write_config(&env.sandbox.accounts_config());
    ok(common::inbox_keyed(
        KEY,
        &["accounts", "import", config.to_str().unwrap(), "--db", &db],
    ));
    let (admin, _) = api_key(
        KEY,
        &db,
        &[
            "--scope",
            "read,write,admin,events",
            "--per-minute",
            "100000",
        ],
    );
    let (serve, base) = serve_store(
        KEY,
        &db,
        &[
            "--poll-interval",
            "1",
            "--public-url",
            "https://inbox.example",
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = inbox_core::http_client().unwrap();
    let get_json = |path: &str| -> Value {
        runtime.block_on(async {
            let answer = http
                .get(format!("{base}{path}"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            answer.json().await.unwrap_or(Value::Null)
        })
    };
    assert!(within(std::time::Duration::from_secs(60), || {
        let listed = get_json("/v1/conversations?limit=200").to_string();
        EXAMPLES.iter().all(|(_, id)| listed.contains(id))
    }));
    // Real values to mix in: references, account names, message ids.
    let conversations = get_json("/v1/conversations?limit=200");
    let refs: Vec<String> = conversations["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ref"].as_str().unwrap().to_string())
        .collect();
    let mut message_ids = Vec::new();
    for (vendor, id) in EXAMPLES {
        let r = refs
            .iter()
            .find(|r| r.ends_with(id))
            .unwrap_or_else(|| panic!("{vendor:?}"));
        let messages = get_json(&format!("/v1/conversations/{}/messages", seg(r)));
        for m in messages["data"].as_array().into_iter().flatten() {
            message_ids.push(m["id"].as_str().unwrap().to_string());
        }
    }
    let names = vec![
        "allegro".to_string(),
        "mercadolibre".into(),
        "magalu".into(),
        "ozon".into(),
    ];

    // A webhook endpoint, so that its routes are walked past their 404s too.
    let hook = runtime.block_on(async {
        http.post(format!("{base}/v1/webhooks"))
            .bearer_auth(&admin)
            .json(&json!({"url": "https://hooks.example/inbox", "types": ["message.created"]}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let hook_ids = vec![hook["id"].as_str().unwrap().to_string()];

    let spec = Spec::load();
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut sent = 0usize;
    let mut by_status: std::collections::BTreeMap<u16, usize> = Default::default();
    for op in operations(&spec) {
        for case in 0..CASES {
            let mut path = op.path.clone();
            let mut query = Vec::new();
            let mut headers: Vec<(String, String)> = Vec::new();
            for p in &op.parameters {
                let name = p["name"].as_str().unwrap();
                let known: &[String] = match name {
                    "ref" => &refs,
                    "name" | "account" => &names,
                    "message_id" => &message_ids,
                    "id" if op.path.starts_with("/v1/webhooks") => &hook_ids,
                    _ => &[],
                };
                let required = p.get("required") == Some(&json!(true));
                match p["in"].as_str().unwrap() {
                    "path" => {
                        let mut v = text_for(&spec, p, &mut rng, known);
                        // A segment `.` or `..` (however encoded) is folded away by
                        // every URL parser before it is sent, and an empty one is
                        // another path: not path values.
                        if v.is_empty() || v == "." || v == ".." {
                            v.push('x');
                        }
                        path = path.replace(&format!("{{{name}}}"), &seg(&v));
                    }
                    "query" if required || rng.chance(50) => {
                        query.push((name.to_string(), text_for(&spec, p, &mut rng, known)))
                    }
                    "header" if required || rng.chance(50) => {
                        let v = match rng.below(4) {
                            0 => "has space".to_string(),
                            1 => "k".repeat(300),
                            _ => format!("prop-{}", rng.below(8)),
                        };
                        headers.push((name.to_string(), v));
                    }
                    _ => {}
                }
            }
            let body = op.body.as_ref().map(|schema| {
                if rng.chance(10) {
                    b"{not json".to_vec()
                } else {
                    let mut v = generate(&spec, schema, &mut rng, 0);
                    if op.path == "/v1/conversations/{ref}/messages" && rng.chance(50) {
                        v = json!({"text": format!("property case {case}")});
                    }
                    v.to_string().into_bytes()
                }
            });
            let with_key = !rng.chance(10);
            let (status, kind, text) = runtime.block_on(async {
                let mut request = http
                    .request(op.method.parse().unwrap(), format!("{base}{path}"))
                    .query(&query);
                if with_key {
                    request = request.bearer_auth(&admin);
                }
                for (k, v) in &headers {
                    request = request.header(k.as_str(), v.as_str());
                }
                if let Some(b) = &body {
                    request = request
                        .header("content-type", "application/json")
                        .body(b.clone());
                }
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                let kind = answer
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                // A stream runs on: its status and type are what count.
                if kind.starts_with("text/event-stream") {
                    return (status, kind, String::new());
                }
                (status, kind, answer.text().await.unwrap_or_default())
            });
            sent += 1;
            *by_status.entry(status).or_default() += 1;
            let what = format!(
                "{} {path} {query:?} {headers:?} → {status} {text:.300}",
                op.method
            );
            if !with_key && !op.public {
                assert_eq!(status, 401, "without a key: {what}");
            }
            let declared = op.responses.get(&status.to_string());
            assert!(declared.is_some(), "undeclared answer: {what}");
            assert!(status < 500 || status == 503, "a server error: {what}");
            let declared = spec.resolve(declared.unwrap());
            if status >= 400 {
                assert_eq!(kind, "application/problem+json", "{what}");
                let problem: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(problem["status"], json!(status), "{what}");
                for field in ["type", "title", "detail"] {
                    assert!(problem[field].is_string(), "{what}");
                }
            }
            if let Some(schema) = declared.pointer("/content/application~1json/schema") {
                let value: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
                if let Err(why) = spec.check(schema, &value, "answer") {
                    panic!("outside the spec ({why}): {what}");
                }
            }
        }
    }
    eprintln!("api properties: {sent} requests, answers by status {by_status:?}");
    assert!(by_status.keys().any(|s| (200..300).contains(s)));
    let out = stop(serve);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
