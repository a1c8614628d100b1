//! A content-addressed store of sha256 blobs under `<root>/blobs/sha256/<hex>`.
//!
//! A blob enters the store only once its size and digest have been checked:
//! [`BlobStore::put`] streams the reader into a temporary file under
//! `<root>/ingest/` (same filesystem) while hashing, fsyncs it, then hard-links it
//! to its final name, which fails atomically if the blob is already there (the
//! existing one is kept), and removes the temporary name. An interrupted put
//! leaves at most a file under `ingest/`, never a partial blob under its final
//! name; every put holds an exclusive `flock` on its ingest file, so
//! [`BlobStore::gc_ingest`] (also run by [`BlobStore::open`]) removes only
//! files whose writer is gone, even while other processes use the store.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// Errors of the blob store; each says what was being done to which blob or path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. "creating ingest file".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The reader handed to `put` failed.
    #[error("storing blob {digest}: reading content")]
    Read {
        /// The blob being stored.
        digest: Digest,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// The content hashed to something else.
    #[error("storing blob {expected}: digest mismatch (got {got})")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of what was read.
        got: Digest,
    },
    /// The content had another length than the descriptor said.
    #[error("storing blob {digest}: size mismatch (expected {expected} bytes, got {got}{})", if *.more { " or more" } else { "" })]
    SizeMismatch {
        /// The blob being stored.
        digest: Digest,
        /// The size the caller expected.
        expected: u64,
        /// How many bytes were read before giving up.
        got: u64,
        /// True when reading stopped because the content was longer than expected.
        more: bool,
    },
    /// The blob is not in the store.
    #[error("opening blob {0}: not in the store")]
    NotFound(Digest),
}

/// Whether `put` added the blob or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The blob was written.
    Stored,
    /// The blob was already in the store; the reader was not consumed (or its
    /// copy was dropped after a concurrent put won).
    AlreadyPresent,
}

/// A content-addressed blob store rooted at a directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

static INGEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// An ingest file removed on drop unless it was committed.
struct IngestFile {
    path: PathBuf,
    file: File,
}

impl Drop for IngestFile {
    fn drop(&mut self) {
        // Best effort: a leftover is collected by the next gc_ingest.
        let _ = fs::remove_file(&self.path);
    }
}

/// How much of a blob is written before its writeback is started, so that the
/// fsync before the blob is linked in finds little left to do.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Starts (does not wait for) writeback of `len` bytes at `offset` of `file`.
/// Best effort: the fsync in `commit` is what makes the blob durable.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads its integer arguments; the fd is open
    // for as long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

