//! Sellers connecting accounts through `inbox serve --public-url` and the sandbox's
//! authorize pages, followed by an HTTP client (redirects by hand, the consent form
//! read and submitted): per marketplace, a link ends with the account stored, its
//! credentials sealed, syncing without a restart; the same seller twice, a replayed
//! callback, a forged or expired `state`, a reused code and a denied consent each end in
//! the error redirect and store nothing. Ozon's key form; Allegro's device flow from the
//! terminal.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use inbox_sandbox::{Config, OAuthConfig, Sandbox, Vendor};
use serde_json::Value;

mod common;
use common::{inbox_command, json_lines, ok, start, within, Env};

const KEY: &str = "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a";

/// What the sandbox prints for a shell: its hosts, auth hosts and apps.
fn sandbox_env(sandbox: &Sandbox) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for vendor in Vendor::ALL {
        let upper = vendor.prefix().to_ascii_uppercase();
        vars.push((format!("INBOX_{upper}_URL"), sandbox.url(vendor)));
        vars.push((format!("INBOX_{upper}_AUTH_URL"), sandbox.url(vendor)));
        if vendor != Vendor::Ozon {
            vars.push((
                format!("{upper}_CLIENT_ID"),
                sandbox.oauth().client_id.clone(),
            ));
            vars.push((
                format!("{upper}_CLIENT_SECRET"),
                sandbox.oauth().client_secret.clone(),
            ));
        }
    }
    vars
}

/// A sandbox of three sellers per marketplace, and `inbox serve` on a SQLite file with
/// a public URL.
struct Service {
    env: Env,
    db: String,
    public: String,
    serve: Option<Child>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Service {
    fn start(name: &str) -> Service {
        let env = start(
            Config {
                conversations: 2,
                messages_per_conversation: 2,
                accounts: 3,
                oauth: OAuthConfig {
                    device_interval: Duration::from_secs(1),
                    ..OAuthConfig::default()
                },
                ..Config::default()
            },
            name,
        );
        let db = env.dir.join("inbox.db").to_str().unwrap().to_string();
        let port = common::free_port();
        let public = format!("http://127.0.0.1:{port}");
        let serve = inbox_command()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--insecure-no-secret",
            ])
            .args([
                "--poll-interval",
                "0.5",
                "--db",
                &db,
                "--public-url",
                &public,
            ])
            .env_clear()
            .envs(sandbox_env(&env.sandbox))
            .env("INBOX_TOKEN_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The provider TLS needs, installed once (loopback is plain HTTP).
        let _ = inbox_core::http_client();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let service = Service {
            env,
            db,
            public,
            serve: Some(serve),
            runtime,
            http,
        };
        let health = format!("{}/healthz", service.public);
        let up = within(Duration::from_secs(20), || {
            service
                .runtime
                .block_on(service.http.get(&health).send())
                .is_ok_and(|r| r.status().is_success())
        });
        assert!(up, "serve did not start");
        service
    }

    fn inbox(&self, args: &[&str]) -> Output {
        inbox_command()
            .args(args)
            .env_clear()
            .envs(sandbox_env(&self.env.sandbox))
            .env("INBOX_TOKEN_KEY", KEY)
            .output()
            .unwrap()
    }

    /// A connect link for `name`, back to `PUBLIC/healthz` (any page of ours).
    fn link(&self, marketplace: &str, name: &str, extra: &[&str]) -> String {
        let return_to = format!("{}/healthz?from=connect", self.public);
        let out = ok(self.inbox(
            &[
                &[
                    "accounts",
                    "link",
                    marketplace,
                    "--name",
                    name,
                    "--db",
                    &self.db,
                ][..],
                &["--public-url", &self.public, "--return-to", &return_to],
                extra,
            ]
            .concat(),
        ));
        let url = out
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .unwrap()
            .to_string();
        assert!(
            url.starts_with(&format!("{}/connect/", self.public)),
            "{out}"
        );
        url
    }

    /// GET `url`: its status, `Location`, body.
    fn get(&self, url: &str) -> (u16, Option<String>, String) {
        self.runtime.block_on(async {
            let r = self.http.get(url).send().await.unwrap();
            answer(r).await
        })
    }

    fn post(&self, url: &str, form: &[(String, String)]) -> (u16, Option<String>, String) {
        self.runtime.block_on(async {
            let r = self.http.post(url).form(form).send().await.unwrap();
            answer(r).await
        })
    }

