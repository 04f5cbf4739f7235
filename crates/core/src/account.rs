/// Declares a vendor account type over a generated `Client` whose inner type is
/// [`crate::Context`]: constructors for production, any base URL, and an existing
/// `reqwest::Client`, with bearer-token auth and the vendor's default policy (`$policy`,
/// a `fn(&str) -> Policy`), or any [`crate::Auth`] and [`crate::Policy`]; plus `Deref` to
/// the generated client.
///
/// Used by the clients whose only credential is an OAuth bearer token and whose wire
/// format is plain JSON (Mercado Libre, Magalu).
#[macro_export]
macro_rules! bearer_account {
    ($(#[$meta:meta])* $name:ident, $client:ty, $production:expr, $policy:path) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $name {
            /// The generated client.
            pub client: $client,
        }

        impl $name {
            /// A client for the production API.
            pub fn new(token: impl Into<$crate::Secret>) -> Result<Self, $crate::HttpClientError> {
                Self::with_base_url($production, token)
            }

            /// A client for any base URL (a proxy, a local sandbox, a test server).
            pub fn with_base_url(
                base_url: &str,
                token: impl Into<$crate::Secret>,
            ) -> Result<Self, $crate::HttpClientError> {
                Ok(Self::from_parts(base_url, $crate::http_client()?, token))
            }

            /// A client over an existing `reqwest::Client` (which must have a TLS provider).
            pub fn from_parts(base_url: &str, http: ::reqwest::Client, token: impl Into<$crate::Secret>) -> Self {
                Self::with_policy(base_url, http, $crate::Auth::Bearer(token.into()), $policy(""))
            }

            /// A client with any credentials and request policy.
            pub fn with_policy(
                base_url: &str,
                http: ::reqwest::Client,
                auth: $crate::Auth,
                policy: $crate::Policy,
            ) -> Self {
                let context = $crate::Context {
                    auth,
                    media: None,
                    policy,
                };
                $name {
                    client: <$client>::new_with_client(base_url.trim_end_matches('/'), http, context),
                }
            }
        }

        impl ::std::ops::Deref for $name {
            type Target = $client;
            fn deref(&self) -> &$client {
                &self.client
            }
        }
    };
}
