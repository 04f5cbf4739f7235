//! The embedding example, run against the sandbox as its `main` runs it: the host's own
//! route and the push intake served by one app, a notification answered with Ozon's own
//! answer, and the message it announced handed to the host's sink once.

#[path = "../examples/embedded.rs"]
mod embedded;

use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::InboxConfig;

const SECRET: &str = "a-long-notification-secret";

/// The texts once they have stopped growing for a second (at most 30 s).
async fn settled(texts: &embedded::Texts) -> Vec<String> {
    let began = Instant::now();
    let mut last = Vec::new();
    let mut still = Instant::now();
    loop {
        let now = texts.0.lock().unwrap().clone();
        if now.len() != last.len() {
            last = now;
            still = Instant::now();
        } else if !last.is_empty() && still.elapsed() > Duration::from_secs(1) {
            return last;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "no first sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_app_serves_its_routes_and_the_push_intake_and_gets_each_change_once() {
    let sandbox = Sandbox::start(Config {
        conversations: 2,
        messages_per_conversation: 2,
        ..Config::default()
    })
    .await
    .unwrap();
    let config = InboxConfig::from_value(sandbox.accounts_config()).unwrap();
    let (push, texts) = embedded::start(&config, SECRET).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = embedded::app(&push, texts.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    // The first sync of every account reached the host's sink.
    let first = settled(&texts).await;
    assert!(!first.contains(&"Is the blue one in stock?".to_string()));

    // The host's own route and the intake's, side by side.
    let listed: Vec<String> = http
        .get(format!("{base}/host/texts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, first);
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // A buyer writes on Ozon; Ozon's notification is answered with its own answer, and
    // the message reaches the sink once.
    let chat = sandbox.conversations_of(Vendor::Ozon, "ozon")[0].clone();
    let text = "Is the blue one in stock?";
    let id = sandbox
        .buyer_writes_to(Vendor::Ozon, "ozon", &chat, text)
        .unwrap();
    let body = serde_json::json!({"message_type": "TYPE_NEW_MESSAGE", "chat_id": chat,
        "message_id": id, "seller_id": sandbox.credentials().ozon_client_id,
        "user": {"id": "115568", "type": "Customer"}});
    let post = |secret: &str| {
        http.post(format!("{base}/notifications/{secret}/ozon"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let wrong = post("not-the-secret").await.unwrap();
    assert_eq!(wrong.status(), 404);
    let answered = post(SECRET).await.unwrap();
    assert_eq!(answered.status(), 200);
    let answer: serde_json::Value = answered.json().await.unwrap();
    assert_eq!(answer, serde_json::json!({"result": true}));
    // A redelivery is recognised and changes nothing.
    assert_eq!(post(SECRET).await.unwrap().status(), 200);
    let after = settled_with(&texts, first.len() + 1).await;
    assert_eq!(after.iter().filter(|t| t.as_str() == text).count(), 1);
    assert_eq!(after.len(), first.len() + 1, "{after:?}");

    server.abort();
    push.shutdown().await;
}

/// The texts once there are `n` and a second has passed with no more (at most 30 s).
async fn settled_with(texts: &embedded::Texts, n: usize) -> Vec<String> {
    let began = Instant::now();
    while texts.0.lock().unwrap().len() < n {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the change never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    texts.0.lock().unwrap().clone()
}