    /// Opens `link` and gives consent as sandbox account `as_account` (`allow` or
    /// `deny`): the callback URL the vendor sends the browser to.
    fn consent(&self, link: &str, as_account: &str, button: &str) -> String {
        let (status, authorize, _) = self.get(link);
        assert_eq!(status, 303, "the link redirects to the vendor");
        let authorize = authorize.unwrap();
        let (status, _, page) = self.get(&authorize);
        assert_eq!(status, 200, "{page}");
        let (action, mut fields) = form(&page);
        fields.push(("account".into(), as_account.into()));
        fields.push((button.into(), "1".into()));
        let host = authorize.split("/").take(3).collect::<Vec<_>>().join("/");
        let (status, callback, body) = self.post(&format!("{host}{action}"), &fields);
        assert_eq!(status, 302, "{body}");
        callback.unwrap()
    }

    /// The redirect the callback answers.
    fn callback(&self, url: &str) -> String {
        let (status, to, body) = self.get(url);
        assert!(status == 303 || status == 302, "{status} {body}");
        to.unwrap()
    }

    fn listed(&self) -> BTreeMap<String, Value> {
        json_lines(&ok(
            self.inbox(&["accounts", "list", "--json", "--db", &self.db])
        ))
        .into_iter()
        .map(|a| (a["name"].as_str().unwrap().to_string(), a))
        .collect()
    }

    /// Messages stored for `account`.
    fn stored(&self, account: &str) -> i64 {
        let db = rusqlite::Connection::open(&self.db).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM messages WHERE account = ?1",
            [account],
            |r| r.get(0),
        )
        .unwrap_or(0)
    }

    /// Every account's sealed credentials, as the database holds them.
    fn sealed(&self) -> String {
        let db = rusqlite::Connection::open(&self.db).unwrap();
        let mut statement = db
            .prepare("SELECT settings || credentials FROM accounts")
            .unwrap();
        let rows: Vec<String> = statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.join("\n")
    }

    fn stop(mut self) -> String {
        let child = self.serve.take().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: a plain signal to a child of this process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        stderr
    }
}

async fn answer(r: reqwest::Response) -> (u16, Option<String>, String) {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, location, r.text().await.unwrap_or_default())
}

/// The one form of an HTML page: its action and its hidden (and text) fields.
fn form(page: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag.get(start..)?.find('"')? + start;
        Some(
            tag.get(start..end)?
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    assert_eq!(page.matches("<form").count(), 1, "one form: {page}");
    let form_tag = page
        .split("<form")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap();
    let action = attr(form_tag, "action").unwrap_or_default();
    let fields = page
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = tag.split('>').next()?;
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    assert!(page.contains("name=\"allow\"") && page.contains("name=\"deny\""));
    (action, fields)
}

/// The query of a URL, as pairs.
fn query(url: &str) -> BTreeMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2D", "-")))
        .collect()
}

