//! Pull and push against a real registry: Debian's `docker-registry` (distribution
//! 2.8) started on 127.0.0.1 with filesystem storage in a temp dir. Skipped, loudly,
//! when the binary is missing. The test image is built offline from the host's
//! busybox.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_image::manifest::media_type;
use berth_image::{
    BlobStore, Credentials, Descriptor, Digest, ImageManifest, Manifest, Reference, RegistryClient,
    RegistryError, RegistryOptions, Scheme,
};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// bcrypt (cost 4) of "s3cret", for the htpasswd instance.
const HTPASSWD: &str = "berth:$2b$04$Z4ojyvyncaKUSTPa19liR.NvN1azbctaWs5QSZ28kjoRAmtozxGM6\n";

/// A self-signed certificate for 127.0.0.1 and its key (test fixture only).
const TLS_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCCATagAwIBAgIUT2g2dU7sqUY/RiAcUM08I8xmSucwCgYIKoZIzj0EAwIw\nFDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyMjIxMjUwNVoYDzIxMjYxMDI5\nMjEyNTA1WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO\nPQMBBwNCAAQV5zrnPCzGwZHAZ+h3QssBjwk8Z3J9oh35DSrbT4HAYfDiqA4ndPAl\n0/93xAUUoXt3uQnS7P/fzkjpQWH6PROwo2QwYjAdBgNVHQ4EFgQUbOXd85veyQ22\nqB4iR+pikA0QWtQwHwYDVR0jBBgwFoAUbOXd85veyQ22qB4iR+pikA0QWtQwDwYD\nVR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0kAMEYC\nIQDqLuJ7TEmE4wLtET9mafahaGFLKVwjWMGhooZBloWvhgIhAJbD24JvIUO735oG\nQb1IC8h0f+tC10MTMDt+lk+TWdJq\n-----END CERTIFICATE-----\n";
const TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7tKdYsADf04Z+eTL\np3wDCopmX1uMcfNyHYQEKJ/TPnyhRANCAAQV5zrnPCzGwZHAZ+h3QssBjwk8Z3J9\noh35DSrbT4HAYfDiqA4ndPAl0/93xAUUoXt3uQnS7P/fzkjpQWH6PROw\n-----END PRIVATE KEY-----\n";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    BasicAuth,
    Tls,
}

