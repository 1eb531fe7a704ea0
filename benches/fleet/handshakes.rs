//! What a reconnect costs the appliance: TLS handshakes per second, in full (a new client,
//! as after an appliance restart) and resumed (a client that kept its session ticket).

use std::time::Instant;

use hourglass::agent::client::pinned_tls_config;

/// A client that opens a new connection for every request.
fn fresh_connections(tls: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[derive(Default)]
pub struct Handshakes {
    pub full_per_sec: f64,
    pub resumed_per_sec: f64,
}

/// `tasks` callers, each opening `each` connections one after another (one request on each,
/// for a path that does not exist: /healthz would time a disk write); `resume` keeps one client per caller, so its session tickets are offered again.
async fn rate(server: &str, fp: &str, tasks: usize, each: usize, resume: bool) -> f64 {
    let t = Instant::now();
    let mut all = Vec::new();
    for _ in 0..tasks {
        let (server, fp) = (server.to_string(), fp.to_string());
        all.push(tokio::spawn(async move {
            let kept = fresh_connections(pinned_tls_config(&fp).unwrap());
            for _ in 0..each {
                let c = if resume {
                    kept.clone()
                } else {
                    fresh_connections(pinned_tls_config(&fp).unwrap())
                };
                let r = c
                    .get(format!("{server}/agent/v1/none"))
                    .send()
                    .await
                    .unwrap();
                let _ = r.bytes().await.unwrap();
            }
        }));
    }
    for h in all {
        h.await.unwrap();
    }
    (tasks * each) as f64 / t.elapsed().as_secs_f64()
}

pub fn measure(sys: &tokio::runtime::Runtime, server: &str, fp: &str) -> Handshakes {
    sys.block_on(async {
        // Warm-up: the first connections pay for lazy set-up on both sides.
        rate(server, fp, 8, 10, false).await;
        Handshakes {
            full_per_sec: rate(server, fp, 32, 100, false).await,
            resumed_per_sec: rate(server, fp, 32, 100, true).await,
        }
    })
}
