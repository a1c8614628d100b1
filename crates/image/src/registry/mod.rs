//! A blocking client for the OCI distribution API (v2): pull into a
//! [`BlobStore`](crate::BlobStore) and push from it.
//!
//! Registries on `localhost`, `127.0.0.0/8` and `[::1]` are spoken to over plain
//! HTTP, like Docker does; all others over HTTPS (verification can be turned
//! off). Authentication follows the registry's `WWW-Authenticate` challenge:
//! anonymous first, then Basic or a Bearer token from the challenge's realm,
//! retrying the request once.

mod auth;
mod pull;
mod push;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{self, Response};

use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::reference::Reference;
use crate::store::StoreError;

pub use pull::{LayerTee, Progress, PulledImage};

/// Errors talking to a registry; each names what was being done to what.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request could not be sent or its answer read.
    #[error("{action} {target}")]
    Http {
        /// What was being done ("fetching manifest").
        action: &'static str,
        /// To what (`127.0.0.1:5000/busybox:latest`).
        target: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The registry answered with an unexpected status.
    #[error("{action} {target}: registry answered {status}: {body}")]
    Status {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body (registries explain errors there).
        body: String,
    },
    /// Authentication was refused or could not be done.
    #[error("{action} {target}: authentication failed: {reason}")]
    Auth {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// Why.
        reason: String,
    },
    /// A blob's content does not hash to its digest; nothing was stored.
    #[error("fetching blob {digest} from {repository}: digest mismatch (got {got})")]
    BlobDigestMismatch {
        /// The expected digest.
        digest: Digest,
        /// `registry/repository`.
        repository: String,
        /// The digest of what was received.
        got: Digest,
    },
    /// A blob's length differs from its descriptor; nothing was stored.
    #[error("fetching blob {digest} from {repository}: size mismatch (expected {expected} bytes, got {got}{})", if *.more { " or more" } else { "" })]
    BlobSizeMismatch {
        /// The blob.
        digest: Digest,
        /// `registry/repository`.
        repository: String,
        /// The descriptor's size.
        expected: u64,
        /// Bytes received before giving up.
        got: u64,
        /// True when the content was longer than expected.
        more: bool,
    },
    /// A manifest's content does not hash to the digest asked for or announced.
    #[error("fetching manifest {target}: digest mismatch (expected {expected}, got {got})")]
    ManifestDigestMismatch {
        /// The reference.
        target: String,
        /// The expected digest.
        expected: Digest,
        /// The digest of what was received.
        got: Digest,
    },
    /// An answer was larger than we are willing to hold in memory.
    #[error("{action} {target}: answer larger than {limit} bytes")]
    TooLarge {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// The bound.
        limit: u64,
    },
    /// The registry broke the protocol (e.g. an upload answer without `Location`).
    #[error("{action} {target}: {reason}")]
    Protocol {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// What was wrong with the answer.
        reason: &'static str,
    },
    /// The blob store failed.
    #[error("{action} {target}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A manifest or config was unusable.
    #[error("{action} {target}")]
    Manifest {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
}

/// A username and password (or token) for a registry.
#[derive(Clone)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password or personal access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Which protocol to speak to a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP for loopback hosts (see [`is_local_host`]), HTTPS otherwise.
    #[default]
    Auto,
    /// Plain HTTP whatever the host (an "insecure registry").
    Http,
    /// HTTPS even for loopback hosts.
    Https,
}

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Credentials, sent only when the registry asks.
    pub credentials: Option<Credentials>,
    /// Accept any TLS certificate (for registries with self-signed ones).
    pub insecure_skip_tls_verify: bool,
    /// HTTP or HTTPS; by default plain HTTP only for loopback hosts.
    pub scheme: Scheme,
    /// How many layers to download at once.
    pub parallel_downloads: usize,
    /// Layers pushed in chunks of at most this many bytes; `None` pushes each blob
    /// with one monolithic PUT.
    pub push_chunk_size: Option<u64>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            credentials: None,
            insecure_skip_tls_verify: false,
            scheme: Scheme::Auto,
            parallel_downloads: 3,
            push_chunk_size: None,
        }
    }
}

