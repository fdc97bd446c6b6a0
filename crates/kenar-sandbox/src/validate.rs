//! Checks a send-message body the way Divar would: the request schema of Divar's own OpenAPI
//! document (vendored in `openapi/`), plus the rules its docs state in prose.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use kenar::icons;
use serde_json::{Value, json};

/// The OpenAPI schema of the send operation's body, its `$ref`s resolved within the document.
static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let document: Value = serde_json::from_str(include_str!("../openapi/openapi-v3.json"))
        .expect("the vendored OpenAPI document is valid JSON");
    let schema = json!({
        "$ref": "#/components/schemas/ChatAPIConversationSendMessageBody",
        "components": document["components"],
    });
    // OpenAPI 3.0 schemas are a dialect of JSON Schema draft 4 (`example` and `title` are
    // annotations, ignored here).
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .expect("the send-message schema of the OpenAPI document compiles")
});

/// What the docs say in prose and the schema does not carry.
const MAX_ROWS: usize = kenar::message::GRID_ROWS;
const MAX_BUTTONS: usize = kenar::message::GRID_COLS;

/// `Ok` when Divar would accept the body; otherwise every problem found, joined.
pub fn send_message_body(body: &Value) -> Result<(), String> {
    // The schema lists `message` as required, yet the operation says text or media, not both:
    // a media message may leave `message` out, or send it empty (proto3's JSON reads both the
    // same). Either form is accepted.
    let mut checked = body.clone();
    if let Some(fields) = checked.as_object_mut()
        && fields.contains_key("media_token")
    {
        fields.entry("message").or_insert_with(|| Value::from(""));
    }
    let mut problems: Vec<String> = SCHEMA
        .iter_errors(&checked)
        .map(|e| match e.kind {
            // The icon enum has 822 values: name the offending value, not the whole list.
            ValidationErrorKind::Enum { .. } => {
                format!(
                    "{} is not an allowed value at `{}`",
                    e.instance, e.instance_path
                )
            }
            _ => format!("{} at `{}`", e, e.instance_path),
        })
        .collect();
    if problems.is_empty() {
        prose_rules(body, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn prose_rules(body: &Value, problems: &mut Vec<String>) {
    // `chat/users_conversations.md`: text messages only.
    if let Some(kind) = body.get("type")
        && kind != "TEXT"
    {
        problems.push(format!("type must be TEXT, not {kind}"));
    }
    let text = body
        .get("message")
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty());
    let media = body.get("media_token").is_some();
    // The OpenAPI description of the send operation: either a message or a media token.
    match (text, media) {
        (None, false) => problems.push("message is empty".into()),
        (Some(_), true) => problems.push("send either message or media_token, not both".into()),
        _ => {}
    }
    for grid in ["sender_buttons", "receiver_buttons"] {
        let rows = body
            .pointer(&format!("/{grid}/rows"))
            .and_then(Value::as_array);
        if rows.is_some_and(|rows| rows.len() > MAX_ROWS) {
            problems.push(format!("{grid}: more than {MAX_ROWS} rows"));
        }
        for (r, row) in rows.into_iter().flatten().enumerate() {
            let buttons = row.get("buttons").and_then(Value::as_array);
            match buttons {
                Some(buttons) if buttons.len() > MAX_BUTTONS => problems.push(format!(
                    "{grid}.rows[{r}]: more than {MAX_BUTTONS} buttons in a row"
                )),
                Some(buttons) if buttons.is_empty() => {
                    problems.push(format!("{grid}.rows[{r}]: a row needs a button"))
                }
                _ => {}
            }
            for (b, button) in buttons.into_iter().flatten().enumerate() {
                let at = format!("{grid}.rows[{r}].buttons[{b}]");
                button_rules(button, &at, problems);
            }
        }
    }
}

fn button_rules(button: &Value, at: &str, problems: &mut Vec<String>) {
    if button
        .get("caption")
        .and_then(Value::as_str)
        .is_none_or(|c| c.trim().is_empty())
    {
        problems.push(format!("{at}: caption is missing"));
    }
    if let Some(name) = button.get("icon_name").and_then(Value::as_str)
        && !icons::is_known(name)
    {
        problems.push(format!("{at}: unknown icon_name `{name}`"));
    }
    match button.get("action").and_then(Value::as_object) {
        Some(action) if action.len() == 1 => {
            if let Some(link) = action.get("open_direct_link") {
                let ok = link
                    .as_str()
                    .and_then(|l| url::Url::parse(l).ok())
                    .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok {
                    problems.push(format!("{at}: open_direct_link must be an http(s) URL"));
                }
            }
        }
        Some(action) => problems.push(format!(
            "{at}: action must hold exactly one of open_direct_link, open_server_link, get_dynamic_action, open_post_page, open_post_manage_page (it holds {})",
            action.len()
        )),
        None => problems.push(format!("{at}: action is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn button(icon: &str) -> Value {
        json!({"action": {"open_direct_link": "https://x.example/"}, "icon": icon, "caption": "ok"})
    }

    #[test]
    fn accepts_the_docs_example() {
        let body = json!({
            "type": "TEXT", "message": "Your inspection is booked.",
            "sender_buttons": {"rows": [{"buttons": [button("CAR_INSPECTED"),
                {"action": {"open_server_link": {"data": {"id": "1"}}}, "icon": "SEND", "caption": "Manage"}]}]},
            "receiver_buttons": {"rows": [{"buttons": [button("REAL_ESTATE")]}]}
        });
        send_message_body(&body).unwrap();
    }

    #[test]
    fn rejects_what_divar_rejects() {
        let row = json!({"buttons": [button("SEND")]});
        let cases = [
            (
                json!({"message": "x", "sender_buttons": {"rows": [row, row, row, row]}}),
                "rows",
            ),
            (
                json!({"message": "x", "sender_buttons": {"rows": [{"buttons": [button("SEND"), button("SEND"), button("SEND"), button("SEND")]}]}}),
                "buttons",
            ),
            (
                json!({"message": "x", "sender_buttons": {"rows": [{"buttons": [button("REAL_STATE")]}]}}),
                "REAL_STATE",
            ),
            (json!({"message": "   "}), "empty"),
            (json!({"message": "x", "media_token": "m"}), "not both"),
            (json!({"type": "IMAGE", "message": "x"}), "type"),
            (json!({"text": "x"}), "message"),
            (
                json!({"message": "x", "receiver_buttons": {"rows": [{"buttons": [{"caption": "a", "action": {"open_direct_link": "https://a/", "open_post_page": {"post_token": "p"}}}]}]}}),
                "exactly one",
            ),
            (
                json!({"message": "x", "receiver_buttons": {"rows": [{"buttons": [{"caption": "a", "action": {"open_direct_link": "javascript:alert(1)"}}]}]}}),
                "http(s)",
            ),
        ];
        for (body, expected) in cases {
            let err = send_message_body(&body).unwrap_err();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }
}
