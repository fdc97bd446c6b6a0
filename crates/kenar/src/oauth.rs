//! Divar's OAuth 2.0 authorization-code flow (docs/divar-platform.md, "OAuth 2.0"), through the `oauth2` crate.

use std::time::Duration;

use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope,
    TokenResponse, TokenUrl, basic::BasicClient,
};
use secrecy::{ExposeSecret, SecretString};

use url::Url;

/// How long a refresh token (from `offline_access`) stays valid: 30 days, per kenar-docs
/// `oauth/ReadMe.md`. Each refresh issues a new one.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What the Kenar panel gives an app for OAuth, and where Divar's OAuth server is.
#[derive(Clone)]
pub struct OAuthCredentials {
    /// The app's slug: the OAuth `client_id`.
    pub client_id: String,
    /// The app's OAuth secret, sent as a form field of each token request.
    pub client_secret: SecretString,
    /// `https://oauth.divar.ir`, or a sandbox's base.
    pub base_url: Url,
    /// The redirect URI registered in the panel.
    pub redirect_uri: Url,
}

/// Divar's OAuth server for one app: builds consent URLs ([`authorize`](Self::authorize)),
/// exchanges the callback's code ([`exchange`](Self::exchange)) and rotates tokens
/// ([`refresh`](Self::refresh)). Endpoints are `{base_url}/oauth2/auth` and
/// `{base_url}/oauth2/token` (`oauth/ReadMe.md`).
///
/// ```
/// use std::time::Duration;
/// use kenar::{oauth::{KenarOAuth, OAuthCredentials}, scopes::Scope};
/// use secrecy::SecretString;
///
/// let oauth = KenarOAuth::new(
///     &OAuthCredentials {
///         client_id: "my-app-slug".into(),
///         client_secret: SecretString::from("<OAuth secret from the Kenar panel>"),
///         base_url: "https://oauth.divar.ir".parse()?,
///         redirect_uri: "https://addon.example/oauth/callback".parse()?,
///     },
///     kenar::http_client(Duration::from_secs(10), "my-addon/1.0")?,
/// )?;
/// let chat = "62c82c02-6a71-4501-a1fd-4bf226b3aa78";
/// let scopes = Scope::parse_list(&format!("CONVERSATION_SEND_MESSAGE.{chat} offline_access"))?;
/// let start = oauth.authorize(&scopes.iter().map(Scope::to_string).collect::<Vec<_>>());
/// // Redirect the person to `start.url`; keep `state` and `pkce_verifier` until the callback.
/// assert!(start.url.as_str().starts_with("https://oauth.divar.ir/oauth2/auth?"));
/// assert!(start.url.query_pairs().any(|(k, v)| k == "state" && v == start.state.as_str()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KenarOAuth {
    client: Client,
    http: reqwest::Client,
    redirect_uri: String,
}

/// What the person must be sent to, and what to remember until they come back.
pub struct AuthorizationStart {
    /// The consent page to redirect the person to.
    pub url: url::Url,
    /// The random `state` in `url`: the callback must bring it back, or it is forged.
    pub state: String,
    /// The PKCE verifier, secret until [`KenarOAuth::exchange`] sends it with the code.
    pub pkce_verifier: String,
}

/// Tokens from the token endpoint, still in plain text: seal them before storing.
pub struct IssuedTokens {
    /// Sent as `Authorization: Bearer` on API calls.
    pub access_token: SecretString,
    /// Issued with `offline_access`; valid for [`REFRESH_TOKEN_LIFETIME`].
    pub refresh_token: Option<SecretString>,
    /// The access token's lifetime (3600 s, Divar's example, when the answer leaves it out).
    pub expires_in: Duration,
    /// The granted scopes, space-separated, when the answer lists them
    /// (see [`crate::scopes::Scope::parse_list`]).
    pub scope: Option<String>,
}

/// Why a token request failed, sorted by what to do next.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Divar refused (bad code, revoked refresh token…): the person must consent again.
    #[error("the OAuth server refused the grant: {0}")]
    Refused(String),
    /// Divar could not be reached or answered nonsense; worth a retry.
    #[error("the OAuth server could not be used: {0}")]
    Unavailable(String),
}

impl KenarOAuth {
    /// The client for the panel's `credentials`, over `http` (from [`crate::http_client`]).
    /// Fails only when a URL built from them is not a valid endpoint.
    pub fn new(credentials: &OAuthCredentials, http: reqwest::Client) -> anyhow::Result<Self> {
        let base = credentials.base_url.as_str().trim_end_matches('/');
        let redirect_uri = credentials.redirect_uri.to_string();
        let client = BasicClient::new(ClientId::new(credentials.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                credentials.client_secret.expose_secret().to_string(),
            ))
            .set_auth_uri(AuthUrl::new(format!("{base}/oauth2/auth"))?)
            .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token"))?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.clone())?)
            // Divar documents client_id and client_secret as form fields of the token request.
            .set_auth_type(AuthType::RequestBody);
        Ok(Self {
            client,
            http,
            redirect_uri,
        })
    }

    /// The consent URL for `scopes` (each as [`Scope`](crate::scopes::Scope) displays it), with a
    /// random `state` and a PKCE S256 challenge.
    pub fn authorize(&self, scopes: &[String]) -> AuthorizationStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        AuthorizationStart {
            url,
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges the code from the callback for tokens.
    pub async fn exchange(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<IssuedTokens, TokenError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(classify)?;
        Ok(issued(&response))
    }

    /// Rotates the pair. Divar's docs also ask for the current access token as `code` and the
    /// `redirect_uri` (docs/divar-platform.md, "OAuth 2.0").
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        access_token: &SecretString,
    ) -> Result<IssuedTokens, TokenError> {
        let refresh = RefreshToken::new(refresh_token.expose_secret().to_string());
        let response = self
            .client
            .exchange_refresh_token(&refresh)
            .add_extra_param("code", access_token.expose_secret().to_string())
            .add_extra_param("redirect_uri", self.redirect_uri.clone())
            .request_async(&self.http)
            .await
            .map_err(classify)?;
        Ok(issued(&response))
    }
}

fn issued(response: &oauth2::basic::BasicTokenResponse) -> IssuedTokens {
    IssuedTokens {
        access_token: SecretString::from(response.access_token().secret().clone()),
        refresh_token: response
            .refresh_token()
            .map(|r| SecretString::from(r.secret().clone())),
        // Divar's example says 3600 s; assume that when the field is missing.
        expires_in: response.expires_in().unwrap_or(Duration::from_secs(3600)),
        scope: response.scopes().map(|s| {
            s.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }),
    }
}

/// Sorts an oauth2 error into "ask again" or "try later". The texts name no secret.
fn classify<E: std::error::Error>(
    error: oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> TokenError {
    match error {
        oauth2::RequestTokenError::ServerResponse(response) => {
            TokenError::Refused(response.error().as_ref().to_string())
        }
        oauth2::RequestTokenError::Request(e) => {
            TokenError::Unavailable(format!("request failed: {e}"))
        }
        oauth2::RequestTokenError::Parse(e, _) => {
            TokenError::Unavailable(format!("unreadable answer: {e}"))
        }
        oauth2::RequestTokenError::Other(e) => TokenError::Unavailable(e),
    }
}
