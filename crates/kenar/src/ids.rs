//! Divar identifiers with the lengths the session-initialization docs give.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stores a type as a SQL text column through sqlx (feature `sqlx`): written as its text,
/// checked again when read, so a row that no longer parses is a decode error, never passed on.
macro_rules! text_column {
    ($name:ty, $parse:expr, $text:expr) => {
        #[cfg(feature = "sqlx")]
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: String = ($text)(self);
                text.encode_by_ref(buf)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(($parse)(<String as sqlx::Decode<'r, DB>>::decode(value)?)?)
            }
        }
    };
}

macro_rules! bounded_id {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest id accepted, in characters.
            pub const MAX_LEN: usize = $max;

            /// Checks a value: not empty, at most [`Self::MAX_LEN`] characters, printable ASCII
            /// without spaces. The error names the field and what is wrong, not the value.
            pub fn parse(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                if value.is_empty() {
                    return Err(format!("{} is empty", $what));
                }
                if value.chars().count() > Self::MAX_LEN {
                    return Err(format!("{} is longer than {} characters", $what, Self::MAX_LEN));
                }
                // Ids go into URLs, scopes and logs: printable ASCII without spaces only.
                if !value.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(format!("{} has characters other than printable ASCII", $what));
                }
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Reads as the text it is; the other way, text becomes an id only through `parse`.
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        /// Hashes and compares as its text, so a set of ids can be asked for a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                Self::parse(value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
            }
        }

        text_column!($name, |s: String| $name::parse(s), |v: &$name| v.0.clone());
    };
}

bounded_id!(
    /// A Divar chat id, e.g. `62c82c02-6a71-4501-a1fd-4bf226b3aa78` (at most 64 characters).
    ConversationId, 64, "conversation_id"
);
bounded_id!(
    /// A Divar post token, e.g. `wZC44q5D` (at most 10 characters).
    PostToken, 10, "post_token"
);
bounded_id!(
    /// A Divar user id (at most 64 characters).
    UserId, 64, "user_id"
);

/// Which side of a post's chat someone is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserSide {
    /// The post's owner (`Supply`, `SELLER`).
    Seller,
    /// Someone asking about the post (`Demand`, `BUYER`).
    Buyer,
}

impl UserSide {
    /// Accepts the spellings Divar uses in its different payloads.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "supply" | "seller" | "supplier" => Ok(Self::Seller),
            "demand" | "buyer" => Ok(Self::Buyer),
            _ => Err(format!("user_side `{value}` is neither Supply nor Demand")),
        }
    }

    /// `seller` or `buyer`: the form it takes in JSON and in a text column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seller => "seller",
            Self::Buyer => "buyer",
        }
    }

    /// The other party of the chat.
    pub fn other(self) -> Self {
        match self {
            Self::Seller => Self::Buyer,
            Self::Buyer => Self::Seller,
        }
    }
}

text_column!(UserSide, |s: String| UserSide::parse(&s), |v: &UserSide| v
    .as_str()
    .to_string());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_enforce_the_documented_lengths() {
        assert!(PostToken::parse("wZC44q5D").is_ok());
        assert!(PostToken::parse("x".repeat(11)).is_err());
        assert!(ConversationId::parse("6b3d5cf7-9291-4fa9-892a-9d07e300daea").is_ok());
        assert!(ConversationId::parse("c".repeat(65)).is_err());
        assert!(UserId::parse("6GqmD76dle5NpJySqnBX8seTpt6uVtzqaNTNJU1ettI=").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(ConversationId::parse("a b").is_err());
    }

    #[test]
    fn ids_read_from_json_are_checked_too() {
        let id: ConversationId = serde_json::from_str(r#""c-1""#).unwrap();
        assert_eq!(id, "c-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""c-1""#);
        assert!(serde_json::from_str::<PostToken>(r#""far-too-long-a-token""#).is_err());
        assert!(serde_json::from_str::<UserId>(r#""""#).is_err());
    }

    #[test]
    fn sides_accept_every_spelling() {
        assert_eq!(UserSide::parse("Supply"), Ok(UserSide::Seller));
        assert_eq!(UserSide::parse("SELLER"), Ok(UserSide::Seller));
        assert_eq!(UserSide::parse("Demand"), Ok(UserSide::Buyer));
        assert!(UserSide::parse("Middleman").is_err());
    }
}
