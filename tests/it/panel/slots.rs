//! Slots in the browser (issue 15): taking someone's ComfyUI asks first, naming them and their
//! queue, and declining changes nothing; on a pod of four GPUs every slot is a card, and the
//! link of another user's slot says whose it is and points at that slot's port; each card
//! shows its own ComfyUI's queue, and the GPU it shares with other slots.

use serde_json::{json, Value};

use super::browser::{self, Browser};
use super::{errors, open, run, wait_state};
use crate::support::pod::pod;

/// Picks `user` in the panel's user list, as a person would.
pub(super) async fn pick_user(browser: &Browser, user: &str) {
    browser
        .js_with(
            "const s = document.querySelector('#user'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change'))",
            vec![json!(user)],
        )
        .await;
}

/// Makes `window.confirm` record its question and answer `answer`.
async fn answer_confirm(browser: &Browser, answer: bool) {
    browser
        .js_with(
            "const answer = arguments[0]; window.asked = window.asked || []; \
             window.confirm = (question) => { window.asked.push(question); return answer; }",
            vec![json!(answer)],
        )
        .await;
}

fn slot_user(status: &Value, slot: usize) -> &Value {
    &status["slots"][slot]["user"]
}

#[test]
fn taking_a_one_gpu_pod_from_alice_asks_naming_her_and_declining_changes_nothing() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .gpu("rtx4090", "NVIDIA GeForce RTX 4090")
        .set("/runtime/users", json!(["alice", "bob"]))
        .start();
    let started = pod.post("/api/start", json!({"user": "alice"}));
    assert_eq!(started.status, 202, "{}", started.body);
    pod.wait_for("alice ready", |status| {
        status["slots"][0]["comfyui"]["state"] == "ready"
    });
    run(async {
        let (browser, _proxy) = open(&pod, "slots-confirm").await;
        wait_state(&browser, "ready").await;
        pick_user(&browser, "bob").await;
        let shown = browser
            .wait(
                "Switch to bob, and alice's link labelled as hers",
                "const o = document.querySelector('#open'); \
                 return document.querySelector('#launch').innerText === 'Switch to bob' && !o.hidden \
                   && [o.innerText, o.classList.contains('open'), document.querySelector('#slots').hidden]",
            )
            .await;
        assert_eq!(
            shown,
            json!(["alice's ComfyUI", false, true]),
            "someone else's link is not the green Open; one card on a one-slot pod"
        );

        answer_confirm(&browser, false).await;
        browser.click("#launch").await;
        let asked = browser
            .wait(
                "the question",
                "return window.asked.length === 1 && window.asked[0]",
            )
            .await;
        let asked = asked.as_str().unwrap_or_default();
        assert!(asked.contains("alice's ComfyUI"), "{asked}");
        assert!(
            asked.contains("0 prompt(s) running and 0 waiting"),
            "{asked}"
        );
        assert!(asked.contains("start bob's"), "{asked}");
        let note = browser
            .wait(
                "the note that nothing changed",
                "const n = document.querySelector('#note'); return !n.hidden && n.innerText",
            )
            .await;
        assert_eq!(note, "Nothing changed: alice's ComfyUI keeps running.");
        assert_eq!(errors(&browser).await, "");
        let status = pod.status();
        assert_eq!(slot_user(&status, 0), "alice", "{status:#}");
        assert_eq!(status["slots"][0]["comfyui"]["state"], "ready");
        browser.screenshot("declined").await;

        answer_confirm(&browser, true).await;
        browser.click("#launch").await;
        browser
            .wait(
                "bob's own ComfyUI, ready",
                "const o = document.querySelector('#open'); \
                 return document.querySelector('#state').dataset.state === 'ready' \
                   && document.querySelector('#detail').innerText.startsWith('for bob') \
                   && !o.hidden && o.innerText === 'Open ComfyUI'",
            )
            .await;
        assert_eq!(browser.js("return window.asked.length").await, 2);
        assert_eq!(errors(&browser).await, "");
        browser.screenshot("forced").await;
        browser.close().await;
    });
    let status = pod.status();
    assert_eq!(slot_user(&status, 0), "bob", "{status:#}");
    let log = pod.output();
    assert!(
        log.contains("bob forced slot 0: alice's ComfyUI is stopped"),
        "{log}"
    );
}

