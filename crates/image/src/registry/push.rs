//! Pushing an image already in the blob store: every blob the registry lacks
//! (monolithic PUT, or PATCH chunks then PUT), then the manifest.

use super::{Ctx, RegistryClient, RegistryError, ReqBody};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, ManifestError, MAX_MANIFEST_SIZE};
use crate::reference::Reference;
use crate::store::BlobStore;

/// Resolves an upload `Location` (absolute, absolute-path or relative) against the registry.
fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        format!("{base}/{location}")
    }
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", super::auth::query_escape(value))
}

impl RegistryClient {
    /// Pushes the manifest `manifest_digest` from `store` to `reference`'s
    /// repository under its tag (or, for a reference pinned by digest, by
    /// digest): first every blob the registry lacks, then the manifest. For an
    /// index, every manifest it lists is pushed first (by digest) and must be in
    /// the store.
    pub fn push(
        &self,
        reference: &Reference,
        store: &BlobStore,
        manifest_digest: &Digest,
    ) -> Result<(), RegistryError> {
        let tag = match (reference.tag(), reference.digest()) {
            (Some(t), None) => t.to_owned(),
            _ => manifest_digest.to_string(),
        };
        self.push_tree(reference, store, manifest_digest, &tag, 0)
    }

    fn push_tree(
        &self,
        reference: &Reference,
        store: &BlobStore,
        digest: &Digest,
        tag: &str,
        depth: usize,
    ) -> Result<(), RegistryError> {
        let target = format!("{digest} to {}", reference.name());
        let bytes = store
            .read_small(digest, MAX_MANIFEST_SIZE)
            .map_err(|source| RegistryError::Store {
                action: "pushing manifest",
                target: target.clone(),
                source,
            })?;
        let manifest = Manifest::parse(None, &bytes).map_err(|source| RegistryError::Manifest {
            action: "pushing manifest",
            target: target.clone(),
            source,
        })?;
        match &manifest {
            Manifest::Image(image) => {
                for desc in image.layers.iter().chain([&image.config]) {
                    self.push_blob(reference, store, desc)?;
                }
            }
            Manifest::Index(_) if depth > 0 => {
                return Err(RegistryError::Manifest {
                    action: "pushing manifest",
                    target,
                    source: ManifestError::UnsupportedMediaType("nested index".to_owned()),
                });
            }
            Manifest::Index(index) => {
                for child in &index.manifests {
                    let child_tag = child.digest.to_string();
                    self.push_tree(reference, store, &child.digest, &child_tag, depth + 1)?;
                }
            }
        }
        self.push_manifest(reference, tag, &bytes, manifest.media_type())
    }

    fn push_manifest(
        &self,
        reference: &Reference,
        tag: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let ctx = Ctx {
            reference,
            push: true,
            action: "pushing manifest to",
            target: format!("{}:{tag}", reference.name()).replacen(":sha256:", "@sha256:", 1),
        };
        let url = format!(
            "{}/v2/{}/manifests/{tag}",
            self.base_url(reference),
            reference.repository()
        );
        let resp = self.send(
            &ctx,
            "PUT",
            &url,
            &[("Content-Type", media_type)],
            ReqBody::Bytes(bytes),
        )?;
        if resp.status().as_u16() != 201 {
            return Err(ctx.status_err(resp));
        }
        Ok(())
    }

    /// Whether the registry already has the blob.
    pub fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let ctx = Ctx {
            reference,
            push: true,
            action: "checking blob",
            target: format!("{digest} in {}", reference.name()),
        };
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(reference),
            reference.repository()
        );
        let resp = self.send(&ctx, "HEAD", &url, &[], ReqBody::Empty)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(ctx.status_err(resp)),
        }
    }

    fn push_blob(
        &self,
        reference: &Reference,
        store: &BlobStore,
        desc: &Descriptor,
    ) -> Result<(), RegistryError> {
        if self.has_blob(reference, &desc.digest)? {
            tracing::debug!(digest = %desc.digest, "registry already has blob");
            return Ok(());
        }
        tracing::debug!(digest = %desc.digest, size = desc.size, "pushing blob");
        let ctx = Ctx {
            reference,
            push: true,
            action: "pushing blob",
            target: format!("{} to {}", desc.digest, reference.name()),
        };
        let path = store.path(&desc.digest);
        let size = store
            .size(&desc.digest)
            .map_err(|source| RegistryError::Store {
                action: "pushing blob",
                target: ctx.target.clone(),
                source,
            })?;
        let base = self.base_url(reference);
        let start_url = format!("{base}/v2/{}/blobs/uploads/", reference.repository());
        let resp = self.send(
            &ctx,
            "POST",
            &start_url,
            &[("Content-Length", "0")],
            ReqBody::Empty,
        )?;
        let mut location = Self::upload_location(&ctx, &base, resp, 202)?;
        let chunk = self
            .opts
            .push_chunk_size
            .filter(|c| *c > 0)
            .unwrap_or(size.max(1));
        let mut offset = 0;
        if self.opts.push_chunk_size.is_some() {
            while offset < size {
                let len = chunk.min(size - offset);
                let range = format!("{offset}-{}", offset + len - 1);
                let resp = self.send(
                    &ctx,
                    "PATCH",
                    &location,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                    ],
                    ReqBody::FileRange(&path, offset, len),
                )?;
                location = Self::upload_location(&ctx, &base, resp, 202)?;
                offset += len;
            }
        }
        let url = with_query(&location, "digest", &desc.digest.to_string());
        let body = if offset < size {
            ReqBody::FileRange(&path, 0, size)
        } else {
            ReqBody::Empty
        };
        let resp = self.send(
            &ctx,
            "PUT",
            &url,
            &[("Content-Type", "application/octet-stream")],
            body,
        )?;
        if resp.status().as_u16() != 201 {
            return Err(ctx.status_err(resp));
        }
        Ok(())
    }

    fn upload_location(
        ctx: &Ctx<'_>,
        base: &str,
        resp: ureq::http::Response<ureq::Body>,
        want: u16,
    ) -> Result<String, RegistryError> {
        if resp.status().as_u16() != want {
            return Err(ctx.status_err(resp));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                action: ctx.action,
                target: ctx.target.clone(),
                reason: "upload answer without Location",
            })?;
        Ok(resolve_location(base, location))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_registry() {
        let base = "http://127.0.0.1:5000";
        assert_eq!(
            resolve_location(base, "/v2/x/blobs/uploads/u?s=1"),
            "http://127.0.0.1:5000/v2/x/blobs/uploads/u?s=1"
        );
        assert_eq!(
            resolve_location(base, "https://other/up"),
            "https://other/up"
        );
        assert_eq!(
            with_query("http://h/u?s=1", "digest", "sha256:ab"),
            "http://h/u?s=1&digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("http://h/u", "digest", "x"),
            "http://h/u?digest=x"
        );
    }
}
