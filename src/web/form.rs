//! `Form<T>`: axum's urlencoded form, refused with a Persian page instead of axum's plain text.
//! Form structs stay strings; parsing them into domain types (with per-field problems) is the
//! domain's job (`domain::compose`).

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::AppError;

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
