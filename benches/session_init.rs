//! `cargo bench --bench session_init`: session initialization against a one-write floor, and
//! the opening of the one-time links it answers with, under `wrk`.
//!
//! It starts `kenar-chat serve` (the release binary, `RUST_LOG=warn`) on a fresh database, and
//! in this process a floor server: a minimal axum handler that checks the key, parses the
//! same body, does one `INSERT … ON CONFLICT` on the same database with the same pool
//! (size and checkout ping), and answers the same JSON. Both are driven by the same `wrk` load
//! (every request a new conversation, `API-Version: 2` body), in alternating rounds, the order
//! swapped each round. Every answer is checked in wrk's Lua (200 and a `url`); a wrong answer
//! fails the benchmark. It prints each round's req/s, p50/p99, server CPU time per request
//! (the floor's is this process's, which does nothing else meanwhile) and ratio, the load on
//! the machine before the round, the medians, and the server's RSS. Then the same upsert is
//! timed through sqlx's `Any` driver and the native one. Then each round opens links: wrk
//! follows each `GET /s/…` (303 and a session cookie) with `GET /start` on that cookie (200,
//! the landing page), on links made beforehand, each link once. Then each round taps the
//! «هنوز موجود است؟» button: Divar's dynamic-action call, each answer checked.
//!
//! Needs `wrk` (`apt-get install wrk`). Options (environment): BENCH_DATABASE_URL (default a
//! temporary SQLite file; a `postgres://…/name` database is dropped and created afresh),
//! BENCH_ROUNDS (5), BENCH_SECONDS (10), BENCH_CONNECTIONS (64), BENCH_THREADS (2),
//! BENCH_POOL (the server's default pool size), BENCH_DRIVER_STATEMENTS (20000; 0 skips),
//! BENCH_LINKS (links made per entry round, 60000), BENCH_ENTRY (1; 0 skips the entry rounds),
//! BENCH_DYNAMIC (1; 0 skips the dynamic-action rounds),
//! BENCH_SERVER_BIN (another build of `kenar-chat` to measure, e.g. an older release).
//! BENCH_SHORT=1: one round of 2 s, 100 links, 200 upserts per driver, to check that it runs,
//! every answer is right and every link lands once (what CI does).

mod options;

use std::{
    process::{Child, Command, Stdio},
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::StreamExt;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Connection, postgres::PgConnection};
use subtle::ConstantTimeEq;

const KEY: &str = "bench-identification-key-0123456789";

/// The options wrk runs with, the same in every round.
fn wrk_options() -> (u32, u32, u32) {
    (
        options::option("BENCH_THREADS", 2, 2),
        options::option("BENCH_CONNECTIONS", 64, 8),
        options::option("BENCH_SECONDS", 10, 2),
    )
}

/// The pool kenar-chat uses (`db::Db::connect`): a connection is pinged on checkout only after
/// sitting idle. The floor and the driver comparison use it too, so they differ from
/// kenar-chat in nothing but what kenar-chat does per request.
fn pool_options<DB: sqlx::Database>(size: u32) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(size)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(5) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// One statement with three parameters on any pool (the pools' types differ by engine).
macro_rules! upsert {
    ($pool:expr, $sql:expr, $a:expr, $b:expr, $c:expr) => {
        sqlx::query($sql)
            .bind($a)
            .bind($b)
            .bind($c)
            .execute($pool)
            .await
            .map(|_| ())
    };
}

#[derive(Clone)]
enum FloorPool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

#[derive(Clone)]
struct Floor {
    pool: FloorPool,
    base: Arc<str>,
}

/// What the floor does per request: the least a session initialization can do.
async fn floor_init(
    State(floor): State<Floor>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, StatusCode> {
    let given = headers
        .get("authorization")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(Sha256::digest(given).ct_eq(&Sha256::digest(KEY.as_bytes()))) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let version = headers.get("api-version").and_then(|v| v.to_str().ok());
    let init = kenar::SessionInit::parse(&body, version).map_err(|_| StatusCode::BAD_REQUEST)?;
    let conversation = init
        .conversation_id
        .as_ref()
        .map(|c| c.as_str().to_string());
    let user = init.user_id.as_ref().map(|u| u.as_str().to_string());
    let now = kenar_chat::clock::Clock::now_ms(&kenar_chat::clock::SystemClock);
    let sql = "insert into bench_floor (conversation_id, user_id, created_at, updated_at)
               values ($1, $2, $3, $3)
               on conflict (conversation_id) do update set updated_at = excluded.updated_at";
    let done = match &floor.pool {
        FloorPool::Postgres(pool) => upsert!(pool, sql, conversation, user, now),
        FloorPool::Sqlite(pool) => upsert!(pool, sql, conversation, user, now),
    };
    done.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let mut token = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token);
    Ok(Json(json!({
        "status": "200",
        "message": "success",
        "url": format!("{}/s/{}", floor.base, URL_SAFE_NO_PAD.encode(token)),
    })))
}