/// A running registry; killed and its directory removed on drop, even on panic.
struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Registry {
    fn start(mode: Mode) -> Option<Self> {
        if !Path::new(REGISTRY_BIN).exists() {
            eprintln!("SKIP: {REGISTRY_BIN} missing (apt-get install docker-registry)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let tls = if mode == Mode::Tls {
            fs::write(dir.path().join("cert.pem"), TLS_CERT).unwrap();
            fs::write(dir.path().join("key.pem"), TLS_KEY).unwrap();
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            )
        } else {
            String::new()
        };
        let auth = if mode == Mode::BasicAuth {
            fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            )
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls}{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Self { child, dir, addr };
        registry.wait_ready(mode == Mode::Tls);
        Some(registry)
    }

    fn wait_ready(&self, tls: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("{}://{}/v2/", if tls { "https" } else { "http" }, self.addr);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(true)
                    .build(),
            )
            .build()
            .into();
        while Instant::now() < deadline {
            // 200 without auth, 401 with: either way it is serving.
            if let Ok(resp) = agent.get(&url).call() {
                if matches!(resp.status().as_u16(), 200 | 401) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!("registry on {} did not come up:\n{log}", self.addr);
    }

    fn reference(&self, name: &str) -> Reference {
        format!("{}/{name}", self.addr).parse().unwrap()
    }

    /// Where distribution keeps a blob's bytes.
    fn blob_data_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A two-layer image built offline into `store`: busybox plus a small file.
struct TestImage {
    manifest_digest: Digest,
    manifest: ImageManifest,
}

fn gzip_tar(entries: &[(&str, &[u8], u32)]) -> (Vec<u8>, Digest) {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let diff_id = Digest::of_bytes(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

fn build_image(store: &BlobStore) -> TestImage {
    let busybox = fs::read("/usr/bin/busybox").unwrap_or_else(|_| vec![0x7f; 300_000]);
    let layers = [
        gzip_tar(&[("bin/busybox", &busybox, 0o755)]),
        gzip_tar(&[("etc/hello", b"hello from berth\n", 0o644)]),
    ];
    let mut descs = Vec::new();
    for (gz, _) in &layers {
        let (digest, size) = store.import(&gz[..]).unwrap();
        descs.push(Descriptor::new(media_type::OCI_LAYER_GZIP, digest, size));
    }
    let diff_ids: Vec<String> = layers.iter().map(|(_, d)| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Entrypoint":["/bin/busybox"],"Cmd":["sh"],"WorkingDir":"/","User":"0:0","ExposedPorts":{{"8080/tcp":{{}}}},"Labels":{{"org.berth.test":"yes"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = store.put_bytes(config.as_bytes()).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_owned()),
        config: Descriptor::new(media_type::OCI_CONFIG, config_digest, config.len() as u64),
        layers: descs,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = store.put_bytes(&bytes).unwrap();
    TestImage {
        manifest_digest,
        manifest,
    }
}

fn sha256_of_file(path: &Path) -> Digest {
    // Files here are a few MB; reading whole is fine in a test.
    let mut data = Vec::new();
    fs::File::open(path)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    Digest::of_bytes(&data)
}

fn assert_store_is_sound(store: &BlobStore) {
    for digest in store.list().unwrap() {
        assert_eq!(
            sha256_of_file(&store.path(&digest)),
            digest,
            "blob {digest} is corrupt"
        );
    }
    assert_eq!(
        fs::read_dir(store.root().join("ingest")).unwrap().count(),
        0,
        "ingest left behind"
    );
}

fn no_progress(_: &Digest, _: u64, _: u64) {}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(&format!(": {s}"));
        src = s.source();
    }
    out
}

#[test]
fn push_then_pull_round_trips_every_blob() {
    let Some(registry) = Registry::start(Mode::Plain) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = BlobStore::open(tmp.path().join("src")).unwrap();
    let image = build_image(&src);
    let client = RegistryClient::new(RegistryOptions::default());
    let reference = registry.reference("test/busybox:1.36");
    client
        .push(&reference, &src, &image.manifest_digest)
        .unwrap();
    // A second push finds every blob present and only re-puts the manifest.
    client
        .push(&reference, &src, &image.manifest_digest)
        .unwrap();

    let dst = BlobStore::open(tmp.path().join("dst")).unwrap();
    let seen: Mutex<HashMap<Digest, (u64, u64)>> = Mutex::default();
    let progress = |d: &Digest, done: u64, total: u64| {
        seen.lock().unwrap().insert(d.clone(), (done, total));
    };
    let pulled = client.pull(&reference, &dst, &progress).unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert_eq!(pulled.index_digest, None);
    assert_eq!(pulled.manifest, image.manifest);
    let run = pulled.config.config.as_ref().unwrap();
    assert_eq!(
        run.entrypoint.as_deref(),
        Some(&["/bin/busybox".to_owned()][..])
    );
    assert_eq!(run.labels.as_ref().unwrap()["org.berth.test"], "yes");
    let mut want: Vec<Digest> = image
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    want.push(image.manifest.config.digest.clone());
    want.push(image.manifest_digest.clone());
    want.sort();
    assert_eq!(dst.list().unwrap(), want);
    assert_store_is_sound(&dst);
    for layer in &image.manifest.layers {
        assert_eq!(
            seen.lock().unwrap()[&layer.digest],
            (layer.size, layer.size)
        );
    }

    // Pulling again skips every blob; pulling by digest gives the same image.
    let by_digest: Reference = format!("{}/test/busybox@{}", registry.addr, image.manifest_digest)
        .parse()
        .unwrap();
    let again = client.pull(&by_digest, &dst, &no_progress).unwrap();
    assert_eq!(again.manifest_digest, image.manifest_digest);
    assert_eq!(dst.list().unwrap(), want);
}

#[test]
fn chunked_push_and_pull_through_an_index() {
    let Some(registry) = Registry::start(Mode::Plain) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = BlobStore::open(tmp.path().join("src")).unwrap();
    let image = build_image(&src);
    let client = RegistryClient::new(RegistryOptions {
        push_chunk_size: Some(256 * 1024),
        ..RegistryOptions::default()
    });
    let reference = registry.reference("multi/busybox:v1");
    client
        .push(&reference, &src, &image.manifest_digest)
        .unwrap();

    // An index with an arm64 entry first, pushed by raw HTTP.
    let manifest_size = src.size(&image.manifest_digest).unwrap();
    let entry = |arch: &str| {
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{manifest_size},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
            media_type::OCI_MANIFEST,
            image.manifest_digest
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{},{}]}}"#,
        media_type::OCI_INDEX,
        entry("arm64"),
        entry("amd64")
    );
    let resp = ureq::put(&format!(
        "http://{}/v2/multi/busybox/manifests/all",
        registry.addr
    ))
    .header("Content-Type", media_type::OCI_INDEX)
    .send(index.as_bytes())
    .unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let dst = BlobStore::open(tmp.path().join("dst")).unwrap();
    let pulled = client
        .pull(&registry.reference("multi/busybox:all"), &dst, &no_progress)
        .unwrap();
    assert_eq!(
        pulled.index_digest,
        Some(Digest::of_bytes(index.as_bytes()))
    );
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert!(dst.has(&Digest::of_bytes(index.as_bytes())));
    assert_store_is_sound(&dst);
    assert_eq!(dst.list().unwrap().len(), 5);

    // berth pushes the index it pulled to another repository, and it pulls back.
    let copy = registry.reference("copy/busybox:all");
    client
        .push(&copy, &dst, pulled.index_digest.as_ref().unwrap())
        .unwrap();
    let again = BlobStore::open(tmp.path().join("again")).unwrap();
    let repulled = client.pull(&copy, &again, &no_progress).unwrap();
    assert_eq!(repulled.index_digest, pulled.index_digest);
    assert_eq!(again.list().unwrap(), dst.list().unwrap());
}

