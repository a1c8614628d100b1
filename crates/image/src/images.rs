//! The image index: `<root>/images.json` maps normalised references
//! (`docker.io/library/busybox:latest`) to image manifest digests.
//!
//! Readers take a shared `flock` on `<root>/images.lock`, writers an exclusive
//! one for the whole read-modify-write; the file itself is replaced atomically
//! (temp file, fsync, rename, fsync of the directory), so a crash leaves either
//! the old or the new index.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::reference::Reference;

/// Errors of the image index.
#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    /// A filesystem operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// To which path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The index file is not valid JSON of the expected shape.
    #[error("parsing image index {}", path.display())]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    images: BTreeMap<String, Digest>,
}

/// The name → manifest digest index of local images.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ImageStoreError + 'a {
    move |source| ImageStoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl ImageStore {
    /// Opens (creating the directory if needed) the index under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageStoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("creating image index directory", &root))?;
        Ok(Self { root })
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn lock(&self, exclusive: bool) -> Result<File, ImageStoreError> {
        let path = self.root.join("images.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening lock file", &path))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(io_err("locking", &path))?;
        Ok(file) // unlocked when dropped
    }

    fn read(&self) -> Result<IndexFile, ImageStoreError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| ImageStoreError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile {
                version: 1,
                images: BTreeMap::new(),
            }),
            Err(source) => Err(ImageStoreError::Io {
                action: "reading image index",
                path,
                source,
            }),
        }
    }

    fn write(&self, index: &IndexFile) -> Result<(), ImageStoreError> {
        let path = self.index_path();
        let tmp = self
            .root
            .join(format!("images.json.tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp)?;
            serde_json::to_writer_pretty(&mut file, index)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.root)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err("writing image index", &path))
    }

    fn update<T>(&self, f: impl FnOnce(&mut IndexFile) -> T) -> Result<T, ImageStoreError> {
        let _lock = self.lock(true)?;
        let mut index = self.read()?;
        let out = f(&mut index);
        index.version = 1;
        self.write(&index)?;
        Ok(out)
    }

    /// Points `reference` at `digest`; returns the digest it pointed at before.
    pub fn tag(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Option<Digest>, ImageStoreError> {
        self.update(|index| index.images.insert(reference.to_string(), digest.clone()))
    }

    /// Removes `reference`; returns the digest it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<Option<Digest>, ImageStoreError> {
        self.update(|index| index.images.remove(&reference.to_string()))
    }

    /// Every name and its digest, sorted by name.
    pub fn list(&self) -> Result<Vec<(String, Digest)>, ImageStoreError> {
        let _lock = self.lock(false)?;
        Ok(self.read()?.images.into_iter().collect())
    }

    /// The digest `reference` names: its entry, or, for a reference pinned by
    /// digest, that digest if some name in the same repository points at it.
    pub fn resolve(&self, reference: &Reference) -> Result<Option<Digest>, ImageStoreError> {
        let _lock = self.lock(false)?;
        let index = self.read()?;
        if let Some(d) = index.images.get(&reference.to_string()) {
            return Ok(Some(d.clone()));
        }
        let Some(pinned) = reference.digest() else {
            return Ok(None);
        };
        let prefix = format!("{}:", reference.name());
        let known = index
            .images
            .iter()
            .any(|(name, d)| d == pinned && name.starts_with(&prefix));
        Ok(known.then(|| pinned.clone()))
    }

    /// Whether any name points at `digest` (an image still in use).
    pub fn is_referenced(&self, digest: &Digest) -> Result<bool, ImageStoreError> {
        Ok(self.list()?.iter().any(|(_, d)| d == digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn tag_resolve_untag_list() {
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::open(dir.path()).unwrap();
        let (a, b) = (Digest::of_bytes(b"a"), Digest::of_bytes(b"b"));
        assert_eq!(images.tag(&r("busybox"), &a).unwrap(), None);
        assert_eq!(
            images
                .tag(&r("docker.io/library/busybox:latest"), &b)
                .unwrap(),
            Some(a.clone())
        );
        images.tag(&r("localhost:5000/x/y:1"), &a).unwrap();
        assert_eq!(
            images.resolve(&r("busybox:latest")).unwrap(),
            Some(b.clone())
        );
        assert_eq!(images.resolve(&r("busybox:1.36")).unwrap(), None);
        let pinned = r(&format!("localhost:5000/x/y@{a}"));
        assert_eq!(images.resolve(&pinned).unwrap(), Some(a.clone()));
        let other_repo = r(&format!("localhost:5000/x/z@{a}"));
        assert_eq!(images.resolve(&other_repo).unwrap(), None);
        assert_eq!(
            images.list().unwrap(),
            vec![
                ("docker.io/library/busybox:latest".to_owned(), b.clone()),
                ("localhost:5000/x/y:1".to_owned(), a.clone()),
            ]
        );
        assert!(images.is_referenced(&a).unwrap());
        assert_eq!(images.untag(&r("busybox")).unwrap(), Some(b.clone()));
        assert_eq!(images.untag(&r("busybox")).unwrap(), None);
        assert!(!images.is_referenced(&b).unwrap());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "only images.json and images.lock: {names:?}"
        );
    }

    #[test]
    fn concurrent_tags_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let images = Arc::new(ImageStore::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let images = images.clone();
                std::thread::spawn(move || {
                    let d = Digest::of_bytes(&[i]);
                    images.tag(&r(&format!("img{i}")), &d).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(images.list().unwrap().len(), 8);
    }

    #[test]
    fn corrupt_index_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("images.json"), b"{not json").unwrap();
        let err = images.list().unwrap_err().to_string();
        assert!(
            err.starts_with("parsing image index ") && err.ends_with("images.json"),
            "{err}"
        );
    }
}
