use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use crate::{OAuthToken, Policy, Secret};

/// Credentials a vendor client sends with every request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Bearer <token>` (Allegro, Mercado Libre, Magalu).
    Bearer(Secret),
    /// `Authorization: Bearer <token>` from an OAuth token that refreshes itself (set
    /// per attempt by [`crate::execute`]).
    OAuth(Arc<OAuthToken>),
    /// Ozon's `Client-Id` and `Api-Key` headers.
    ClientIdApiKey {
        /// The seller's numeric client id (not secret, but still marked sensitive).
        client_id: String,
        /// The API key.
        api_key: Secret,
    },
    /// No credentials (tests against an open server).
    None,
}

/// The vendor media type that replaces `application/json` on the wire.
///
/// progenitor types JSON operations with `Accept: application/json`; Allegro answers
/// 406 to that and wants `application/vnd.allegro.public.v1+json` (or `beta.v1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaTypes {
    /// The media type sent in `Accept` and in `Content-Type` of JSON bodies.
    pub json: &'static str,
    /// Operations that answer with a file, not JSON: their `Accept` stays `*/*`.
    pub binary_operations: &'static [&'static str],
}

/// What a generated client carries for its request hooks: credentials, media type, and
/// the account's request policy (retries, rate limits, labels).
#[derive(Clone, Debug)]
pub struct Context {
    /// Credentials sent with every request.
    pub auth: Auth,
    /// The vendor media type, when it is not plain `application/json`.
    pub media: Option<MediaTypes>,
    /// Retries, rate limits and tracing labels, shared by every clone.
    pub policy: Policy,
}

impl Context {
    /// Prepares `request` for `operation_id` with this context (see [`prepare_request`]).
    pub fn prepare(
        &self,
        request: &mut reqwest::Request,
        operation_id: &str,
    ) -> Result<(), String> {
        prepare_request(request, operation_id, &self.auth, self.media)
    }
}

/// Implements progenitor's `ClientHooks` for a generated `Client` whose inner type is
/// [`Context`]: every request passes through [`prepare_request`], then is sent by
/// [`crate::execute`] under the context's policy.
#[macro_export]
macro_rules! impl_client_hooks {
    ($client:ty) => {
        impl ::progenitor_client::ClientHooks<$crate::Context> for $client {
            async fn pre<E>(
                &self,
                request: &mut ::reqwest::Request,
                info: &::progenitor_client::OperationInfo,
            ) -> ::std::result::Result<(), ::progenitor_client::Error<E>> {
                use ::progenitor_client::ClientInfo as _;
                self.inner()
                    .prepare(request, info.operation_id)
                    .map_err(::progenitor_client::Error::InvalidRequest)
            }

            async fn exec(
                &self,
                request: ::reqwest::Request,
                info: &::progenitor_client::OperationInfo,
            ) -> ::reqwest::Result<::reqwest::Response> {
                use ::progenitor_client::ClientInfo as _;
                $crate::execute(self.client(), self.inner(), request, info.operation_id).await
            }
        }
    };
}

/// Puts credentials and media types on an outgoing request.
///
/// This is the one place in the request path that touches headers: it removes the
/// `api-version` header progenitor adds (vendors don't know it), rewrites
/// `application/json` to the vendor media type where one is given (and asks for it on
/// operations that set no `Accept`, except those that answer with a file), and sets the
/// auth headers marked sensitive so they never show in `Debug` output.
pub fn prepare_request(
    request: &mut reqwest::Request,
    operation_id: &str,
    auth: &Auth,
    media: Option<MediaTypes>,
) -> Result<(), String> {
    let headers = request.headers_mut();
    headers.remove("api-version");
    if let Some(media) = media {
        let vendor = HeaderValue::from_static(media.json);
        if !headers.contains_key(ACCEPT) {
            let same = |id: &&str| crate::policy::same_operation(id, operation_id);
            let accept = if media.binary_operations.iter().any(same) {
                HeaderValue::from_static("*/*")
            } else {
                vendor.clone()
            };
            headers.insert(ACCEPT, accept);
        }
        for name in [ACCEPT, CONTENT_TYPE] {
            let is_json = headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if is_json {
                headers.insert(name, vendor.clone());
            }
        }
    }
    match auth {
        Auth::Bearer(token) => {
            let value = sensitive(&format!("Bearer {}", token.expose()), "bearer token")?;
            headers.insert(AUTHORIZATION, value);
        }
        Auth::ClientIdApiKey { client_id, api_key } => {
            headers.insert(
                HeaderName::from_static("client-id"),
                sensitive(client_id, "Client-Id")?,
            );
            headers.insert(
                HeaderName::from_static("api-key"),
                sensitive(api_key.expose(), "Api-Key")?,
            );
        }
        Auth::OAuth(_) | Auth::None => {}
    }
    Ok(())
}

fn sensitive(value: &str, what: &str) -> Result<HeaderValue, String> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| format!("the {what} contains characters not allowed in an HTTP header"))?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> reqwest::Request {
        let mut r =
            reqwest::Request::new(reqwest::Method::POST, "http://localhost/x".parse().unwrap());
        r.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert("api-version", HeaderValue::from_static("latest"));
        r
    }

    #[test]
    fn vendor_media_type_and_bearer_are_set_and_api_version_removed() {
        let mut r = request();
        let media = MediaTypes {
            json: "application/vnd.allegro.public.v1+json",
            binary_operations: &["download"],
        };
        prepare_request(&mut r, "op", &Auth::Bearer(Secret::new("tok")), Some(media)).unwrap();
        let h = r.headers();
        assert_eq!(h[ACCEPT], media.json);
        assert_eq!(h[CONTENT_TYPE], media.json);
        assert_eq!(h[AUTHORIZATION], "Bearer tok");
        assert!(h.get("api-version").is_none());
        assert!(!format!("{h:?}").contains("tok"), "{h:?}");
    }

    #[test]
    fn accept_is_added_for_json_operations_and_any_for_files() {
        let media = MediaTypes {
            json: "application/vnd.allegro.public.v1+json",
            binary_operations: &["downloadAttachmentGET"],
        };
        for (op, want) in [
            ("delete_message", media.json),
            ("download_attachment_get", "*/*"),
        ] {
            let mut r =
                reqwest::Request::new(reqwest::Method::GET, "http://localhost/x".parse().unwrap());
            prepare_request(&mut r, op, &Auth::None, Some(media)).unwrap();
            assert_eq!(r.headers()[ACCEPT], want, "{op}");
        }
    }

    #[test]
    fn header_injection_is_refused_without_echoing_the_secret() {
        let mut r = request();
        let err = prepare_request(
            &mut r,
            "op",
            &Auth::Bearer(Secret::new("a\nb-secret")),
            None,
        )
        .unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
