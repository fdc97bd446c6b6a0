//! Photos and files in chat (`chat/upload_media.md`; docs/divar-platform.md, "Media"): an upload
//! token from the open-platform API, the file itself to Divar's chat upload host, and the
//! `media_token` it answers with, which a message then carries.
//!
//! ```
//! use kenar::upload::MediaKind;
//!
//! // What a file may be, told by its name and its first bytes.
//! let png = b"\x89PNG\r\n\x1a\n....";
//! assert_eq!(MediaKind::detect("photo.PNG", png), Ok(MediaKind::Image));
//! assert!(MediaKind::detect("setup.exe", b"MZ\x90\x00").is_err());
//! assert!(MediaKind::detect("photo.png", b"MZ\x90\x00").is_err(), "a renamed program");
//! assert_eq!(MediaKind::Image.max_bytes(), 5_000_000);
//! ```

use reqwest::header;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

/// The four kinds the upload host takes, each under its own path (`/upload/{image|file|voice|video}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// PNG or JPEG, up to 5 MB.
    Image,
    /// PDF, Word, Excel or PowerPoint, up to 5 MB.
    File,
    /// M4A or 3GP, up to 1.5 MB.
    Voice,
    /// MP4, up to 50 MB.
    Video,
}

/// Why a file cannot go as chat media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MediaRefusal {
    /// Its name ends in nothing Divar takes (`.exe`, no extension…).
    #[error("Divar's chat takes no file of this type")]
    UnknownType,
    /// Its content is not what its name says (a program named `.png`).
    #[error("the file's content does not match its type")]
    ContentMismatch,
    /// Larger than its kind's limit.
    #[error("the file is larger than Divar's limit for its kind")]
    TooLarge,
}

/// (extension, kind) for every format `chat/upload_media.md` lists.
const FORMATS: &[(&str, MediaKind)] = &[
    ("png", MediaKind::Image),
    ("jpg", MediaKind::Image),
    ("jpeg", MediaKind::Image),
    ("pdf", MediaKind::File),
    ("doc", MediaKind::File),
    ("docx", MediaKind::File),
    ("xls", MediaKind::File),
    ("xlsx", MediaKind::File),
    ("ppt", MediaKind::File),
    ("pptx", MediaKind::File),
    ("m4a", MediaKind::Voice),
    ("3gp", MediaKind::Voice),
    ("mp4", MediaKind::Video),
];

impl MediaKind {
    /// The upload path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::File => "file",
            Self::Voice => "voice",
            Self::Video => "video",
        }
    }

    /// The kind named by an upload path segment.
    pub fn parse(segment: &str) -> Option<Self> {
        [Self::Image, Self::File, Self::Voice, Self::Video]
            .into_iter()
            .find(|kind| kind.as_str() == segment)
    }

    /// The documented limit. The docs write "MB" without saying which; we read the smaller,
    /// 1,000,000 bytes, so nothing we accept is refused by Divar for its size.
    pub fn max_bytes(self) -> u64 {
        match self {
            Self::Image | Self::File => 5_000_000,
            Self::Voice => 1_500_000,
            Self::Video => 50_000_000,
        }
    }

    /// The extensions this kind takes, for a file picker's `accept`.
    pub fn extensions(self) -> impl Iterator<Item = &'static str> {
        FORMATS
            .iter()
            .filter(move |(_, kind)| *kind == self)
            .map(|(ext, _)| *ext)
    }

    /// The kind of a file named `file_name` that starts with `head` (its first bytes, 16 are
    /// enough), or why it cannot be sent: its extension must be a documented format, and its
    /// content must begin as that format does.
    pub fn detect(file_name: &str, head: &[u8]) -> Result<Self, MediaRefusal> {
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .ok_or(MediaRefusal::UnknownType)?;
        let kind = FORMATS
            .iter()
            .find(|(known, _)| *known == ext)
            .map(|(_, kind)| *kind)
            .ok_or(MediaRefusal::UnknownType)?;
        let starts = |magic: &[u8]| head.starts_with(magic);
        // ISO media (mp4, m4a, 3gp): a box size, then `ftyp`.
        let iso = head.len() >= 8 && &head[4..8] == b"ftyp";
        let fits = match ext.as_str() {
            "png" => starts(b"\x89PNG\r\n\x1a\n"),
            "jpg" | "jpeg" => starts(&[0xFF, 0xD8, 0xFF]),
            "pdf" => starts(b"%PDF-"),
            // Office Open XML is a zip; the older formats are OLE compound files.
            "docx" | "xlsx" | "pptx" => starts(b"PK\x03\x04"),
            "doc" | "xls" | "ppt" => starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
            _ => iso,
        };
        if fits {
            Ok(kind)
        } else {
            Err(MediaRefusal::ContentMismatch)
        }
    }

    /// The `Content-Type` a file of this kind and extension is sent with.
    pub fn content_type(file_name: &str) -> &'static str {
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "png" => "image/png",
            "jpg" | "jpeg" => "image/jpeg",
            "pdf" => "application/pdf",
            "doc" => "application/msword",
            "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "xls" => "application/vnd.ms-excel",
            "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "ppt" => "application/vnd.ms-powerpoint",
            "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "m4a" => "audio/mp4",
            "3gp" => "video/3gpp",
            "mp4" => "video/mp4",
            _ => "application/octet-stream",
        }
    }
}