#[test]
fn tampered_blob_is_rejected_and_nothing_is_stored() {
    let Some(registry) = Registry::start(Mode::Plain) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = BlobStore::open(tmp.path().join("src")).unwrap();
    let image = build_image(&src);
    let client = RegistryClient::new(RegistryOptions::default());
    let reference = registry.reference("test/tampered:latest");
    client
        .push(&reference, &src, &image.manifest_digest)
        .unwrap();

    // Same length, different bytes, under the registry's storage.
    let victim = &image.manifest.layers[1];
    let data_path = registry.blob_data_path(&victim.digest);
    let mut data = fs::read(&data_path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&data_path, &data).unwrap();

    let dst = BlobStore::open(tmp.path().join("dst")).unwrap();
    let err = client.pull(&reference, &dst, &no_progress).unwrap_err();
    match &err {
        RegistryError::BlobDigestMismatch { digest, got, .. } => {
            assert_eq!(digest, &victim.digest);
            assert_eq!(got, &Digest::of_bytes(&data));
        }
        other => panic!("expected a digest mismatch, got {}", error_chain(other)),
    }
    let msg = err.to_string();
    let want = format!(
        "fetching blob {} from {}/test/tampered: digest mismatch (got sha256:",
        victim.digest, registry.addr
    );
    assert!(msg.starts_with(&want), "{msg}");
    assert!(!dst.has(&victim.digest));
    assert_store_is_sound(&dst);
}

#[test]
fn basic_auth_registry_needs_the_right_credentials() {
    let Some(registry) = Registry::start(Mode::BasicAuth) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = BlobStore::open(tmp.path().join("src")).unwrap();
    let image = build_image(&src);
    let reference = registry.reference("private/busybox:1");
    let creds = |password: &str| RegistryOptions {
        credentials: Some(Credentials {
            username: "berth".into(),
            password: password.into(),
        }),
        ..RegistryOptions::default()
    };

    let anonymous = RegistryClient::new(RegistryOptions::default());
    let err = anonymous
        .push(&reference, &src, &image.manifest_digest)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Auth { .. }),
        "{}",
        error_chain(&err)
    );
    let wrong = RegistryClient::new(creds("wrong"));
    let err = wrong
        .push(&reference, &src, &image.manifest_digest)
        .unwrap_err();
    assert!(
        error_chain(&err).contains("credentials rejected"),
        "{}",
        error_chain(&err)
    );

    let good = RegistryClient::new(creds("s3cret"));
    good.push(&reference, &src, &image.manifest_digest).unwrap();
    let dst = BlobStore::open(tmp.path().join("dst")).unwrap();
    let pulled = good.pull(&reference, &dst, &no_progress).unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert_store_is_sound(&dst);
    let err = anonymous.pull(&reference, &dst, &no_progress).unwrap_err();
    assert!(
        matches!(err, RegistryError::Auth { .. }),
        "{}",
        error_chain(&err)
    );
}

#[test]
fn missing_manifest_is_a_clear_error() {
    let Some(registry) = Registry::start(Mode::Plain) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dst = BlobStore::open(tmp.path()).unwrap();
    let client = RegistryClient::new(RegistryOptions::default());
    let err = client
        .pull(&registry.reference("nope/nothing:1"), &dst, &no_progress)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "fetching manifest {}/nope/nothing:1: registry answered 404",
            registry.addr
        )),
        "{msg}"
    );
    let _ = Manifest::parse(None, b"{}").unwrap_err();
}

#[test]
fn https_registry_with_self_signed_cert_needs_skip_verify() {
    let Some(registry) = Registry::start(Mode::Tls) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = BlobStore::open(tmp.path().join("src")).unwrap();
    let image = build_image(&src);
    let reference = registry.reference("tls/busybox:1");
    let verifying = RegistryClient::new(RegistryOptions {
        scheme: Scheme::Https,
        ..RegistryOptions::default()
    });
    let err = verifying
        .push(&reference, &src, &image.manifest_digest)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { .. }),
        "{}",
        error_chain(&err)
    );
    let trusting = RegistryClient::new(RegistryOptions {
        scheme: Scheme::Https,
        insecure_skip_tls_verify: true,
        ..RegistryOptions::default()
    });
    trusting
        .push(&reference, &src, &image.manifest_digest)
        .unwrap();
    let dst = BlobStore::open(tmp.path().join("dst")).unwrap();
    let pulled = trusting.pull(&reference, &dst, &no_progress).unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert_store_is_sound(&dst);
}
