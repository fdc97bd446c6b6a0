use std::{
    str::FromStr,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use kenar_chat::{
    clock::{Clock, ManualClock, SharedClock, SystemClock},
    config::Settings,
    db::Db,
    sandbox::{Sandbox, SandboxOptions, launch_built},
    startup::BuildOptions,
    worker::outbox::{ExecutionOutcome, OutboxWorker},
};
use reqwest::{StatusCode, header::LOCATION};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, postgres::PgConnection};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Every log line of the test binary, at debug level, so a test can search them for secrets.
/// They are printed too when `TEST_LOG` is set.
pub static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(Default::default);

#[derive(Clone)]
struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        if std::env::var("TEST_LOG").is_ok() {
            std::io::stdout().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static TRACING: LazyLock<()> = LazyLock::new(|| {
    use tracing_subscriber::{EnvFilter, fmt, prelude::*};
    let filter = EnvFilter::new("debug,hyper=info,hyper_util=info,h2=info,rustls=info");
    let layer = fmt::layer().with_ansi(false).with_writer(|| LogSink);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
});

/// Everything logged so far, as text.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    /// For PostgreSQL: the server URL and the database's name, to drop it on purpose.
    pub postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn test_db(engine: Engine) -> TestDb {
    // Every test starts here: its logs are captured even when it launches the app itself.
    LazyLock::force(&TRACING);
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            TestDb {
                url,
                postgres: None,
                _dir: Some(dir),
            }
        }
        Engine::Postgres => {
            let admin = std::env::var("TEST_DATABASE_URL").expect(
                "TEST_DATABASE_URL must point at a PostgreSQL server for the PostgreSQL half of the tests; `bash .ci/test` sets it up",
            );
            let name = format!("kenar_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::connect(&admin)
                .await
                .expect("connecting to TEST_DATABASE_URL");
            conn.execute(format!(r#"create database "{name}""#).as_str())
                .await
                .expect("creating a test database");
            let mut url = Url::from_str(&admin).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            TestDb {
                url: url.to_string(),
                postgres: Some((admin, name)),
                _dir: None,
            }
        }
    }
}

pub struct TestApp {
    pub base: Url,
    pub sandbox: Sandbox,
    pub settings: Settings,
    pub db: Db,
    pub test_db: TestDb,
    /// Keeps cookies and does not follow redirects, like a careful browser under test.
    pub client: reqwest::Client,
    /// Where `/metrics` is served, when the test set `METRICS_ADDR`.
    pub metrics: Option<std::net::SocketAddr>,
    /// The app's clock.
    pub clock: SharedClock,
    /// Set by [`spawn_app_on_manual_clock`]: the app's clock, which only the test moves.
    manual_clock: Option<ManualClock>,
    /// Whether the app's outbox workers run; if not, the outbox delivers only when drained.
    outbox_runs: bool,
    /// An outbox worker of the app's, for [`TestApp::drain_outbox`].
    outbox: OutboxWorker,
    shutdown: CancellationToken,
}

impl TestApp {
    /// Stops this server and starts another on the same port, database and simulated Divar,
    /// with `customize` applied to its settings: a restart as an operator makes one. The
    /// browser keeps its cookies (sessions live in the database).
    pub async fn restart(&mut self, customize: impl FnOnce(&mut Settings)) {
        self.shutdown.cancel();
        let addr = self.base.socket_addrs(|| None).unwrap()[0];
        let mut settings = self.settings.clone();
        customize(&mut settings);
        let listener = eventually("the old server lets go of its port", async || {
            tokio::net::TcpListener::bind(addr).await.ok()
        })
        .await;
        let app = kenar_chat::startup::Application::build_with(
            settings.clone(),
            listener,
            BuildOptions {
                extra: Some(self.sandbox.router()),
                clock: self.clock.clone(),
                outbox_workers: self.outbox_runs,
            },
        )
        .await
        .expect("restarting the app");
        self.db = app.db().clone();
        self.outbox = app.outbox().clone();
        self.settings = settings;
        self.shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(self.shutdown.clone()));
    }

    /// A post as our own pages make it: from this browser, with its visit's form token.
    pub async fn page_post(&self, path: &str) -> reqwest::RequestBuilder {
        page_post_as(&self.client, self, path).await
    }

    /// The app's clock, which only the test moves.
    fn manual_clock(&self) -> &ManualClock {
        self.manual_clock
            .as_ref()
            .expect("an app on a manual clock (spawn_app_on_manual_clock)")
    }

    /// Moves the app's clock on, and the simulated Divar's with it: the two read the same time.
    pub fn advance(&self, by: Duration) {
        // Divar's first: what the app does at the new time reaches a Divar already there.
        self.sandbox.clock().advance(by);
        self.manual_clock().advance(by);
    }

    /// On an app whose outbox runs only when drained ([`spawn_app_on_manual_clock`]): delivers
    /// what is due. Elsewhere the outbox's own workers deliver, and this does nothing.
    pub async fn deliver_if_drained(&self) {
        if !self.outbox_runs {
            self.drain_outbox().await;
        }
    }

    /// The app's express worker (single sends only, in turns across people), for a test to run
    /// step by step with `try_execute_task`.
    pub fn express_worker(&self) -> OutboxWorker {
        self.outbox.express()
    }

    /// Delivers what the outbox holds that is due now, one batch at a time: the worker's
    /// `try_execute_task` until it finds the queue empty. Returns the batches run. Rows waiting
    /// for a later attempt stay until the clock reaches them. A paced app on a manual clock
    /// sends one message per turn of the clock: drain such an app while moving the clock on.
    pub async fn drain_outbox(&self) -> usize {
        let mut batches = 0;
        loop {
            match self
                .outbox
                .try_execute_task()
                .await
                .expect("an outbox step")
            {
                ExecutionOutcome::EmptyQueue => return batches,
                ExecutionOutcome::TaskCompleted => batches += 1,
            }
            assert!(batches < 10_000, "the outbox never ran dry");
        }
    }
}

impl TestApp {
    /// [`TestApp::drain_outbox`] until no row is left to try: between drains, moves the clocks
    /// to the earliest retry still waiting (for an app from [`spawn_app_on_manual_clock`]).
    pub async fn drain_outbox_with_retries(&self) {
        use sqlx::Row;
        for _ in 0..1_000 {
            self.drain_outbox().await;
            let next: Option<i64> = sqlx::query(
                "select min(next_attempt_at) as at from outbox where status = 'pending'",
            )
            .fetch_one(self.db.pool())
            .await
            .unwrap()
            .try_get("at")
            .unwrap();
            let Some(at) = next else {
                // One more pass marks what the last sends finished (a broadcast) done.
                self.drain_outbox().await;
                return;
            };
            let wait = at - self.clock.now_ms();
            self.advance(Duration::from_millis(wait.max(0) as u64));
        }
        panic!("rows still pending after 1,000 rounds of retries");
    }
}

/// The form token every page of a visit carries (empty without a visit).
pub async fn csrf_token_of(client: &reqwest::Client, app: &TestApp) -> String {
    csrf_token_at(client, &app.url("/")).await
}

/// The form token from the page at `url`, as a script on it would read it.
pub async fn csrf_token_at(client: &reqwest::Client, url: &str) -> String {
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    html.split_once(r#"<meta name="csrf-token" content=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(token, _)| token.to_string())
        .unwrap_or_default()
}

/// A post from `client`'s visit with its form token, in the header a script would use.
pub async fn page_post_as(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
) -> reqwest::RequestBuilder {
    let token = csrf_token_of(client, app).await;
    client.post(app.url(path)).header("x-csrf-token", token)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, SandboxOptions::default()).await
}

pub async fn spawn_app_with(engine: Engine, options: SandboxOptions) -> TestApp {
    spawn_app_customized(engine, options, |_| {}).await
}

pub async fn spawn_app_customized(
    engine: Engine,
    options: SandboxOptions,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn(engine, options, customize, None, true).await
}

/// An app whose clock moves only when the test says ([`TestApp::advance`]; it starts at the
/// present time, and the simulated Divar's clock stands and moves with it) and whose outbox
/// delivers only in [`TestApp::drain_outbox`]: time-driven behaviour (expiry, retention,
/// backoff) tested without waiting for it.
pub async fn spawn_app_on_manual_clock(
    engine: Engine,
    options: SandboxOptions,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    let clock = ManualClock::starting_now();
    spawn(engine, options, customize, Some(clock), false).await
}

/// [`spawn_app_on_manual_clock`] with the outbox's workers running, as in production: for
/// what runs concurrently (paced workers sharing one budget, sends racing for one refresh).
pub async fn spawn_app_on_manual_clock_with_workers(
    engine: Engine,
    options: SandboxOptions,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    let clock = ManualClock::starting_now();
    spawn(engine, options, customize, Some(clock), true).await
}

async fn spawn(
    engine: Engine,
    options: SandboxOptions,
    customize: impl FnOnce(&mut Settings),
    manual_clock: Option<ManualClock>,
    outbox_runs: bool,
) -> TestApp {
    LazyLock::force(&TRACING);
    let test_db = test_db(engine).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a port");
    let clock = match &manual_clock {
        Some(manual) => manual.shared(),
        None => SystemClock::shared(),
    };
    let build = BuildOptions {
        clock: clock.clone(),
        outbox_workers: outbox_runs,
        ..BuildOptions::default()
    };
    let launched = launch_built(listener, &test_db.url, options, customize, build)
        .await
        .expect("launching the app");
    if let Some(manual) = &manual_clock {
        launched.sandbox.clock().hold_at(manual.now_ms());
    }
    let db = launched.app.db().clone();
    let outbox = launched.app.outbox().clone();
    let metrics = launched.app.metrics_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(launched.app.run_until_stopped(shutdown.clone()));
    TestApp {
        base: launched.base_url,
        sandbox: launched.sandbox,
        settings: launched.settings,
        db,
        test_db,
        client: browser(),
        metrics,
        clock,
        manual_clock,
        outbox_runs,
        outbox,
        shutdown,
    }
}

/// Now, on the machine's clock, for calls into the store outside an app.
pub fn now_ms() -> i64 {
    SystemClock.now_ms()
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        // A fresh connection per request: a restarted server does not inherit stale ones.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

pub fn assert_redirect(response: &reqwest::Response) -> String {
    assert!(
        response.status().is_redirection(),
        "expected a redirect, got {}",
        response.status()
    );
    response.headers()[LOCATION]
        .to_str()
        .expect("ascii location")
        .to_string()
}

/// Seeded conversation ids: post 1..=3, buyer 1..=4 (post 2 has four buyers).
pub fn conversation(post: usize, buyer: usize) -> String {
    format!("c0ffee00-0000-4000-8000-{post:06}{buyer:06}")
}

pub const POST_1: &str = "gZd7omnS";
pub const POST_2: &str = "wZC44q5D";
pub const SELLER_1: &str = "u-ali";
pub const BUYER_1: &str = "u-sara";
pub const BUYER_2: &str = "u-hamid";

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub reply: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// GET `path` on the app with this test's browser.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// GET `path` and return the page's text.
    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    pub fn redirect_uri(&self) -> String {
        self.settings.redirect_uri().to_string()
    }

    pub fn api_key(&self) -> String {
        self.sandbox.app().api_key.clone()
    }

    pub fn auth_query(
        &self,
        scope: &str,
        state: &str,
        pkce: Option<&Pkce>,
    ) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("response_type", "code".to_string()),
            ("client_id", self.sandbox.app().slug.clone()),
            ("redirect_uri", self.redirect_uri()),
            ("scope", scope.to_string()),
            ("state", state.to_string()),
        ];
        if let Some(pkce) = pkce {
            query.push(("code_challenge", pkce.challenge.clone()));
            query.push(("code_challenge_method", "S256".to_string()));
        }
        query
    }

    pub async fn get_consent(&self, query: &[(&str, String)]) -> reqwest::Response {
        self.client
            .get(self.url("/sandbox/oauth2/auth"))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_decision(
        &self,
        query: &[(&str, String)],
        user: &str,
        decision: &str,
    ) -> reqwest::Response {
        let mut form: Vec<(&str, String)> = query.to_vec();
        form.push(("user_id", user.to_string()));
        form.push(("decision", decision.to_string()));
        self.post_form("/sandbox/oauth2/auth", &form).await
    }

    /// Runs the consent screen as `user` and returns the authorization code.
    pub async fn authorize(&self, scope: &str, user: &str, pkce: Option<&Pkce>) -> String {
        let state = uuid::Uuid::new_v4().to_string();
        let query = self.auth_query(scope, &state, pkce);
        let page = self.get_consent(&query).await;
        assert_eq!(page.status(), StatusCode::OK, "consent page");
        let response = self.post_decision(&query, user, "approve").await;
        let location = Url::parse(&assert_redirect(&response)).unwrap();
        let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(
            params.get("state"),
            Some(&state),
            "state comes back unchanged"
        );
        params.get("code").cloned().expect("a code on approval")
    }

    pub async fn token_request(&self, form: &[(&str, &str)]) -> reqwest::Response {
        let slug = self.sandbox.app().slug.clone();
        let secret = self.sandbox.app().oauth_secret.clone();
        let mut body: Vec<(&str, &str)> = vec![("client_id", &slug), ("client_secret", &secret)];
        body.extend_from_slice(form);
        self.post_form("/sandbox/oauth2/token", &body).await
    }

    pub async fn exchange(&self, code: &str, verifier: Option<&str>) -> reqwest::Response {
        let redirect = self.redirect_uri();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect.as_str()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        self.token_request(&form).await
    }

    /// A complete grant: consent as `user`, then the code exchange with PKCE.
    pub async fn grant(&self, scope: &str, user: &str) -> Tokens {
        let pkce = Pkce::new();
        let code = self.authorize(scope, user, Some(&pkce)).await;
        let response = self.exchange(&code, Some(&pkce.verifier)).await;
        assert_eq!(response.status(), StatusCode::OK);
        tokens_from(response.json().await.unwrap())
    }

    /// A complete grant of `CONVERSATION_SEND_MESSAGE` for `conversation_id` by `user`.
    pub async fn grant_conversation(&self, conversation_id: &str, user: &str) -> Tokens {
        self.grant(
            &format!("CONVERSATION_SEND_MESSAGE.{conversation_id}"),
            user,
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        let redirect = self.redirect_uri();
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("redirect_uri", redirect.as_str()),
        ])
        .await
    }

    /// Divar's send-message endpoint for `conversation_id`.
    pub fn messages_path(&self, conversation_id: &str) -> String {
        format!("/sandbox/v2/open-platform/conversations/{conversation_id}/messages")
    }

    pub async fn send_message(
        &self,
        conversation_id: &str,
        access_token: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&self.messages_path(conversation_id)))
            .header("x-api-key", self.api_key())
            .bearer_auth(access_token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `user` withdraws the app's access in Divar (from the sandbox's screens).
    pub async fn revoke_in_divar(&self, user: &str) {
        let revoked = self
            .client
            .post(self.url(&format!("/sandbox/users/{user}/revoke")))
            .send()
            .await
            .unwrap();
        assert_redirect(&revoked);
    }

    /// Sends `text` to `conversation_id` with `access_token` as an add-on would; Divar's status.
    pub async fn send_text(
        &self,
        conversation_id: &str,
        access_token: &str,
        text: &str,
    ) -> StatusCode {
        self.send_message(conversation_id, access_token, &text_message(text))
            .await
            .status()
    }

    pub async fn inspect(&self, what: &str) -> Value {
        let response = self.get(&format!("/sandbox/_inspect/{what}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn control(&self, settings: Value) {
        let response = self
            .post_json("/sandbox/_control/settings", &settings)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{:?}",
            response.text().await
        );
    }

    pub async fn block(&self, conversation_id: &str, blocked: bool) {
        let response = self
            .post_json(
                &format!("/sandbox/_control/conversations/{conversation_id}"),
                &json!({ "blocked": blocked }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

pub fn tokens_from(reply: Value) -> Tokens {
    Tokens {
        access: reply["access_token"]
            .as_str()
            .expect("access_token")
            .to_string(),
        refresh: reply["refresh_token"].as_str().map(str::to_string),
        reply,
    }
}

pub fn text_message(text: &str) -> Value {
    json!({ "type": "TEXT", "message": text })
}

// ---------------------------------------------------------------------------------------------
// Waiting for what the test does not control.

impl TestApp {
    /// Outbox rows still to deliver: due, waiting for a retry, or being sent.
    pub async fn outbox_queued(&self) -> i64 {
        use sqlx::Row;
        sqlx::query("select count(*) as n from outbox where status = 'pending'")
            .fetch_one(self.db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }

    /// Waits until the add-on's outbox workers have nothing left to deliver.
    pub async fn outbox_settles(&self) {
        eventually("the outbox has nothing left to send", async || {
            self.outbox_queued().await == 0
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Time the test controls: paced sends on a manual clock.

impl TestApp {
    /// Message calls the simulated Divar has received, whatever their answer.
    pub fn divar_send_calls(&self) -> usize {
        self.sandbox
            .world()
            .api_calls
            .iter()
            .filter(|call| call.path.ends_with("/messages"))
            .count()
    }

    /// Sends a person is waiting for that the outbox holds and that are due now.
    async fn due_single_sends(&self) -> i64 {
        use sqlx::Row;
        sqlx::query(
            "select count(*) as n from outbox
             where status = 'pending' and priority = 0 and next_attempt_at <= $1",
        )
        .bind(self.clock.now_ms())
        .fetch_one(self.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
    }

    /// Lets the paced sends of an app on a manual clock, its workers running, go on until
    /// `done` holds: whenever the app waits for the pacer's next turn and for nothing else, moves
    /// the clock (and Divar's) to that turn. Nothing else means: every send the pacer let go has
    /// reached Divar, and every person's message due in the outbox waits in the pacer's lane
    /// rather than being on its way there. So time moves as if the app's own work took none,
    /// and Divar logs each send at its turn.
    ///
    /// Every send must go through the pacer: a send stopped after its turn (by a cancel) would
    /// hold the clock still.
    pub async fn pace_until(
        &self,
        what: impl std::fmt::Display,
        mut done: impl AsyncFnMut() -> bool,
    ) {
        assert!(
            self.outbox_runs,
            "pace_until needs the outbox workers (spawn_app_on_manual_clock_with_workers)"
        );
        let clock = self.manual_clock();
        let pacer = self.outbox.pacer();
        loop {
            let next_turn = eventually(
                format!("{what}: the app waits for the pacer's next turn"),
                async || {
                    if done().await {
                        return Some(None);
                    }
                    // Read first: a turn is given only once the clock reaches a sleeper's time,
                    // and counted before the next sleeper is listed. So a sleeper still to come
                    // means no turn was given since, and the counts below are up to date.
                    let now = clock.now_ms();
                    let wait_ms = clock.next_wake().filter(|at| *at > now)? - now;
                    if pacer.turns_given() as usize > self.divar_send_calls() {
                        return None; // a send on its way to Divar
                    }
                    if pacer.interactive_waiting() == 0 && self.due_single_sends().await > 0 {
                        return None; // a person's message on its way to the pacer
                    }
                    Some(Some(wait_ms))
                },
            )
            .await;
            match next_turn {
                Some(wait_ms) => self.advance(Duration::from_millis(wait_ms as u64)),
                None => return,
            }
        }
    }
}

/// How long [`eventually`] waits for a condition before it fails the test: generous, because the
/// machine running the tests may be busy; a condition that holds ends the wait at once.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// What a condition checked by [`eventually`] returns: `true`, or `Some(what it found)`, once it
/// holds.
pub trait Settled {
    type Value;
    fn settled(self) -> Option<Self::Value>;
}

impl Settled for bool {
    type Value = ();
    fn settled(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Settled for Option<T> {
    type Value = T;
    fn settled(self) -> Option<T> {
        self
    }
}

/// Waits until `check` holds (returns `true` or `Some`) and returns what it found; fails the test,
/// naming `what`, when it still does not after [`PATIENCE`]. For what something outside the test's
/// hands makes true: the add-on's workers, a browser, another process. Time the test controls (the
/// simulated Divar's clock) is moved forward instead.
pub async fn eventually<R: Settled>(
    what: impl std::fmt::Display,
    check: impl AsyncFnMut() -> R,
) -> R::Value {
    eventually_within(PATIENCE, what, check).await
}

/// [`eventually`] with its own patience, for a condition that takes long by design.
pub async fn eventually_within<R: Settled>(
    patience: Duration,
    what: impl std::fmt::Display,
    check: impl AsyncFnMut() -> R,
) -> R::Value {
    match wait_until(patience, check).await {
        Some(found) => found,
        None => panic!("{what}: still not after {patience:?}"),
    }
}

/// Checks `check` until it holds and returns what it found, or `None` after `patience`: for a
/// caller that says more than [`eventually`] can when it fails.
pub async fn wait_until<R: Settled>(
    patience: Duration,
    mut check: impl AsyncFnMut() -> R,
) -> Option<R::Value> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(found) = check().await.settled() {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        // The one sleep in tests/: the pause between two looks at a condition that another task
        // or process makes true. Short at first, so a wait ends soon after the condition holds;
        // then at most 100 ms, so a long wait does not keep a shared machine busy looking.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// The add-on as a person reaches and uses it: from a chat or a post in the simulated Divar,
// through consent, to the composer.

/// A send from the composer: the form's idempotency key, the status page the answer led to and
/// the message's id.
pub struct Queued {
    pub key: String,
    pub location: String,
    pub id: String,
}

/// Where a send leads: `/messages/<id>/status`, as the message's id.
pub fn queued_message(location: &str) -> String {
    let id = location
        .strip_prefix("/messages/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("a send leads to its status page: {location}"));
    assert!(location.contains("/status"), "{location}");
    id.to_string()
}

/// The value of `name` in `url`'s query (e.g. a consent URL's `state`).
pub fn query_value(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .1
        .into_owned()
}

impl TestApp {
    /// Taps the add-on in a sandbox chat as `side` from `client`'s browser; returns the one-time
    /// link Divar sends the person to (not yet opened).
    pub async fn open_addon_link(
        &self,
        client: &reqwest::Client,
        conv: &str,
        side: &str,
    ) -> String {
        let opened = client
            .post(self.url(&format!("/sandbox/chats/{conv}/open-addon")))
            .form(&[("as", side)])
            .send()
            .await
            .unwrap();
        let link = assert_redirect(&opened);
        assert!(link.starts_with(&self.url("/s/")), "{link}");
        link
    }

    /// Opens the add-on from a sandbox chat as `side` and follows the one-time link. Returns where
    /// the link led.
    pub async fn enter_from_chat(&self, conv: &str, side: &str) -> String {
        let link = self.open_addon_link(&self.client, conv, side).await;
        assert_redirect(&self.client.get(&link).send().await.unwrap())
    }

    /// Opens the add-on from the post's page as `user` and follows the one-time link. Returns
    /// where the link led.
    pub async fn enter_from_post(&self, post: &str, user: &str) -> String {
        let opened = self
            .client
            .post(self.url(&format!("/sandbox/posts/{post}/open-addon")))
            .form(&[("user_id", user)])
            .send()
            .await
            .unwrap();
        let link = assert_redirect(&opened);
        assert_redirect(&self.client.get(&link).send().await.unwrap())
    }

    /// Taps connect (`start` is `/oauth/start` or `/oauth/start?for=post`); returns where the
    /// add-on sends the person: Divar's consent URL.
    pub async fn start_consent(&self, start: &str) -> Url {
        let started = self.page_post(start).await.send().await.unwrap();
        Url::parse(&assert_redirect(&started)).unwrap()
    }

    /// Starts consent from the chat's landing page and answers Divar's consent page as `user`
    /// with `decision`. Returns the add-on's answer to the callback.
    pub async fn consent(&self, user: &str, decision: &str) -> reqwest::Response {
        self.consent_from("/oauth/start", user, decision).await
    }

    /// Like [`TestApp::consent`], starting from `start` (e.g. `/oauth/start?for=post`).
    pub async fn consent_from(&self, start: &str, user: &str, decision: &str) -> reqwest::Response {
        let authorize = self.start_consent(start).await;
        self.decide(&authorize, user, decision).await
    }

    /// Approves Divar's consent page at `authorize` as `user`; returns the add-on's answer.
    pub async fn approve(&self, authorize: &Url, user: &str) -> reqwest::Response {
        self.decide(authorize, user, "approve").await
    }

    async fn decide(&self, authorize: &Url, user: &str, decision: &str) -> reqwest::Response {
        assert!(authorize.path().ends_with("/sandbox/oauth2/auth"));
        let scope = query_value(authorize, "scope");
        assert!(scope.ends_with(" offline_access"), "{scope}");
        assert_eq!(query_value(authorize, "code_challenge_method"), "S256");
        let page = self.client.get(authorize.as_str()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let decided = self.post_decision_on(authorize, user, decision).await;
        let callback = assert_redirect(&decided);
        assert!(
            callback.starts_with(&self.url("/oauth/callback")),
            "{callback}"
        );
        self.client.get(callback).send().await.unwrap()
    }

    /// Answers Divar's consent page at `authorize` as `user` with `decision`; returns Divar's
    /// answer (a redirect to the add-on's callback, not followed).
    pub async fn post_decision_on(
        &self,
        authorize: &Url,
        user: &str,
        decision: &str,
    ) -> reqwest::Response {
        let pairs: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
        let query: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        self.post_decision(&query, user, decision).await
    }

    /// Enters from the chat as `side` of `conv` and connects as `user`. Ends on the composer.
    pub async fn connect_conversation(&self, conv: &str, side: &str, user: &str) {
        assert_eq!(self.enter_from_chat(conv, side).await, "/start");
        let landing = self.get_html("/start").await;
        assert!(landing.contains("ادامه با حساب دیوار"));
        let callback = self.consent(user, "approve").await;
        assert_eq!(assert_redirect(&callback), "/compose");
    }

    /// The seller opens the add-on from their post and grants the post-wide scopes. Ends on the
    /// post's page.
    pub async fn open_post_as_owner(&self, post: &str, seller: &str) {
        assert_eq!(self.enter_from_post(post, seller).await, "/post");
        let page = self.get_html("/post").await;
        assert!(page.contains("ادامه با حساب دیوار"));
        let callback = self
            .consent_from("/oauth/start?for=post", seller, "approve")
            .await;
        assert_eq!(assert_redirect(&callback), "/post");
    }

    /// The idempotency key of a fresh composer form.
    pub async fn idempotency_key(&self) -> String {
        let html = self.get_html("/compose").await;
        let marker = r#"name="idempotency_key" value=""#;
        let start = html
            .find(marker)
            .expect("the composer has an idempotency key")
            + marker.len();
        html[start..start + 36].to_string()
    }

    /// Posts the composer's form with `fields`, as the page does.
    pub async fn post_compose(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.submit_form("/compose", fields).await
    }

    /// Posts a fresh composer form (its idempotency key and `fields`); the answer leads to the new
    /// message's status page.
    pub async fn queue_from_composer(&self, fields: &[(&str, &str)]) -> Queued {
        let key = self.idempotency_key().await;
        let mut form = vec![("idempotency_key", key.as_str())];
        form.extend_from_slice(fields);
        let location = assert_redirect(&self.post_compose(&form).await);
        let id = queued_message(&location);
        Queued { key, location, id }
    }

    /// Sends `text` from the composer and waits until Divar has it; returns the message's id.
    pub async fn send_from_composer(&self, text: &str) -> String {
        self.send_from_composer_with(&[("text", text)]).await
    }

    /// Sends the composer form `fields` and waits until Divar has it; returns the message's id.
    /// An app whose outbox runs only when drained ([`spawn_app_on_manual_clock`]) is drained.
    pub async fn send_from_composer_with(&self, fields: &[(&str, &str)]) -> String {
        let id = self.queue_from_composer(fields).await.id;
        self.deliver_if_drained().await;
        assert_eq!(self.final_status(&id).await["status"], "sent");
        id
    }

    /// Polls a message's status (as its page's script does) until it is no longer sending.
    pub async fn final_status(&self, message_id: &str) -> Value {
        eventually(
            format!("message {message_id} leaves «sending»"),
            async || {
                let progress = self.message_progress(message_id).await;
                (progress["status"] != "sending").then_some(progress)
            },
        )
        .await
    }

    /// A message's status now, as its page's script polls it.
    pub async fn message_progress(&self, message_id: &str) -> Value {
        self.get(&format!("/messages/{message_id}/progress"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// The add-on's (BOT) messages Divar has in `conv`.
    pub async fn bot_messages(&self, conv: &str) -> Value {
        self.inspect(&format!("messages?conversation_id={conv}&sender_type=BOT"))
            .await
    }

    /// `side` taps the button at (0, 0) under the chat message `message_id` of `conv`, in
    /// `client`'s browser; returns Divar's answer (not followed).
    pub async fn click_button(
        &self,
        client: &reqwest::Client,
        conv: &str,
        side: &str,
        message_id: &str,
    ) -> reqwest::Response {
        client
            .post(self.url(&format!("/sandbox/chats/{conv}/click")))
            .form(&[
                ("as", side),
                ("message_id", message_id),
                ("row", "0"),
                ("col", "0"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// `side` taps the first button of the first row under the BOT message `index` of `conv`, in
    /// a browser of their own; returns where the one-time link led and that page, as that
    /// browser got it.
    pub async fn tap_first_button(&self, conv: &str, side: &str, index: usize) -> (String, String) {
        let bot = self.bot_messages(conv).await;
        let visitor = browser();
        let message_id = bot["messages"][index]["id"].as_str().unwrap();
        let clicked = self.click_button(&visitor, conv, side, message_id).await;
        let link = assert_redirect(&clicked);
        let entered = visitor.get(&link).send().await.unwrap();
        let location = assert_redirect(&entered);
        let page = self.get_as(&visitor, &location).await;
        assert_eq!(page.status(), StatusCode::OK, "{location}");
        (location, page.text().await.unwrap())
    }
}

// ---------------------------------------------------------------------------------------------
// Plain requests, and a simulated Divar of its own.

impl TestApp {
    /// GET `path` on the app from `client`'s browser (another person's).
    pub async fn get_as(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        client.get(self.url(path)).send().await.unwrap()
    }

    /// Submits `form` to `path` as one of our pages does: from this browser, with its visit's
    /// form token.
    pub async fn submit_form<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        form: &T,
    ) -> reqwest::Response {
        self.page_post(path).await.form(form).send().await.unwrap()
    }

    /// Presses one of our pages' buttons that carry no fields (resend, cancel, disconnect…).
    pub async fn submit(&self, path: &str) -> reqwest::Response {
        self.page_post(path).await.send().await.unwrap()
    }

    /// Divar's session-initialization call to the add-on, signed with the app's identification
    /// key, with `API-Version: version` when given.
    pub fn session_init_request(
        &self,
        version: Option<&str>,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        let request = self
            .client
            .post(self.url("/divar/session-init"))
            .header("authorization", &self.sandbox.app().identification_key)
            .json(body);
        match version {
            Some(version) => request.header("API-Version", version),
            None => request,
        }
    }

    /// [`TestApp::session_init_request`], sent.
    pub async fn session_init(&self, version: Option<&str>, body: &Value) -> reqwest::Response {
        self.session_init_request(version, body)
            .send()
            .await
            .unwrap()
    }

    /// POST `body` as JSON to `path` from this test's browser, as Divar or a script would (no
    /// form token).
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST `form` to `path` from this test's browser without a form token (the simulated
    /// Divar's screens take none).
    pub async fn post_form<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        form: &T,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

/// A test app whose browser is the buyer of conversation (1, 1), connected, at the composer.
pub async fn spawn_connected_buyer(engine: Engine) -> TestApp {
    let app = spawn_app(engine).await;
    app.connect_conversation(&conversation(1, 1), "buyer", BUYER_1)
        .await;
    app
}

/// The session-initialization body (API version 2) of `user` tapping the add-on in the chat
/// `conversation` of post 1.
pub fn chat_session_init(conversation: &str, user: &str) -> Value {
    json!({ "source": "CHAT", "post_token": POST_1, "conversation_id": conversation,
            "user_side": "DEMAND", "extra_data": {}, "user_id": user })
}

/// A test app whose simulated Divar issues access tokens that live `ttl`. Both run on a manual
/// clock (the app's outbox workers running): a token's lifetime is passed with
/// [`TestApp::advance`], never waited out.
pub async fn spawn_app_with_token_ttl(engine: Engine, ttl: Duration) -> TestApp {
    let options = SandboxOptions {
        access_token_ttl: ttl,
        ..SandboxOptions::default()
    };
    spawn_app_on_manual_clock_with_workers(engine, options, |_| {}).await
}

/// A simulated Divar alone, on a port of its own, registered for an add-on under `addon`.
/// Returns its base URL (no trailing slash) and the handle on it.
pub async fn serve_sandbox(addon: &Url) -> (String, Sandbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let sandbox = Sandbox::new(
        kenar_chat::sandbox::AppRegistration::generate(kenar_chat::sandbox::AddonUrls::under(
            addon,
        )),
        base.clone(),
        SandboxOptions::default(),
    );
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base.as_str().trim_end_matches('/').to_string(), sandbox)
}

/// Runs an async test body once per engine: `both_engines!(name, body_fn)`.
#[macro_export]
macro_rules! both_engines {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::helpers::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::helpers::Engine::Postgres).await
            }
        }
    };
}

/// A number as the add-on's pages write it, in Persian digits.
pub fn fa(n: impl std::fmt::Display) -> String {
    n.to_string()
        .chars()
        .map(|c| {
            c.to_digit(10)
                .and_then(|d| char::from_u32(0x06F0 + d))
                .unwrap_or(c)
        })
        .collect()
}

/// Typed ids for calls into the add-on's own layers.
pub fn conversation_id(id: &str) -> kenar::ConversationId {
    kenar::ConversationId::parse(id).unwrap()
}

pub fn post_token(token: &str) -> kenar::PostToken {
    kenar::PostToken::parse(token).unwrap()
}

pub fn user_id(id: &str) -> kenar::UserId {
    kenar::UserId::parse(id).unwrap()
}

/// A user's real tokens from the simulated Divar, issued without its consent screen and sealed
/// into `db` as the consent flow stores them.
pub async fn store_grant(
    db: &Db,
    settings: &Settings,
    sandbox: &Sandbox,
    subject: kenar_chat::db::grants::Subject,
    user: &str,
    scope: &str,
) {
    use kenar::{
        oauth::{IssuedTokens, KenarOAuth},
        scopes::Scope,
    };
    use kenar_chat::{crypto::TokenCipher, services::vault::Vault};
    use secrecy::SecretString;
    let (access, refresh) = sandbox
        .world()
        .issue_tokens(user, Scope::parse_list(scope).unwrap());
    let oauth = KenarOAuth::new(
        &settings.oauth_credentials(),
        kenar::http_client(Duration::from_secs(5), "kenar-chat-tests").unwrap(),
    )
    .unwrap();
    let vault = Vault::new(
        db.clone(),
        TokenCipher::new(&settings.token_keys),
        oauth,
        SystemClock::shared(),
    );
    let issued = IssuedTokens {
        access_token: SecretString::from(access.token),
        refresh_token: refresh.map(|r| SecretString::from(r.token)),
        expires_in: Duration::from_secs(3600),
        scope: Some(scope.to_string()),
    };
    vault
        .store(subject, &user_id(user), scope, &issued)
        .await
        .unwrap();
}

/// Rows in `table`.
pub async fn count(app: &TestApp, table: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(&format!("select count(*) as n from {table}"))
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// The value of a form's hidden field in `html` (values in tests are plain tokens and names).
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Divar's webhook call to the add-on, signed with `key`.
pub async fn post_event(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/divar/events"))
        .header("authorization", key)
        .json(body)
        .send()
        .await
        .unwrap()
}