/// Why an upload did not give a media token. Texts name no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// No answer, a timeout or a 5xx: trying later may work.
    #[error("Divar's upload was unavailable ({0})")]
    Unavailable(String),
    /// Any other answer (a refused type or size, a bad key…).
    #[error("Divar refused the upload (HTTP {status})")]
    Refused {
        /// The HTTP status Divar answered.
        status: u16,
    },
}

fn failed(error: &reqwest::Error) -> UploadError {
    UploadError::Unavailable(if error.is_timeout() {
        "timeout".into()
    } else {
        "no connection".into()
    })
}

/// Divar's chat upload host (`https://chat.divar.ir`, or a sandbox's address).
#[derive(Clone)]
pub struct Uploader {
    http: reqwest::Client,
    base: Url,
}

impl Uploader {
    /// `http` from [`crate::http_client`] (give it a timeout long enough for the largest file on
    /// a slow link); `base` the upload host.
    pub fn new(http: reqwest::Client, base: Url) -> Self {
        Self { http, base }
    }

    /// POST `{base}/upload/{kind}`: `body` as the multipart field `file` named `file_name`, with
    /// `Authorization: Bearer <upload token>`. `body` may be a stream, so the file need not be
    /// held whole; `length` lets the host see its size up front. The `media_token` (`id`).
    pub async fn upload(
        &self,
        upload_token: &SecretString,
        kind: MediaKind,
        file_name: &str,
        body: reqwest::Body,
        length: Option<u64>,
    ) -> Result<String, UploadError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| UploadError::Refused { status: 0 })?
            .pop_if_empty()
            .extend(["upload", kind.as_str()]);
        let part = match length {
            Some(length) => reqwest::multipart::Part::stream_with_length(body, length),
            None => reqwest::multipart::Part::stream(body),
        }
        .file_name(file_name.to_string())
        .mime_str(MediaKind::content_type(file_name))
        .map_err(|_| UploadError::Refused { status: 0 })?;
        let response = self
            .http
            .post(url)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", upload_token.expose_secret()),
            )
            .header(header::ACCEPT, "*/*")
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await;
        field_of(response, "id").await
    }
}

/// The text field `name` of a successful JSON answer, or what went wrong.
async fn field_of(
    response: reqwest::Result<reqwest::Response>,
    name: &str,
) -> Result<String, UploadError> {
    let response = response.map_err(|e| failed(&e))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(UploadError::Unavailable(format!("HTTP {status}")));
    }
    let refused = UploadError::Refused {
        status: status.as_u16(),
    };
    if !status.is_success() {
        return Err(refused);
    }
    let reply: Value = response.json().await.map_err(|e| failed(&e))?;
    reply
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
        .ok_or(refused)
}

impl crate::api::KenarApi {
    /// POST /experimental/open-platform/chat/upload: a token for one upload to the chat upload
    /// host (the API key needs the `CHAT_UPLOAD_MEDIA` permission; no user token).
    pub async fn upload_token(&self) -> Result<SecretString, UploadError> {
        let url = self
            .endpoint(&["experimental", "open-platform", "chat", "upload"])
            .map_err(|_| UploadError::Refused { status: 0 })?;
        let response = self
            .http
            .post(url)
            .header("x-api-key", self.api_key.expose_secret())
            .json(&serde_json::json!({}))
            .send()
            .await;
        field_of(response, "token").await.map(SecretString::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_format_is_known_by_name_and_content() {
        let heads: [(&str, &[u8]); 6] = [
            ("a.jpg", b"\xFF\xD8\xFF\xE0"),
            ("a.pdf", b"%PDF-1.7"),
            ("a.docx", b"PK\x03\x04"),
            ("a.xls", b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1"),
            ("a.m4a", b"\x00\x00\x00\x20ftypM4A "),
            ("a.mp4", b"\x00\x00\x00\x18ftypmp42"),
        ];
        for (name, head) in heads {
            assert!(MediaKind::detect(name, head).is_ok(), "{name}");
        }
        assert_eq!(
            MediaKind::detect("price.PDF", b"%PDF-1.4"),
            Ok(MediaKind::File)
        );
        assert_eq!(
            MediaKind::detect("noext", b"%PDF"),
            Err(MediaRefusal::UnknownType)
        );
        assert_eq!(
            MediaKind::detect("a.pdf", b"PK\x03\x04"),
            Err(MediaRefusal::ContentMismatch)
        );
        assert_eq!(
            MediaKind::Image.extensions().collect::<Vec<_>>(),
            ["png", "jpg", "jpeg"]
        );
        assert_eq!(MediaKind::parse("voice"), Some(MediaKind::Voice));
    }
}