#[test]
fn four_gpus_show_each_slot_as_a_card_and_another_users_link_says_whose() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .gpu("four", "NVIDIA GeForce RTX 4090")
        .set("/runtime/users", json!(["alice", "bob", "carol"]))
        .start();
    let status = pod.start_in_slots(&[("alice", None), ("bob", None)]);
    let port_of = |user: &str| {
        status["slots"]
            .as_array()
            .and_then(|slots| slots.iter().find(|s| s["user"] == user))
            .and_then(|s| s["port"].as_u64())
            .expect("a port")
    };
    let (alice, bob) = (port_of("alice"), port_of("bob"));
    run(async {
        let (browser, _proxy) = open(&pod, "slots-four").await;
        wait_state(&browser, "ready").await;
        pick_user(&browser, "alice").await;
        let cards = browser
            .wait(
                "four slot cards with two links",
                "const cards = [...document.querySelectorAll('#slots li')]; \
                 if (document.querySelector('#slots').hidden || cards.length !== 4) return null; \
                 const links = cards.map(c => c.querySelector('a')).filter(Boolean); \
                 if (links.length !== 2) return null; \
                 return cards.map(c => { const a = c.querySelector('a'); \
                   return [c.querySelector('.slot-user').innerText, a ? a.innerText : null, a ? a.href : null]; })",
            )
            .await;
        let card = |user: &str| {
            cards
                .as_array()
                .and_then(|cards| cards.iter().find(|c| c[0] == user))
                .cloned()
                .unwrap_or_else(|| panic!("{user}'s card in {cards:#}"))
        };
        assert_eq!(card("alice")[1], "Open ComfyUI", "{cards:#}");
        assert!(
            card("alice")[2]
                .as_str()
                .is_some_and(|href| href.contains(&format!(":{alice}"))),
            "{cards:#}"
        );
        assert_eq!(card("bob")[1], "bob's ComfyUI", "{cards:#}");
        assert!(
            card("bob")[2]
                .as_str()
                .is_some_and(|href| href.contains(&format!(":{bob}"))),
            "{cards:#}"
        );
        let free = cards
            .as_array()
            .map_or(0, |cards| cards.iter().filter(|c| c[0] == "free").count());
        assert_eq!(free, 2, "{cards:#}");
        // The GPU of each slot, and the choice of a slot or any free one.
        let text = browser.text("#slots").await;
        assert!(text.contains("GPU 3 (RTX 4090)"), "{text}");
        let picker = browser
            .js("const p = document.querySelector('#slot-picker'); return !p.hidden && [...document.querySelectorAll('#slot option')].map(o => o.text)")
            .await;
        assert_eq!(picker[0], "any free slot", "{picker:#}");
        assert_eq!(picker.as_array().map(Vec::len), Some(5), "{picker:#}");
        // The card above is alice's own session, with her own link.
        let open = browser
            .js("const o = document.querySelector('#open'); return [o.innerText, o.href]")
            .await;
        assert_eq!(open[0], "Open ComfyUI");
        assert!(
            open[1]
                .as_str()
                .is_some_and(|href| href.contains(&format!(":{alice}"))),
            "{open:#}"
        );
        browser.screenshot("four-slots").await;
        browser.resize((390, 900)).await;
        let width = browser
            .wait(
                "the 390 px layout",
                "return window.innerWidth <= 390 && document.documentElement.scrollWidth",
            )
            .await;
        assert!(width.as_u64() <= Some(390), "the page is {width} px wide");
        browser.screenshot("four-slots-390px").await;
        assert_eq!(errors(&browser).await, "");
        browser.close().await;
    });
}

#[test]
fn each_card_shows_its_own_queue_and_says_whose_gpu_it_shares() {
    if !browser::available() {
        return;
    }
    let pod = crate::slots::two_slots_on_one_gpu_busy_in_slot_1("bob");
    run(async {
        let (browser, _proxy) = open(&pod, "slots-queue").await;
        pick_user(&browser, "alice").await;
        let facts = browser
            .wait(
                "slot 1's queue on its card",
                "const cards = [...document.querySelectorAll('#slots li')]; \
                 if (cards.length !== 2) return null; \
                 const facts = cards.map(c => c.querySelector('.slot-facts').innerText); \
                 return facts[1].includes('queue 1 running') && facts",
            )
            .await;
        assert_eq!(
            facts,
            json!([
                "GPU 0 (RTX 4090) · VRAM 0.0 GiB of 24.0 GiB on GPU 0, shared by slots 0, 1",
                "GPU 0 (RTX 4090) · VRAM 0.0 GiB of 24.0 GiB on GPU 0, shared by slots 0, 1 · queue 1 running · 1 waiting"
            ])
        );
        browser.screenshot("slot-queue").await;
        assert_eq!(errors(&browser).await, "");
        browser.close().await;
    });
}