/// A fresh database: a new temporary SQLite file, or the named PostgreSQL database recreated.
async fn fresh_database(dir: &std::path::Path) -> anyhow::Result<(String, &'static str)> {
    let Ok(url) = std::env::var("BENCH_DATABASE_URL") else {
        return Ok((
            format!("sqlite://{}/bench.db", dir.display()),
            "SQLite (temporary file)",
        ));
    };
    if !url.starts_with("postgres") {
        return Ok((url, "SQLite"));
    }
    let mut admin = url::Url::parse(&url)?;
    let name = admin.path().trim_start_matches('/').to_string();
    if name.is_empty() || name == "postgres" {
        bail!("BENCH_DATABASE_URL must name a database of its own: it is dropped and recreated");
    }
    admin.set_path("/postgres");
    let mut conn = PgConnection::connect(admin.as_str()).await?;
    sqlx::query(&format!("drop database if exists \"{name}\""))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("create database \"{name}\""))
        .execute(&mut conn)
        .await?;
    Ok((url, "PostgreSQL"))
}

fn free_port() -> anyhow::Result<u16> {
    // The child binds it a moment later; nothing else on a benchmark machine races for it.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kenar-chat serve`, in an empty directory (so no `.env` is read), quiet.
fn start_serve(
    database_url: &str,
    port: u16,
    pool: Option<u32>,
    dir: &std::path::Path,
) -> anyhow::Result<Server> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let binary = std::env::var("BENCH_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kenar-chat").to_string());
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .current_dir(dir)
        .env("KENAR_APP_SLUG", "bench-app")
        .env("KENAR_API_KEY", "bench-api-key")
        .env("KENAR_OAUTH_SECRET", "bench-oauth-secret")
        .env("DIVAR_IDENTIFICATION_KEY", KEY)
        .env("APP_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "TOKEN_ENCRYPTION_KEYS",
            base64::engine::general_purpose::STANDARD.encode(key),
        )
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env("LOG_FORMAT", "json")
        // One client (wrk) opens every link: lift the per-client throttle of `/s/…`.
        .env("KENAR_THROTTLE_PER_MINUTE", "1000000")
        .env("KENAR_THROTTLE_BURST", "1000000")
        .env("KENAR_SHUTDOWN_DELAY", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log"))?);
    if let Some(pool) = pool {
        command.env("DATABASE_MAX_CONNECTIONS", pool.to_string());
    }
    Ok(Server(
        command.spawn().context("starting kenar-chat serve")?,
    ))
}

async fn wait_ready(base: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    bail!("{base} did not become ready in 60 s; its log:\n{log}")
}

/// The last lines of the server's log (warnings and errors), for a round that failed.
fn server_log(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let last = &lines[lines.len().saturating_sub(20)..];
    format!("the server's log, last lines:\n{}", last.join("\n"))
}

/// Peak and current resident memory of a process, in MB.
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Load average and compilers running: figures taken beside a build are not valid.
fn conditions() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let rustc = Command::new("pgrep")
        .args(["-c", "rustc"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into());
    // Pressure stall information: the share of the last 10 s that tasks waited for CPU or I/O
    // (another process's build, tests or browser show here even without rustc).
    let pressure = |what: &str| {
        std::fs::read_to_string(format!("/proc/pressure/{what}"))
            .ok()
            .and_then(|p| {
                p.split_whitespace()
                    .find_map(|f| f.strip_prefix("avg10=").map(str::to_string))
            })
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "loadavg {}, rustc processes {rustc}, cpu/io pressure {}%/{}%",
        load.join(" "),
        pressure("cpu"),
        pressure("io")
    )
}

#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server's CPU time per answered request, in µs.
    cpu_us: f64,
}

