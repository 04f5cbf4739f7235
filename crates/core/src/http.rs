use std::sync::Once;
use std::time::Duration;

/// The HTTP client could not be built (TLS set-up failed).
#[derive(Debug)]
pub struct HttpClientError(String);

impl std::fmt::Display for HttpClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not build the HTTP client: {}", self.0)
    }
}

impl std::error::Error for HttpClientError {}

/// How long the HTTP client waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For a whole request and its answer.
    pub request: Duration,
    /// Between two reads of an answer's body (a stalled upload or download).
    pub stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
            stall: Duration::from_secs(20),
        }
    }
}

impl Timeouts {
    /// These timeouts.
    pub fn new(connect: Duration, request: Duration, stall: Duration) -> Self {
        Timeouts {
            connect,
            request,
            stall,
        }
    }
}

/// A `reqwest::Client` with the settings every vendor client uses and the default
/// [`Timeouts`] (connect 10 s, request 60 s, stall 20 s).
pub fn http_client() -> Result<reqwest::Client, HttpClientError> {
    http_client_with(Timeouts::default())
}

/// Shared clients by the runtime they were made on (a connection pool must not outlive
/// its runtime's tasks) and their timeouts.
type Clients = std::collections::HashMap<(Option<tokio::runtime::Id>, Timeouts), reqwest::Client>;

/// The `reqwest::Client` for these timeouts on the current tokio runtime, built once and
/// shared (a clone shares its connection pool): every account with the same timeouts
/// uses one client, so a thousand accounts cost one TLS set-up and one pool, not a
/// thousand.
pub fn shared_http_client(timeouts: Timeouts) -> Result<reqwest::Client, HttpClientError> {
    static CLIENTS: std::sync::Mutex<Option<Clients>> = std::sync::Mutex::new(None);
    let key = (
        tokio::runtime::Handle::try_current().ok().map(|h| h.id()),
        timeouts,
    );
    let mut clients = CLIENTS
        .lock()
        .map_err(|_| HttpClientError("a thread panicked while building a client".into()))?;
    let clients = clients.get_or_insert_with(Default::default);
    if let Some(client) = clients.get(&key) {
        return Ok(client.clone());
    }
    let client = http_client_with(timeouts)?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// A new `reqwest::Client` with these timeouts.
///
/// TLS is rustls with the `ring` provider (installed once per process here, so no caller
/// can forget it); a `User-Agent` naming this library.
pub fn http_client_with(timeouts: Timeouts) -> Result<reqwest::Client, HttpClientError> {
    builder(timeouts)
        .build()
        .map_err(|e| HttpClientError(e.to_string()))
}

/// [`http_client_with`] following no redirect: for addresses a vendor's data names,
/// where a redirect could lead anywhere.
pub fn http_client_without_redirects(
    timeouts: Timeouts,
) -> Result<reqwest::Client, HttpClientError> {
    builder(timeouts)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| HttpClientError(e.to_string()))
}

/// [`http_client_without_redirects`] that connects to `host` only at `addrs` (checked
/// beforehand by the caller, so that a second DNS answer cannot send it elsewhere).
pub fn http_client_pinned(
    timeouts: Timeouts,
    host: &str,
    addrs: &[std::net::SocketAddr],
) -> Result<reqwest::Client, HttpClientError> {
    builder(timeouts)
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(host, addrs)
        .build()
        .map_err(|e| HttpClientError(e.to_string()))
}

/// The settings every client shares.
fn builder(timeouts: Timeouts) -> reqwest::ClientBuilder {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Another provider installed first by the application is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .read_timeout(timeouts.stall)
        .user_agent(concat!("marketplace-inbox/", env!("CARGO_PKG_VERSION")))
}
