//! Slow and abusive clients: headers or bodies sent a byte at a time are cut off at their
//! timeout without starving anyone else, and connections beyond the limit wait their turn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use gateways::config::GatewayConfig;
use payledger::auth::TokenKeys;
use payledger::server::{ServeLimits, Service};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::app::{sandbox_key, SECRET};
use crate::helpers::{on_both_stores, TestDb};

/// A service with the given limits; stopped by sending on the sender.
async fn start(db: &TestDb, limits: ServeLimits) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut gateway = GatewayConfig::from_lookup(|_| None, &base).unwrap();
    gateway.sandbox_private_key = Some(sandbox_key().clone());
    let service = Service::start(
        db.store.clone(),
        TokenKeys::from_secret(SECRET),
        &base,
        &gateway.into(),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.serve_with(
        listener,
        async move {
            let _ = stopped.await;
        },
        limits,
    ));
    (base, stop)
}

/// Bytes read until the server closes the connection, and how long that took.
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (received, started.elapsed()),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Err(_) => panic!("the server kept a slow connection open for {limit:?}"),
        }
    }
}

on_both_stores! {
    async fn slow_clients_are_cut_off_and_never_starve_the_others(db: &TestDb) {
        let timeout = Duration::from_secs(2);
        let (base, stop) = start(db, ServeLimits {
            header_read_timeout: timeout,
            body_read_timeout: timeout,
            connections_max: 256,
        })
        .await;
        let addr = base.trim_start_matches("http://").to_owned();

        // Three dozen clients sending their headers one byte every 700 ms.
        let mut slow = Vec::new();
        for _ in 0..36 {
            let addr = addr.clone();
            slow.push(tokio::spawn(async move {
                let stream = TcpStream::connect(&addr).await.unwrap();
                let (mut reader, mut writer) = stream.into_split();
                let drip = tokio::spawn(async move {
                    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n" {
                        if writer.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(700)).await;
                    }
                });
                let started = Instant::now();
                let mut buffer = [0_u8; 256];
                let closed = tokio::time::timeout(Duration::from_secs(8), async {
                    loop {
                        match reader.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                drip.abort();
                assert!(closed.is_ok(), "a slow client was never cut off");
                started.elapsed()
            }));
        }
        // And one whose headers are complete but whose body drips.
        let mut body_dripper = TcpStream::connect(&addr).await.unwrap();
        body_dripper
            .write_all(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{")
            .await
            .unwrap();

        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let response = reqwest::Client::new()
            .get(format!("{}/healthz", base))
            .send()
            .await
            .unwrap();
        let healthz = started.elapsed();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(healthz < Duration::from_millis(1500), "/healthz took {healthz:?} next to slow clients");

        for client in slow {
            let lasted = client.await.unwrap();
            assert!(lasted >= timeout - Duration::from_millis(500), "cut off after {lasted:?}, before the timeout");
            assert!(lasted < timeout + Duration::from_secs(3), "held for {lasted:?}");
        }
        let (answer, lasted) = read_until_closed(&mut body_dripper, Duration::from_secs(8)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request.body_timeout"), "{answer}");
        assert!(lasted < timeout + Duration::from_secs(3), "held for {lasted:?}");
        let _ = stop.send(());
    }

    async fn connections_beyond_the_limit_wait_for_a_free_one(db: &TestDb) {
        let timeout = Duration::from_secs(1);
        let (base, stop) = start(db, ServeLimits {
            header_read_timeout: timeout,
            body_read_timeout: timeout,
            connections_max: 2,
        })
        .await;
        let addr = base.trim_start_matches("http://").to_owned();
        let _idle = [TcpStream::connect(&addr).await.unwrap(), TcpStream::connect(&addr).await.unwrap()];
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let response = reqwest::Client::new()
            .get(format!("{}/healthz", base))
            .send()
            .await
            .unwrap();
        let waited = started.elapsed();
        assert_eq!(response.status(), StatusCode::OK);
        // Served only once an idle connection was cut at its header timeout.
        assert!(waited >= Duration::from_millis(600), "served after {waited:?}: no limit");
        assert!(waited < Duration::from_secs(4), "served after {waited:?}");
        let _ = stop.send(());
    }
}