/// Runs wrk with `script` and reads the line its `done` prints; fails on any wrong answer.
/// `server` is whose CPU time is counted: the pid of `serve`, or `self` for the floor.
fn wrk(script: &str, url: &str, args: &[&str], server: &str) -> anyhow::Result<(Run, String)> {
    let (threads, connections, seconds) = wrk_options();
    let cpu_before = process_cpu_seconds(server);
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "10s", "-s", script, url, "--"])
        .args(args)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let cpu = process_cpu_seconds(server) - cpu_before;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("BENCH "))
        .with_context(|| format!("wrk printed no result: {stdout}"))?;
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    if field("bad") != 0.0 || field("errors") != 0.0 || field("good") < 1.0 {
        bail!("wrong or failed answers: {line}");
    }
    Ok((
        Run {
            rps: field("good") / (field("duration_us") / 1e6),
            p50_ms: field("p50_us") / 1000.0,
            p99_ms: field("p99_us") / 1000.0,
            cpu_us: cpu / field("requests") * 1e6,
        },
        line.to_string(),
    ))
}

const COMMON_LUA: &str = r#"
local threads = {}
-- `tid` is a global each thread's state gets from setup (a local of that name would hide it).
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function report(summary, latency, names)
  local sums = {}
  for _, name in ipairs(names) do sums[name] = 0 end
  for _, t in ipairs(threads) do
    for _, name in ipairs(names) do sums[name] = sums[name] + t:get(name) end
  end
  local e = summary.errors
  local line = string.format("BENCH requests=%d errors=%d duration_us=%d p50_us=%d p99_us=%d",
    summary.requests, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99))
  for _, name in ipairs(names) do line = line .. string.format(" %s=%d", name, sums[name]) end
  io.write(line .. "\n")
end
"#;

/// Every request a new conversation; every answer must be 200 with a `url`.
const SESSION_INIT_LUA: &str = r#"
good, bad = 0, 0
local n, prefix, headers = 0, "", {}
function init(args)
  prefix = args[1] .. "-" .. tid
  headers["Authorization"] = args[2]
  headers["API-Version"] = "2"
  headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  local body = string.format('{"source":"CHAT_MESSAGE_ACTION","post_token":"gZd7omnS","conversation_id":"%s-%d","user_side":"Demand","extra_data":{"k":"v"},"user_id":"u-bench"}', prefix, n)
  return wrk.format("POST", "/divar/session-init", headers, body)
end
function response(status, headers, body)
  if status == 200 and string.find(body, '"url":"http', 1, true) then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests) report(summary, latency, {"good", "bad"}) end
"#;

/// Each link once: `GET /s/…` must answer 303 to /start with a session cookie, and that cookie's
/// `GET /start` the landing page. `good` counts landings; `ranout` requests made after this
/// thread's links were used up (the round is then invalid).
const ENTRY_LUA: &str = r#"
good, opened, bad, ranout = 0, 0, 0, 0
-- What a wrong answer was: a 303 elsewhere or without a cookie, a 4xx (of which 410: a link
-- already used or expired), a 5xx.
bad_303, bad_4xx, bad_410, bad_5xx = 0, 0, 0, 0
local links, next_link = {}, 1
local cookies, head, tail = {}, 1, 0
function init(args)
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid - 1 then table.insert(links, line) end
    i = i + 1
  end
end
function request()
  if head <= tail then
    local cookie = cookies[head]
    cookies[head] = nil
    head = head + 1
    return wrk.format("GET", "/start", {["Cookie"] = cookie})
  end
  local link = links[next_link]
  if link == nil then
    ranout = ranout + 1
    return wrk.format("GET", "/healthz")
  end
  next_link = next_link + 1
  return wrk.format("GET", link)
end
function response(status, headers, body)
  if status == 303 then
    local cookie = headers["set-cookie"] or headers["Set-Cookie"]
    local location = headers["location"] or headers["Location"]
    if cookie and location == "/start" then
      opened = opened + 1
      tail = tail + 1
      cookies[tail] = string.match(cookie, "^[^;]+")
    else
      bad = bad + 1
      bad_303 = bad_303 + 1
    end
  elseif status == 200 and string.find(body, 'action="/oauth/start"', 1, true) then
    good = good + 1
  elseif not (status == 200 and ranout > 0) then
    bad = bad + 1
    if status >= 500 then bad_5xx = bad_5xx + 1 elseif status >= 400 then bad_4xx = bad_4xx + 1 end
    if status == 410 then bad_410 = bad_410 + 1 end
  end
end
function done(summary, latency, requests)
  report(summary, latency, {"good", "opened", "bad", "bad_303", "bad_4xx", "bad_410", "bad_5xx", "ranout"})
