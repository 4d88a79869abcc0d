//! A small W3C WebDriver client over reqwest, driving headless Chromium through
//! chromedriver: enough to open a page, find and click elements, read text and attributes,
//! run a script and take screenshots. The browser tests are never skipped: without
//! Chromium they fail and say how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// The key W3C WebDriver names element references by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long chromedriver gets to start answering.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where screenshots of the browser tests are kept, under the cargo target directory.
pub fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("checkout-screenshots")
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn missing(what: &str) -> ! {
    panic!(
        "the browser tests need {what}: install Debian's chromium and chromium-driver \
         (apt-get install -y chromium chromium-driver; scripts/test.sh does so when run as root)"
    )
}

/// A headless Chromium at a given window size, driven by its own chromedriver.
pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    client: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium `width` x `height`
    /// CSS pixels, asking for pages in `language`.
    pub async fn start(width: u32, height: u32, language: &str) -> Self {
        let chromium =
            find_program(&["chromium", "chromium-browser"]).unwrap_or_else(|| missing("chromium"));
        let chromedriver =
            find_program(&["chromedriver"]).unwrap_or_else(|| missing("chromedriver"));
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start chromedriver: {error}"));
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + DRIVER_START_TIMEOUT;
        loop {
            let ready = client.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready {
                let status: Value = response.json().await.unwrap_or(Value::Null);
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start answering on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--no-first-run", "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"), format!("--lang={language}"),
                ],
                "prefs": {"intl.accept_languages": language},
                // A desktop window is at least 500 px wide; a phone's viewport is emulated.
                "mobileEmulation": {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}},
            },
        }}});
        let response = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {body}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            client,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {path}: {status} {body}");
        body["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The element `css` selects, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let response = self
            .client
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["value"][ELEMENT_KEY].as_str().map(ToOwned::to_owned)
    }

    /// The element `css` selects; the test fails when there is none.
    pub async fn element(&self, css: &str) -> String {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The element's rendered text.
    pub async fn text(&self, css: &str) -> String {
        let element = self.element(css).await;
        self.command(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The element's text whether or not it is rendered (e.g. a screen-reader-only status).
    pub async fn text_content(&self, css: &str) -> String {
        self.execute(
            "const element = document.querySelector(arguments[0]); return element ? element.textContent : null;",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or_else(|| panic!("no element matches {css}"))
        .to_owned()
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.element(css).await;
        self.command(
            reqwest::Method::GET,
            &format!("/element/{element}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .map(ToOwned::to_owned)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Sends the following commands into the frame `css` selects.
    pub async fn enter_frame(&self, css: &str) {
        let element = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            "/frame",
            Some(json!({"id": {ELEMENT_KEY: element}})),
        )
        .await;
    }

    /// Back to the top-level page.
    pub async fn leave_frames(&self) {
        self.command(reqwest::Method::POST, "/frame", Some(json!({"id": null})))
            .await;
    }

    /// Waits up to `timeout` for the checkout page to reach `state` (the panel it shows).
    pub async fn wait_for_state(&self, state: &str, timeout: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        loop {
            let now = self
                .execute(
                    "const root = document.getElementById('checkout'); return root ? root.dataset.state || null : null;",
                    json!([]),
                )
                .await;
            if now == state {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "the page did not reach `{state}` within {timeout:?} (it shows {now})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the viewport as `name.png` among the test artifacts.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn quit(mut self) {
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill().await;
    }
}
