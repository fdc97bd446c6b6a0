//! Checks a send-message body the way Divar would: the JSON schema from the spec, plus the
//! rules its docs state in prose.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::domain::icons;

static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let mut schema: Value = serde_json::from_str(include_str!("send-message.schema.json"))
        .expect("the bundled schema is valid JSON");
    // The file's relative `$id` is not a base URI; its `$ref`s are all local.
    if let Some(map) = schema.as_object_mut() {
        map.remove("$id");
    }
    jsonschema::validator_for(&schema).expect("the bundled schema compiles")
});

/// `Ok` when Divar would accept the body; otherwise every problem found, joined.
pub fn send_message_body(body: &Value) -> Result<(), String> {
    let mut problems: Vec<String> = SCHEMA
        .iter_errors(body)
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
    match body.get("message").and_then(Value::as_str) {
        Some(text) if text.trim().is_empty() => problems.push("message is empty".into()),
        _ => {}
    }
    // The OpenAPI description of the send operation: either a message or a media token.
    if body.get("message").is_some() && body.get("media_token").is_some() {
        problems.push("send either message or media_token, not both".into());
    }
    for grid in ["sender_buttons", "receiver_buttons"] {
        let rows = body
            .pointer(&format!("/{grid}/rows"))
            .and_then(Value::as_array);
        for (r, row) in rows.into_iter().flatten().enumerate() {
            let buttons = row.get("buttons").and_then(Value::as_array);
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