/// One OAuth marketplace, the whole way: connected, the same seller refused, a replay,
/// a forged state, a reused code, a denied consent.
fn oauth_marketplace(vendor: Vendor) {
    let m = vendor.prefix();
    let service = Service::start(&format!("connect-{m}"));
    let callback = service.consent(&service.link(m, "shop-1", &[]), &format!("{m}-2"), "allow");
    assert!(callback.starts_with(&format!("{}/connect/callback/{m}?", service.public)));
    let done = service.callback(&callback);
    let q = query(&done);
    assert!(
        done.starts_with(&format!("{}/healthz?from=connect&", service.public)),
        "{done}"
    );
    assert_eq!(
        q.get("status").map(String::as_str),
        Some("connected"),
        "{done}"
    );
    assert_eq!(q.get("account").map(String::as_str), Some("shop-1"));
    let listed = service.listed();
    let shop = &listed["shop-1"];
    assert_eq!(shop["marketplace"], m);
    assert_eq!(shop["state"], "active");
    let seller = service
        .env
        .sandbox
        .seller_id(vendor, &format!("{m}-2"))
        .unwrap();
    assert_eq!(shop["seller_id"], seller);
    // Syncing without a restart: the seller's messages are stored.
    let held = service
        .env
        .sandbox
        .stats()
        .into_iter()
        .find(|s| s.marketplace == m && s.account == format!("{m}-2"))
        .unwrap()
        .messages as i64;
    assert!(
        within(Duration::from_secs(15), || service.stored("shop-1") == held),
        "shop-1 holds {} of {held} messages",
        service.stored("shop-1")
    );
    // Sealed: no token in the clear.
    let sealed = service.sealed();
    assert!(
        !sealed.contains("grant") && !sealed.contains("sandbox-app-secret"),
        "{sealed}"
    );

    // A replayed callback: the error redirect, nothing more stored.
    let replayed = query(&service.callback(&callback));
    assert_eq!(replayed.get("status").map(String::as_str), Some("error"));
    assert_eq!(
        replayed.get("reason").map(String::as_str),
        Some("already_used")
    );

    // The same seller again under another name: refused.
    let again = service.consent(
        &service.link(m, "shop-twin", &[]),
        &format!("{m}-2"),
        "allow",
    );
    let refused = query(&service.callback(&again));
    assert_eq!(refused.get("status").map(String::as_str), Some("error"));
    assert_eq!(
        refused.get("reason").map(String::as_str),
        Some("already_connected")
    );

    // A forged state: an error page, nothing stored.
    let forged = format!(
        "{}/connect/callback/{m}?code=x&state={}",
        service.public,
        "ab".repeat(32)
    );
    let (status, _, _) = service.get(&forged);
    assert_eq!(status, 400);

    // A reused code: another link's state with the first code.
    let other = service.consent(&service.link(m, "shop-3", &[]), &format!("{m}-3"), "allow");
    let reused = format!(
        "{}/connect/callback/{m}?code={}&state={}",
        service.public,
        query(&callback)["code"],
        query(&other)["state"]
    );
    let q = query(&service.callback(&reused));
    assert_eq!(q.get("status").map(String::as_str), Some("error"));
    assert_eq!(
        q.get("reason").map(String::as_str),
        Some("invalid_grant"),
        "{q:?}"
    );

    // A denied consent.
    let denied = service.consent(&service.link(m, "shop-4", &[]), &format!("{m}-3"), "deny");
    let q = query(&service.callback(&denied));
    assert_eq!(q.get("reason").map(String::as_str), Some("access_denied"));

    // An expired link: opened, then its time runs out before the seller comes back.
    let link = service.link(m, "shop-5", &["--expires", "2"]);
    let late = service.consent(&link, &format!("{m}-3"), "allow");
    std::thread::sleep(Duration::from_millis(2500));
    let q = query(&service.callback(&late));
    assert_eq!(
        q.get("reason").map(String::as_str),
        Some("expired"),
        "{q:?}"
    );

    let names: Vec<String> = service.listed().into_keys().collect();
    assert_eq!(names, ["shop-1"], "nothing else stored");
    let stderr = service.stop();
    assert!(stderr.contains("shop-1: connected"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn allegro_sellers_connect_through_a_link() {
    oauth_marketplace(Vendor::Allegro);
}

#[test]
fn mercadolibre_sellers_connect_through_a_link() {
    oauth_marketplace(Vendor::MercadoLibre);
}

#[test]
fn magalu_sellers_connect_through_a_link() {
    oauth_marketplace(Vendor::Magalu);
}

/// Ozon: the link opens a form for Client-Id and Api-Key; wrong keys are refused by one
/// read (the form again, nothing stored); right ones store the account, which syncs.
#[test]
fn ozon_sellers_connect_with_their_keys() {
    let service = Service::start("connect-ozon");
    let link = service.link("ozon", "ru-shop", &[]);
    let (status, _, page) = service.get(&link);
    assert_eq!(status, 200);
    assert!(page.contains("name=\"client_id\"") && page.contains("name=\"api_key\""));
    let config = service.env.sandbox.accounts_config();
    let ozon2 = config["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "ozon-2")
        .unwrap()
        .clone();
    let client_id = ozon2["client_id"].as_str().unwrap().to_string();
    let wrong = [
        ("client_id".to_string(), client_id.clone()),
        ("api_key".to_string(), "not-the-key".to_string()),
    ];
    let (status, _, page) = service.post(&link, &wrong);
    assert_eq!(status, 200);
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(service.listed().is_empty());
    let right = [
        ("client_id".to_string(), client_id.clone()),
        (
            "api_key".to_string(),
            ozon2["api_key"].as_str().unwrap().to_string(),
        ),
    ];
    let (status, to, _) = service.post(&link, &right);
    assert_eq!(status, 303);
    let q = query(&to.unwrap());
    assert_eq!(q.get("status").map(String::as_str), Some("connected"));
    let listed = service.listed();
    assert_eq!(listed["ru-shop"]["seller_id"], client_id.as_str());
    // The key's expiry, as Ozon's /v1/roles said it (six months ahead in the sandbox).
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(listed["ru-shop"]["credentials_expire_at"].clone()).unwrap();
    assert!(
        expires > chrono::Utc::now() + chrono::Duration::days(150),
        "{expires}"
    );
    assert!(!service
        .sealed()
        .contains(ozon2["api_key"].as_str().unwrap()));
    let held = service
        .env
        .sandbox
        .stats()
        .into_iter()
        .find(|s| s.marketplace == "ozon" && s.account == "ozon-2")
        .unwrap()
        .messages as i64;
    assert!(within(Duration::from_secs(15), || service
        .stored("ru-shop")
        == held));
    // The link is spent.
    let (status, _, _) = service.post(&link, &right);
    assert_eq!(status, 410);
    service.stop();
}

/// `inbox accounts connect allegro` from a terminal: the device flow's URL and code are
/// printed, the seller allows on the vendor's page, the account is stored.
#[test]
fn allegro_connects_from_a_terminal_by_the_device_flow() {
    let service = Service::start("connect-device");
    let mut child = inbox_command()
        .args([
            "--json",
            "accounts",
            "connect",
            "allegro",
            "--name",
            "pl-device",
            "--db",
        ])
        .arg(&service.db)
        .env_clear()
        .envs(sandbox_env(&service.env.sandbox))
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("enter the code"), "{line}");
    let code = line.split_whitespace().last().unwrap().to_string();
    let page_url = line
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap()
        .to_string();
    // The seller opens the page, types the code, allows.
    let (status, _, page) = service.get(&page_url);
    assert_eq!(status, 200);
    assert!(page.contains("name=\"allow\""));
    let form = [
        ("code".to_string(), code),
        ("account".to_string(), "allegro-3".to_string()),
        ("allow".to_string(), "1".to_string()),
    ];
    let (status, _, _) = service.post(&page_url, &form);
    assert_eq!(status, 200);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["status"], "connected");
    assert_eq!(printed["name"], "pl-device");
    let seller = service
        .env
        .sandbox
        .seller_id(Vendor::Allegro, "allegro-3")
        .unwrap();
    assert_eq!(service.listed()["pl-device"]["seller_id"], seller);
    service.stop();
}

/// A real browser (Debian's headless Chromium, driven through chromedriver's WebDriver
/// API) opens a connect link, is sent to the sandbox's consent page, clicks `allow`, and
/// lands on `return_to` with `status=connected`. Skipped, saying so, where chromium and
/// chromedriver are not installed — unless `INBOX_REQUIRE_BROWSER` is set (CI sets it).
#[test]
fn a_browser_connects_a_mercadolibre_account_through_the_consent_page() {
    let (chromium, driver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
    if !std::path::Path::new(chromium).exists() || !std::path::Path::new(driver).exists() {
        assert!(
            std::env::var_os("INBOX_REQUIRE_BROWSER").is_none(),
            "INBOX_REQUIRE_BROWSER is set but {chromium} or {driver} is missing"
        );
        eprintln!("skipped: no {chromium} and {driver} (apt-get install chromium chromium-driver)");
        return;
    }
    let service = Service::start("connect-browser");
    let port = common::free_port();
    // Killed when the test ends, passed or not.
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _chromedriver = Killed(
        std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let webdriver = |method: reqwest::Method, path: &str, body: Option<Value>| -> Value {
        service.runtime.block_on(async {
            let mut request = service.http.request(method, format!("{base}{path}"));
            if let Some(body) = body {
                request = request.json(&body);
            }
            match request.send().await {
                Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        })
    };
    assert!(
        within(Duration::from_secs(20), || webdriver(
            reqwest::Method::GET,
            "/status",
            None
        )["value"]["ready"]
            == true),
        "chromedriver did not start"
    );
    let profile = service.env.dir.join("chromium-profile");
    let session = webdriver(
        reqwest::Method::POST,
        "/session",
        Some(serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display())]}}}})),
    );
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"))
        .to_string();
    let link = service.link("mercadolibre", "br-browser", &[]);
    webdriver(
        reqwest::Method::POST,
        &format!("/session/{id}/url"),
        Some(serde_json::json!({ "url": link })),
    );
    // The consent page: its `allow` button.
    let mut button = Value::Null;
    assert!(within(Duration::from_secs(20), || {
        button = webdriver(
            reqwest::Method::POST,
            &format!("/session/{id}/element"),
            Some(serde_json::json!({"using": "css selector", "value": "button[name=allow]"})),
        );
        button["value"].is_object() && button["value"].get("error").is_none()
    }));
    let element = button["value"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    webdriver(
        reqwest::Method::POST,
        &format!("/session/{id}/element/{element}/click"),
        Some(serde_json::json!({})),
    );
    let mut landed = String::new();
    let arrived = within(Duration::from_secs(20), || {
        landed = webdriver(reqwest::Method::GET, &format!("/session/{id}/url"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        landed.contains("status=connected")
    });
    webdriver(reqwest::Method::DELETE, &format!("/session/{id}"), None);
    assert!(arrived, "the browser is at {landed}");
    assert!(landed.starts_with(&format!("{}/healthz?from=connect&", service.public)));
    assert!(landed.contains("account=br-browser"));
    assert_eq!(service.listed()["br-browser"]["state"], "active");
    service.stop();
}
