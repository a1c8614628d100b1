//! Layers → snapshots: each layer is unpacked once, into a committed snapshot named
//! by its chain id, so images sharing a base share its snapshots.
//!
//! Since a snapshot is shared by every image naming the same chain, the layer's
//! uncompressed content is hashed while it is unpacked and must match the diff id
//! the image config claims; otherwise one image could plant content under
//! another's chain id. The blob itself was checked against its (compressed) digest
//! when it entered the store.

use std::io::{self, BufReader, Read};

use berth_image::{BlobStore, Descriptor, Digest};
use berth_snapshot::{detect_compression, Compression, Limits, SnapshotError, Snapshotter};
use sha2::{Digest as _, Sha256};

use crate::error::EngineError;

/// Decompresses a layer and hashes what comes out.
struct DiffReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for DiffReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn decompressed(blob: std::fs::File) -> io::Result<Box<dyn Read>> {
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

/// Unpacks `blob` into the active snapshot `key`, checking its diff id.
fn unpack_checked(
    snapshots: &Snapshotter,
    key: &str,
    blob: std::fs::File,
    layer: &Digest,
    diff_id: &Digest,
) -> Result<(), EngineError> {
    let limits = limits();
    let read_err = |source: io::Error| EngineError::Io {
        action: "decompressing layer",
        path: format!("{layer}").into(),
        source,
    };
    let mut reader = DiffReader {
        inner: decompressed(blob).map_err(read_err)?,
        hasher: Sha256::new(),
    };
    snapshots
        .unpack(key, &mut reader, limits)
        .map_err(snap_err(format!("unpacking layer {layer}")))?;
    // The tar may end before the stream does (padding): hash the rest too.
    io::copy(&mut (&mut reader).take(limits.max_bytes), &mut io::sink()).map_err(read_err)?;
    let hex: String = reader
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let got = Digest::from_hex(&hex).expect("sha256 hex is a digest");
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

/// Makes sure every layer has its committed snapshot; returns the top one's key
/// (`None` for an image without layers). The caller holds the engine lock, so no
/// other `berth` unpacks the same layer at the same time.
pub fn ensure(
    blobs: &BlobStore,
    snapshots: &Snapshotter,
    layers: &[Descriptor],
    diff_ids: &[Digest],
) -> Result<Option<String>, EngineError> {
    // Every extraction happens under the engine lock, so an `extract-*` snapshot
    // seen here was abandoned by a `berth` that died mid-unpack.
    if let Ok(list) = snapshots.list() {
        for stale in list.iter().filter(|i| i.key.starts_with("extract-")) {
            let _ = snapshots.remove(&stale.key);
        }
    }
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
        let extract = format!("extract-{}-{}", std::process::id(), chain.hex());
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
