//! A photo or file a person attaches to a message: checked by name and first bytes, streamed
//! to Divar's chat upload host as it arrives (never to our disk or database, never held whole),
//! and kept as the media token the message will carry (docs/divar-platform.md, "Media").

use std::io;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use kenar::upload::{MediaKind, MediaRefusal, UploadError};

use crate::domain::compose::{Attachment, Problem};

use super::Deps;

/// How many chunks may wait between the browser's upload and Divar's: the memory one upload
/// holds, whatever the file's size.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The composer takes photos and files; voice and video are not offered.
fn offered(kind: MediaKind) -> bool {
    matches!(kind, MediaKind::Image | MediaKind::File)
}

/// Uploads the file named `file_name` whose bytes are `chunks`; the attachment, or what the
/// person should hear about it.
pub async fn attach<S, E>(
    deps: &Deps,
    file_name: &str,
    mut chunks: S,
) -> Result<Attachment, Problem>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    // Enough of the start to tell the format by.
    let mut head = Vec::new();
    while head.len() < 16 {
        match chunks.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(error)) => {
                tracing::info!(%error, "an attachment broke off");
                return Err(Problem::MediaUnavailable);
            }
            None => break,
        }
    }
    let kind = match MediaKind::detect(file_name, &head[..head.len().min(16)]) {
        Ok(kind) if offered(kind) => kind,
        Ok(_) | Err(MediaRefusal::UnknownType | MediaRefusal::ContentMismatch) => {
            return Err(Problem::MediaType);
        }
        Err(MediaRefusal::TooLarge) => return Err(Problem::MediaTooLarge),
    };
    let limit = kind.max_bytes();
    if head.len() as u64 > limit {
        return Err(Problem::MediaTooLarge);
    }
    let token = deps.api.upload_token().await.map_err(|error| {
        tracing::warn!(%error, "no upload token from Divar");
        Problem::MediaUnavailable
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let upload = deps.uploader.upload(&token, kind, file_name, body, None);
    // Feeds the upload as the browser sends, counting: past the limit the upload is broken off.
    let feed = async move {
        let mut size = head.len() as u64;
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return Ok(size);
        }
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    tracing::info!(%error, "an attachment broke off");
                    let _ = tx.send(Err(io::Error::other("the browser stopped"))).await;
                    return Err(Problem::MediaUnavailable);
                }
            };
            size += chunk.len() as u64;
            if size > limit {
                let _ = tx.send(Err(io::Error::other("over the limit"))).await;
                return Err(Problem::MediaTooLarge);
            }
            if tx.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
        Ok(size)
    };
    let (uploaded, fed) = tokio::join!(upload, feed);
    let size = fed?;
    let media_token = uploaded.map_err(|error| {
        tracing::warn!(%error, "Divar's upload host did not take an attachment");
        match error {
            UploadError::Refused { status: 413 } => Problem::MediaTooLarge,
            UploadError::Refused { status: 400 | 415 } => Problem::MediaType,
            _ => Problem::MediaUnavailable,
        }
    })?;
    Ok(Attachment {
        media_token,
        file_name: file_name.to_string(),
        kind: kind.as_str().to_string(),
        size,
    })
}
