//! The states a message, a broadcast and an outbox row go through, as the database stores them
//! (`text` columns). Code compares these, never their spellings.

use serde::Serialize;

/// Declares a status enum stored as lowercase text, with its parse and its spelling.
macro_rules! stored_as_text {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(text: String) -> Result<Self, String> {
                match text.as_str() {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("`{other}` is not a {}", stringify!($name))),
                }
            }
        }
    };
}

stored_as_text!(
    /// A message a person sent from the composer.
    MessageStatus {
        /// Recorded and queued; the outbox has not finished with it.
        Sending => "sending",
        Sent => "sent",
        Failed => "failed",
    }
);

stored_as_text!(
    /// A seller's message to every conversation of a post.
    BroadcastStatus {
        Running => "running",
        /// Waiting for the seller to consent again.
        Paused => "paused",
        Cancelled => "cancelled",
        Done => "done",
    }
);

stored_as_text!(
    /// What a broadcast is: a message to the post's conversations known now, or an automatic
    /// first reply to each one Divar announces from now on (running until turned off).
    BroadcastKind {
        Broadcast => "broadcast",
        AutoReply => "auto_reply",
    }
);

stored_as_text!(
    /// How an outbox row ended (a row waiting to be sent is `pending`).
    Outcome {
        Sent => "sent",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_reads_back_what_it_writes() {
        for status in [
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::Failed,
        ] {
            assert_eq!(
                MessageStatus::try_from(status.as_str().to_string()),
                Ok(status)
            );
        }
        assert_eq!(
            BroadcastStatus::try_from("paused".to_string()),
            Ok(BroadcastStatus::Paused)
        );
        assert!(Outcome::try_from("pending".to_string()).is_err());
        assert_eq!(serde_json::to_value(BroadcastStatus::Done).unwrap(), "done");
    }
}
