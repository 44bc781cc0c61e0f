//! The dashboard's built page (`frontend/dist`, [`crate::config::WEB_DIR_VAR`]), served on the
//! api's origin so the page's `/api` and `/otlp` requests need no CORS.
//!
//! Two routes: `/` (its `index.html`, revalidated on every load, so a deploy shows at once) and
//! `/assets/{*path}` (Vite's content-hashed files, cached for a year). A fixed route each, so
//! the HTTP metrics get two `endpoint` values whatever the paths asked for. No server span: the
//! browser's document-load span already times the page and each asset within the session's
//! trace, and a navigation carries no `traceparent`, so a server span per file would be a
//! one-span trace of its own for every file of every page load.

use std::convert::Infallible;
use std::path::Path;

use axum::{
    Router,
    http::{HeaderValue, header::CACHE_CONTROL},
    middleware::map_response,
    response::Response,
    routing::get_service,
};
use tower_http::services::ServeDir;

use crate::error::error_response;

/// The page itself.
pub const INDEX: &str = "/";
/// The folder Vite puts the hashed files in, below the page's folder.
pub const ASSETS: &str = "/assets/{*path}";

/// The page's routes, stateless; `lib.rs` adds the middleware.
pub(crate) fn router(dir: &Path) -> Router {
    let not_found = tower::service_fn(|_| async {
        Ok::<_, Infallible>(error_response(
            axum::http::StatusCode::NOT_FOUND,
            "no such file in the page's build",
        ))
    });
    // `/` is served as `/index.html` by ServeDir; `/assets/x` as the folder's `assets/x`.
    let files = ServeDir::new(dir).not_found_service(not_found);
    Router::new()
        .route(
            INDEX,
            get_service(files.clone()).layer(map_response(revalidated)),
        )
        .route(ASSETS, get_service(files).layer(map_response(immutable)))
}

async fn revalidated(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A year, for a file whose name changes with its content; not on a 404, which may be
/// a file of the next deploy.
async fn immutable(mut response: Response) -> Response {
    if response.status().is_success() {
        response.headers_mut().insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    response
}
