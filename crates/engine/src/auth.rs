//! Registry credentials and `push`.
//!
//! `login` checks the credentials against the registry, then stores them in
//! `<root>/auth.json` (mode 0600, replaced atomically) in the shape of Docker's
//! and podman's auth files: `{"auths": {"<registry>": {"auth": base64(user:password)}}}`.
//! The engine is rootful and daemonless, so its credentials live with its state
//! rather than in a per-user `$XDG_RUNTIME_DIR`. `pull` and `push` send the
//! stored credentials of the reference's registry when it asks for them.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use berth_image::{Credentials, Digest, RegistryClient, RegistryError, RegistryOptions};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{io_err, EngineError};

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AuthEntry {
    auth: String,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

impl Engine {
    fn auth_path(&self) -> PathBuf {
        self.root().join("auth.json")
    }

    fn read_auth(&self) -> Result<AuthFile, EngineError> {
        let path = self.auth_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EngineError::Io {
                action: "parsing",
                path,
                source: e.into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
            Err(e) => Err(io_err("reading", path)(e)),
        }
    }

    fn write_auth(&self, auth: &AuthFile) -> Result<(), EngineError> {
        let path = self.auth_path();
        let tmp = self.root().join(".auth.json.tmp");
        let result = (|| {
            let _ = fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            serde_json::to_writer_pretty(&mut f, auth)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err("writing", path))
    }

    /// The stored credentials for `registry` (`127.0.0.1:5000`, `docker.io`).
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, EngineError> {
        let auth = self.read_auth()?;
        let Some(entry) = auth.auths.get(registry) else {
            return Ok(None);
        };
        let decoded = b64_decode(&entry.auth)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
        match decoded {
            Some((username, password)) => Ok(Some(Credentials { username, password })),
            None => Err(EngineError::Invalid(format!(
                "{}: the entry for {registry} is not base64 of user:password",
                self.auth_path().display()
            ))),
        }
    }

    /// Registry options carrying the stored credentials for `registry`.
    pub fn registry_options(&self, registry: &str) -> Result<RegistryOptions, EngineError> {
        Ok(RegistryOptions {
            credentials: self.credentials(registry)?,
            ..RegistryOptions::default()
        })
    }

    /// `berth login`: checks the credentials with the registry, then stores them.
    /// Returns the registry's normalised name.
    pub fn login(&self, registry: &str, creds: Credentials) -> Result<String, EngineError> {
        let probe = Self::parse_reference(&format!("{registry}/berth/login-check"))?;
        let host = probe.registry().to_owned();
        let client = RegistryClient::new(RegistryOptions {
            credentials: Some(creds.clone()),
            ..RegistryOptions::default()
        });
        match client.has_blob(&probe, &Digest::of_bytes(b"")) {
            Ok(_) => {}
            Err(
                source @ (RegistryError::Auth { .. } | RegistryError::Status { status: 401, .. }),
            ) => {
                return Err(EngineError::Registry {
                    action: format!("logging in to {host}: credentials refused"),
                    source: Box::new(source),
                })
            }
            Err(source) => {
                return Err(EngineError::Registry {
                    action: format!("logging in to {host}"),
                    source: Box::new(source),
                })
            }
        }
        let mut auth = self.read_auth()?;
        let token = b64_encode(format!("{}:{}", creds.username, creds.password).as_bytes());
        auth.auths.insert(host.clone(), AuthEntry { auth: token });
        self.write_auth(&auth)?;
        Ok(host)
    }

    /// `berth logout`: forgets the registry's credentials; whether there were any.
    pub fn logout(&self, registry: &str) -> Result<bool, EngineError> {
        let probe = Self::parse_reference(&format!("{registry}/berth/login-check"))?;
        let mut auth = self.read_auth()?;
        let had = auth.auths.remove(probe.registry()).is_some();
        if had {
            self.write_auth(&auth)?;
        }
        Ok(had)
    }

    /// `berth push IMAGE [DEST]`: pushes the image `image` names to `dest` (by
    /// default its own name). Returns the destination and the manifest digest.
    pub fn push(&self, image: &str, dest: Option<&str>) -> Result<(String, Digest), EngineError> {
        let digest = match self.lookup_image(image) {
            Ok((d, _)) => d,
            Err(EngineError::ImageNotFound(_)) => self.resolve_image(image)?.1,
            Err(e) => return Err(e),
        };
        let dest = Self::parse_reference(dest.unwrap_or(image))?;
        let client = RegistryClient::new(self.registry_options(dest.registry())?);
        client
            .push(&dest, self.blobs(), &digest)
            .map_err(|source| EngineError::Registry {
                action: format!("pushing {dest}"),
                source: Box::new(source),
            })?;
        Ok((dest.to_string(), digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("berth:s3cret", "YmVydGg6czNjcmV0"),
        ] {
            assert_eq!(b64_encode(plain.as_bytes()), encoded);
            assert_eq!(b64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert!(b64_decode("@@").is_none());
    }
}
