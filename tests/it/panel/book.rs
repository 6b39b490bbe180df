//! The panel as the book shows it (docs/src/images/panel-desktop.png and panel-phone.png): a
//! busy pod of four GPUs, alice and bob each running a ComfyUI in a slot of their own, alice's
//! latest outputs, and the sync of every artist's folder, at 1440 px and at 390 px, after the
//! login (panel-login.png). The pod is what a deploy runs: sealed, with a panel token, running
//! the digest its template expects. The state is asserted like any browser test's; the
//! pictures are written only when `PODSTACK_SCREENSHOTS` names a folder (`ci/screenshots.sh`).

use serde_json::json;

use super::artists::three_artists_syncing;
use super::browser::{self, Browser};
use super::proxy::Proxy;
use super::slots::pick_user;
use super::{errors, run, wait_state};
use crate::support::http::http;
use crate::support::pod::{pod, slot_of, PROMPT};
use crate::support::repo;

/// The book's desktop picture is as wide as a laptop's browser window.
const DESKTOP_WIDTH: u32 = 1440;
/// And its phone picture as wide as a common phone's viewport.
const PHONE_WIDTH: u32 = 390;
const TOKEN: &str = "studio-panel-token";

#[test]
fn a_busy_pod_as_the_book_shows_it() {
    if !browser::available() {
        return;
    }
    let digest = std::fs::read_to_string(repo().join("generated/smoke/DIGEST"))
        .expect("the smoke stack's DIGEST")
        .lines()
        .last()
        .expect("a digest line")
        .to_owned();
    let pod = pod()
        .gpu("four", "NVIDIA GeForce RTX 4090")
        .set("/runtime/users", json!(["alice", "bob", "carol"]))
        .env("STANDIN_PROMPT_SECONDS", "0")
        .env("PODSTACK_PANEL_TOKEN", TOKEN)
        .env("PODSTACK_DIGEST", &digest)
        .env("PODSTACK_EXPECTED_DIGEST", &digest)
        .pod_id("studio-pod-1")
        .sealed()
        .start();
    let status = pod.start_in_slots(&[("alice", None), ("bob", None)]);
    let alice = slot_of(&status, "alice")
        .and_then(|slot| slot["port"].as_u64())
        .and_then(|port| u16::try_from(port).ok())
        .expect("alice's port");
    for _ in 0..3 {
        let prompt =
            http(alice, "POST", "/prompt", Some(PROMPT), &[]).expect("the stand-in answers");
        assert_eq!(prompt.status, 200, "{}", prompt.body);
    }
    run(async {
        let browser = Browser::start("book").await;
        browser.resize((DESKTOP_WIDTH, 900)).await;
        let proxy = Proxy::start(pod.panel).await;
        proxy.inject(three_artists_syncing());
        browser.goto(&proxy.url()).await;
        browser
            .wait(
                "the login form",
                "return !document.querySelector('#login').hidden && document.querySelector('#panel').hidden",
            )
            .await;
        browser.picture_for_the_book("panel-login").await;
        browser.type_into("#token", TOKEN).await;
        browser.click("#login-button").await;
        wait_state(&browser, "ready").await;
        pick_user(&browser, "alice").await;
        browser
            .wait(
                "four slot cards, two of them running",
                "const cards = [...document.querySelectorAll('#slots li')]; \
                 return !document.querySelector('#slots').hidden && cards.length === 4 && \
                   cards.filter(c => c.querySelector('a')).length === 2",
            )
            .await;
        browser
            .wait(
                "alice's three outputs",
                "const i = [...document.querySelectorAll('#thumbs img')]; \
                 return i.length === 3 && i.every(img => img.complete && img.naturalWidth > 0)",
            )
            .await;
        let rows = browser
            .wait(
                "the sync rows",
                "const r = [...document.querySelectorAll('#sync-rows tr')]; \
                 return r.length === 3 && r.map(tr => tr.cells[2].innerText)",
            )
            .await;
        assert_eq!(rows, json!(["syncing", "up to date", "synced by pod-7"]));
        // The pod's own heartbeat names the two artists once they started (the panel reads
        // the fleet every 10 s, the pod writes a change of users within a second).
        browser
            .wait(
                "this pod's row in the fleet naming alice and bob",
                "const r = [...document.querySelectorAll('#fleet-rows tr')]; \
                 return r.length === 1 && r[0].cells[3].innerText === 'alice, bob'",
            )
            .await;
        let open = browser.text("#open").await;
        assert_eq!(open, "Open ComfyUI");
        assert!(
            browser
                .js("return document.querySelector('#banner').hidden")
                .await
                == true,
            "a pod running the expected build shows no banner"
        );
        assert_eq!(errors(&browser).await, "");
        browser.picture_for_the_book("panel-desktop").await;

        browser.resize((PHONE_WIDTH, 900)).await;
        let width = browser
            .wait(
                "the 390 px layout",
                "return window.innerWidth <= 390 && document.documentElement.scrollWidth",
            )
            .await;
        assert!(
            width.as_u64() <= Some(u64::from(PHONE_WIDTH)),
            "the page is {width} px wide"
        );
        browser.picture_for_the_book("panel-phone").await;
        browser.close().await;
    });
}
