//! What artists see (issue 14, points 13-17), in the real browser: one connection banner for a
//! pod that does not answer, long reasons and crash lines that wrap with a copy button, a start
//! that takes longer than expected, the details of sync, models, GPU hours and logs, and the
//! machine's last hour. Figures the supervisor of this branch does not serve yet (sync rows,
//! models, the machine's history) are answered by the proxy in the shapes the API reference
//! gives (docs/src/reference/api.md).

use serde_json::{json, Value};

use super::browser::{self, Browser};
use super::proxy::{Fault, Proxy};
use super::{errors, open, run, wait_state};
use crate::support::http::http;
use crate::support::pod::{pod, PROMPT};

/// Milliseconds since the Unix epoch, now.
pub(super) fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("milliseconds fit")
}

/// `GET /api/sync` as a pod with `[sync]` answers it (the smoke stack has no remote): alice's
/// newest images on their way, bob's folder up to date, carol's synced by the pod she works on.
pub(super) fn three_artists_syncing() -> Fault {
    let now = now_ms();
    let sync = json!({"service": {"state": "ready"}, "folders": [
        {"user": "alice", "folder": "output", "mode": "mirror", "state": "syncing",
         "last_success_ms": now - 42_000, "pending": 3, "lag_s": 4, "speed_bps": 2_500_000.0},
        {"user": "bob", "folder": "output", "mode": "mirror", "state": "idle",
         "last_success_ms": now - 60_000, "pending": 0, "lag_s": 0, "speed_bps": 0.0,
         "last_pass": {"files": 4, "bytes": 8_000_000, "deleted": 0, "held": 0, "still_written": 0, "seconds": 2.0}},
        {"user": "carol", "folder": "output", "mode": "mirror", "state": "held-elsewhere",
         "held_by": "pod-7", "last_success_ms": null, "pending": 0, "lag_s": 0, "speed_bps": 0.0}
    ]});
    Fault::new(
        "GET",
        "/api/sync",
        200,
        "application/json",
        &sync.to_string(),
    )
}

/// Whether the page fits `width` (no horizontal scrolling) and every element `css` selects
/// ends inside the viewport: `[fits, [right edges that do not]]`.
fn fits(width: u32, css: &str) -> String {
    format!(
        "const w = window.innerWidth; if (w > {width}) return null; \
         const out = [...document.querySelectorAll('{css}')].filter(e => e.offsetParent !== null) \
           .map(e => e.getBoundingClientRect()).filter(r => r.right > w + 0.5).map(r => r.right); \
         return [document.documentElement.scrollWidth <= w, out]"
    )
}

async fn assert_fits(browser: &Browser, width: u32, css: &str) {
    browser.resize((width, 900)).await;
    let shown = browser
        .wait(&format!("the page at {width} px"), &fits(width, css))
        .await;
    assert_eq!(shown, json!([true, []]), "at {width} px, {css}");
}

