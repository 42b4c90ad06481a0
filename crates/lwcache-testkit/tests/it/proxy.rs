//! Each fault of `lwcache_testkit::proxy`, as a client sees it. Bounds are
//! generous: a fault must show within seconds, and "no answer" means none
//! within a fraction of a second.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use lwcache_testkit::proxy::{Fault, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Long enough for any answer on a loaded machine.
const ANSWER: Duration = Duration::from_secs(5);
/// How long "no answer" is watched for.
const SILENCE: Duration = Duration::from_millis(300);

/// An echo server on a free loopback port, for the test's lifetime.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn proxied() -> Proxy {
    Proxy::start(echo_server().await).await.unwrap()
}

/// Sends `msg` and waits up to `within` for the whole echo.
async fn round_trip(s: &mut TcpStream, msg: &[u8], within: Duration) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut got = vec![0u8; msg.len()];
    match tokio::time::timeout(within, s.read_exact(&mut got)).await {
        Ok(r) => r.map(|_| got),
        Err(_) => Err(ErrorKind::TimedOut.into()),
    }
}

/// What one read gives within [`ANSWER`]: bytes, EOF (0) or an error.
async fn read_once(s: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = [0u8; 64];
    tokio::time::timeout(ANSWER, s.read(&mut buf))
        .await
        .expect("the proxy acts within the bound")
}

#[tokio::test]
async fn forwards_and_counts_without_a_fault() {
    let proxy = proxied().await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"ping", ANSWER).await.unwrap(), b"ping");
    let stats = proxy.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.open, 1);
    assert_eq!((stats.bytes_up, stats.bytes_down), (4, 4));
}

#[tokio::test]
async fn a_blackhole_answers_nothing_then_resets_what_it_swallowed() {
    let proxy = proxied().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut old, b"a", ANSWER).await.unwrap(), b"a");
    proxy.set_fault(Fault::Blackhole);
    let err = round_trip(&mut old, b"lost", SILENCE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // New connections are accepted and swallowed too.
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    let err = round_trip(&mut new, b"lost", SILENCE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(proxy.stats().bytes_dropped >= 8);
    proxy.set_fault(Fault::None);
    // Both streams lost bytes: they are reset, not resumed half-way.
    assert!(read_once(&mut old).await.is_err());
    assert!(read_once(&mut new).await.is_err());
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut fresh, b"back", ANSWER).await.unwrap(),
        b"back"
    );
}

#[tokio::test]
async fn a_connection_opened_in_a_blackhole_works_once_lifted_if_it_sent_nothing() {
    let proxy = proxied().await;
    proxy.set_fault(Fault::Blackhole);
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.set_fault(Fault::None);
    assert_eq!(round_trip(&mut s, b"late", ANSWER).await.unwrap(), b"late");
}

#[tokio::test]
async fn a_delay_holds_answers_back_without_losing_them() {
    let proxy = proxied().await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.set_fault(Fault::Delay(Duration::from_millis(400)));
    s.write_all(b"slow").await.unwrap();
    let mut got = [0u8; 4];
    // 400 ms each way: nothing can be back within 300 ms.
    assert!(
        tokio::time::timeout(SILENCE, s.read_exact(&mut got))
            .await
            .is_err()
    );
    tokio::time::timeout(ANSWER, s.read_exact(&mut got))
        .await
        .expect("the delayed answer arrives")
        .unwrap();
    assert_eq!(&got, b"slow");
}

#[tokio::test]
async fn a_reset_aborts_open_and_new_connections() {
    let proxy = proxied().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut old, b"a", ANSWER).await.unwrap(), b"a");
    proxy.set_fault(Fault::Reset);
    let err = read_once(&mut old).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    let err = read_once(&mut new).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn a_cut_closes_open_and_new_connections() {
    let proxy = proxied().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut old, b"a", ANSWER).await.unwrap(), b"a");
    proxy.set_fault(Fault::Cut);
    assert_eq!(read_once(&mut old).await.unwrap(), 0);
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(read_once(&mut new).await.unwrap(), 0);
    proxy.set_fault(Fault::None);
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"b", ANSWER).await.unwrap(), b"b");
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections_and_its_port() {
    let proxy = proxied().await;
    let addr = proxy.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut s, b"a", ANSWER).await.unwrap(), b"a");
    drop(proxy);
    assert_eq!(read_once(&mut s).await.unwrap(), 0);
    // The listener is gone; give its task a moment to be torn down.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the port still accepts after the drop");
}