impl BlobStore {
    /// Opens (creating if needed) a store at `root` and removes abandoned ingest files.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let store = Self { root: root.into() };
        for dir in [store.blobs_dir(), store.ingest_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("creating store directory", &dir))?;
        }
        store.gc_ingest()?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where the blob lives (or would live).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the blob is in the store.
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens the blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.path(digest);
        File::open(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound(digest.clone()),
            _ => StoreError::Io {
                action: "opening blob",
                path,
                source,
            },
        })
    }

    /// Reads a small blob (manifest, config) whole, refusing more than `limit` bytes.
    pub fn read_small(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let size = self.size(digest)?;
        let path = self.path(digest);
        if size > limit {
            return Err(StoreError::Io {
                action: "reading blob (too large to hold in memory)",
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, format!("{size} bytes")),
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open_blob(digest)?
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(io_err("reading blob", &path))?;
        Ok(buf)
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(digest.clone()))
            }
            Err(source) => Err(StoreError::Io {
                action: "reading metadata of blob",
                path,
                source,
            }),
        }
    }

    /// Re-hashes a stored blob (for `fsck`-like checks); Ok if it matches its name.
    pub fn verify(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.path(digest);
        let mut file = self.open_blob(digest)?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).map_err(io_err("reading blob", &path))?;
        let got = Digest::from_hasher(hasher);
        if &got == digest {
            Ok(())
        } else {
            Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                got,
            })
        }
    }

    /// Removes the blob; returns whether it was there.
    pub fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                action: "deleting blob",
                path,
                source,
            }),
        }
    }

    /// Every blob in the store, sorted; files with names that are not digests are skipped.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.blobs_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing blobs in", &dir))? {
            let entry = entry.map_err(io_err("listing blobs in", &dir))?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes ingest files left by puts whose writer is gone; returns how many.
    pub fn gc_ingest(&self) -> Result<usize, StoreError> {
        let dir = self.ingest_dir();
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(io_err("listing ingest files in", &dir))? {
            let path = entry
                .map_err(io_err("listing ingest files in", &dir))?
                .path();
            let Ok(file) = File::open(&path) else {
                continue; // committed or removed meanwhile
            };
            // A live put holds an exclusive lock on its ingest file.
            if file.try_lock().is_ok() && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn new_ingest_file(&self) -> Result<IngestFile, StoreError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = INGEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .ingest_dir()
            .join(format!("{}-{n}-{nanos}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("creating ingest file", &path))?;
        let ingest = IngestFile { path, file };
        ingest
            .file
            .lock()
            .map_err(io_err("locking ingest file", &ingest.path))?;
        Ok(ingest)
    }

    /// Stores the content of `reader`, which must be exactly `size` bytes hashing
    /// to `digest`; otherwise nothing is stored. Reads at most `size + 1` bytes.
    pub fn put(
        &self,
        digest: &Digest,
        size: u64,
        reader: impl Read,
    ) -> Result<PutOutcome, StoreError> {
        if self.has(digest) {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let mut ingest = self.new_ingest_file()?;
        let (got, got_size) =
            self.copy_hashing(digest, reader.take(size.saturating_add(1)), &mut ingest)?;
        if got_size != size {
            return Err(StoreError::SizeMismatch {
                digest: digest.clone(),
                expected: size,
                got: got_size,
                more: got_size > size,
            });
        }
        if &got != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                got,
            });
        }
        self.commit(ingest, digest)
    }

    /// Stores content whose digest is not known in advance (building images),
    /// returning its digest and size.
    pub fn import(&self, reader: impl Read) -> Result<(Digest, u64), StoreError> {
        let mut ingest = self.new_ingest_file()?;
        // The digest is unknown until the end; name errors after the empty digest.
        let placeholder = Digest::of_bytes(b"");
        let (digest, size) = self.copy_hashing(&placeholder, reader, &mut ingest)?;
        self.commit(ingest, &digest)?;
        Ok((digest, size))
    }

    /// Stores an in-memory blob (manifest, config) and returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of_bytes(bytes);
        self.put(&digest, bytes.len() as u64, bytes)?;
        Ok(digest)
    }

    fn copy_hashing(
        &self,
        digest: &Digest,
        mut reader: impl Read,
        ingest: &mut IngestFile,
    ) -> Result<(Digest, u64), StoreError> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let mut started = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::Read {
                        digest: digest.clone(),
                        source,
                    })
                }
            };
            hasher.update(&buf[..n]);
            ingest
                .file
                .write_all(&buf[..n])
                .map_err(io_err("writing ingest file", &ingest.path))?;
            total += n as u64;
            if total - started >= WRITEBACK_STEP {
                start_writeback(&ingest.file, started, total - started);
                started = total;
            }
        }
        Ok((Digest::from_hasher(hasher), total))
    }

    fn commit(&self, ingest: IngestFile, digest: &Digest) -> Result<PutOutcome, StoreError> {
        ingest
            .file
            .sync_all()
            .map_err(io_err("syncing ingest file", &ingest.path))?;
        let target = self.path(digest);
        // hard_link fails if the target exists, so a blob already stored is kept.
        let outcome = match fs::hard_link(&ingest.path, &target) {
            Ok(()) => PutOutcome::Stored,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => PutOutcome::AlreadyPresent,
            Err(source) => {
                return Err(StoreError::Io {
                    action: "linking blob into place at",
                    path: target,
                    source,
                })
            }
        };
        drop(ingest); // removes the ingest name
        let dir = self.blobs_dir();
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing blob directory", &dir))?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("store")).unwrap();
        (dir, store)
    }

    fn ingest_is_empty(store: &BlobStore) -> bool {
        fs::read_dir(store.ingest_dir()).unwrap().next().is_none()
    }

    #[test]
    fn put_then_read_back() {
        let (_d, store) = store();
        let data = b"hello blob";
        let digest = Digest::of_bytes(data);
        assert_eq!(
            store.put(&digest, 10, &data[..]).unwrap(),
            PutOutcome::Stored
        );
        assert!(store.has(&digest));
        assert_eq!(store.size(&digest).unwrap(), 10);
        assert_eq!(store.read_small(&digest, 100).unwrap(), data);
        assert_eq!(store.list().unwrap(), vec![digest.clone()]);
        assert_eq!(
            store.put(&digest, 10, &data[..]).unwrap(),
            PutOutcome::AlreadyPresent
        );
        assert!(store.delete(&digest).unwrap());
        assert!(!store.delete(&digest).unwrap());
        assert!(matches!(
            store.open_blob(&digest),
            Err(StoreError::NotFound(_))
        ));
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn digest_mismatch_stores_nothing() {
        let (_d, store) = store();
        let expected = Digest::of_bytes(b"good");
        let err = store.put(&expected, 4, &b"evil"[..]).unwrap_err();
        assert!(
            matches!(err, StoreError::DigestMismatch { ref got, .. } if *got == Digest::of_bytes(b"evil"))
        );
        assert!(
            err.to_string().contains("digest mismatch (got sha256:"),
            "{err}"
        );
        assert!(!store.has(&expected));
        assert!(store.list().unwrap().is_empty());
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn size_mismatch_stores_nothing_and_reads_at_most_one_extra_byte() {
        let (_d, store) = store();
        let data = b"twelve bytes";
        let digest = Digest::of_bytes(data);
        let err = store.put(&digest, 5, &data[..]).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SizeMismatch {
                    got: 6,
                    more: true,
                    ..
                }
            ),
            "{err}"
        );
        let err = store.put(&digest, 20, &data[..]).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SizeMismatch {
                    got: 12,
                    more: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(store.list().unwrap().is_empty());
        assert!(ingest_is_empty(&store));
    }

    /// Yields some bytes then fails, like a connection dropped mid-layer.
    struct FailingReader {
        left: usize,
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ));
            }
            let n = buf.len().min(self.left);
            buf[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn interrupted_put_leaves_nothing() {
        let (_d, store) = store();
        let digest = Digest::of_bytes(&[b'x'; 200_000]);
        let err = store
            .put(&digest, 200_000, FailingReader { left: 100_000 })
            .unwrap_err();
        assert!(matches!(err, StoreError::Read { .. }), "{err}");
        assert!(!store.path(&digest).exists());
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn abandoned_ingest_files_are_collected_but_live_ones_kept() {
        let (_d, store) = store();
        fs::write(store.ingest_dir().join("crashed-put"), b"partial").unwrap();
        let live = store.new_ingest_file().unwrap();
        assert_eq!(store.gc_ingest().unwrap(), 1);
        assert!(live.path.exists());
        drop(live);
        assert!(ingest_is_empty(&store));
        fs::write(store.ingest_dir().join("crashed-again"), b"partial").unwrap();
        let reopened = BlobStore::open(store.root()).unwrap();
        assert!(ingest_is_empty(&reopened));
    }

    #[test]
    fn concurrent_puts_of_one_blob_are_safe() {
        let (_d, store) = store();
        let data: Arc<Vec<u8>> = Arc::new((0..1_000_000u32).map(|i| (i % 251) as u8).collect());
        let digest = Digest::of_bytes(&data);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, data, digest) = (store.clone(), data.clone(), digest.clone());
                std::thread::spawn(move || {
                    store.put(&digest, data.len() as u64, &data[..]).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(outcomes.contains(&PutOutcome::Stored));
        assert_eq!(fs::read(store.path(&digest)).unwrap(), *data);
        assert_eq!(store.list().unwrap(), vec![digest]);
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn present_blob_is_not_read_again_and_verify_spots_rot() {
        let (_d, store) = store();
        let digest = store.put_bytes(b"kept").unwrap();
        let outcome = store.put(&digest, 4, FailingReader { left: 0 }).unwrap();
        assert_eq!(outcome, PutOutcome::AlreadyPresent);
        store.verify(&digest).unwrap();
        fs::write(store.path(&digest), b"rot!").unwrap();
        assert!(matches!(
            store.verify(&digest),
            Err(StoreError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn import_computes_the_digest() {
        let (_d, store) = store();
        let (digest, size) = store.import(&b"built layer"[..]).unwrap();
        assert_eq!(digest, Digest::of_bytes(b"built layer"));
        assert_eq!(size, 11);
        assert!(store.has(&digest));
    }
}
