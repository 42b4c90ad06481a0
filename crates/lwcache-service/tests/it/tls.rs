//! TLS through the binary: HTTPS on the listener with a certificate made
//! here by `openssl`, and Redis over TLS: on the TLS redis-server the test
//! servers include (a private CA), and on a redis-server of this test's own
//! that requires client certificates (mutual TLS).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::routes::{LIMIT, every_route};
use crate::support::{Server, command, serve_refused, server_env};

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = lwcache test

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
# clientAuth too: Cluster nodes present it to each other on the bus.
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A throwaway CA, and a server and a client certificate it signed, in a
/// directory removed on drop.
pub(crate) struct Pki {
    dir: PathBuf,
    pub(crate) ca_cert: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&std::ffi::OsStr]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// Makes the CA and both certificates (P-256, valid a day).
    pub(crate) fn make(label: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "lwcache-pki-{label}-{}-{}",
            std::process::id(),
            crate::support::fresh_world("pki")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("openssl.cnf");
        std::fs::write(&config, OPENSSL_CONFIG).unwrap();
        let pki = Pki {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            dir,
        };
        let ca_key = pki.dir.join("ca.key");
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        let key_args = [
            os("-newkey"),
            os("ec"),
            os("-pkeyopt"),
            os("ec_paramgen_curve:prime256v1"),
            os("-nodes"),
        ];
        let mut ca = vec![os("req"), os("-x509"), os("-config"), config.as_os_str()];
        ca.extend([os("-extensions"), os("ca_ext"), os("-subj")]);
        ca.extend([os("/CN=lwcache test CA"), os("-days"), os("1")]);
        ca.extend(key_args);
        ca.extend([os("-keyout"), ca_key.as_os_str()]);
        ca.extend([os("-out"), pki.ca_cert.as_os_str()]);
        openssl(&ca);
        for (name, cert, key, ext, serial) in [
            (
                "localhost",
                &pki.server_cert,
                &pki.server_key,
                "server_ext",
                "1001",
            ),
            (
                "lwcache",
                &pki.client_cert,
                &pki.client_key,
                "client_ext",
                "1002",
            ),
        ] {
            let csr = pki.dir.join(format!("{ext}.csr"));
            let subject = format!("/CN={name}");
            let mut req = vec![os("req"), os("-new"), os("-config"), config.as_os_str()];
            req.extend([os("-subj"), std::ffi::OsStr::new(&subject)]);
            req.extend(key_args);
            req.extend([os("-keyout"), key.as_os_str(), os("-out"), csr.as_os_str()]);
            openssl(&req);
            let mut sign = vec![os("x509"), os("-req"), os("-in"), csr.as_os_str()];
            sign.extend([os("-CA"), pki.ca_cert.as_os_str(), os("-CAkey")]);
            sign.extend([ca_key.as_os_str(), os("-set_serial")]);
            sign.extend([os(serial), os("-days"), os("1")]);
            sign.extend([os("-extfile"), config.as_os_str(), os("-extensions")]);
            sign.extend([std::ffi::OsStr::new(ext), os("-out"), cert.as_os_str()]);
            openssl(&sign);
        }
        pki
    }
}

/// Whether `openssl` and `redis-server` can be run; says so loudly when
/// not (and fails when servers are required).
fn tools(test: &str, programs: &[&str]) -> bool {
    for program in programs {
        let found = Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            assert!(
                std::env::var("LWCACHE_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "{program} is needed by {test}"
            );
            eprintln!("SKIPPED: {test} needs {program} on PATH");
            return false;
        }
    }
    true
}

/// One HTTP/1.1 request over TLS, trusting `ca`; the whole answer.
async fn https_get(addr: &str, ca: &Path, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A TLS peer may close without close_notify; what was read counts.
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn https_serves_with_the_given_certificate_and_plain_http_does_not_stall_it() {
    let test = "https_serves_with_the_given_certificate_and_plain_http_does_not_stall_it";
    if !tools(test, &["openssl"]) {
        return;
    }
    let pki = Pki::make("https");
    let cert = pki.server_cert.to_str().unwrap();
    let key = pki.server_key.to_str().unwrap();
    // The certificate by flag, its key from the environment.
    let s = Server::start_with_env(&["--tls-cert", cert], &[("LWCACHE_TLS_KEY", key)]);
    let addr = s
        .base
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("the banner names https: {}", s.base))
        .to_owned();

    // A client that sent nothing and one that speaks plain HTTP, both left
    // open: neither holds up a TLS client.
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        https_get(&addr, &pki.ca_cert, "/healthz"),
    )
    .await
    .expect("an HTTPS request is answered while other clients stall");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let ready = https_get(&addr, &pki.ca_cert, "/v1/worlds/demo/state").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains("x-cache:"), "{ready}");

    // The plain-HTTP client is dropped, never answered in plain text.
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), plain.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the plain-HTTP connection is closed");
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    drop(silent);
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
}

