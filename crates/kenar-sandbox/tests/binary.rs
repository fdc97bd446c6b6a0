//! The `kenar-sandbox` binary as a developer of another add-on runs it.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

use axum::{Json, Router, http::HeaderMap, routing::post};
use serde_json::{Value, json};

/// What the stand-in add-on received: the `Authorization` header and the body.
type SessionInitCall = (Option<String>, Value);

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// Starts the binary with `args`; returns it and what it printed up to its last banner line.
fn start(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kenar-sandbox"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut printed = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("the same as JSON") {
            break;
        }
    }
    (Running(child), printed)
}

fn printed_value(printed: &str, label: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|rest| rest.trim().to_string())
        .unwrap_or_else(|| panic!("`{label}` is printed:\n{printed}"))
}

#[tokio::test]
async fn a_chat_button_posts_session_init_to_the_given_add_on_with_the_printed_key() {
    // A stand-in add-on that records the session-init calls it gets.
    let calls: Arc<Mutex<Vec<SessionInitCall>>> = Arc::default();
    let recorded = calls.clone();
    let addon = Router::new().route(
        "/divar/session-init",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let recorded = recorded.clone();
            async move {
                let key = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                recorded.lock().unwrap().push((key, body));
                Json(json!({ "url": "http://127.0.0.1:9/landing" }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addon_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, addon).await });

    let (_sandbox, printed) = start(&["--bind", "127.0.0.1:0", "--addon-url", &addon_url]);
    let home = printed_value(&printed, "open the sandbox:");
    let bind = home
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/sandbox/"))
        .expect("the sandbox's address is printed")
        .to_string();
    let key = printed_value(&printed, "identification key:");
    assert!(printed.contains("for development only"));
    assert_eq!(
        printed_value(&printed, "session-init URL:"),
        format!("{addon_url}/divar/session-init")
    );
    for label in ["API key:", "OAuth secret:", "app slug (client_id):"] {
        assert!(!printed_value(&printed, label).is_empty());
    }

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let conversation = "c0ffee00-0000-4000-8000-000001000001";
    let opened = http
        .post(format!(
            "http://{bind}/sandbox/chats/{conversation}/open-addon"
        ))
        .form(&[("as", "buyer")])
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 303);
    assert_eq!(
        opened.headers()["location"],
        "http://127.0.0.1:9/landing",
        "the person is sent where the add-on said"
    );
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0.as_deref(), Some(key.as_str()));
    assert_eq!(calls[0].1["conversation_id"], conversation);

    // The same registration, as JSON.
    let app: Value = http
        .get(format!("http://{bind}/sandbox/_inspect/app"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["identification_key"], key.as_str());
    assert_eq!(app["api_base_url"], format!("http://{bind}/sandbox"));
}

#[test]
fn each_derived_url_can_be_replaced() {
    let (_sandbox, printed) = start(&[
        "--bind",
        "127.0.0.1:0",
        "--addon-url",
        "http://127.0.0.1:5000/app",
        "--session-init-url",
        "http://127.0.0.1:5000/hooks/init",
        "--events-url",
        "http://127.0.0.1:5000/hooks/events",
    ]);
    assert_eq!(
        printed_value(&printed, "session-init URL:"),
        "http://127.0.0.1:5000/hooks/init"
    );
    assert_eq!(
        printed_value(&printed, "events URL:"),
        "http://127.0.0.1:5000/hooks/events"
    );
    assert_eq!(
        printed_value(&printed, "OAuth redirect URI:"),
        "http://127.0.0.1:5000/app/oauth/callback",
        "derived under the add-on's path"
    );
}

#[tokio::test]
async fn a_non_loopback_bind_is_refused_without_allow_remote() {
    let output = Command::new(env!("CARGO_BIN_EXE_kenar-sandbox"))
        .args(["--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    // With the flag it starts: it prints its banner, keeps running and serves (and is stopped
    // here).
    let (mut started, printed) = start(&["--bind", "0.0.0.0:0", "--allow-remote"]);
    assert!(
        started.0.try_wait().unwrap().is_none(),
        "still running with --allow-remote"
    );
    let home = printed_value(&printed, "open the sandbox:");
    let answer = reqwest::get(&home).await.unwrap();
    assert_eq!(answer.status(), 200, "{home}");
}