/// A request body that can be sent again after an authentication retry.
#[derive(Clone, Copy)]
enum ReqBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A byte range `[start, start + len)` of a file.
    FileRange(&'a Path, u64, u64),
}

/// Where a request goes and what it is for, to build errors and auth scopes.
struct Ctx<'a> {
    reference: &'a Reference,
    push: bool,
    action: &'static str,
    target: String,
}

impl Ctx<'_> {
    fn http_err(&self, e: ureq::Error) -> RegistryError {
        RegistryError::Http {
            action: self.action,
            target: self.target.clone(),
            source: Box::new(e),
        }
    }

    fn status_err(&self, mut resp: Response<ureq::Body>) -> RegistryError {
        let body = resp
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        RegistryError::Status {
            action: self.action,
            target: self.target.clone(),
            status: resp.status().as_u16(),
            body: body.trim().chars().take(300).collect(),
        }
    }

    fn auth_err(&self, reason: impl Into<String>) -> RegistryError {
        RegistryError::Auth {
            action: self.action,
            target: self.target.clone(),
            reason: reason.into(),
        }
    }
}

/// A registry client; cheap to share between threads (`&RegistryClient` is `Sync`).
pub struct RegistryClient {
    agent: ureq::Agent,
    opts: RegistryOptions,
    /// `Authorization` values by registry host and scope.
    auth_cache: Mutex<HashMap<(String, String), String>>,
}

