//! Layers → snapshots: each layer is unpacked once, into a committed snapshot named
//! by its chain id, so images sharing a base share its snapshots.
//!
//! Since a snapshot is shared by every image naming the same chain, the layer's
//! uncompressed content is hashed while it is unpacked and must match the diff id
//! the image config claims; otherwise one image could plant content under
//! another's chain id. The blob itself was checked against its (compressed) digest
//! when it entered the store.

use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_image::{BlobStore, Descriptor, Digest};
use berth_snapshot::{detect_compression, Compression, Limits, SnapshotError, Snapshotter};
use sha2::{Digest as _, Sha256};

use crate::error::EngineError;

/// A chunk of the uncompressed layer, or the error that ended it.
type Chunk = io::Result<Vec<u8>>;

const CHUNK: usize = 1 << 20;

/// Inflates `blob` and hashes the result on a thread of its own, handing the
/// uncompressed bytes over in chunks: the unpacker (tar parsing, file writes)
/// runs on another core. Returns the reader and the thread, whose result is the
/// diff id of everything the stream held (the tar may end before the stream
/// does: padding is hashed too), at most `max` bytes. Once `abandon` is set and
/// the reader dropped (the unpack failed), it stops at once.
fn inflate_on_a_thread(
    blob: impl Read + Send + 'static,
    max: u64,
    abandon: Arc<AtomicBool>,
) -> (ChunkReader, std::thread::JoinHandle<io::Result<Digest>>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
    let thread = std::thread::spawn(move || {
        let mut stream = decompressed(blob)?.take(max.saturating_add(1));
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut sending = true;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match stream.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let copy = io::Error::new(e.kind(), e.to_string());
                        let _ = tx.send(Err(copy));
                        return Err(e);
                    }
                }
            }
            if filled == 0 {
                break;
            }
            chunk.truncate(filled);
            hasher.update(&chunk);
            total += filled as u64;
            // Once the unpacker is done (the tar's end), keep hashing alone.
            if sending && tx.send(Ok(chunk)).is_err() {
                if abandon.load(Ordering::Acquire) {
                    return Err(io::Error::other("unpack failed"));
                }
                sending = false;
            }
            // (The unpacker saw the byte past the limit: its error names it.)
            if total > max {
                return Err(io::Error::other("uncompressed size limit exceeded"));
            }
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Digest::from_hex(&hex).expect("sha256 hex is a digest"))
    });
    let reader = ChunkReader {
        rx,
        chunk: Vec::new(),
        pos: 0,
    };
    (reader, thread)
}

/// Reads the chunks [`inflate_on_a_thread`] sends.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Chunk>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0), // the thread is done
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn decompressed(blob: impl Read + Send + 'static) -> io::Result<Box<dyn Read>> {
    let mut buffered = BufReader::with_capacity(256 << 10, blob);
    Ok(match detect_compression(&mut buffered)? {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

/// The bounds on one layer's unpacked size: berth-snapshot's defaults (32 GiB,
/// one million entries) unless `BERTH_LAYER_MAX_BYTES` / `BERTH_LAYER_MAX_ENTRIES`
/// say otherwise (a host with a small disk; the tests, to hit them quickly).
pub fn limits() -> Limits {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let default = Limits::default();
    Limits {
        max_bytes: var("BERTH_LAYER_MAX_BYTES").unwrap_or(default.max_bytes),
        max_entries: var("BERTH_LAYER_MAX_ENTRIES").unwrap_or(default.max_entries),
    }
}

/// Unpacks `blob` (the layer as stored: compressed or not) into the active
/// snapshot `key`, checking its diff id.
pub(crate) fn unpack_checked(
    snapshots: &Snapshotter,
    key: &str,
    blob: impl Read + Send + 'static,
    layer: &Digest,
    diff_id: &Digest,
) -> Result<(), EngineError> {
    let limits = limits();
    let read_err = |source: io::Error| EngineError::Io {
        action: "decompressing layer",
        path: format!("{layer}").into(),
        source,
    };
    let abandon = Arc::new(AtomicBool::new(false));
    let (mut reader, inflating) = inflate_on_a_thread(blob, limits.max_bytes, abandon.clone());
    let unpacked = snapshots
        .unpack(key, &mut reader, limits)
        .map_err(snap_err(format!("unpacking layer {layer}")));
    // On success the thread hashes the rest alone; on failure it stops.
    abandon.store(unpacked.is_err(), Ordering::Release);
    drop(reader);
    let inflated = inflating
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("inflating thread panicked")));
    unpacked?;
    let got = inflated.map_err(read_err)?;
    if &got != diff_id {
        return Err(EngineError::DiffIdMismatch {
            layer: layer.clone(),
            expected: diff_id.clone(),
            got,
        });
    }
    Ok(())
}

/// The chain ids of layers with these diff ids (OCI image spec): the first is its
/// diff id, each next one `sha256(previous + " " + diff id)`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of_bytes(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn snap_err(action: String) -> impl FnOnce(SnapshotError) -> EngineError {
    move |source| EngineError::Snapshot { action, source }
}