#[test]
fn on_runpod_a_slot_its_template_does_not_publish_has_no_link_and_says_why() {
    if !browser::available() {
        return;
    }
    let pod = pod()
        .gpu("four", "NVIDIA GeForce RTX 4090")
        .env("RUNPOD_POD_ID", "abc123")
        .env("PODSTACK_PANEL_TOKEN", "s3cret-token")
        .set("/published_slots", json!(2))
        .set("/runtime/users", json!(["alice", "bob", "carol"]))
        .start();
    // The pod fills the published slots first; carol lands in slot 2, which RunPod's proxy
    // does not serve.
    let status = pod.start_in_slots(&[("alice", None), ("bob", None)]);
    let status_after = pod.start_in_slots(&[("carol", None)]);
    assert_eq!(slot_user(&status, 0), "alice", "{status:#}");
    assert_eq!(slot_user(&status, 1), "bob", "{status:#}");
    assert_eq!(slot_user(&status_after, 2), "carol", "{status_after:#}");
    run(async {
        let (browser, _proxy) = open(&pod, "slots-unpublished").await;
        browser.type_into("#token", "s3cret-token").await;
        browser.click("#login-button").await;
        wait_state(&browser, "ready").await;
        pick_user(&browser, "carol").await;
        let cards = browser
            .wait(
                "four cards, slot 2's saying it cannot be opened",
                "const cards = [...document.querySelectorAll('#slots li')]; \
                 if (cards.length !== 4 || !cards[2].querySelector('.slot-facts.bad')) return null; \
                 return cards.map(c => { const a = c.querySelector('a'); const bad = c.querySelector('.slot-facts.bad'); \
                   return [a ? a.href : null, bad ? bad.innerText : null]; })",
            )
            .await;
        let unreachable = |slot: u16| {
            json!(format!(
                "Slot {slot}'s ComfyUI cannot be opened: RunPod's proxy does not serve its port {} (see Notes)",
                pod.comfyui + slot
            ))
        };
        assert_eq!(
            cards,
            json!([
                [
                    format!("https://abc123-{}.proxy.runpod.net/", pod.comfyui),
                    null
                ],
                [
                    format!("https://abc123-{}.proxy.runpod.net/", pod.comfyui + 1),
                    null
                ],
                [null, unreachable(2)],
                [null, unreachable(3)],
            ]),
            "{cards:#}"
        );
        // carol's own session: no Open button, the reason in its place, the fix in the Notes.
        let shown = browser
            .wait(
                "carol's card without a link",
                "const u = document.querySelector('#unpublished'); \
                 return document.querySelector('#detail').innerText.includes('for carol') && !u.hidden \
                   && [document.querySelector('#open').hidden, u.innerText, document.querySelector('#warnings').innerText]",
            )
            .await;
        browser.screenshot("unpublished").await;
        assert_eq!(shown[0], true, "{shown:#}");
        assert_eq!(shown[1], unreachable(2), "{shown:#}");
        let notes = shown[2].as_str().unwrap_or_default();
        assert!(
            notes.contains("Set deploy.gpus_per_pod = 4"),
            "the Notes say how to publish every slot: {notes}"
        );
        let picker = browser
            .js("return [...document.querySelectorAll('#slot option')].map(o => o.text)")
            .await;
        assert_eq!(
            picker[3], "Slot 2 · GPU 2 (RTX 4090) · carol · cannot be opened",
            "{picker:#}"
        );
        // alice, in a published slot, has her Open button and no such line.
        pick_user(&browser, "alice").await;
        let alice = browser
            .wait(
                "alice's own link",
                "const o = document.querySelector('#open'); \
                 return document.querySelector('#detail').innerText.includes('for alice') && !o.hidden \
                   && [o.href, document.querySelector('#unpublished').hidden]",
            )
            .await;
        assert_eq!(
            alice,
            json!([
                format!("https://abc123-{}.proxy.runpod.net/", pod.comfyui),
                true
            ])
        );
        assert_eq!(errors(&browser).await, "");
        browser.close().await;
    });
}