/// Whether `host` (with optional port) is a loopback name, spoken to over plain HTTP.
pub fn is_local_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl RegistryClient {
    /// A client with these options.
    pub fn new(opts: RegistryOptions) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(opts.insecure_skip_tls_verify)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            // No bound on a whole layer's download, but a stalled connection fails.
            .timeout_recv_body(None)
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            opts,
            auth_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    fn base_url(&self, reference: &Reference) -> String {
        let host = reference.api_host();
        let plain = match self.opts.scheme {
            Scheme::Auto => is_local_host(host),
            Scheme::Http => true,
            Scheme::Https => false,
        };
        let scheme = if plain { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    fn scope(reference: &Reference, push: bool) -> String {
        let actions = if push { "pull,push" } else { "pull" };
        format!("repository:{}:{actions}", reference.repository())
    }

    fn cache_key(reference: &Reference, push: bool) -> (String, String) {
        (
            reference.api_host().to_owned(),
            Self::scope(reference, push),
        )
    }

    fn run_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        body: ReqBody<'_>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(a) = auth {
            builder = builder.header("Authorization", a);
        }
        match body {
            ReqBody::Empty => self.agent.run(builder.body(())?),
            ReqBody::Bytes(b) => self.agent.run(builder.body(b)?),
            ReqBody::FileRange(path, start, len) => {
                let mut file = File::open(path)?;
                std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
                let builder = builder.header("Content-Length", len.to_string());
                let mut reader = file.take(len);
                self.agent
                    .run(builder.body(ureq::SendBody::from_reader(&mut reader))?)
            }
        }
    }

    /// Sends a request, answering one authentication challenge if the registry
    /// sends one. The `Authorization` header goes only to the registry itself.
    fn send(
        &self,
        ctx: &Ctx<'_>,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: ReqBody<'_>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let key = Self::cache_key(ctx.reference, ctx.push);
        let same_host = url.starts_with(&format!("{}/", self.base_url(ctx.reference)));
        let cached = same_host
            .then(|| self.auth_cache.lock().ok()?.get(&key).cloned())
            .flatten();
        let resp = self
            .run_once(method, url, headers, cached.as_deref(), body)
            .map_err(|e| ctx.http_err(e))?;
        if resp.status() != http::StatusCode::UNAUTHORIZED || !same_host {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge)
            .ok_or_else(|| ctx.auth_err("401 without a usable WWW-Authenticate challenge"))?;
        let header = self.authorize(ctx, &challenge)?;
        if let Ok(mut cache) = self.auth_cache.lock() {
            cache.insert(key, header.clone());
        }
        let resp = self
            .run_once(method, url, headers, Some(&header), body)
            .map_err(|e| ctx.http_err(e))?;
        if resp.status() == http::StatusCode::UNAUTHORIZED {
            return Err(ctx.auth_err(if self.opts.credentials.is_some() {
                "credentials rejected"
            } else {
                "registry requires credentials"
            }));
        }
        Ok(resp)
    }

    /// Turns a challenge into an `Authorization` value.
    fn authorize(
        &self,
        ctx: &Ctx<'_>,
        challenge: &auth::Challenge,
    ) -> Result<String, RegistryError> {
        let creds = self.opts.credentials.as_ref();
        match challenge.scheme.as_str() {
            "basic" => {
                let c = creds.ok_or_else(|| ctx.auth_err("registry requires credentials"))?;
                Ok(auth::basic_header(&c.username, &c.password))
            }
            "bearer" => {
                let realm = challenge
                    .params
                    .get("realm")
                    .ok_or_else(|| ctx.auth_err("bearer challenge without realm"))?;
                if !(realm.starts_with("https://") || realm.starts_with("http://")) {
                    return Err(
                        ctx.auth_err(format!("bearer realm {realm:?} is not an http(s) URL"))
                    );
                }
                let mut url = format!("{realm}{}", if realm.contains('?') { '&' } else { '?' });
                if let Some(service) = challenge.params.get("service") {
                    url.push_str(&format!("service={}&", auth::query_escape(service)));
                }
                let scope = Self::scope(ctx.reference, ctx.push);
                url.push_str(&format!("scope={}", auth::query_escape(&scope)));
                let basic = creds.map(|c| auth::basic_header(&c.username, &c.password));
                let mut resp = self
                    .run_once("GET", &url, &[], basic.as_deref(), ReqBody::Empty)
                    .map_err(|e| ctx.http_err(e))?;
                if !resp.status().is_success() {
                    return Err(ctx.auth_err(format!(
                        "token endpoint {realm} answered {}",
                        resp.status().as_u16()
                    )));
                }
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_string()
                    .map_err(|e| ctx.http_err(e))?;
                let token = serde_json::from_str::<auth::TokenResponse>(&text)
                    .ok()
                    .and_then(auth::TokenResponse::into_token)
                    .ok_or_else(|| ctx.auth_err(format!("token endpoint {realm} sent no token")))?;
                Ok(format!("Bearer {token}"))
            }
            other => Err(ctx.auth_err(format!("unsupported auth scheme {other:?}"))),
        }
    }

    /// Reads a whole (small) answer, refusing more than `limit` bytes.
    fn read_limited(
        ctx: &Ctx<'_>,
        resp: &mut Response<ureq::Body>,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut buf = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ctx.http_err(ureq::Error::Io(e)))?;
        if buf.len() as u64 > limit {
            return Err(RegistryError::TooLarge {
                action: ctx.action,
                target: ctx.target.clone(),
                limit,
            });
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_use_plain_http() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in [
            "docker.io",
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "localhost.evil.com",
        ] {
            assert!(!is_local_host(h), "{h}");
        }
        let client = RegistryClient::new(RegistryOptions::default());
        let local: Reference = "127.0.0.1:5000/x".parse().unwrap();
        let hub: Reference = "busybox".parse().unwrap();
        assert_eq!(client.base_url(&local), "http://127.0.0.1:5000");
        assert_eq!(client.base_url(&hub), "https://registry-1.docker.io");
        let forced = RegistryClient::new(RegistryOptions {
            scheme: Scheme::Https,
            ..RegistryOptions::default()
        });
        assert_eq!(forced.base_url(&local), "https://127.0.0.1:5000");
    }
}
