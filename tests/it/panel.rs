//! The control panel in a real browser (headless Chromium over WebDriver) against the real
//! supervisor, the stand-in ComfyUI and the fake nvidia-smi, through a proxy that can answer
//! like RunPod's. Each test saves screenshots of the states it reaches under
//! `target/panel-screenshots/`. Skipped, with the reason printed, when chromedriver is absent.

mod artists;
mod book;
mod browser;
mod proxy;
mod slots;

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::http::http;
use crate::support::pod::{pod, Pod, PROMPT};
use browser::Browser;
use proxy::{Fault, Proxy, CLOUDFLARE_524};

/// Runs an async test on a runtime of its own: the proxy and the WebDriver client live on its
/// workers while the test's thread may block on the pod's helpers.
fn run(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(test);
}

/// The panel of `pod` in a fresh browser, through a proxy.
async fn open(pod: &Pod, test: &str) -> (Browser, Proxy) {
    let browser = Browser::start(test).await;
    let proxy = Proxy::start(pod.panel).await;
    browser.goto(&proxy.url()).await;
    (browser, proxy)
}

const STATE: &str = "return document.querySelector('#state').dataset.state";

/// Waits until the ComfyUI card shows `state`; returns its text.
async fn wait_state(browser: &Browser, state: &str) -> String {
    browser
        .wait(
            &format!("the panel to show {state}"),
            &format!("return document.querySelector('#state').dataset.state === '{state}' && document.querySelector('#state-text').innerText"),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The failed requests the page shows ("" when none).
async fn errors(browser: &Browser) -> String {
    browser
        .js("const e = document.querySelector('#errors'); return e.hidden ? '' : e.innerText")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn launch_shows_starting_then_ready_without_reload_then_stopped() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .gpu("rtx4090", "NVIDIA GeForce RTX 4090")
        .env("STANDIN_STARTUP_SECONDS", "4")
        .start();
    run(async {
        let (browser, _proxy) = open(&pod, "launch").await;
        assert_eq!(wait_state(&browser, "stopped").await, "Stopped");
        browser
            .wait("the live stream", "return page.mode === 'live'")
            .await;
        let gpu = browser.text("#gpu-list").await;
        assert!(
            gpu.contains("NVIDIA GeForce RTX 4090")
                && gpu.contains("24.0 GiB")
                && gpu.contains("compute capability 8.9"),
            "{gpu}"
        );
        assert_eq!(browser.js("return document.querySelector('#sync').hidden && document.querySelector('#models').hidden").await, true, "sync and models stay hidden for a stack without [sync] or [[model]]");
        // Opt-in, off by default, kept in localStorage.
        assert_eq!(
            browser.js("return [document.querySelector('#auto-open').checked, document.querySelector('#chime').checked, localStorage.length]").await,
            json!([false, false, 0])
        );
        browser.click("#auto-open").await;
        browser.click("#chime").await;
        // Counts the chime's tones (the audio context exists once the box was clicked).
        browser
            .js("window.tones = 0; const a = page.audio, make = a.createOscillator.bind(a); a.createOscillator = () => { window.tones += 1; return make(); };")
            .await;
        // Marks this page load and notes when "ready" is first drawn.
        browser
            .js("window.sameLoad = true; new MutationObserver(() => { if (!window.readyAt && document.querySelector('#state').dataset.state === 'ready') window.readyAt = Date.now(); }).observe(document.querySelector('#state'), {attributes: true});")
            .await;

        browser.click("#launch").await;
        let starting = browser
            .wait(
                "Starting with a stage and an elapsed time",
                "const t = document.querySelector('#state-text').innerText, e = document.querySelector('#elapsed').innerText; return /^Starting · \\S/.test(t) && /^[1-9]\\d*s$/.test(e) && t + ' · ' + e",
            )
            .await;
        let starting = starting.as_str().unwrap_or_default().to_owned();
        assert!(starting.starts_with("Starting · "), "{starting}");
        assert_eq!(
            browser
                .js("return document.querySelector('#progress').hidden")
                .await,
            false
        );
        assert_eq!(
            browser
                .js("return document.querySelector('#launch').getAttribute('aria-disabled')")
                .await,
            "true",
            "Launch does nothing while starting"
        );
        browser.screenshot("starting").await;

        assert_eq!(wait_state(&browser, "ready").await, "Ready");
        let lag = browser
            .js("return window.readyAt - page.status.services.comfyui.since")
            .await
            .as_f64()
            .expect("the time Ready was drawn");
        println!("Ready was drawn {lag} ms after the supervisor knew it");
        assert!(lag < 1000.0, "Ready took {lag} ms to show");
        assert_eq!(
            browser.js("return window.sameLoad === true").await,
            true,
            "no reload"
        );
        let href = browser
            .js("const a = document.querySelector('#open'); return !a.hidden && a.href")
            .await;
        let href = href.as_str().expect("a visible Open ComfyUI link");
        assert_eq!(href, format!("http://127.0.0.1:{}/", pod.comfyui), "{href}");
        let attention = browser.text("#att-confirmed").await;
        assert_eq!(attention, "pytorch");
        assert_eq!(
            browser.js("return window.tones").await,
            2,
            "a two-tone chime"
        );
        // Auto-open opened ComfyUI in a new tab.
        let opened = browser
            .wait(
                "the ComfyUI tab",
                "return window.tones === 2 && document.querySelector('#note').hidden",
            )
            .await;
        assert_eq!(opened, true);
        assert_eq!(
            browser.close_other_windows().await,
            [format!("http://127.0.0.1:{}/", pod.comfyui)]
        );

        // A prompt's image shows among the thumbnails, served by the supervisor.
        let prompt =
            http(pod.comfyui, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
        assert_eq!(prompt.status, 200, "{}", prompt.body);
        browser
            .wait(
                "the new output's thumbnail",
                "const i = document.querySelectorAll('#thumbs img'); return i.length === 1 && i[0].complete && i[0].naturalWidth === 8",
            )
            .await;
        let log = browser.text("#log").await;
        assert!(log.contains("To see the GUI go to"), "{log}");
        browser.screenshot("ready").await;

        // Logs: filter, pause (new lines counted, not shown), resume, copy; without times.
        browser.click("#log-times").await;
        browser.type_into("#log-filter", "got prompt").await;
        browser
            .wait("the filtered log", "const t = document.querySelector('#log').innerText; return t === 'got prompt' && t")
            .await;
        browser.click("#log-pause").await;
        let shown = browser.text("#log").await;
        http(pod.comfyui, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
        browser
            .wait(
                "new lines counted while paused",
                "return document.querySelector('#log-pause').innerText === 'Resume (1 new)'",
            )
            .await;
        assert_eq!(browser.text("#log").await, shown, "paused");
        browser.click("#log-pause").await;
        browser
            .wait(
                "the new lines",
                "return document.querySelector('#log').innerText === 'got prompt\\ngot prompt'",
            )
            .await;
        browser.click("#log-copy").await;
        let copied = browser
            .wait(
                "the copy",
                "return document.querySelector('#log-note').innerText",
            )
            .await;
        assert_eq!(copied, "Copied 2 line(s).");
        browser.type_into("#log-filter", "").await;

        browser.resize((360, 780)).await;
        let overflow = browser
            .wait(
                "the 360 px layout",
                "return window.innerWidth <= 360 && document.documentElement.scrollWidth",
            )
            .await;
        assert!(
            overflow.as_u64() <= Some(360),
            "the page is {overflow} px wide at 360 px"
        );
        browser.screenshot("ready-360px").await;
        browser.resize(browser::DESKTOP).await;

        browser.click("#stop").await;
        assert_eq!(wait_state(&browser, "stopped").await, "Stopped");
        assert_eq!(
            browser
                .js("return document.querySelector('#open').hidden")
                .await,
            true
        );
        assert_eq!(
            browser
                .js("return document.querySelector('#launch').getAttribute('aria-disabled')")
                .await,
            "false"
        );
        assert_eq!(errors(&browser).await, "");
        browser.screenshot("stopped").await;
        browser.close().await;
    });
}

#[test]
fn a_crash_loop_shows_failed_with_the_reason_the_log_lines_and_what_to_try() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .env("STANDIN_CRASH_AFTER", "0.2")
        .set("/runtime/restart/crash_loop_failures", json!(3))
        .start();
    run(async {
        let (browser, _proxy) = open(&pod, "crash-loop").await;
        wait_state(&browser, "stopped").await;
        browser.click("#chime").await;
        browser.reload().await;
        wait_state(&browser, "stopped").await;
        assert_eq!(
            browser.js("return [document.querySelector('#chime').checked, localStorage.getItem('podstack.chime')]").await,
            json!([true, "1"]),
            "the setting outlives a reload"
        );
        browser.click("#launch").await;
        let failed = wait_state(&browser, "failed").await;
        assert!(
            failed.starts_with(
                "Failed: ComfyUI crashed 3 times in 2m; last: ComfyUI exited with code 1"
            ),
            "{failed}"
        );
        let lines = browser.text("#failure-lines").await;
        assert!(lines.contains("simulated crash"), "{lines}");
        let hint = browser.text("#failure-hint").await;
        assert!(!hint.is_empty());
        assert_eq!(
            browser
                .js("return document.querySelector('#launch').getAttribute('aria-disabled')")
                .await,
            "false",
            "Launch tries again"
        );
        // The traceback's error line is marked in the log.
        browser.click("#log-wrap").await;
        let marked = browser
            .wait(
                "the error line marked",
                "return [...document.querySelectorAll('#log .log-error')].map(e => e.innerText).join('\\n')",
            )
            .await;
        assert!(
            marked
                .as_str()
                .is_some_and(|t| t.contains("RuntimeError: simulated crash")),
            "{marked}"
        );
        browser.screenshot("failed").await;
        // Crash lines wrap inside the card at a phone's width and can be copied whole.
        for width in [1440, 390] {
            browser.resize((width, 900)).await;
            let fits = browser
                .wait(
                    &format!("the crash lines at {width} px"),
                    &format!(
                        "const p = document.querySelector('#failure-lines'), c = document.querySelector('#comfyui').getBoundingClientRect(), r = p.getBoundingClientRect(); \
                         return window.innerWidth <= {width} && [document.documentElement.scrollWidth <= window.innerWidth, p.scrollWidth <= p.clientWidth, r.right <= c.right, c.right <= window.innerWidth]"
                    ),
                )
                .await;
            assert_eq!(fits, json!([true, true, true, true]), "at {width} px");
            browser.screenshot(&format!("failed-{width}px")).await;
        }
        browser.click("#failure button.copy").await;
        browser
            .wait(
                "the copied crash lines",
                "return document.querySelector('#failure button.copy').innerText === 'Copied'",
            )
            .await;
        browser.resize(browser::DESKTOP).await;
        browser.close().await;
    });
}

#[test]
fn failed_requests_show_their_status_and_message_and_the_button_recovers() {
    if !browser::available() {
        return;
    }
    let mut pod = pod().start();
    run(async {
        let browser = Browser::start("errors").await;
        let proxy = Proxy::start(pod.panel).await;
        // No live stream through this proxy: the page polls.
        proxy.inject(Fault::new(
            "GET",
            "/api/status/stream",
            404,
            "text/plain",
            "not here",
        ));
        browser.goto(&proxy.url()).await;
        wait_state(&browser, "stopped").await;
        browser
            .wait(
                "polling",
                "return document.querySelector('#connection').dataset.mode === 'polling'",
            )
            .await;

        proxy.inject(
            Fault::new(
                "POST",
                "/api/start",
                500,
                "application/json",
                r#"{"error":"starting ComfyUI failed inside the supervisor","hint":"the supervisor log (GET /api/logs?service=supervisor) has the details"}"#,
            )
            .times(1),
        );
        browser.click("#launch").await;
        let shown = browser
            .wait("the 500", "const t = document.querySelector('#errors').innerText; return t.includes('HTTP 500') && t")
            .await;
        let shown = shown.as_str().unwrap_or_default();
        assert!(
            shown.contains("starting ComfyUI failed inside the supervisor")
                && shown.contains("Hint: the supervisor log"),
            "{shown}"
        );
        browser
            .wait("Launch to recover", "const b = document.querySelector('#launch'); return b.getAttribute('aria-disabled') === 'false' && b.innerText === 'Launch'")
            .await;
        browser.screenshot("error-500").await;

        proxy.inject(
            Fault::new(
                "POST",
                "/api/start",
                524,
                "text/html; charset=UTF-8",
                CLOUDFLARE_524,
            )
            .after(Duration::from_millis(1500))
            .times(1),
        );
        browser.click("#launch").await;
        browser
            .wait("the busy Launch button", "const b = document.querySelector('#launch'); return b.getAttribute('aria-disabled') === 'true' && b.getAttribute('aria-busy') === 'true' && b.innerText === 'Launching…'")
            .await;
        let shown = browser
            .wait("the 524", "const t = document.querySelector('#errors').innerText; return t.includes('HTTP 524') && t")
            .await;
        let shown = shown.as_str().unwrap_or_default();
        assert!(
            shown.contains("gave up waiting") && shown.contains("524: A timeout occurred"),
            "{shown}"
        );
        assert!(!shown.contains("JSON"), "{shown}");
        browser
            .wait("Launch to recover", "const b = document.querySelector('#launch'); return b.getAttribute('aria-disabled') === 'false' && b.innerText === 'Launch'")
            .await;
        assert_eq!(
            browser.js(STATE).await,
            "stopped",
            "the state is the server's"
        );
        browser.screenshot("error-524").await;

        // Without faults, the same button works, and ready arrives by polling.
        browser.click("#launch").await;
        wait_state(&browser, "ready").await;
        let requests = proxy.requests();
        let starts = requests.iter().filter(|r| *r == "POST /api/start").count();
        assert_eq!(starts, 3, "{requests:?}");

        // A pod that stops answering is not guessed to be stopped (L18): the last state stays,
        // marked as old, and the failure is shown.
        pod.signal_and_wait("TERM");
        let shown = browser
            .wait("no answer", "const b = document.querySelector('#connection-banner'); return document.querySelector('#connection').dataset.mode === 'offline' && !b.hidden && b.innerText")
            .await;
        assert!(
            shown.as_str().is_some_and(
                |t| t.contains("The pod does not answer.") && t.contains(": no answer (")
            ),
            "{shown}"
        );
        assert!(
            browser
                .text("#connection")
                .await
                .starts_with("no answer · last update"),
            "the header says it"
        );
        assert_eq!(
            browser.js(STATE).await,
            "ready",
            "the last state the pod reported"
        );
        assert_eq!(
            browser
                .js("return document.querySelector('#comfyui').classList.contains('stale-data')")
                .await,
            true
        );
        browser.screenshot("no-answer").await;
        browser.close().await;
    });
}

#[test]
fn a_bad_user_name_shows_the_rule_and_sends_nothing() {
    if !browser::available() {
        return;
    }
    let pod = pod().set("/runtime/allow_new_users", json!(true)).start();
    run(async {
        let (browser, proxy) = open(&pod, "user-name").await;
        wait_state(&browser, "stopped").await;
        browser.click("#add-user summary").await;
        let rule = browser.text("#new-user-rule").await;
        assert!(rule.contains("lower-case letters, digits"), "{rule}");
        browser.type_into("#new-user", "Bad Name!").await;
        let inline = browser
            .wait("the inline rule", "const e = document.querySelector('#new-user-error'); return !e.hidden && e.innerText")
            .await;
        assert!(
            inline
                .as_str()
                .is_some_and(|text| text.contains("does not fit the rule")),
            "{inline}"
        );
        browser.click("#add-user-button").await;
        assert_eq!(
            browser
                .js("return document.querySelector('#new-user').getAttribute('aria-invalid')")
                .await,
            "true"
        );
        browser.screenshot("bad-name").await;
        let sent = proxy.requests();
        assert!(
            !sent.iter().any(|r| r.starts_with("POST /api/users")),
            "{sent:?}"
        );

        browser.type_into("#new-user", "carol").await;
        browser.click("#add-user-button").await;
        browser
            .wait("carol in the list", "return [...document.querySelectorAll('#user option')].some(o => o.value === 'carol') && document.querySelector('#user').value === 'carol'")
            .await;
        assert!(proxy.requests().iter().any(|r| r == "POST /api/users"));
        assert_eq!(errors(&browser).await, "");
        browser.close().await;
    });
}

#[test]
fn with_a_token_the_panel_asks_to_log_in_keeps_it_out_of_urls_and_links_through_runpod() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .env("PODSTACK_PANEL_TOKEN", "s3cret-token")
        .env("RUNPOD_POD_ID", "abc123")
        .start();
    run(async {
        let (browser, proxy) = open(&pod, "login").await;
        browser
            .wait("the login form", "return !document.querySelector('#login').hidden && document.querySelector('#panel').hidden")
            .await;
        browser.screenshot("login").await;
        browser.type_into("#token", "guess").await;
        browser.click("#login-button").await;
        let refused = browser
            .wait(
                "the refusal",
                "const e = document.querySelector('#login-error'); return !e.hidden && e.innerText",
            )
            .await;
        assert!(
            refused
                .as_str()
                .is_some_and(|text| text.contains("that is not the panel token")),
            "{refused}"
        );
        // Announced to a screen reader as it appears; the title says what the page wants.
        assert_eq!(
            browser
                .js("return [document.querySelector('#login-error').getAttribute('role'), document.title]")
                .await,
            json!(["alert", "Log in · podstack"])
        );
        browser.type_into("#token", "s3cret-token").await;
        browser.click("#login-button").await;
        wait_state(&browser, "stopped").await;
        browser
            .wait("the live stream", "return page.mode === 'live'")
            .await;
        assert_eq!(
            browser
                .js("return document.querySelector('#login').hidden")
                .await,
            true
        );
        let href = browser.js("return location.href").await;
        assert!(!href.to_string().contains("s3cret"), "{href}");
        let requests = proxy.requests();
        assert!(
            !requests.iter().any(|r| r.contains("s3cret")),
            "{requests:?}"
        );
        browser.click("#launch").await;
        wait_state(&browser, "ready").await;
        // Behind RunPod's proxy, ComfyUI is reached through it.
        let href = browser
            .js("return document.querySelector('#open').href")
            .await;
        assert_eq!(
            href,
            format!("https://abc123-{}.proxy.runpod.net/", pod.comfyui)
        );
        // Log out: the form comes back, and stays after a reload (the cookie is gone).
        browser.click("#logout").await;
        browser
            .wait("the login form after logging out", "return !document.querySelector('#login').hidden && document.querySelector('#panel').hidden && document.activeElement === document.querySelector('#token')")
            .await;
        browser.reload().await;
        browser
            .wait("the login form after a reload", "return !document.querySelector('#login').hidden && document.querySelector('#panel').hidden && document.querySelector('#logout').hidden")
            .await;
        assert!(proxy.requests().iter().any(|r| r == "POST /api/logout"));
        browser.close().await;
    });
}

#[test]
fn a_stale_or_drifted_pod_shows_a_banner_with_what_runs_and_what_was_expected() {
    if !browser::available() {
        return;
    }
    let running = format!("sha256:{}", "a".repeat(64));
    let expected = format!("sha256:{}", "b".repeat(64));
    let stale = pod()
        .env("PODSTACK_DIGEST", &running)
        .env("PODSTACK_EXPECTED_DIGEST", &expected)
        .start();
    let drifted = pod().drifted("start.sh").start();
    run(async {
        let (browser, _proxy) = open(&stale, "verification").await;
        let banner = browser
            .wait(
                "the stale banner",
                "const b = document.querySelector('#banner'); return !b.hidden && b.innerText",
            )
            .await;
        let banner = banner.as_str().unwrap_or_default();
        assert!(banner.contains("This pod runs an old build"), "{banner}");
        assert!(
            banner.contains(&format!("running smoke 0.1.0, digest {running}")),
            "{banner}"
        );
        assert!(
            banner.contains(&format!(
                "expected digest {expected} (from PODSTACK_EXPECTED_DIGEST)"
            )),
            "{banner}"
        );
        assert!(banner.contains("Redeploy the pod"), "{banner}");
        browser.screenshot("stale").await;

        let proxy = Proxy::start(drifted.panel).await;
        browser.goto(&proxy.url()).await;
        let banner = browser
            .wait("the drift banner", "const b = document.querySelector('#banner'); return !b.hidden && b.innerText.includes('differ') && b.innerText")
            .await;
        let banner = banner.as_str().unwrap_or_default();
        assert!(
            banner.contains("This pod's files differ from its build"),
            "{banner}"
        );
        assert!(
            banner.contains("changed ") && banner.contains("start.sh"),
            "{banner}"
        );
        assert!(
            banner.contains("Restart the pod from its image"),
            "{banner}"
        );
        browser.screenshot("drifted").await;
        browser.close().await;
    });
}

#[test]
fn sync_and_models_show_once_their_routes_answer() {
    if !browser::available() {
        return;
    }
    let pod = pod().start();
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("milliseconds fit");
    let sync: Value = json!({"folders": [
        {"user": "alice", "folder": "output", "mode": "mirror", "last_success_ms": now_ms - 42_000,
         "pending": 3, "lag_s": 12, "speed_bps": 2_500_000},
        {"user": "bob", "folder": "output", "mode": "mirror", "last_success_ms": null, "pending": 0,
         "error": "the remote folder has files but output/bob is empty: mirror refused",
         "hint": "check that the volume is mounted"}
    ]});
    let models: Value = json!({"models": [
        {"name": "checkpoints/sdxl.safetensors", "state": "present", "size": 6_938_078_334_u64},
        {"name": "loras/detail.safetensors", "state": "downloading", "size": 200_000_000, "done": 50_000_000, "speed_bps": 40_000_000},
        {"name": "vae/sdxl_vae.safetensors", "state": "missing", "size": 334_641_164}
    ]});
    run(async {
        let browser = Browser::start("sync-models").await;
        let proxy = Proxy::start(pod.panel).await;
        proxy.inject(Fault::new(
            "GET",
            "/api/sync",
            200,
            "application/json",
            &sync.to_string(),
        ));
        proxy.inject(Fault::new(
            "GET",
            "/api/models",
            200,
            "application/json",
            &models.to_string(),
        ));
        proxy.inject(Fault::new(
            "POST",
            "/api/models/fetch",
            202,
            "application/json",
            "{}",
        ));
        browser.goto(&proxy.url()).await;
        let table = browser
            .wait(
                "the sync section",
                "const s = document.querySelector('#sync'); return !s.hidden && s.innerText",
            )
            .await;
        let table = table.as_str().unwrap_or_default();
        assert!(table.contains("output (mirror)"), "{table}");
        let last = browser
            .js("return [...document.querySelectorAll('#sync-rows tr td:nth-child(4)')].map(td => td.innerText)")
            .await;
        let last: Vec<&str> = last
            .as_array()
            .map(|cells| cells.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(last.len(), 2, "{table}");
        assert!(
            last[0].ends_with("s ago") && last[0].starts_with(|c: char| c.is_ascii_digit()),
            "alice's last upload, 42 s before the page opened: {last:?}"
        );
        assert_eq!(last[1], "never");
        assert!(table.contains("2.5 MB/s"), "{table}");
        assert!(
            table.contains("bob/output: the remote folder has files")
                && table.contains("Hint: check that the volume is mounted"),
            "{table}"
        );
        let models = browser
            .wait(
                "the models section",
                "const s = document.querySelector('#models'); return !s.hidden && s.innerText",
            )
            .await;
        let models = models.as_str().unwrap_or_default();
        assert!(
            models.contains("downloading 25%") && models.contains("missing"),
            "{models}"
        );
        assert_eq!(browser.text("#fetch-models").await, "Fetch 1 missing");
        browser.screenshot("sync-models").await;
        browser.click("#fetch-models").await;
        let start = std::time::Instant::now();
        while !proxy
            .requests()
            .iter()
            .any(|r| r == "POST /api/models/fetch")
        {
            assert!(
                start.elapsed() < crate::support::wait::DEADLINE,
                "{:?}",
                proxy.requests()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(errors(&browser).await, "");
        browser.close().await;
    });
}
