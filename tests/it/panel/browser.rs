//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`): one
//! chromedriver and one fresh profile per test, waits with deadlines, and screenshots saved
//! under the target folder for people to look at (and, when asked, the book's pictures).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::support::http::free_port;
use crate::support::wait::DEADLINE;

/// The desktop window; phones are tested at 360 px.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// The folder the book's pictures go to when set (see [`Browser::picture_for_the_book`]).
const BOOK_PICTURES: &str = "PODSTACK_SCREENSHOTS";

/// Chromium's flags: headless, no sandbox (containers), nothing that phones home.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,MediaRouter",
];

/// Where chromedriver is: `PODSTACK_CHROMEDRIVER`, else `chromedriver` on PATH; or why not.
fn chromedriver() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PODSTACK_CHROMEDRIVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "PODSTACK_CHROMEDRIVER names {}, which does not exist",
                path.display()
            ))
        };
    }
    on_path("chromedriver").ok_or_else(|| {
        "chromedriver is not installed (apt-get install chromium chromium-driver, or set PODSTACK_CHROMEDRIVER)".to_owned()
    })
}

/// Whether the browser tests can run; prints why not when they cannot.
pub fn available() -> bool {
    chromedriver()
        .map_err(|why| println!("skipped: {why}"))
        .is_ok()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(on_path)
}

/// Where screenshots go: `<target>/panel-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/debug/deps/it-<hash>
    let target = exe
        .ancestors()
        .nth(3)
        .map_or_else(std::env::temp_dir, Path::to_owned);
    target.join("panel-screenshots")
}

/// A browser session; the browser and its driver end when it is dropped.
pub struct Browser {
    client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
    /// The test's name, the prefix of its screenshots.
    test: String,
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium; see [`available`] first.
    pub async fn start(test: &str) -> Self {
        let driver_path = chromedriver().unwrap_or_else(|why| panic!("{why}"));
        let port = free_port();
        let mut command = Command::new(&driver_path);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so a failed test can end the driver and every browser process.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = Driver(
            command
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", driver_path.display())),
        );
        let profile = tempfile::tempdir().expect("a browser profile folder");
        let mut args: Vec<String> = FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let mut options = json!({ "args": args });
        if let Some(binary) = chromium() {
            options["binary"] = json!(binary);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = connect(port, capabilities, &driver_path).await;
        Self {
            client,
            _driver: driver,
            _profile: profile,
            test: test.to_owned(),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|err| panic!("cannot open {url}: {err}"));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it returns.
    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|err| panic!("script failed: {err}\n{script}"))
    }

    pub async fn js(&self, script: &str) -> Value {
        self.js_with(script, Vec::new()).await
    }