end
"#;

/// A buyer taps «هنوز موجود است؟»: Divar's documented dynamic-action body; every answer must be
/// 200 with a `text_message`.
const DYNAMIC_ACTION_LUA: &str = r#"
good, bad = 0, 0
local headers = {}
function init(args)
  headers["Authorization"] = args[1]
  headers["Content-Type"] = "application/json"
end
function request()
  local body = '{"touchpoint":"CHAT","post_token":"gZd7omnS","conversation_id":null,"user_side":"DEMAND","extra_data":{"kc_ask":"available","post_token":"gZd7omnS"},"user_id":"u-bench"}'
  return wrk.format("POST", "/divar/dynamic-action", headers, body)
end
function response(status, headers, body)
  if status == 200 and string.find(body, '"text_message":"', 1, true) then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests) report(summary, latency, {"good", "bad"}) end
"#;

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Links made through session initialization, their paths one per line in `path`.
async fn make_links(
    base: &str,
    count: usize,
    tag: &str,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let made: Vec<anyhow::Result<String>> = futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let reply: Value = client
                    .post(format!("{base}/divar/session-init"))
                    .header("authorization", KEY)
                    .header("API-Version", "2")
                    .json(
                        &json!({ "source": "CHAT_MESSAGE_ACTION", "post_token": "gZd7omnS",
                        "conversation_id": format!("{tag}-{i}"), "user_side": "Demand",
                        "extra_data": { "k": "v" }, "user_id": "u-bench" }),
                    )
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let url = reply["url"].as_str().context("a url")?;
                Ok(url
                    .strip_prefix(base)
                    .context("a link under the base")?
                    .to_string())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let paths = made.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::write(path, paths.join("\n") + "\n")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    which_wrk()?;
    let rounds: usize = options::option("BENCH_ROUNDS", 5, 1).max(1);
    let (threads, connections, seconds) = wrk_options();
    let links_per_round: usize = options::option("BENCH_LINKS", 60_000, 100);
    let entry = options::option("BENCH_ENTRY", 1u8, 1) != 0;
    let dynamic = options::option("BENCH_DYNAMIC", 1u8, 1) != 0;
    let dir = tempfile::tempdir()?;
    let (database_url, engine) = fresh_database(dir.path()).await?;
    let is_postgres = database_url.starts_with("postgres");
    let default_pool = if is_postgres { 10 } else { 1 };
    let pool: u32 = options::option("BENCH_POOL", default_pool, default_pool);

    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let server = start_serve(&database_url, port, Some(pool), dir.path())?;
    let server_pid = server.0.id().to_string();
    wait_ready(&base, dir.path()).await?;

    let floor_pool = if is_postgres {
        let pool = pool_options::<sqlx::Postgres>(pool)
            .connect(&database_url)
            .await?;
        FloorPool::Postgres(pool)
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&database_url)?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = pool_options::<sqlx::Sqlite>(pool)
            .connect_with(options)
            .await?;
        FloorPool::Sqlite(pool)
    };
    let create = "create table if not exists bench_floor (conversation_id text primary key,
                  user_id text, created_at bigint not null, updated_at bigint not null)";
    match &floor_pool {
        FloorPool::Postgres(p) => {
            sqlx::query(create).execute(p).await?;
        }
        FloorPool::Sqlite(p) => {
            sqlx::query(create).execute(p).await?;
        }
    }
    let floor_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let floor_base = format!("http://{}", floor_listener.local_addr()?);
    let floor = Floor {
        pool: floor_pool,
        base: floor_base.clone().into(),
    };
    let router = Router::new()
        .route("/divar/session-init", post(floor_init))
        .with_state(floor);
    tokio::spawn(async move { axum::serve(floor_listener, router).await });

    let scripts = dir.path();
    let init_lua = scripts.join("session_init.lua");
    std::fs::write(&init_lua, format!("{COMMON_LUA}{SESSION_INIT_LUA}"))?;
    let entry_lua = scripts.join("entry.lua");
    std::fs::write(&entry_lua, format!("{COMMON_LUA}{ENTRY_LUA}"))?;
    let dynamic_lua = scripts.join("dynamic_action.lua");
    std::fs::write(&dynamic_lua, format!("{COMMON_LUA}{DYNAMIC_ACTION_LUA}"))?;
    let init_lua = init_lua.to_string_lossy().to_string();
    let entry_lua = entry_lua.to_string_lossy().to_string();
    let dynamic_lua = dynamic_lua.to_string_lossy().to_string();

    println!(
        "session-init on {engine}: wrk -t{threads} -c{connections} -d{seconds}s, every request a new conversation; \
         pool {pool} for both servers; {rounds} rounds, order swapped each round"
    );
    println!(
        "{:>5}  {:<12} {:>11} {:>15} {:>9} {:>11} {:>15} {:>9} {:>6}  conditions",
        "round",
        "first",
        "floor req/s",
        "floor p50/p99",
        "floor CPU",
        "kenar req/s",
        "kenar p50/p99",
        "kenar CPU",
        "ratio"
    );
    let mut ratios = Vec::new();
    let mut kenar_runs = Vec::new();
    let mut floor_runs = Vec::new();
    for round in 1..=rounds {
        let before = conditions();
        let tag = |server: &str| format!("r{round}{server}{}", std::process::id());
        let floor_first = round % 2 == 1;
        let run_floor = || wrk(&init_lua, &floor_base, &[&tag("f"), KEY], "self");
        let run_kenar = || {
            wrk(&init_lua, &base, &[&tag("k"), KEY], &server_pid)
                .with_context(|| server_log(dir.path()))
        };
        let (f, k) = if floor_first {
            let f = run_floor()?;
            (f, run_kenar()?)
        } else {
            let k = run_kenar()?;
            (run_floor()?, k)
        };
        let (f, k) = (f.0, k.0);
        let ratio = k.rps / f.rps;
        println!(
            "{round:>5}  {:<12} {:>11.0} {:>6.1} / {:>5.1} {:>6.0} µs {:>11.0} {:>6.1} / {:>5.1} {:>6.0} µs {:>6.2}  {before}",
            if floor_first { "floor" } else { "kenar-chat" },
            f.rps,
            f.p50_ms,
            f.p99_ms,
            f.cpu_us,
            k.rps,
            k.p50_ms,
            k.p99_ms,
            k.cpu_us,
            ratio
        );
        ratios.push(ratio);
        kenar_runs.push(k);
        floor_runs.push(f);
    }
    let (peak, now) = rss_mb(server.0.id());
    println!(
        "median: floor {:.0} req/s, kenar-chat {:.0} req/s (p50 {:.1} ms, p99 {:.1} ms), ratio {:.2}; \
         kenar-chat RSS {now:.0} MB now, {peak:.0} MB at most",
        median(&floor_runs.iter().map(|r| r.rps).collect::<Vec<_>>()),
        median(&kenar_runs.iter().map(|r| r.rps).collect::<Vec<_>>()),
        median(&kenar_runs.iter().map(|r| r.p50_ms).collect::<Vec<_>>()),
        median(&kenar_runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>()),
        median(&ratios),
    );

    let statements: usize = options::option("BENCH_DRIVER_STATEMENTS", 20_000, 200);
    if statements > 0 {
        println!(
            "\nthe same upsert through sqlx's Any driver and the native one ({})",
            conditions()
        );
        driver_cost(&database_url, pool, statements).await?;
    }

    if entry {
        println!(
            "\nopening links on {engine}: wrk -t{threads} -c{connections} -d{seconds}s, each link once: \
             GET /s/… (303 + cookie), then GET /start (landing page); latency per request"
        );
        println!(
            "{:>5}  {:>12} {:>11} {:>15} {:>9}  conditions",
            "round", "landings/s", "requests/s", "p50/p99", "CPU"
        );
        let mut entry_runs = Vec::new();
        for round in 1..=rounds {
            let links = dir.path().join(format!("links-{round}.txt"));
            make_links(
                &base,
                links_per_round,
                &format!("e{round}x{}", std::process::id()),
                &links,
            )
            .await?;
            let before = conditions();
            let links_arg = links.to_string_lossy().to_string();
            let (run, line) = wrk(
                &entry_lua,
                &base,
                &[&links_arg, &threads.to_string()],
                &server_pid,
            )
            .with_context(|| server_log(dir.path()))?;
            let field = |name: &str| -> f64 {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            if options::short() {
                // Few links, used up early on purpose: each opened must have landed, and all
                // opened but the one wrk's start-up check of the script takes (it calls
                // `request()` once on the first thread's state without sending it).
                let (all, opened) = (links_per_round as f64, field("opened"));
                let used_up = field("ranout") > 0.0;
                if used_up && (opened < all - 1.0 || field("good") != opened) {
                    bail!(
                        "{links_per_round} links made, but not each opened and landed once: {line}"
                    );
                }
            } else if field("ranout") > 0.0 {
                bail!("the round used up its {links_per_round} links: raise BENCH_LINKS ({line})");
            }
            let requests = field("requests") / (field("duration_us") / 1e6);
            println!(
                "{round:>5}  {:>12.0} {:>11.0} {:>6.1} / {:>5.1} {:>6.0} µs  {before}",
                run.rps, requests, run.p50_ms, run.p99_ms, run.cpu_us
            );
            entry_runs.push(run);
        }
        let (peak, now) = rss_mb(server.0.id());
        println!(
            "median: {:.0} landings/s, p50 {:.1} ms, p99 {:.1} ms; kenar-chat RSS {now:.0} MB now, {peak:.0} MB at most",
            median(&entry_runs.iter().map(|r| r.rps).collect::<Vec<_>>()),
            median(&entry_runs.iter().map(|r| r.p50_ms).collect::<Vec<_>>()),
            median(&entry_runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>()),
        );
    }
    if dynamic {
        println!(
            "\ndynamic action («هنوز موجود است؟») on {engine}: wrk -t{threads} -c{connections} -d{seconds}s, \
             Divar's documented body, each answer 200 with a text_message"
        );
        println!(
            "{:>5}  {:>11} {:>15} {:>9}  conditions",
            "round", "req/s", "p50/p99", "CPU"
        );
        let mut runs = Vec::new();
        for round in 1..=rounds {
            let before = conditions();
            let (run, _) = wrk(&dynamic_lua, &base, &[KEY], &server_pid)
                .with_context(|| server_log(dir.path()))?;
            println!(
                "{round:>5}  {:>11.0} {:>6.1} / {:>5.1} {:>6.0} µs  {before}",
                run.rps, run.p50_ms, run.p99_ms, run.cpu_us
            );
            runs.push(run);
        }
        println!(
            "median: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms (target: p99 under 50 ms)",
            median(&runs.iter().map(|r| r.rps).collect::<Vec<_>>()),
            median(&runs.iter().map(|r| r.p50_ms).collect::<Vec<_>>()),
            median(&runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>()),
        );
    }
    drop(server);
    Ok(())
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

/// CPU seconds a process (`self` or a pid) has used, user + system.
fn process_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// The same upsert, `statements` times from 64 tasks, through sqlx's `Any` driver and through
/// the native one: wall time and this process's CPU time per statement (the database's own
/// work is the same for both, and not counted).
async fn driver_cost(database_url: &str, pool: u32, statements: usize) -> anyhow::Result<()> {
    let sql = "insert into bench_floor (conversation_id, user_id, created_at, updated_at)
               values ($1, $2, $3, $3)
               on conflict (conversation_id) do update set updated_at = excluded.updated_at";
    sqlx::any::install_default_drivers();
    let any = pool_options::<sqlx::Any>(pool)
        .connect(database_url)
        .await?;
    let is_postgres = database_url.starts_with("postgres");
    let native = if is_postgres {
        FloorPool::Postgres(
            pool_options::<sqlx::Postgres>(pool)
                .connect(database_url)
                .await?,
        )
    } else {
        FloorPool::Sqlite(
            pool_options::<sqlx::Sqlite>(pool)
                .connect(database_url)
                .await?,
        )
    };
    for driver in ["any", "native", "any", "native"] {
        let started = Instant::now();
        let cpu = cpu_seconds();
        let tag = format!(
            "d{}{driver}{}",
            std::process::id(),
            started.elapsed().as_nanos()
        );
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..statements)
            .map(|i| {
                let (any, native, tag) = (any.clone(), native.clone(), &tag);
                async move {
                    let id = format!("{tag}-{i}");
                    match (driver, &native) {
                        ("any", _) => upsert!(&any, sql, id, "u", 1_i64)?,
                        (_, FloorPool::Postgres(p)) => upsert!(p, sql, id, "u", 1_i64)?,
                        (_, FloorPool::Sqlite(p)) => upsert!(p, sql, id, "u", 1_i64)?,
                    }
                    Ok(())
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        println!(
            "driver {driver:<6}: {statements} upserts in {wall:.2} s ({:.0}/s), client CPU {:.1} µs per statement",
            statements as f64 / wall,
            cpu / statements as f64 * 1e6
        );
    }
    Ok(())
}

fn which_wrk() -> anyhow::Result<()> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(_) => bail!("this benchmark drives the servers with wrk: apt-get install wrk"),
    }
}
