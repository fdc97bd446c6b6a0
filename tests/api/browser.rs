//! The conversation flow in headless Chromium at a phone's size, by clicking, as a person would.
//! Screenshots go to `test-artifacts/`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(env: &str, names: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    for name in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let path = PathBuf::from(dir).join(name);
            if path.exists() {
                return path;
            }
        }
    }
    panic!(
        "{} not found: `bash .ci/test` installs Chromium and ChromeDriver (or set {env})",
        names[0]
    );
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(find_program("CHROMEDRIVER_PATH", &["chromedriver"]))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver { child, port };
    eventually("chromedriver listens", async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    driver
}

async fn phone(driver: &Driver, profile: &std::path::Path) -> Client {
    phone_of_size(driver, profile, 390, 844, false).await
}

async fn phone_of_size(
    driver: &Driver,
    profile: &std::path::Path,
    width: u32,
    height: u32,
    dark: bool,
) -> Client {
    let chromium = find_program(
        "CHROMIUM_PATH",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", format!("--window-size={width},{height}"), "--lang=fa",
                format!("--user-data-dir={}", profile.display()),
                // 0 is dark, 1 light: what the page's `prefers-color-scheme` sees.
                format!("--blink-settings=preferredColorScheme={}", if dark { 0 } else { 1 })
            ],
            "mobileEmulation": { "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0 } }
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    // Plain HTTP to the local driver: no TLS stack needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn click_text(client: &Client, tag: &str, text: &str) {
    let xpath = format!("//{tag}[contains(normalize-space(.), '{text}')]");
    client
        .find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|_| panic!("no {tag} with “{text}”"))
        .click()
        .await
        .unwrap();
}

async fn click_css(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no {css}"))
        .click()
        .await
        .unwrap();
}

/// How long the browser may take to land on a page or show an element.
const BROWSER_PATIENCE: Duration = Duration::from_secs(10);

/// Waits for the navigation a click started to land, fully loaded, on a path ending with
/// `suffix`.
async fn wait_for_path(client: &Client, suffix: &str) {
    wait_for_page(client, &format!("a page ending in {suffix}"), |path| {
        path.ends_with(suffix)
    })
    .await;
}

/// Waits for the navigation a click started to land, fully loaded, on a path `wanted` accepts;
/// returns where it landed.
async fn wait_for_page(client: &Client, what: &str, wanted: impl Fn(&str) -> bool) -> url::Url {
    let landed = wait_until(BROWSER_PATIENCE, async || {
        let here = client.current_url().await.unwrap();
        let ready = client
            .execute("return document.readyState", vec![])
            .await
            .unwrap();
        (wanted(here.path()) && ready == "complete").then_some(here)
    })
    .await;
    if let Some(here) = landed {
        return here;
    }
    let here = client.current_url().await.unwrap();
    let text: String = client.source().await.unwrap().chars().take(800).collect();
    panic!("expected {what}, still at {here}: {text}");
}

/// Waits for an element (e.g. after a form came back with a change).
async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    eventually_within(
        BROWSER_PATIENCE,
        format!("the page shows {css}"),
        async || client.find(Locator::Css(css)).await.ok(),
    )
    .await
}

/// Runs axe-core's WCAG 2.1 A/AA rules on the page and fails on any violation.
async fn assert_accessible(client: &Client, page: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: `bash .ci/test` installs it (npm ci --prefix tests/browser)",
            path.display()
        )
    });
    client.execute(&axe, vec![]).await.unwrap();
    // In the phone's colour scheme, then in the other one: the stylesheet's dark rules forced on
    // (or off, on a dark phone), so every state is checked in light and dark.
    for scheme in ["as the phone is", "in the other colour scheme"] {
        let violations = axe_violations(client).await;
        assert_eq!(
            violations,
            json!([]),
            "axe-core on {page}, {scheme}: {violations:#}"
        );
        client
            .execute(
                "for (const sheet of document.styleSheets) for (const rule of sheet.cssRules)
                   if (rule.media && /prefers-color-scheme/.test(rule.media.mediaText)) {
                     const was = rule.media.mediaText;
                     rule.media.mediaText = matchMedia(was).matches ? 'not all' : 'all';
                     rule.__was = rule.__was || was;
                   }",
                vec![],
            )
            .await
            .unwrap();
    }
    // Back as it was, for the rest of the test.
    client
        .execute(
            "for (const sheet of document.styleSheets) for (const rule of sheet.cssRules)
               if (rule.__was) { rule.media.mediaText = rule.__was; delete rule.__was; }",
            vec![],
        )
        .await
        .unwrap();
}