#[test]
fn a_dead_pod_reads_no_answer_in_one_banner_that_goes_when_it_answers_again() {
    if !browser::available() {
        return;
    }
    let pod = pod().start();
    run(async {
        let (browser, proxy) = open(&pod, "no-answer").await;
        wait_state(&browser, "stopped").await;
        browser
            .wait("the live stream", "return page.mode === 'live'")
            .await;
        // Notes what the page shows at the moment the connection state leaves "no answer".
        browser
            .js("new MutationObserver(() => { const c = document.querySelector('#connection'); \
                 if (c.dataset.mode === 'offline') window.wasOffline = true; \
                 else if (window.wasOffline && !window.recovery) window.recovery = [c.dataset.mode, document.querySelector('#connection-banner').hidden, document.querySelector('#errors').hidden, document.title]; \
                 }).observe(document.querySelector('#connection'), {attributes: true, childList: true, characterData: true, subtree: true});")
            .await;
        let before = proxy.requests().len();
        proxy.set_down(true);
        browser
            .wait(
                "no answer in the header",
                "const c = document.querySelector('#connection'); return c.dataset.mode === 'offline' && c.innerText.startsWith('no answer')",
            )
            .await;
        // Wait until the page's other reads (logs, GPU hours, outputs) met the dead pod too.
        let start = std::time::Instant::now();
        loop {
            let tried = proxy.requests()[before..].to_vec();
            let read = |path: &str| tried.iter().any(|r| r.starts_with(path));
            if read("GET /api/status") && read("GET /api/usage") && read("GET /api/outputs") {
                break;
            }
            assert!(
                start.elapsed() < crate::support::wait::DEADLINE,
                "{tried:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let boxes = browser
            .js("return [...document.querySelectorAll('.banner, #errors li')].filter(e => e.offsetParent !== null).map(e => e.innerText)")
            .await;
        let boxes: Vec<&str> = boxes
            .as_array()
            .map(|all| all.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(boxes.len(), 1, "one box: {boxes:?}");
        assert!(boxes[0].contains("The pod does not answer."), "{boxes:?}");
        assert_eq!(errors(&browser).await, "");
        let title = browser.js("return document.title").await;
        assert_eq!(title, "No answer · smoke · podstack");
        assert_eq!(
            browser
                .js("return document.querySelector('#connection-banner').getAttribute('role')")
                .await,
            "alert"
        );
        browser.screenshot("dead").await;
        browser.resize((390, 844)).await;
        browser.screenshot("dead-390px").await;
        browser.resize(browser::DESKTOP).await;

        proxy.set_down(false);
        let recovery = browser.wait("the recovery", "return window.recovery").await;
        assert_eq!(
            recovery.as_array().map(|all| all[1..].to_vec()),
            Some(vec![json!(true), json!(true), json!("Stopped · smoke · podstack")]),
            "the banner is gone the moment the pod answers: [mode, banner hidden, errors hidden, title] = {recovery}"
        );
        assert_ne!(recovery[0], "offline");
        browser
            .wait("the live stream again", "return page.mode === 'live'")
            .await;
        browser.close().await;
    });
}

/// A failure reason as a real one reads: the URL and both hashes.
fn long_reason() -> String {
    format!(
        "sha256 mismatch for https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/{}/sd_xl_base_1.0_0.9vae.safetensors: expected {}, got {}",
        "4c8d1e1e2b3f7a4f5a6b7c8d9e0f1a2b3c4d5e6f",
        "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6ffb5a0b3ac91",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
}

#[test]
fn long_model_failure_reasons_wrap_with_a_copy_button_at_1440_and_390_px() {
    if !browser::available() {
        return;
    }
    let pod = pod().start();
    let reason = long_reason();
    let models = json!({"folder": "/workspace/models", "models": [
        {"dest": "checkpoints/sd_xl_base_1.0_0.9vae_with_a_long_name_for_the_studio.safetensors",
         "url": "https://huggingface.co/x", "size": 6_938_078_334_u64, "state": "failed",
         "reason": reason, "hint": "delete the partial file and fetch it again; if it fails again, the URL serves another file than the manifest pins"},
        {"dest": "loras/detail.safetensors", "url": "https://example.com/detail", "size": null,
         "state": "downloading", "bytes": 1_234_567_890_u64, "total": null, "bytes_per_s": 40_000_000}
    ]});
    run(async {
        let browser = Browser::start("long-reasons").await;
        let proxy = Proxy::start(pod.panel).await;
        proxy.inject(Fault::new(
            "GET",
            "/api/models",
            200,
            "application/json",
            &models.to_string(),
        ));
        browser.goto(&proxy.url()).await;
        let shown = browser
            .wait(
                "the models",
                "const s = document.querySelector('#models'); return !s.hidden && s.innerText",
            )
            .await;
        let shown = shown.as_str().unwrap_or_default();
        assert!(shown.contains("expected 31e35c80fc48"), "{shown}");
        // A model without a size shows what came so far.
        assert!(
            shown.contains("downloading · 1.2 GB so far · 40 MB/s"),
            "{shown}"
        );
        for width in [1440, 390] {
            assert_fits(
                &browser,
                width,
                "#models, #models td, .reason, .reason button",
            )
            .await;
            let wrap = browser
                .js("const w = document.querySelector('#models .table-wrap'); return w.scrollWidth <= w.clientWidth")
                .await;
            assert_eq!(wrap, true, "no hidden horizontal scroll at {width} px");
            browser.screenshot(&format!("{width}px")).await;
        }
        browser.resize(browser::DESKTOP).await;
        browser.click(".reason button.copy").await;
        let copied = browser
            .wait(
                "the copy",
                "const b = document.querySelector('.reason button.copy'); return b.innerText === 'Copied' && b.dataset.copyText",
            )
            .await;
        assert!(
            copied
                .as_str()
                .is_some_and(|t| t.starts_with(&reason) && t.contains("delete the partial")),
            "the whole reason and hint: {copied}"
        );
        browser.close().await;
    });
}

#[test]
fn a_start_past_the_stacks_expected_time_says_so_with_the_last_log_lines() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .env("STANDIN_HANG", "1")
        .set("/runtime/expected_start", json!("2s"))
        .start();
    // The status carries the expectation: the stack's, until a start on this pod reached ready.
    assert_eq!(
        pod.status()["services"]["comfyui"]["expected_start_s"],
        json!(2.0)
    );
    run(async {
        let (browser, _proxy) = open(&pod, "slow-start").await;
        wait_state(&browser, "stopped").await;
        browser.click("#launch").await;
        let slow = browser
            .wait(
                "the slow start",
                "const s = document.querySelector('#slow'), l = document.querySelector('#slow-lines').innerText; \
                 return !s.hidden && l.includes('Import times for custom nodes') && [document.querySelector('#state-text').innerText, document.querySelector('#slow-text').innerText, l, document.title]",
            )
            .await;
        let slow: Vec<&str> = slow
            .as_array()
            .map(|all| all.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            slow[0].starts_with("Starting · ") && slow[0].ends_with(" · taking longer than usual"),
            "{slow:?}"
        );
        assert!(
            slow[1].starts_with(
                "This start is taking longer than usual: ComfyUI usually starts within 2s"
            ),
            "{slow:?}"
        );
        assert_eq!(slow[3], "Starting (slow) · smoke · podstack");
        browser.screenshot("slow").await;
        assert_fits(&browser, 390, "#comfyui, #slow-lines").await;
        browser.screenshot("slow-390px").await;
        browser.resize(browser::DESKTOP).await;
        browser.click("#stop").await;
        wait_state(&browser, "stopped").await;
        assert_eq!(
            browser
                .js("return document.querySelector('#slow').hidden")
                .await,
            true
        );
        browser.close().await;
    });
}

#[test]
fn sync_states_log_tools_gpu_hours_focus_and_the_tab_title() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .gpu("rtx4090", "NVIDIA GeForce RTX 4090")
        .env("STANDIN_PROMPT_SECONDS", "0")
        .start();
    run(async {
        let browser = Browser::start("details").await;
        let proxy = Proxy::start(pod.panel).await;
        proxy.inject(three_artists_syncing());
        browser.goto(&proxy.url()).await;
        wait_state(&browser, "stopped").await;
        assert_eq!(
            browser.js("return document.title").await,
            "Stopped · smoke · podstack"
        );

        // Sync rows: their state and speed.
        let rows = browser
            .wait(
                "the sync rows",
                "const r = [...document.querySelectorAll('#sync-rows tr')]; return r.length === 3 && r.map(tr => [...tr.cells].map(td => td.innerText))",
            )
            .await;
        let cells = |row: usize, col: usize| rows[row][col].as_str().unwrap_or_default().to_owned();
        assert_eq!(cells(0, 2), "syncing");
        assert_eq!(cells(0, 6), "2.5 MB/s");
        assert_eq!(cells(1, 2), "up to date");
        assert_eq!(cells(1, 6), "4.0 MB/s (last pass)");
        assert_eq!(cells(2, 2), "synced by pod-7");

        // The log picker offers every service; those this pod does not run are hidden.
        let choices = browser
            .js("return [...document.querySelectorAll('#log-service option')].map(o => [o.value, o.hidden])")
            .await;
        assert_eq!(
            choices,
            json!([
                ["comfyui", false],
                ["supervisor", false],
                ["sync", true],
                ["jupyter", true],
                ["", false]
            ]),
            "no [sync] and no JupyterLab in this stack"
        );
        let download = browser
            .js("const a = document.querySelector('#log-download'); return [a.hidden, a.getAttribute('href'), a.hasAttribute('download')]")
            .await;
        assert_eq!(
            download,
            json!([false, "api/logs/download?source=comfyui", true])
        );

        // Launch keeps the keyboard focus while it does nothing.
        browser
            .js("document.querySelector('#launch').focus()")
            .await;
        browser.click("#launch").await;
        let focus = browser
            .wait(
                "Launch held while starting",
                "const b = document.querySelector('#launch'); return document.querySelector('#state').dataset.state === 'starting' && b.getAttribute('aria-disabled') === 'true' && [document.activeElement === b, document.title]",
            )
            .await;
        assert_eq!(focus[0], true, "the focus stays on Launch");
        assert!(
            focus[1]
                .as_str()
                .is_some_and(|t| t.starts_with("Starting ") && t.ends_with(" · smoke · podstack")),
            "{focus}"
        );
        wait_state(&browser, "ready").await;
        assert_eq!(
            browser.js("return document.title").await,
            "Ready · alice · smoke · podstack"
        );
        // GPU hours count the running session, and refresh with the state.
        browser
            .wait(
                "alice's running session",
                "return [...document.querySelectorAll('#usage-rows tr')].some(tr => tr.innerText.startsWith('alice · running now'))",
            )
            .await;

        // Enough lines to scroll: each prompt logs two.
        for _ in 0..20 {
            http(pod.comfyui, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
        }
        browser
            .wait(
                "a log taller than its box",
                "const l = document.querySelector('#log'); return (l.innerText.match(/Prompt executed/g) || []).length >= 20 && l.scrollHeight > l.clientHeight * 1.5",
            )
            .await;
        // Times on every line, by default.
        let first = browser
            .js("return document.querySelector('#log').innerText.split('\\n')[0]")
            .await;
        assert!(
            first.as_str().is_some_and(|l| l.len() > 9
                && l.as_bytes()[2] == b':'
                && l.as_bytes()[5] == b':'
                && l.as_bytes()[8] == b' '),
            "HH:MM:SS first: {first}"
        );
        // Wrap: long lines wrap instead of scrolling sideways.
        browser.click("#log-wrap").await;
        assert_eq!(
            browser
                .js("return getComputedStyle(document.querySelector('#log')).whiteSpace")
                .await,
            "pre-wrap"
        );
        // Follow: scrolling up to read stops following, and new lines do not pull the view down.
        browser
            .js("const l = document.querySelector('#log'); l.scrollTop = 0;")
            .await;
        browser
            .wait(
                "Follow off",
                "return !document.querySelector('#log-follow').checked",
            )
            .await;
        http(pod.comfyui, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
        let held = browser
            .wait(
                "the new line drawn",
                "const l = document.querySelector('#log'); return (l.innerText.match(/Prompt executed/g) || []).length >= 21 && [l.scrollTop, document.querySelector('#log-follow').checked]",
            )
            .await;
        assert_eq!(
            held,
            json!([0, false]),
            "the view stays where the reader is"
        );
        browser.click("#log-follow").await;
        browser
            .wait(
                "the end of the log",
                "const l = document.querySelector('#log'); return l.scrollTop > 0 && l.scrollHeight - l.scrollTop - l.clientHeight < 8",
            )
            .await;
        browser.click("#log-times").await;
        let first = browser
            .wait(
                "lines without times",
                "const f = document.querySelector('#log').innerText.split('\\n')[0]; return !/^\\d\\d:\\d\\d:\\d\\d /.test(f) && f",
            )
            .await;
        assert!(first.as_str().is_some(), "{first}");
        browser.screenshot("ready").await;
        assert_fits(&browser, 390, "#sync, #sync td, #usage, #logs, #log").await;
        assert_eq!(
            browser
                .js("const w = document.querySelector('#sync .table-wrap'); return [w.scrollWidth <= w.clientWidth, document.querySelector('#sync-rows td:nth-child(3)').getBoundingClientRect().left < 60]")
                .await,
            json!([true, true]),
            "on a phone each sync row is stacked, its state on its own line"
        );
        browser.screenshot("ready-390px").await;
        browser.resize(browser::DESKTOP).await;

        browser.click("#stop").await;
        wait_state(&browser, "stopped").await;
        browser
            .wait(
                "GPU hours without a running session",
                "const r = [...document.querySelectorAll('#usage-rows tr')]; return r.some(tr => tr.innerText.startsWith('alice')) && !r.some(tr => tr.innerText.includes('running now'))",
            )
            .await;
        assert_eq!(errors(&browser).await, "");
        browser.close().await;
    });
}

/// An hour of samples in the shape of `GET /api/metrics/history`, one a minute, the GPU
/// warming up; the volume nearly full; ComfyUI with 1 prompt running and 2 waiting.
fn history(now: u64) -> Value {
    let samples: Vec<Value> = (0..60_u64)
        .map(|i| {
            let at = now - (59 - i) * 60_000;
            json!({
                "at_ms": at,
                "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 4090",
                          "utilization_pct": if i == 59 { 37 } else { i % 100 },
                          "memory_used_mib": 1000 + i * 100, "memory_total_mib": 24564,
                          "temperature_c": if i == 30 { Value::Null } else { json!(30 + i / 2) },
                          "power_w": 60.0 + (i as f64), "power_limit_w": 450.0}],
                "cpu_pct": 12.5, "cpus": 16,
                "ram_used_bytes": 3_221_225_472_u64, "ram_total_bytes": 34_359_738_368_u64,
                "volume": {"path": "/workspace", "used_bytes": 53_687_091_200_u64,
                           "free_bytes": 4_294_967_296_u64, "total_bytes": 57_982_058_496_u64, "low": true},
                "comfyui": {"queue_running": 1, "queue_pending": 2}
            })
        })
        .collect();
    json!({"interval_s": 5, "now_ms": now, "samples": samples})
}

#[test]
fn the_machine_card_charts_the_gpu_cpu_ram_volume_and_queue_of_the_last_hour() {
    if !browser::available() {
        return;
    }
    // The hour comes from the history below: the pod's own sampler would take its first
    // sample in an hour. A prompt runs for as long as the test (its sampler stays at step 0 of 20).
    let pod = pod()
        .env("PODSTACK_HOST_SAMPLE_INTERVAL", "1h")
        .env("STANDIN_PROMPT_STEPS", "20")
        .env("STANDIN_PROMPT_SECONDS", "100000")
        .start();
    run(async {
        let browser = Browser::start("machine").await;
        let proxy = Proxy::start(pod.panel).await;
        proxy.inject(Fault::new(
            "GET",
            "/api/metrics/history",
            200,
            "application/json",
            &history(now_ms()).to_string(),
        ));
        browser.goto(&proxy.url()).await;
        let captions = browser
            .wait(
                "the charts",
                "const f = [...document.querySelectorAll('#charts figure')]; return !document.querySelector('#host').hidden && f.length === 6 && f.map(x => x.querySelector('figcaption').innerText.replace(/\\s+/g, ' '))",
            )
            .await;
        assert_eq!(
            captions,
            json!([
                "GPU utilisation 37%",
                "GPU memory (VRAM) 6.7 GiB of 24.0 GiB",
                "GPU temperature 59 °C",
                "GPU power 119 W of 450 W",
                "CPU (16 cores) 13%",
                "RAM 3.2 GB of 34 GB"
            ])
        );
        // Each chart is a drawn line over the hour, with a gap where a figure was missing.
        let lines = browser
            .js("return [...document.querySelectorAll('#charts svg')].map(s => [s.querySelectorAll('polyline').length, s.getAttribute('aria-label')])")
            .await;
        assert_eq!(lines[0][0], 1, "{lines}");
        assert_eq!(lines[2][0], 2, "the temperature has a gap: {lines}");
        assert_eq!(
            lines[0][1],
            "GPU utilisation over the last hour: now 37%, highest 58%"
        );
        let volume = browser.text("#volume").await;
        assert!(volume.contains("4.3 GB free of 58 GB"), "{volume}");
        let warning = browser
            .js("const w = document.querySelector('#volume-warning'); return !w.hidden && w.innerText")
            .await;
        assert!(
            warning
                .as_str()
                .is_some_and(|w| w.starts_with("The volume is almost full: 4.3 GB free (7%).")),
            "{warning}"
        );
        assert_eq!(
            browser
                .js("return document.querySelector('#queue').innerText.replace(/\\n+/g, '\\n')")
                .await,
            "Queue: 1 running · 2 waiting"
        );
        // A running prompt's progress comes from the status as ComfyUI's sampler prints it.
        let started = http(
            pod.panel,
            "POST",
            "/api/start",
            Some(r#"{"user":"alice"}"#),
            &[],
        )
        .expect("the panel answers");
        assert_eq!(started.status, 202, "{}", started.body);
        wait_state(&browser, "ready").await;
        let prompt =
            http(pod.comfyui, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
        assert_eq!(prompt.status, 200, "{}", prompt.body);
        browser
            .wait(
                "the running prompt's progress",
                "return document.querySelector('#queue').innerText.replace(/\\n+/g, '\\n') === 'Queue: 1 running · 2 waiting\\nRunning prompt: step 0 of 20 (0%)'",
            )
            .await;
        for width in [1440, 390] {
            assert_fits(&browser, width, "#host, #charts figure, #volume, #queue").await;
            browser.screenshot(&format!("{width}px")).await;
        }
        browser.close().await;
    });
}
