//! Bearer-token auth and hostile answers, against a tiny in-process fake
//! registry on 127.0.0.1 (no external binary needed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use berth_image::manifest::media_type;
use berth_image::{
    BlobStore, Credentials, Descriptor, Digest, ImageManifest, Reference, RegistryClient,
    RegistryError, RegistryOptions,
};

const TOKEN: &str = "tok-123";

#[derive(Default)]
struct FakeState {
    /// Path → (content type, body).
    routes: HashMap<String, (String, Vec<u8>)>,
    /// Authorization headers seen by the token endpoint.
    token_requests: Vec<(String, Option<String>)>,
    /// Requests to /v2/ without the token.
    challenged: usize,
    /// Paths whose answer announces the full length but stops halfway.
    truncated: Vec<String>,
}

struct FakeRegistry {
    addr: String,
    state: Arc<Mutex<FakeState>>,
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(body);
}

fn handle(mut stream: TcpStream, addr: &str, state: &Mutex<FakeState>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut auth = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_owned());
            }
        }
    }
    let mut st = state.lock().unwrap();
    if let Some(query) = path.strip_prefix("/token?") {
        st.token_requests.push((query.to_owned(), auth));
        let body = format!(r#"{{"access_token":"{TOKEN}","expires_in":300}}"#);
        return respond(
            &mut stream,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        );
    }
    if auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        st.challenged += 1;
        let challenge = format!(
            r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:app:pull""#
        );
        return respond(
            &mut stream,
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            b"{}",
        );
    }
    match st.routes.get(&path) {
        Some((ct, body)) if st.truncated.contains(&path) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {ct}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..body.len() / 2]);
        }
        Some((ct, body)) => respond(&mut stream, "200 OK", &[("Content-Type", ct.clone())], body),
        None => respond(
            &mut stream,
            "404 Not Found",
            &[],
            b"{\"errors\":[{\"code\":\"BLOB_UNKNOWN\"}]}",
        ),
    }
}

impl FakeRegistry {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let (a, s) = (addr.clone(), state.clone());
        // Detached: the thread dies with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (a, s) = (a.clone(), s.clone());
                std::thread::spawn(move || handle(stream, &a, &s));
            }
        });
        Self { addr, state }
    }

    /// Serves an image whose blob contents are `served` (which may differ from
    /// what the manifest describes).
    fn serve_image(&self, described: &[&[u8]], served: &[&[u8]]) -> Vec<Descriptor> {
        let mut st = self.state.lock().unwrap();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (d, s) in described.iter().zip(served) {
            let digest = Digest::of_bytes(d);
            st.routes.insert(
                format!("/v2/app/blobs/{digest}"),
                ("application/octet-stream".into(), s.to_vec()),
            );
            diff_ids.push(format!("\"{}\"", Digest::of_bytes(d)));
            layers.push(Descriptor::new(
                media_type::DOCKER_LAYER_GZIP,
                digest,
                d.len() as u64,
            ));
        }
        let config =
            String::from_utf8_lossy(config).replace("[]", &format!("[{}]", diff_ids.join(",")));
        let config_digest = Digest::of_bytes(config.as_bytes());
        st.routes.insert(
            format!("/v2/app/blobs/{config_digest}"),
            (
                "application/octet-stream".into(),
                config.clone().into_bytes(),
            ),
        );
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::DOCKER_MANIFEST.into()),
            config: Descriptor::new(
                media_type::DOCKER_CONFIG,
                config_digest,
                config.len() as u64,
            ),
            layers: layers.clone(),
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).unwrap();
        st.routes.insert(
            "/v2/app/manifests/latest".into(),
            (media_type::DOCKER_MANIFEST.into(), bytes),
        );
        layers
    }

    fn reference(&self) -> Reference {
        format!("{}/app:latest", self.addr).parse().unwrap()
    }
}

fn no_progress(_: &Digest, _: u64, _: u64) {}

#[test]
fn bearer_token_is_fetched_once_and_reused() {
    let fake = FakeRegistry::start();
    let layers: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 10_000 + usize::from(i)]).collect();
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let descs = fake.serve_image(&refs, &refs);
    let client = RegistryClient::new(RegistryOptions {
        credentials: Some(Credentials {
            username: "u".into(),
            password: "p".into(),
        }),
        ..RegistryOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path()).unwrap();
    let pulled = client
        .pull(&fake.reference(), &store, &no_progress)
        .unwrap();
    assert_eq!(pulled.layers, descs);
    for d in &descs {
        assert!(store.has(&d.digest));
    }
    let st = fake.state.lock().unwrap();
    assert_eq!(
        st.challenged, 1,
        "the token is cached after the first challenge"
    );
    assert_eq!(st.token_requests.len(), 1);
    let (query, auth) = &st.token_requests[0];
    assert_eq!(query, "service=fake&scope=repository%3Aapp%3Apull");
    assert_eq!(
        auth.as_deref(),
        Some("Basic dTpw"),
        "credentials go to the token realm"
    );
}

#[test]
fn wrong_or_oversized_blobs_are_rejected() {
    let fake = FakeRegistry::start();
    let good: &[u8] = b"the real layer";
    let longer = [good, b" and then some more bytes"].concat();
    let descs = fake.serve_image(&[good, b"second"], &[&longer, b"SECOND"]);
    let client = RegistryClient::new(RegistryOptions {
        parallel_downloads: 1,
        ..RegistryOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path()).unwrap();
    let err = client
        .pull(&fake.reference(), &store, &no_progress)
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::BlobSizeMismatch { digest, more: true, .. } if *digest == descs[0].digest),
        "{err}"
    );
    for d in &descs {
        assert!(!store.has(&d.digest));
    }
    // The first layer fixed: the second, same size but other bytes, fails on its digest.
    fake.state.lock().unwrap().routes.insert(
        format!("/v2/app/blobs/{}", descs[0].digest),
        ("application/octet-stream".into(), good.to_vec()),
    );
    let err = client
        .pull(&fake.reference(), &store, &no_progress)
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::BlobDigestMismatch { digest, .. } if *digest == descs[1].digest),
        "{err}"
    );
    assert!(store.has(&descs[0].digest));
    assert!(!store.has(&descs[1].digest));
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn connection_dropped_mid_layer_leaves_nothing() {
    let fake = FakeRegistry::start();
    let layer = vec![7u8; 300_000];
    let descs = fake.serve_image(&[&layer], &[&layer]);
    fake.state
        .lock()
        .unwrap()
        .truncated
        .push(format!("/v2/app/blobs/{}", descs[0].digest));
    let client = RegistryClient::new(RegistryOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path()).unwrap();
    let err = client
        .pull(&fake.reference(), &store, &no_progress)
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Http {
                action: "fetching blob",
                ..
            }
        ),
        "{err}"
    );
    assert!(!store.has(&descs[0].digest));
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
}