/// The key of the snapshot process `pid` unpacks layer `chain` into.
pub(crate) fn extract_key(pid: u32, chain: &Digest) -> String {
    format!("extract-{pid}-{}", chain.hex())
}

/// Removes `extract-PID-*` snapshots whose process is gone: abandoned by a
/// `berth` that died mid-unpack. (A pull unpacks while it downloads, outside the
/// engine lock, so one of a live process may be in use.)
fn sweep_extracts(snapshots: &Snapshotter) {
    let Ok(list) = snapshots.list() else { return };
    for info in list {
        let pid = info
            .key
            .strip_prefix("extract-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if !std::path::Path::new("/proc").join(pid.to_string()).exists() {
            let _ = snapshots.remove(&info.key);
        }
    }
}

/// Makes sure every layer has its committed snapshot; returns the top one's key
/// (`None` for an image without layers). The caller holds the engine lock, so no
/// other `berth` commits the same layer at the same time.
pub fn ensure(
    blobs: &BlobStore,
    snapshots: &Snapshotter,
    layers: &[Descriptor],
    diff_ids: &[Digest],
) -> Result<Option<String>, EngineError> {
    sweep_extracts(snapshots);
    let mut parent: Option<String> = None;
    for ((layer, diff_id), chain) in layers.iter().zip(diff_ids).zip(chain_ids(diff_ids)) {
        let key = chain.to_string();
        match snapshots.stat(&key) {
            Ok(_) => {
                parent = Some(key);
                continue;
            }
            Err(SnapshotError::NotFound(_)) => {}
            Err(e) => return Err(snap_err(format!("looking up snapshot {key}"))(e)),
        }
        let extract = extract_key(std::process::id(), &chain);
        snapshots
            .prepare(&extract, parent.as_deref())
            .map_err(snap_err(format!(
                "preparing snapshot for layer {}",
                layer.digest
            )))?;
        let unpacked = blobs
            .open_blob(&layer.digest)
            .map_err(|source| EngineError::Blob {
                action: format!("opening layer {}", layer.digest),
                source,
            })
            .and_then(|blob| unpack_checked(snapshots, &extract, blob, &layer.digest, diff_id))
            .and_then(|_| {
                snapshots
                    .commit(&key, &extract)
                    .map_err(snap_err(format!("committing layer {}", layer.digest)))
            });
        if let Err(e) = unpacked {
            let _ = snapshots.remove(&extract);
            return Err(e);
        }
        parent = Some(key);
    }
    Ok(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let (a, b) = (Digest::of_bytes(b"a"), Digest::of_bytes(b"b"));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of_bytes(format!("{a} {b}").as_bytes()));
    }
}
