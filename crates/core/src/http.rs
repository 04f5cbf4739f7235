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

/// A `reqwest::Client` with the settings every vendor client uses.
///
/// TLS is rustls with the `ring` provider (installed once per process here, so no caller
/// can forget it); connect timeout 10 s, whole-request timeout 60 s; a `User-Agent`
/// naming this library.
pub fn http_client() -> Result<reqwest::Client, HttpClientError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Another provider installed first by the application is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("marketplace-inbox/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpClientError(e.to_string()))
}