    /// Polls `script` until it returns something truthy; returns that. On timeout, saves a
    /// screenshot and fails with the page's text.
    pub async fn wait(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let value = self.js(script).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if start.elapsed() > DEADLINE {
                let shot = self.screenshot(&format!("timeout-{}", slug(what))).await;
                let text = self.js("return document.body.innerText").await;
                panic!(
                    "gave up after {} s waiting for {what}\nscreenshot: {}\npage text:\n{}",
                    DEADLINE.as_secs(),
                    shot.display(),
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the element `css` selects ("" when there is none).
    pub async fn text(&self, css: &str) -> String {
        self.js_with(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks as a person would (the element must be visible and enabled to react).
    pub async fn click(&self, css: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no {css}: {err}"));
        element
            .click()
            .await
            .unwrap_or_else(|err| panic!("cannot click {css}: {err}"));
    }

    /// Types into the element `css` selects, after clearing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no {css}: {err}"));
        element
            .clear()
            .await
            .unwrap_or_else(|err| panic!("cannot clear {css}: {err}"));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("cannot type into {css}: {err}"));
    }

    /// Closes every window but the page's and returns the addresses they showed.
    pub async fn close_other_windows(&self) -> Vec<String> {
        let fail = |err| -> ! { panic!("cannot switch windows: {err}") };
        let own = self.client.window().await.unwrap_or_else(|err| fail(err));
        let mut addresses = Vec::new();
        for window in self.client.windows().await.unwrap_or_else(|err| fail(err)) {
            if window == own {
                continue;
            }
            self.client
                .switch_to_window(window)
                .await
                .unwrap_or_else(|err| fail(err));
            let address = self
                .client
                .current_url()
                .await
                .unwrap_or_else(|err| fail(err));
            addresses.push(address.to_string());
            self.client
                .close_window()
                .await
                .unwrap_or_else(|err| fail(err));
        }
        self.client
            .switch_to_window(own)
            .await
            .unwrap_or_else(|err| fail(err));
        addresses
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.client
            .refresh()
            .await
            .unwrap_or_else(|err| panic!("cannot reload: {err}"));
    }

    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|err| panic!("cannot resize the window: {err}"));
    }

    /// Saves the whole page as `<target>/panel-screenshots/<test>-<state>.png` and prints where.
    pub async fn screenshot(&self, state: &str) -> PathBuf {
        let png = self.capture().await;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        let path = dir.join(format!("{}-{state}.png", self.test));
        std::fs::write(&path, png).expect("write the screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// A picture for the book (`ci/screenshots.sh`): when `PODSTACK_SCREENSHOTS` names a
    /// folder, the whole page is saved there as `<name>.png`; otherwise nothing is taken.
    pub async fn picture_for_the_book(&self, name: &str) {
        let Some(dir) = std::env::var_os(BOOK_PICTURES).filter(|dir| !dir.is_empty()) else {
            return;
        };
        let png = self.capture().await;
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the book's picture folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the book's picture");
        println!("picture for the book: {}", path.display());
    }

    /// The whole page as a PNG: the window grows to the page's height for the capture.
    async fn capture(&self) -> Vec<u8> {
        let (width, height) = self
            .client
            .get_window_rect()
            .await
            .map(|(_, _, w, h)| (w, h))
            .unwrap_or((u64::from(DESKTOP.0), u64::from(DESKTOP.1)));
        let full = self
            .js("return Math.ceil(document.documentElement.scrollHeight)")
            .await
            .as_u64()
            .unwrap_or(height)
            .clamp(height, 4000);
        let to_u32 = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let _ = self
            .client
            .set_window_size(to_u32(width), to_u32(full))
            .await;
        // Let the page lay itself out at the new size before the capture.
        self.js_async(
            "let over = false; const end = () => { if (!over) { over = true; done(); } }; \
             requestAnimationFrame(() => requestAnimationFrame(end)); setTimeout(end, 500);",
        )
        .await;
        let png = self.client.screenshot().await;
        let _ = self
            .client
            .set_window_size(to_u32(width), to_u32(height))
            .await;
        png.unwrap_or_else(|err| panic!("cannot take a screenshot: {err}"))
    }

    /// Runs an asynchronous script whose body calls `done()` when it is finished.
    async fn js_async(&self, body: &str) -> Value {
        let script = format!("const done = arguments[arguments.length - 1]; {body}");
        self.client
            .execute_async(&script, Vec::new())
            .await
            .unwrap_or_else(|err| panic!("script failed: {err}\n{body}"))
    }

    /// Ends the session (the browser quits), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// chromedriver, leading its own process group; the group is killed when dropped, so a failed
/// test leaves no browser behind.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(leader) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(leader),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.wait();
    }
}

/// Connects to the driver on `port` once it listens, and opens a session.
async fn connect(port: u16, capabilities: serde_json::Map<String, Value>, driver: &Path) -> Client {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < DEADLINE,
            "{} did not answer on port {port}",
            driver.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(capabilities);
    builder
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot open a Chromium session through {}: {err}\nhint: install chromium beside chromium-driver",
                driver.display()
            )
        })
}

fn slug(what: &str) -> String {
    what.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|part| !part.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("-")
}