async fn axe_violations(client: &Client) -> serde_json::Value {
    client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag',
                 values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
               .then(r => done(r.violations.map(v =>
                   [v.id, v.impact, v.nodes.slice(0, 3).map(n => n.target.join(' '))])))
               .catch(e => done([['axe failed', String(e)]]));",
            vec![],
        )
        .await
        .unwrap()
}

/// The buyer of `conv` opens the add-on from the sandbox's chat and connects; ends on the
/// composer.
async fn connect_as_buyer(client: &Client, app: &TestApp, conv: &str) {
    client
        .goto(&app.url(&format!("/sandbox/chats/{conv}?as=buyer")))
        .await
        .unwrap();
    click_text(client, "button", "گفت‌وگو یار").await;
    wait_for_path(client, "/start").await;
    click_text(client, "button", "ادامه با حساب دیوار").await;
    wait_for_path(client, "/sandbox/oauth2/auth").await;
    click_text(client, "button", "اجازه می‌دهم").await;
    wait_for_path(client, "/compose").await;
}

async fn assert_persian_rtl(client: &Client) {
    let html = client.find(Locator::Css("html")).await.unwrap();
    assert_eq!(html.attr("dir").await.unwrap().as_deref(), Some("rtl"));
    assert_eq!(html.attr("lang").await.unwrap().as_deref(), Some("fa"));
    // Nothing wider than the phone: no sideways scrolling.
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap_or(0) <= 0,
        "the page scrolls sideways by {overflow}px"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_connects_and_sends_from_a_phone() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = phone(&driver, profile.path()).await;
    let conv = conversation(1, 1);

    client
        .goto(&app.url(&format!("/sandbox/chats/{conv}?as=buyer")))
        .await
        .unwrap();
    screenshot(&client, "01-sandbox-chat").await;
    assert_accessible(&client, "the sandbox's chat").await;
    click_text(&client, "button", "گفت‌وگو یار").await;

    wait_for_path(&client, "/start").await;
    assert_persian_rtl(&client).await;
    let landing = client.source().await.unwrap();
    assert!(landing.contains("پیام‌های کاربردی در همین گفت‌وگو"));
    screenshot(&client, "02-landing").await;
    assert_accessible(&client, "the landing page").await;
    // Before connecting, the person can read what is kept (the link beside the consent button).
    click_text(&client, "p/a", "حریم خصوصی").await;
    wait_for_path(&client, "/privacy").await;
    assert_persian_rtl(&client).await;
    assert!(client.source().await.unwrap().contains("تا کی"));
    screenshot(&client, "02b-privacy").await;
    assert_accessible(&client, "the privacy page").await;
    client.back().await.unwrap();
    wait_for_path(&client, "/start").await;

    click_text(&client, "button", "ادامه با حساب دیوار").await;
    wait_for_path(&client, "/sandbox/oauth2/auth").await;
    assert_persian_rtl(&client).await;
    screenshot(&client, "03-consent").await;
    assert_accessible(&client, "the sandbox's consent page").await;
    click_text(&client, "button", "اجازه می‌دهم").await;

    wait_for_path(&client, "/compose").await;
    assert_persian_rtl(&client).await;
    client
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys("سلام! جمعه ساعت ۱۰ برای بازدید می‌آیم.")
        .await
        .unwrap();
    assert_accessible(&client, "the composer").await;
    // One tap adds a ready-made button for the other side (a round trip that keeps the text);
    // with scripts, only the form is swapped: no page load, no new history entry.
    let history = client
        .execute("window.__same_page = true; return history.length", vec![])
        .await
        .unwrap();
    click_css(&client, "button[name='add'][value='r:custom']").await;
    let caption = wait_for(&client, "#r00_caption").await;
    let after = client
        .execute(
            "return [window.__same_page === true, history.length]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(after, json!([true, history]), "an edit is not a page load");
    assert_eq!(caption.prop("value").await.unwrap().as_deref(), Some(""));
    let active = client
        .execute(
            "var el = document.activeElement, r = el.getBoundingClientRect();
             return [el.id, r.top >= 0 && r.bottom <= window.innerHeight];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        active,
        json!(["r00_caption", true]),
        "the new button in view, focused"
    );
    caption.send_keys("اطلاعات بیشتر").await.unwrap();
    let text = client.find(Locator::Id("text")).await.unwrap();
    assert!(
        text.prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
            .contains("جمعه ساعت ۱۰")
    );
    // Only the chosen action's fields show: a server-page button has no link to fill in.
    let link = client.find(Locator::Id("r00_link")).await.unwrap();
    let kind = client.find(Locator::Id("r00_kind")).await.unwrap();
    kind.select_by_value("server").await.unwrap();
    assert!(!link.is_displayed().await.unwrap());
    kind.select_by_value("link").await.unwrap();
    assert!(link.is_displayed().await.unwrap());
    kind.select_by_value("server").await.unwrap();
    assert!(!link.is_displayed().await.unwrap());
    // The icon picker: pictures with Persian names, and a search that knows other words for them.
    let search = client
        .find(Locator::Css("#r00 input.icon-search"))
        .await
        .unwrap();
    let icon = client.find(Locator::Id("r00_icon")).await.unwrap();
    for (word, found) in [
        ("ماشین", "CAR"),
        ("تلفن", "CALL"),
        ("قیمت", "MONEY"),
        ("نقشه", "MAP_VIEW"),
    ] {
        search.clear().await.unwrap();
        search.send_keys(word).await.unwrap();
        assert_eq!(
            icon.prop("value").await.unwrap().as_deref(),
            Some(found),
            "searching «{word}»"
        );
    }
    let preview = client
        .find(Locator::Id("preview"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        preview.contains("اطلاعات بیشتر")
            && preview.contains("🗺")
            && preview.contains("جمعه ساعت ۱۰"),
        "live preview: {preview}"
    );
    // The icon is drawn as an icon, named for screen readers, never as Divar's code.
    assert!(
        client
            .find(Locator::Css(
                "#preview .bubble.theirs .icon[aria-label='نقشه']"
            ))
            .await
            .is_ok()
    );
    let codes = client
        .execute(
            "return document.body.innerText.match(/[A-Z_]{4,}/g) || [];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(codes, json!([]), "no English icon code on the page");
    // Each bubble on its own side: own on the right, the other side's on the left.
    let sides = client
        .execute(
            "var m = document.querySelector('#preview .bubble.mine').getBoundingClientRect();
             var t = document.querySelector('#preview .bubble.theirs').getBoundingClientRect();
             return [m.left, m.right, t.left, t.right];",
            vec![],
        )
        .await
        .unwrap();
    let x = |i: usize| sides[i].as_f64().unwrap();
    assert!(
        x(1) > x(3) && x(0) > x(2),
        "own bubble right, theirs left: {sides}"
    );
    assert_accessible(&client, "the composer with a button").await;
    client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    screenshot(&client, "04-composer").await;

    // A slow Divar: the person sees the send being handled, not a frozen page.
    app.control(json!({ "slow_percent": 100, "slow_ms": 2500 }))
        .await;
    // Hold the form's submission (after the page's own handler has run) to look at the button.
    client
        .execute(
            "window.__submits = 0;
             window.__hold = function (e) { window.__submits++; e.preventDefault(); };
             document.getElementById('compose').addEventListener('submit', window.__hold);",
            vec![],
        )
        .await
        .unwrap();
    click_text(&client, "button", "ارسال در گفت‌وگو").await;
    let button = client
        .execute(
            "var b = document.querySelector('#compose button[value=send]');
             b.click();
             return [b.disabled, b.textContent.trim(), window.__submits];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        button,
        json!([true, "در حال ارسال…", 1]),
        "the first tap disables the button; a second tap submits nothing"
    );
    screenshot(&client, "05-sending").await;
    assert_accessible(&client, "the composer while sending").await;
    // Let the held submission go: the page's handler carried "send" in a hidden field.
    client
        .execute(
            "var f = document.getElementById('compose');
             f.removeEventListener('submit', window.__hold);
             f.submit();",
            vec![],
        )
        .await
        .unwrap();

    wait_for_path(&client, "/status").await;
    assert_persian_rtl(&client).await;
    // Read in one script call: the page reloads itself once the status is final.
    let label = |client: Client| async move {
        client
            .execute(
                "var l = document.getElementById('status-label'); return l ? l.textContent : '';",
                vec![],
            )
            .await
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(label(client.clone()).await, "در حال ارسال…");
    eventually_within(
        BROWSER_PATIENCE,
        "the status page turns to sent by itself",
        async || label(client.clone()).await == "فرستاده شد",
    )
    .await;
    screenshot(&client, "06-status-sent").await;
    assert_accessible(&client, "the status page").await;
    app.control(json!({ "slow_percent": 0 })).await;

    client
        .goto(&app.url(&format!("/sandbox/chats/{conv}?as=seller")))
        .await
        .unwrap();
    let chat = client.source().await.unwrap();
    assert!(chat.contains("جمعه ساعت ۱۰") && chat.contains("اطلاعات بیشتر"));
    screenshot(&client, "07-seller-sees-the-button").await;
    assert_accessible(&client, "the sandbox's chat, the seller's side").await;
    // The seller taps it: a page for the one who tapped, named after the button, not a dead end.
    click_text(&client, "button", "اطلاعات بیشتر").await;
    let here = wait_for_page(&client, "a message's page", |path| {
        path.starts_with("/messages/")
    })
    .await;
    assert!(here.path().starts_with("/messages/"), "{here}");
    let title = wait_for(&client, "main h1").await.text().await.unwrap();
    assert_eq!(title, "اطلاعات بیشتر");
    assert_persian_rtl(&client).await;
    screenshot(&client, "08-seller-opens-the-button").await;
    assert_accessible(&client, "the tapped button's page").await;
    client.close().await.unwrap();
    assert_eq!(app.inspect("messages?sender_type=BOT").await["count"], 1);
}

/// The smallest phones Divar runs on, in dark mode: at 320×640 the composer's top bar stays one
/// line (it is sticky, so every extra line is lost reading space), nothing scrolls sideways, and
/// the dark colours pass axe-core too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_top_bar_is_one_line_on_a_320_px_phone() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = phone_of_size(&driver, profile.path(), 320, 640, true).await;
    let conv = conversation(1, 2);
    connect_as_buyer(&client, &app, &conv).await;
    assert_persian_rtl(&client).await;
    // Each item's text on one line box, and the bar no taller than one row of tap targets.
    let bar = client
        .execute(
            "const b = document.querySelector('.topbar'); \
             const lines = [...b.children].map(el => { const r = document.createRange(); \
               r.selectNodeContents(el); \
               return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }); \
             return [b.getBoundingClientRect().height, window.innerWidth, Math.max(...lines)];",
            vec![],
        )
        .await
        .unwrap();
    let height = bar[0].as_f64().unwrap();
    assert_eq!(bar[1].as_f64().unwrap(), 320.0, "a 320 px viewport");
    assert_eq!(
        bar[2].as_i64(),
        Some(1),
        "an item of the top bar wraps at 320 px"
    );
    assert!(height <= 60.0, "the top bar is {height}px tall at 320 px");
    let dark = client
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(dark, json!(true), "the phone is in dark mode");
    click_css(&client, "button[name='add'][value='r:map']").await;
    wait_for(&client, "#r00_link").await;
    let active = client
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(
        active,
        json!("r00_link"),
        "the map's link is what is left to write"
    );
    // When the script's request fails (a flaky network), the tap still goes through as a plain
    // form submit: nothing the person did is lost.
    client
        .execute(
            "window.fetch = function () { return Promise.reject(new Error('offline')); };",
            vec![],
        )
        .await
        .unwrap();
    click_css(&client, "button[name='add'][value='r:call']").await;
    let added = wait_for(&client, "#r01_caption").await;
    assert_eq!(added.prop("value").await.unwrap().as_deref(), Some("تماس"));
    assert_persian_rtl(&client).await;
    // Every choice of the two dropdowns fits its box at 320 px (a native select cuts the rest).
    let cut = client
        .execute(
            "const ctx = document.createElement('canvas').getContext('2d');
             const cut = [];
             for (const select of document.querySelectorAll('#r00 select')) {
               const style = getComputedStyle(select);
               ctx.font = style.font;
               const room = select.clientWidth - parseFloat(style.paddingLeft)
                 - parseFloat(style.paddingRight) - 20;
               for (const o of select.options)
                 if (ctx.measureText(o.text).width > room) cut.push([select.id, o.text, room]);
             }
             return cut;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(cut, json!([]), "cut at 320 px");
    assert_accessible(&client, "the composer, dark, 320 px").await;
    screenshot(&client, "05-composer-320").await;
    // Sent without the map's link: the page comes back with that field focused, in view below
    // the sticky bar, its problem beside it; and still passes axe-core.
    client
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys("نشانی را ببینید")
        .await
        .unwrap();
    click_text(&client, "button", "ارسال در گفت‌وگو").await;
    wait_for(&client, "#r00_link-error").await;
    let focus = client
        .execute(
            "var el = document.activeElement, r = el.getBoundingClientRect();
             var bar = document.querySelector('.topbar').getBoundingClientRect().bottom;
             return [el.id, r.top >= bar && r.bottom <= window.innerHeight,
                     el.getAttribute('aria-describedby')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focus, json!(["r00_link", true, "r00_link-error"]));
    assert_accessible(&client, "the composer with a problem, dark, 320 px").await;
}

/// A photo chosen with the phone's own picker (the page's `<input type=file>`), at 390×844: it
/// goes with the text, and the status page names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_attaches_a_photo_from_the_phone() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = phone(&driver, profile.path()).await;
    let conv = conversation(1, 3);
    connect_as_buyer(&client, &app, &conv).await;
    let photo = profile.path().join("car.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(50_000, 1);
    std::fs::write(&photo, bytes).unwrap();
    client
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys("عکس ماشین از جلو")
        .await
        .unwrap();
    // Too large: refused as soon as it is chosen, beside the field, before any upload.
    let big = profile.path().join("big.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(6_000_000, 1);
    std::fs::write(&big, bytes).unwrap();
    let input = client.find(Locator::Id("media")).await.unwrap();
    input.send_keys(&big.to_string_lossy()).await.unwrap();
    let refused = wait_for(&client, "#media-error")
        .await
        .text()
        .await
        .unwrap();
    assert!(refused.contains("بزرگ‌تر از ۵ مگابایت"), "{refused}");
    assert_eq!(input.prop("value").await.unwrap().as_deref(), Some(""));
    assert_accessible(&client, "the composer with a file refused").await;
    input.send_keys(&photo.to_string_lossy()).await.unwrap();
    assert!(
        client.find(Locator::Id("media-error")).await.is_err(),
        "the error goes"
    );
    assert_accessible(&client, "the composer with a file chosen").await;
    click_text(&client, "button", "ارسال در گفت‌وگو").await;
    wait_for_path(&client, "/status").await;
    assert_persian_rtl(&client).await;
    let page = client.source().await.unwrap();
    assert!(
        page.contains("car.png") && page.contains("عکس ماشین از جلو"),
        "{page}"
    );
    screenshot(&client, "09-photo-sent").await;
    eventually_within(
        BROWSER_PATIENCE,
        "Divar has the photo and the text",
        async || {
            let bot = app.bot_messages(&conv).await;
            bot["messages"].as_array().map(Vec::len) == Some(2)
        },
    )
    .await;
    // The page reloads itself once the status is final: checked after that.
    eventually_within(BROWSER_PATIENCE, "the status page settles", async || {
        client
            .execute(
                "var l = document.getElementById('status-label');
                 return document.readyState === 'complete' && !!l && l.textContent === 'فرستاده شد';",
                vec![],
            )
            .await
            .is_ok_and(|v| v == json!(true))
    })
    .await;
    assert_accessible(&client, "the status page with a photo").await;
    let bot = app.bot_messages(&conv).await;
    assert_eq!(bot["messages"][0]["media"]["file_name"], "car.png");
    assert_eq!(bot["messages"][1]["text"], "عکس ماشین از جلو");
    client.close().await.unwrap();
}

/// What a person typed survives the session ending under them and a reload: the composer keeps
/// it in the browser, the send that finds the session over says it is kept, and reopening the
/// add-on from the chat puts it back exactly, buttons included. Once sent, it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_survives_an_ended_session_and_a_reload() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = phone(&driver, profile.path()).await;
    let conv = conversation(1, 2);
    connect_as_buyer(&client, &app, &conv).await;
    let typed = "سلام، برای دیدن ماشین فردا عصر می‌آیم. آدرس دقیق را بفرستید لطفاً.";
    client
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys(typed)
        .await
        .unwrap();
    click_css(&client, "button[name='add'][value='r:map']").await;
    let caption = wait_for(&client, "#r00_caption").await;
    caption.clear().await.unwrap();
    caption.send_keys("نشانی پارکینگ").await.unwrap();

    // The session ends (15 idle minutes, or the store lost it): the send is refused, and the
    // page says the message is kept on this phone.
    sqlx::query("delete from web_sessions")
        .execute(app.db.pool())
        .await
        .unwrap();
    click_text(&client, "button", "ارسال در گفت‌وگو").await;
    let page = eventually_within(BROWSER_PATIENCE, "the ended-session page", async || {
        let page = client.source().await.unwrap();
        page.contains("این صفحه دیگر باز نیست").then_some(page)
    })
    .await;
    assert!(page.contains("روی همین گوشی نگه داشته شده"), "{page}");
    assert_accessible(&client, "the ended-session page").await;
    assert!(
        app.bot_messages(&conv).await["messages"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );

    // Reopened from the chat: the draft is back, exactly, with a way to drop it.
    client
        .goto(&app.url(&format!("/sandbox/chats/{conv}?as=buyer")))
        .await
        .unwrap();
    click_text(&client, "button", "گفت‌وگو یار").await;
    wait_for_path(&client, "/compose").await;
    let notice = wait_for(&client, "#draft-restored:not([hidden])").await;
    assert!(notice.text().await.unwrap().contains("برگرداندیم"));
    let caption = wait_for(&client, "#r00_caption").await;
    assert_eq!(
        caption.prop("value").await.unwrap().as_deref(),
        Some("نشانی پارکینگ")
    );
    let text = client.find(Locator::Id("text")).await.unwrap();
    assert_eq!(text.prop("value").await.unwrap().as_deref(), Some(typed));
    assert_accessible(&client, "the composer with a draft put back").await;
    screenshot(&client, "10-draft-restored").await;

    // A reload keeps it too.
    text.send_keys(" ممنون").await.unwrap();
    client.refresh().await.unwrap();
    wait_for(&client, "#draft-restored:not([hidden])").await;
    let again = format!("{typed} ممنون");
    let text = client.find(Locator::Id("text")).await.unwrap();
    assert_eq!(
        text.prop("value").await.unwrap().as_deref(),
        Some(again.as_str())
    );

    // Sent: the draft is done; a new message starts empty.
    client
        .find(Locator::Id("r00_link"))
        .await
        .unwrap()
        .send_keys("https://maps.example.com/parking")
        .await
        .unwrap();
    click_text(&client, "button", "ارسال در گفت‌وگو").await;
    wait_for_path(&client, "/status").await;
    click_text(&client, "a", "پیام تازه").await;
    wait_for_path(&client, "/compose").await;
    let text = wait_for(&client, "#text").await;
    assert_eq!(text.prop("value").await.unwrap().as_deref(), Some(""));
    let notice = client.find(Locator::Id("draft-restored")).await.unwrap();
    assert!(!notice.is_displayed().await.unwrap());
}

/// A long paste is kept whole and the page says it is too long, beside the count; an error goes
/// as soon as its field is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_paste_is_not_cut_and_a_fixed_error_goes() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = phone(&driver, profile.path()).await;
    let conv = conversation(1, 3);
    connect_as_buyer(&client, &app, &conv).await;
    let long = "کلمه ".repeat(220); // 1,100 characters
    client
        .execute(
            "var t = document.getElementById('text'); t.value = arguments[0];
             t.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![json!(long)],
        )
        .await
        .unwrap();
    let said = wait_for(&client, "#text-too-long").await;
    assert!(
        said.text().await.unwrap().contains("۱۰۰۰"),
        "the limit is named"
    );
    let text = client.find(Locator::Id("text")).await.unwrap();
    assert_eq!(
        text.prop("value").await.unwrap().map(|v| v.chars().count()),
        Some(1100),
        "nothing cut"
    );
    assert_accessible(&client, "the composer with a text too long").await;
    // Shortened: the warning goes.
    client
        .execute(
            "var t = document.getElementById('text'); t.value = 'سلام';
             t.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![],
        )
        .await
        .unwrap();
    assert!(client.find(Locator::Id("text-too-long")).await.is_err());

    // A button without its caption: the server marks the field; typing one clears the mark.
    click_css(&client, "button[name='add'][value='s:custom']").await;
    let caption = wait_for(&client, "#s00_caption").await;
    caption.clear().await.unwrap();
    click_text(&client, "button", "ارسال در گفت‌وگو").await;
    wait_for(&client, "#s00_caption-error").await;
    let caption = client.find(Locator::Id("s00_caption")).await.unwrap();
    caption.send_keys("قیمت").await.unwrap();
    assert!(client.find(Locator::Id("s00_caption-error")).await.is_err());
    assert_eq!(caption.attr("aria-invalid").await.unwrap(), None);
}

/// The empty composer on a phone that has nothing cached yet (its session cookie carried over
/// from the phone that connected): at most 50 KB over the wire, Brotli included, the font at most
/// 40 KB of it, under a fingerprinted URL kept for a year.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_visit_of_the_empty_composer_weighs_under_50_kb() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let connected = tempfile::tempdir().unwrap();
    let first = phone(&driver, connected.path()).await;
    connect_as_buyer(&first, &app, &conversation(1, 1)).await;
    let session = first.get_named_cookie("kenar_session").await.unwrap();
    first.close().await.unwrap();

    let fresh = tempfile::tempdir().unwrap();
    let client = phone(&driver, fresh.path()).await;
    client.goto(&app.url("/healthz")).await.unwrap();
    client.add_cookie(session.into_owned()).await.unwrap();
    client.goto(&app.url("/compose")).await.unwrap();
    wait_for(&client, "#compose").await;
    // Every request of the visit, the font included, once they have landed (the icon list
    // loads only with a button to pick an icon for).
    let measured = eventually_within(BROWSER_PATIENCE, "the visit's requests", async || {
        let entries = client
            .execute(
                "var nav = performance.getEntriesByType('navigation')[0];
                 var all = [[location.pathname, nav.transferSize]];
                 performance.getEntriesByType('resource').forEach(function (r) {
                   all.push([new URL(r.name).pathname, r.transferSize]);
                 });
                 return document.fonts.status === 'loaded' ? all : null;",
                vec![],
            )
            .await
            .unwrap();
        let entries: Vec<(String, u64)> = serde_json::from_value(entries).ok()?;
        let has = |what: &str| entries.iter().any(|(path, _)| path.contains(what));
        has(".woff2").then_some(entries)
    })
    .await;
    let total: u64 = measured.iter().map(|(_, bytes)| bytes).sum();
    let font: u64 = measured
        .iter()
        .filter(|(path, _)| path.ends_with(".woff2"))
        .map(|(_, bytes)| bytes)
        .sum();
    eprintln!("first visit of the empty composer: {total} bytes, font {font}: {measured:?}");
    assert!(total <= 50_000, "{total} bytes: {measured:?}");
    assert!(font <= 40_000, "the font: {font} bytes");
}

/// A composer for sellers: the ready-made buttons are offered once, the developer's settings
/// hide behind one switch for the whole composer, and with four finished buttons the page is
/// within about two phone screens (1,800 px at 390 px wide).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_composer_offers_each_preset_once_and_one_switch_for_developer_settings() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = phone(&driver, profile.path()).await;
    connect_as_buyer(&client, &app, &conversation(1, 1)).await;
    for (add, appears) in [
        ("r:map", "#r00_caption"),
        ("r:call", "#r01_caption"),
        ("r:custom", "#r02_caption"),
        ("s:custom", "#s00_caption"),
    ] {
        // Clicked by script: the chip may sit under the sticky bar after the last swap.
        client
            .execute(
                "document.querySelector(arguments[0]).click()",
                vec![json!(format!("button[name='add'][value='{add}']"))],
            )
            .await
            .unwrap();
        wait_for(&client, appears).await;
    }
    let chips = client
        .execute(
            "return Array.from(document.querySelectorAll('button.chip')).map(function (b) { return b.value; });",
            vec![],
        )
        .await
        .unwrap();
    let chips: Vec<String> = serde_json::from_value(chips).unwrap();
    let titles: Vec<&str> = chips.iter().map(|c| &c[2..]).collect();
    let mut unique = titles.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        titles.len() - unique.len(),
        1,
        "each ready-made button is offered once (the blank one on both grids): {chips:?}"
    );
    let data = client.find(Locator::Id("r00_data")).await.unwrap();
    assert!(
        !data.is_displayed().await.unwrap(),
        "advanced settings start hidden"
    );
    // Four finished buttons: each folds to one line once the page comes back (a preview).
    for (field, value) in [
        ("text", "سلام! ماشین هنوز فروخته نشده است."),
        ("r00_link", "example.com/map"),
        ("r01_link", "example.com/call"),
        ("r02_caption", "اطلاعات بیشتر"),
        ("r02_link", "example.com/more"),
        ("s00_caption", "پرداخت"),
        ("s00_link", "example.com/pay"),
    ] {
        client
            .find(Locator::Id(field))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    client
        .execute(
            "document.querySelector('.actions button[value=preview]').click()",
            vec![],
        )
        .await
        .unwrap();
    wait_for(&client, "#preview .bubble").await;
    eventually_within(BROWSER_PATIENCE, "the finished buttons fold", async || {
        client
            .execute(
                "return document.querySelectorAll('details.slot-box[open]').length",
                vec![],
            )
            .await
            .unwrap()
            == json!(0)
    })
    .await;
    let height = client
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    eprintln!("the composer with four buttons is {height} px tall at 390 px");
    let blocks = client
        .execute(
            "return Array.from(document.querySelectorAll('#compose > *, .grid-editor > *')).map(function (e) { return (e.id || e.className || e.tagName) + ' ' + Math.round(e.getBoundingClientRect().height); });",
            vec![],
        )
        .await
        .unwrap();
    eprintln!("its parts: {blocks}");
    assert!(height <= 1800.0, "{height} px: {blocks}");
    assert_accessible(&client, "the composer with four buttons").await;
    screenshot(&client, "06-composer-four-buttons").await;
    // A folded button opens with a tap on its line; one switch shows the developer's settings
    // for every button whose action takes data.
    click_css(&client, "#s00 > summary").await;
    client
        .find(Locator::Id("s00_kind"))
        .await
        .unwrap()
        .select_by_value("server")
        .await
        .unwrap();
    client
        .execute("document.getElementById('show-advanced').click()", vec![])
        .await
        .unwrap();
    assert!(
        client
            .find(Locator::Id("s00_data"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
}

/// The post-wide pages in the browser at 390 px: the seller opens the add-on from the post,
/// connects, writes an auto-reply while no chat is known yet, and turns it on; a new buyer gets
/// it. axe-core on every page state, light and dark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_turns_on_the_auto_reply_from_the_post() {
    let app = spawn_app(Engine::Sqlite).await;
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let client = phone(&driver, profile.path()).await;
    client
        .goto(&app.url(&format!("/sandbox/posts/{POST_1}")))
        .await
        .unwrap();
    assert_accessible(&client, "the sandbox's post page").await;
    click_text(&client, "button", "گفت‌وگو یار").await;
    wait_for_path(&client, "/post").await;
    assert_persian_rtl(&client).await;
    assert_accessible(&client, "the post page before connecting").await;
    click_text(&client, "button", "ادامه با حساب دیوار").await;
    wait_for_path(&client, "/sandbox/oauth2/auth").await;
    click_text(&client, "button", "اجازه می‌دهم").await;
    wait_for_path(&client, "/post").await;
    wait_for(&client, "#no-chats").await;
    assert_accessible(&client, "the post page with no chat known").await;
    screenshot(&client, "11-post-no-chats").await;

    click_text(&client, "a", "نوشتن پاسخ خودکار").await;
    wait_for_path(&client, "/broadcasts/new").await;
    let text = "سلام! آگهی هنوز موجود است؛ هر سؤالی دارید همین‌جا بپرسید.";
    client
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
    assert_accessible(&client, "the post-wide composer").await;
    click_text(&client, "button", "ادامه و تأیید").await;
    let turn_on = wait_for(&client, "button[name='mode'][value='auto_reply']").await;
    assert_eq!(turn_on.text().await.unwrap(), "روشن کردن پاسخ خودکار");
    assert!(
        client
            .find(Locator::Css("button[name='mode'][value='now']"))
            .await
            .is_err(),
        "nobody to send to now"
    );
    assert_accessible(&client, "the confirm step with no chat known").await;
    screenshot(&client, "12-auto-reply-confirm").await;
    turn_on.click().await.unwrap();
    wait_for_page(&client, "the auto-reply's page", |path| {
        path.starts_with("/broadcasts/") && path != "/broadcasts/new"
    })
    .await;
    let title = wait_for(&client, "main h1").await.text().await.unwrap();
    assert_eq!(title, "پاسخ خودکار به خریداران تازه");
    assert_accessible(&client, "the auto-reply's page").await;
    screenshot(&client, "13-auto-reply-on").await;

    // A buyer writes for the first time: the reply reaches them, and the post page says it is on.
    app.post_json(
        &format!("/sandbox/_control/posts/{POST_1}/conversations"),
        &json!({ "count": 1, "announce": true }),
    )
    .await;
    eventually_within(
        BROWSER_PATIENCE,
        "the new buyer has the reply",
        async || app.inspect("messages?sender_type=BOT").await["count"] == 1,
    )
    .await;
    client.goto(&app.url("/post")).await.unwrap();
    let on = wait_for(&client, "#auto-reply-on").await;
    assert!(on.text().await.unwrap().contains("تا حالا ۱ نفر"));
    assert_accessible(&client, "the post page with the auto-reply on").await;
    client.close().await.unwrap();
}
