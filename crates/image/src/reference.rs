//! Image references (`busybox`, `localhost:5000/x/y:tag`, `name@sha256:...`) with
//! Docker's normalisation: no registry means `docker.io`, a single-component name
//! on Docker Hub gets `library/`, no tag and no digest means `:latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry assumed when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Why a string is not a valid image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Empty input.
    #[error("parsing image reference: empty")]
    Empty,
    /// The repository path has uppercase letters.
    #[error("parsing image reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    /// A path component breaks the grammar.
    #[error("parsing image reference {reference:?}: invalid repository component {component:?}")]
    BadComponent {
        /// The whole input.
        reference: String,
        /// The offending component.
        component: String,
    },
    /// The registry host is malformed.
    #[error("parsing image reference {reference:?}: invalid registry {registry:?}")]
    BadRegistry {
        /// The whole input.
        reference: String,
        /// The offending host.
        registry: String,
    },
    /// The tag breaks the grammar.
    #[error("parsing image reference {reference:?}: invalid tag {tag:?}")]
    BadTag {
        /// The whole input.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The digest is not `sha256:<64 hex>`.
    #[error("parsing image reference {reference:?}: invalid digest")]
    BadDigest {
        /// The whole input.
        reference: String,
        /// Why.
        #[source]
        source: crate::digest::DigestError,
    },
    /// The repository path is longer than 255 characters.
    #[error("parsing image reference {0:?}: repository name longer than 255 characters")]
    TooLong(String),
}

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Builds a reference from parts already known to be valid (e.g. re-tagging).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        format!("{}/{}:{tag}", self.registry, self.repository).parse()
    }

    /// The registry host, with port if any (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, `latest` when the input had neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The host to talk to for the distribution API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Host components `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` joined by dots, or a
/// bracketed IPv6 address, then an optional `:port`.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return false;
        };
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => (None, Some(p)),
            None if after.is_empty() => (None, None),
            None => return false,
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|label| {
                let b = label.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
            })
    })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse().map_err(|source| ReferenceError::BadDigest {
                    reference: s.to_owned(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/' (a registry port is not a tag).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag {
                    reference: s.to_owned(),
                    tag: t.to_owned(),
                });
            }
        }
        let (registry, path) = split_registry(name);
        if !valid_registry(registry) {
            return Err(ReferenceError::BadRegistry {
                reference: s.to_owned(),
                registry: registry.to_owned(),
            });
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.to_owned()));
        }
        if let Some(bad) = path.split('/').find(|c| !valid_component(c)) {
            return Err(ReferenceError::BadComponent {
                reference: s.to_owned(),
                component: bad.to_owned(),
            });
        }
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(s.to_owned()));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }
}

/// Docker's rule: the first of several components is a registry if it has a '.'
/// or ':' (or '[' of an IPv6 address), is `localhost`, or has an uppercase letter;
/// otherwise the whole name is a repository on Docker Hub.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':', '['])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r: Reference = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        (
            r.registry().to_owned(),
            r.repository().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(ToString::to_string),
        )
    }

    fn p(
        reg: &str,
        repo: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> (String, String, Option<String>, Option<String>) {
        (
            reg.into(),
            repo.into(),
            tag.map(Into::into),
            digest.map(Into::into),
        )
    }

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let want = p("docker.io", "library/busybox", Some("latest"), None);
        for s in [
            "busybox",
            "busybox:latest",
            "library/busybox",
            "docker.io/library/busybox:latest",
            "index.docker.io/busybox",
            "docker.io/busybox",
        ] {
            assert_eq!(parts(s), want, "{s}");
        }
        assert_eq!(
            parts("busybox:1.36"),
            p("docker.io", "library/busybox", Some("1.36"), None)
        );
        assert_eq!(
            parts("user/app"),
            p("docker.io", "user/app", Some("latest"), None)
        );
        assert_eq!(
            "busybox".parse::<Reference>().unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            "busybox".parse::<Reference>().unwrap().api_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn registries_with_ports_and_digests() {
        assert_eq!(
            parts("localhost:5000/x/y:tag"),
            p("localhost:5000", "x/y", Some("tag"), None)
        );
        assert_eq!(
            parts("localhost/x"),
            p("localhost", "x", Some("latest"), None)
        );
        assert_eq!(
            parts(&format!("127.0.0.1:5000/x@{D}")),
            p("127.0.0.1:5000", "x", None, Some(D))
        );
        assert_eq!(
            parts(&format!("quay.io/a/b:v1@{D}")),
            p("quay.io", "a/b", Some("v1"), Some(D))
        );
        assert_eq!(
            parts("[::1]:5000/x"),
            p("[::1]:5000", "x", Some("latest"), None)
        );
        let r: Reference = format!("127.0.0.1:5000/x@{D}").parse().unwrap();
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/x@{D}"));
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.with_tag("v2").unwrap().to_string(), "127.0.0.1:5000/x:v2");
        assert!(r.with_tag("bad tag").is_err());
        assert_eq!(
            parts("a.b-c/d__e/f-g.h_i"),
            p("a.b-c", "d__e/f-g.h_i", Some("latest"), None)
        );
    }

    #[test]
    fn invalid_references_are_rejected_clearly() {
        use ReferenceError as E;
        let err = |s: &str| s.parse::<Reference>().unwrap_err();
        assert_eq!(err(""), E::Empty);
        assert!(matches!(err("BusyBox"), E::Uppercase(_)));
        assert!(matches!(err("busybox:"), E::BadTag { .. }));
        assert!(matches!(err("busybox:-x"), E::BadTag { .. }));
        assert!(matches!(err("busybox@sha256:abc"), E::BadDigest { .. }));
        assert!(matches!(err("busybox@md5:abc"), E::BadDigest { .. }));
        assert!(matches!(err("a//b"), E::BadComponent { .. }));
        assert!(matches!(err("a/-b"), E::BadComponent { .. }));
        assert!(matches!(err("a/b..c"), E::BadComponent { .. }));
        assert!(matches!(err("a/b___c"), E::BadComponent { .. }));
        assert!(matches!(err("localhost:port/x"), E::BadRegistry { .. }));
        assert!(matches!(err("-bad.io/x"), E::BadRegistry { .. }));
        assert!(matches!(err(&"a".repeat(256)), E::TooLong(_)));
        let msg = err("busybox:").to_string();
        assert!(
            msg.starts_with("parsing image reference \"busybox:\": invalid tag"),
            "{msg}"
        );
    }
}