#[test]
fn unusable_https_files_are_refused_naming_the_setting() {
    if !tools(
        "unusable_https_files_are_refused_naming_the_setting",
        &["openssl"],
    ) {
        return;
    }
    let pki = Pki::make("https-bad");
    let cert = pki.server_cert.to_str().unwrap();
    let err = serve_refused(
        &["--tls-cert", cert, "--tls-key", "/nonexistent/key.pem"],
        &[],
    );
    assert!(
        err.contains("--tls-key") && err.contains("cannot read"),
        "{err}"
    );
    // A key that is not the certificate's.
    let other = pki.client_key.to_str().unwrap();
    let err = serve_refused(&["--tls-cert", cert, "--tls-key", other], &[]);
    assert!(err.contains("--tls-key"), "{err}");
    // The certificate file holding a key only.
    let err = serve_refused(&["--tls-cert", other, "--tls-key", other], &[]);
    assert!(err.contains("--tls-cert"), "{err}");
    let err = serve_refused(&["--tls-cert", cert], &[]);
    assert!(
        err.contains("--tls-key") && err.contains("give both"),
        "{err}"
    );
}

/// Every route on the TLS redis-server of the test servers, trusting its
/// private CA through `LWCACHE_REDIS_CA_FILE`.
#[tokio::test]
async fn every_route_on_redis_over_tls_with_a_private_ca() {
    let Some(url) = server_env("LWCACHE_TEST_REDIS_TLS_URL") else {
        return;
    };
    let Some(ca) = server_env("LWCACHE_TEST_REDIS_TLS_CA") else {
        return;
    };
    let limit = LIMIT.to_string();
    let s = Server::start_with_env(
        &["--write-mode", "invalidate", "--max-body-bytes", &limit],
        &[("LWCACHE_REDIS_URL", &url), ("LWCACHE_REDIS_CA_FILE", &ca)],
    );
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "ready", "{r:?}");
    assert_eq!(r.json["cache"]["ok"], json!(true), "{r:?}");
    every_route(&s).await;
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");

    // Without the CA, the server's certificate is not trusted.
    let s = Server::start_with_env(&[], &[("LWCACHE_REDIS_URL", &url)]);
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["cache"]["ok"], json!(false), "{r:?}");
}

/// A redis-server of the test's own that serves TLS only and asks every
/// client for a certificate signed by the CA.
struct MutualTlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for MutualTlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl MutualTlsRedis {
    fn start(pki: &Pki) -> MutualTlsRedis {
        Self::start_node(pki, false)
    }

