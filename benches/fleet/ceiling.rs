//! Throughput: short polls against the real appliance beside a plain actix-web hello-world
//! over the same TLS (the ceiling no poll can beat on this machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{options, percentile, simulate};

#[derive(Default)]
pub struct Load {
    pub per_sec: f64,
    pub p50: f64,
    pub p99: f64,
}

pub fn short_polls(server: &str, token: &str, fp: &str, count: usize, secs: u64) -> Load {
    let mut o = options(server, token, fp, count, 0);
    o.seconds = secs;
    o.per_connection = 50;
    let stats = simulate(o);
    let (_, p50, p99) = stats.take_latencies();
    Load {
        per_sec: stats.polls.load(Ordering::Relaxed) as f64 / secs as f64,
        p50,
        p99,
    }
}

/// The ceiling: the same number of clients hammering a hello-world over the same TLS.
pub fn hello_world(tls: rustls::ServerConfig, fp: &str, clients: usize, secs: u64) -> Load {
    let fp = fp.to_string();
    std::thread::spawn(move || {
        let sys = actix_web::rt::System::new();
        sys.block_on(async move {
            let srv = actix_web::HttpServer::new(|| {
                actix_web::App::new().route("/", actix_web::web::get().to(|| async { "hello" }))
            })
            .bind_rustls_0_23("127.0.0.1:0", tls)
            .unwrap();
            let addr = srv.addrs()[0];
            let server = srv.run();
            let handle = server.handle();
            actix_web::rt::spawn(server);
            // Off the actix thread, so the server keeps running while the load goes on.
            let load = tokio::task::spawn_blocking(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let done = Arc::new(AtomicBool::new(false));
                    let count = Arc::new(AtomicU64::new(0));
                    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
                    let mut tasks = Vec::new();
                    for i in 0..clients {
                        let c = if i % 50 == 0 || i == 0 {
                            Some(hourglass::agent::client::pinned_client(&fp).unwrap())
                        } else {
                            None
                        };
                        tasks.push(c);
                    }
                    let mut handles = Vec::new();
                    let mut current = None;
                    for c in tasks {
                        if c.is_some() {
                            current = c;
                        }
                        let (client, done, count, lat) = (
                            current.clone().unwrap(),
                            done.clone(),
                            count.clone(),
                            lat.clone(),
                        );
                        handles.push(tokio::spawn(async move {
                            while !done.load(Ordering::Relaxed) {
                                let t = Instant::now();
                                if client.get(format!("https://{addr}/")).send().await.is_ok() {
                                    count.fetch_add(1, Ordering::Relaxed);
                                    lat.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0);
                                }
                            }
                        }));
                    }
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    done.store(true, Ordering::Relaxed);
                    for h in handles {
                        h.abort();
                    }
                    let mut l = lat.lock().unwrap().clone();
                    l.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    Load {
                        per_sec: count.load(Ordering::Relaxed) as f64 / secs as f64,
                        p50: percentile(&l, 0.5),
                        p99: percentile(&l, 0.99),
                    }
                })
            })
            .await
            .unwrap();
            handle.stop(false).await;
            load
        })
    })
    .join()
    .unwrap()
}
