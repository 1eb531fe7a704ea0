//! The portal in a real headless Chromium, driven over WebDriver (Debian's chromium-driver).
//! Without a browser the test is skipped with a message, unless HOURGLASS_REQUIRE_BROWSER=1
//! (set by CI), which turns a missing browser into a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver and a headless Chromium session, or explains why it cannot.
pub async fn browser() -> Option<Browser> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        if std::env::var("HOURGLASS_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!(
                "HOURGLASS_REQUIRE_BROWSER=1 but {missing:?} not installed (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!(
            "SKIPPED browser test: {missing:?} not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let caps = serde_json::json!({
        "browserName": "chrome",
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    let mut last = None;
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => {
                return Some(Browser {
                    client,
                    driver,
                    _profile: profile,
                });
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start a session: {last:?}");
}

/// The CSP violation counter, read from /metrics.
async fn csp_violations(s: &TestServer) -> u64 {
    let body = s
        .client()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find(|l| l.starts_with("hourglass_csp_violations_total"))
        .and_then(|l| l.split_whitespace().last())
        .map(|v| v.parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

#[actix_web::test]
async fn the_portal_shell_loads_htmx_without_csp_violations() {
    let Some(b) = browser().await else { return };
    let mut s = TestServer::start().await;
    let before = csp_violations(&s).await;

    b.client.goto(&s.url("/")).await.unwrap();
    // htmx fetched the status fragment and swapped it in: scripts run and requests work.
    b.client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("[data-status=loaded]"))
        .await
        .unwrap();
    let version = b
        .client
        .execute("return window.htmx ? htmx.version : null", vec![])
        .await
        .unwrap();
    assert_eq!(version, serde_json::json!("2.0.11"));
    let text = b
        .client
        .find(Locator::Id("appliance-status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("accepting writes") && text.contains("verified"),
        "{text}"
    );

    // Prove the violation pipeline works, then that the page itself caused none: a blocked
    // image is exactly one report.
    b.client
        .execute("var i = document.createElement('img'); i.src = 'https://csp-probe.invalid/x.png'; document.body.appendChild(i); return true;", vec![])
        .await
        .unwrap();
    let mut seen = before;
    for _ in 0..100 {
        seen = csp_violations(&s).await;
        if seen > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, before + 1, "the probe is the only CSP violation");
    b.client.clone().close().await.unwrap();
    s.stop().await;
}
