//! A headless Chromium for browser tests: Debian's `chromedriver` started on a free loopback
//! port, one WebDriver session opened through `fantoccini`, screenshots saved under
//! `target/screenshots/<test>/<page>.png`, and the browser console log read back so a test can
//! assert it is clean.
//!
//! The console log comes from chromedriver's logging extension: the session asks for
//! `goog:loggingPrefs: {browser: ALL}` and the log is drained with chromedriver's log command
//! (not part of W3C WebDriver, so it is sent as a custom command).

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{
    Client, ClientBuilder,
    error::{CmdError, NewSessionError},
    wd::WebDriverCompatibleCommand,
};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::process;

/// Where Debian's `chromium` package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian's `chromium-driver` package installs chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The window size pages are opened and captured at.
pub const WINDOW: (u32, u32) = (1280, 900);
/// How long chromedriver may take to listen.
const DRIVER_START: Duration = Duration::from_secs(30);

/// Why the browser could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// The browser or its driver is not installed.
    #[error(
        "{path} is missing: install Debian's `{package}` package \
         (apt-get install -y --no-install-recommends chromium chromium-driver), or run `cargo xtask test`, \
         which installs it"
    )]
    Missing {
        /// The missing binary.
        path: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// No free port, or chromedriver could not be started.
    #[error("failed to start {CHROMEDRIVER}")]
    Spawn(#[source] std::io::Error),
    /// chromedriver started but did not listen.
    #[error("chromedriver did not listen on 127.0.0.1:{port} within {DRIVER_START:?}")]
    DriverTimeout {
        /// The port it was given.
        port: u16,
    },
    /// chromedriver refused the session (a browser that does not start, a version mismatch).
    #[error("failed to open a headless Chromium session through chromedriver")]
    Session(#[source] NewSessionError),
    /// A WebDriver command failed.
    #[error("WebDriver command `{what}` failed")]
    Command {
        /// The command.
        what: &'static str,
        /// The cause.
        #[source]
        source: CmdError,
    },
    /// A screenshot could not be written.
    #[error("failed to write screenshot {path}")]
    Screenshot {
        /// Where it was to go.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn command(what: &'static str) -> impl FnOnce(CmdError) -> BrowserError {
    move |source| BrowserError::Command { what, source }
}

/// One console message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleEntry {
    /// `SEVERE`, `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    /// The message, as Chromium formats it (source URL first).
    pub message: String,
}

impl ConsoleEntry {
    /// Whether this is an error (`SEVERE`).
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.level == "SEVERE"
    }

    /// The entries of `log` that are errors.
    #[must_use]
    pub fn errors(log: &[Self]) -> Vec<&Self> {
        log.iter().filter(|e| e.is_error()).collect()
    }
}

/// chromedriver's log command: `POST /session/{id}/se/log {"type": "browser"}`.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// A headless Chromium session and its chromedriver; the driver is killed on drop.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    driver: Child,
    screenshots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The session's Chromium is chromedriver's child; chromedriver going away takes it along
        // (and `setpriv --pdeathsig` covers a test process that dies first).
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The directory screenshots of `test` go to: `target/screenshots/<test>/`.
#[must_use]
pub fn screenshot_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("screenshots").join(test)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Checks that Chromium and chromedriver are installed.
///
/// # Errors
/// [`BrowserError::Missing`] naming the Debian package to install.
pub fn check_installed() -> Result<(), BrowserError> {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        if !Path::new(path).exists() {
            return Err(BrowserError::Missing { path, package });
        }
    }
    Ok(())
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session; screenshots go under
    /// `target/screenshots/<test>/`.
    ///
    /// # Errors
    /// [`BrowserError::Missing`] when Chromium or chromedriver is not installed; otherwise the
    /// step that failed.
    pub async fn start(test: &str) -> Result<Self, BrowserError> {
        check_installed()?;
        let port = free_port().map_err(BrowserError::Spawn)?;
        let mut cmd = process::guarded_command(Path::new(CHROMEDRIVER));
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = process::spawn(cmd).map_err(BrowserError::Spawn)?;
        // From here on `Browser`'s Drop is not there yet: kill the driver on every early return.
        let mut guard = DriverGuard(Some(driver));
        let deadline = Instant::now() + DRIVER_START;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(BrowserError::DriverTimeout { port });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--no-first-run",
                    "--disable-extensions",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                ],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(BrowserError::Session)?;
        let driver = guard.0.take().ok_or(BrowserError::DriverTimeout { port })?;
        Ok(Self {
            client,
            driver,
            screenshots: screenshot_dir(test),
        })
    }

    /// The WebDriver client, for finding elements and running scripts.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for it to load.
    ///
    /// # Errors
    /// The navigation failed.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.client.goto(url).await.map_err(command("goto"))
    }

    /// Runs `script` in the page and returns its result.
    ///
    /// # Errors
    /// The script threw or the command failed.
    pub async fn eval(&self, script: &str) -> Result<Value, BrowserError> {
        self.client
            .execute(script, vec![])
            .await
            .map_err(command("execute"))
    }

    /// Runs `script` with `args` (`arguments[0]`, …) in the page and returns its result.
    ///
    /// # Errors
    /// The script threw or the command failed.
    pub async fn call(&self, script: &str, args: Vec<Value>) -> Result<Value, BrowserError> {
        self.client
            .execute(script, args)
            .await
            .map_err(command("execute"))
    }

    /// The trimmed `innerText` of the first element matching `css`; `None` when none does.
    ///
    /// # Errors
    /// The command failed.
    pub async fn text(&self, css: &str) -> Result<Option<String>, BrowserError> {
        let v = self
            .call(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : null;",
                vec![Value::from(css)],
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// How many elements match `css`.
    ///
    /// # Errors
    /// The command failed.
    pub async fn count(&self, css: &str) -> Result<usize, BrowserError> {
        let v = self
            .call(
                "return document.querySelectorAll(arguments[0]).length;",
                vec![Value::from(css)],
            )
            .await?;
        Ok(v.as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0))
    }

    /// Attribute `name` of the first element matching `css` (`None` when it has none).
    ///
    /// # Errors
    /// No element matches, or the command failed.
    pub async fn attr(&self, css: &str, name: &str) -> Result<Option<String>, BrowserError> {
        let v = self
            .call(
                "const e = document.querySelector(arguments[0]); \
                 if (!e) { throw new Error('no element ' + arguments[0]); } \
                 return e.getAttribute(arguments[1]);",
                vec![Value::from(css), Value::from(name)],
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// `script`'s result as a string (empty when it is not one).
    ///
    /// # Errors
    /// The script threw or the command failed.
    pub async fn eval_string(&self, script: &str) -> Result<String, BrowserError> {
        Ok(self.eval(script).await?.as_str().unwrap_or_default().to_owned())
    }

    /// Captures the whole page (the window is stretched to the page's height first) as
    /// `target/screenshots/<test>/<page>.png`, prints the path and returns it.
    ///
    /// # Errors
    /// The capture failed or the file could not be written.
    pub async fn screenshot(&self, page: &str) -> Result<PathBuf, BrowserError> {
        let height = self
            .eval("return Math.ceil(document.documentElement.scrollHeight);")
            .await?
            .as_u64()
            .map_or(WINDOW.1, |h| u32::try_from(h).unwrap_or(WINDOW.1))
            .clamp(WINDOW.1, 8000);
        self.client
            .set_window_size(WINDOW.0, height)
            .await
            .map_err(command("set window size"))?;
        let png = self.client.screenshot().await.map_err(command("screenshot"));
        // Back to the normal size whatever happened, so later pages are laid out the same.
        let _ = self.client.set_window_size(WINDOW.0, WINDOW.1).await;
        let png = png?;
        let path = self.screenshots.join(format!("{page}.png"));
        let write = |path: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.screenshots)?;
            std::fs::write(path, &png)
        };
        write(&path).map_err(|source| BrowserError::Screenshot {
            path: path.clone(),
            source,
        })?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }

    /// The console messages since the last call (chromedriver drains the log on each read).
    ///
    /// # Errors
    /// chromedriver refused the log command.
    pub async fn console_log(&self) -> Result<Vec<ConsoleEntry>, BrowserError> {
        let raw = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .map_err(command("read the browser log"))?;
        Ok(raw
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| ConsoleEntry {
                level: e["level"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Ends the session (Chromium exits) before the driver is killed.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Kills a driver that never made it into a [`Browser`].
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