    /// A server, or with `cluster` a Cluster node whose bus is TLS too.
    fn start_node(pki: &Pki, cluster: bool) -> MutualTlsRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = pki.dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("redis-server");
        if cluster {
            cmd.args(["--cluster-enabled", "yes", "--tls-cluster", "yes"])
                .args(["--cluster-config-file", "nodes.conf"]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&pki.server_cert)
            .arg("--tls-key-file")
            .arg(&pki.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca_cert)
            .args(["--tls-auth-clients", "yes"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = MutualTlsRedis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `redis-cli` with the client certificate, pointed at the server.
    fn cli(&self, pki: &Pki, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--tls"])
            .arg("--cacert")
            .arg(&pki.ca_cert)
            .arg("--cert")
            .arg(&pki.client_cert)
            .arg("--key")
            .arg(&pki.client_key)
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Three Cluster masters of the test's own, TLS only (the bus too), each
/// asking every client for a certificate.
struct MutualTlsCluster {
    nodes: Vec<MutualTlsRedis>,
}

impl MutualTlsCluster {
    fn start(pki: &Pki) -> MutualTlsCluster {
        let nodes: Vec<MutualTlsRedis> = (0..3)
            .map(|_| MutualTlsRedis::start_node(pki, true))
            .collect();
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        let out = nodes[0].cli(pki, &create);
        assert!(out.contains("[OK]"), "redis-cli --cluster create: {out}");
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            while !node
                .cli(pki, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < deadline, "the Cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        MutualTlsCluster { nodes }
    }

    fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("rediss://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[tokio::test]
async fn a_redis_cluster_with_client_certificates() {
    let test = "a_redis_cluster_with_client_certificates";
    if !tools(test, &["openssl", "redis-server", "redis-cli"]) {
        return;
    }
    let pki = Pki::make("mtls-cluster");
    let cluster = MutualTlsCluster::start(&pki);
    let limit = LIMIT.to_string();
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let s = Server::start_with_env(
        &[
            "--write-mode",
            "invalidate",
            "--max-body-bytes",
            &limit,
            "--redis-cluster",
            &cluster.urls(),
        ],
        &[
            ("LWCACHE_REDIS_CA_FILE", &path(&pki.ca_cert)),
            ("LWCACHE_REDIS_CLIENT_CERT", &path(&pki.client_cert)),
            ("LWCACHE_REDIS_CLIENT_KEY", &path(&pki.client_key)),
        ],
    );
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "ready", "{r:?}");
    assert_eq!(
        r.json["cache"]["eviction"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "every master answered over mutual TLS: {r:?}"
    );
    every_route(&s).await;
    let keys: usize = cluster
        .nodes
        .iter()
        .map(|n| {
            n.cli(&pki, &["--scan", "--pattern", "lw:*"])
                .lines()
                .filter(|k| k.starts_with("lw:"))
                .count()
        })
        .sum();
    assert!(keys > 0, "the service wrote its keys to the Cluster");
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");

    // Without the client certificate no node lets the service in.
    let s = Server::start(&[
        "--redis-cluster",
        &cluster.urls(),
        "--redis-ca-file",
        &path(&pki.ca_cert),
    ]);
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["cache"]["ok"], json!(false), "{r:?}");
}

#[tokio::test]
async fn redis_with_client_certificates_by_flag_and_by_file() {
    let test = "redis_with_client_certificates_by_flag_and_by_file";
    if !tools(test, &["openssl", "redis-server", "redis-cli"]) {
        return;
    }
    let pki = Pki::make("mtls");
    let redis = MutualTlsRedis::start(&pki);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let limit = LIMIT.to_string();
    let s = Server::start(&[
        "--write-mode",
        "invalidate",
        "--max-body-bytes",
        &limit,
        "--redis-url",
        &url,
        "--redis-ca-file",
        &path(&pki.ca_cert),
        "--redis-client-cert",
        &path(&pki.client_cert),
        "--redis-client-key",
        &path(&pki.client_key),
    ]);
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "ready", "{r:?}");
    every_route(&s).await;
    let keys = redis.cli(&pki, &["--scan", "--pattern", "lw:*"]);
    assert!(
        keys.lines().any(|k| k.starts_with("lw:")),
        "the service wrote its keys over mutual TLS: {keys:?}"
    );
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");

    // The same from a file.
    let file = pki.dir.join("lwcache.toml");
    std::fs::write(
        &file,
        format!(
            "redis_url = {url:?}\nredis_ca_file = {:?}\nredis_client_cert = {:?}\n\
             redis_client_key = {:?}\n",
            path(&pki.ca_cert),
            path(&pki.client_cert),
            path(&pki.client_key)
        ),
    )
    .unwrap();
    let s = Server::start(&["--config", file.to_str().unwrap()]);
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "ready", "{r:?}");
    let r = s.get("/v1/worlds/demo/state").await.expect(200, None);
    assert!(!r.json.is_null(), "{r:?}");
    drop(s);

    // Without the client certificate the server refuses the client: the
    // service starts, serving from the source, and says so.
    let s = Server::start(&["--redis-url", &url, "--redis-ca-file", &path(&pki.ca_cert)]);
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "degraded", "{r:?}");
    assert_eq!(r.json["cache"]["ok"], json!(false), "{r:?}");
    drop(s);

    // A client certificate file that is not there is named.
    let err = serve_refused(
        &[
            "--redis-url",
            &url,
            "--redis-client-cert",
            "/nonexistent/client.crt",
            "--redis-client-key",
            &path(&pki.client_key),
        ],
        &[],
    );
    assert!(
        err.contains("--redis-client-cert") && err.contains("cannot read"),
        "{err}"
    );
    // The printed configuration names the files.
    let out = command()
        .args([
            "serve",
            "--print-config",
            "--config",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("redis_client_cert = {:?}", path(&pki.client_cert))),
        "{text}"
    );
}

/// Neo4j's `+s` schemes trust `--neo4j-ca-file`: against a TLS server that
/// is not Neo4j (the service itself over HTTPS), the handshake passes with
/// the CA, so the start fails further on, and without it the certificate
/// is refused.
#[test]
fn neo4j_over_tls_trusts_the_given_ca() {
    if !tools("neo4j_over_tls_trusts_the_given_ca", &["openssl"]) {
        return;
    }
    let pki = Pki::make("neo4j-ca");
    let https = Server::start(&[
        "--tls-cert",
        pki.server_cert.to_str().unwrap(),
        "--tls-key",
        pki.server_key.to_str().unwrap(),
    ]);
    let addr = https.base.strip_prefix("https://").unwrap().to_owned();
    let uri = format!("bolt+s://{addr}");
    let with_ca = serve_refused(
        &[
            "--neo4j-uri",
            &uri,
            "--neo4j-ca-file",
            pki.ca_cert.to_str().unwrap(),
        ],
        &[],
    );
    let without = serve_refused(&["--neo4j-uri", &uri], &[]);
    eprintln!("with the CA: {with_ca}\nwithout: {without}");
    assert!(without.to_lowercase().contains("certificate"), "{without}");
    assert!(!with_ca.to_lowercase().contains("certificate"), "{with_ca}");
    assert!(
        with_ca.contains("Bolt"),
        "past TLS, at Bolt's handshake: {with_ca}"
    );
    let not_pem = serve_refused(
        &[
            "--neo4j-uri",
            &uri,
            "--neo4j-ca-file",
            pki.server_key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(not_pem.contains("--neo4j-ca-file"), "{not_pem}");
}
