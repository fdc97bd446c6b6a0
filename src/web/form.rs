//! `Form<T>`: axum's urlencoded form, refused with a Persian page instead of axum's plain text.
//! Form structs stay strings; parsing them into domain types (with per-field problems) is the
//! domain's job (`domain::compose`).

use axum::extract::{FromRequest, Multipart, Request};
use serde::de::DeserializeOwned;

use super::error::AppError;
use crate::{domain::compose::ComposeForm, services::media, state::AppState};

pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Form(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, "a form that does not read");
                Err(AppError::Incomplete)
            }
        }
    }
}

/// The composer's form, as the page posts it: urlencoded, or multipart when the person chose a
/// photo or file. The file (field `media`) goes to Divar's upload host while the form is read
/// (`services::media`); the form then carries the attachment, or why it was not taken.
pub struct ComposeSubmission(pub ComposeForm);

/// The composer's file field.
pub const MEDIA_FIELD: &str = "media";

impl FromRequest<AppState> for ComposeSubmission {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let multipart = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !multipart {
            let Form(form) = Form::<ComposeForm>::from_request(request, state).await?;
            return Ok(Self(form));
        }
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|_| AppError::Incomplete)?;
        let mut fields = Vec::new();
        let mut attached = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|_| AppError::Incomplete)?
        {
            let name = field.name().unwrap_or_default().to_string();
            if name == MEDIA_FIELD {
                let file_name = field.file_name().unwrap_or_default().to_string();
                // An empty file input still sends its part, with no name.
                if !file_name.is_empty() {
                    attached = Some(media::attach(&state.deps, &file_name, field).await);
                }
                continue;
            }
            let value = field.text().await.map_err(|_| AppError::Incomplete)?;
            fields.push((name, value));
        }
        let encoded = serde_urlencoded::to_string(&fields).map_err(|_| AppError::Incomplete)?;
        let mut form: ComposeForm =
            serde_urlencoded::from_str(&encoded).map_err(|_| AppError::Incomplete)?;
        match attached {
            Some(Ok(attachment)) => form.attachment = Some(attachment),
            Some(Err(problem)) => form.attach_problem = Some(problem),
            None => {}
        }
        Ok(Self(form))
    }
}
