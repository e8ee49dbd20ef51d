//! The panel's static files, compiled into the binary and served under `/ui/static/`: one
//! stylesheet, one script (live refresh) and the icon. Keeping them as files is what lets the
//! Content-Security-Policy forbid inline script and style.

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

/// The stylesheet's path.
pub const CSS_PATH: &str = "/ui/static/panel.css";
/// The script's path.
pub const JS_PATH: &str = "/ui/static/panel.js";
/// The icon's path (served so that browsers do not log a 404 for `/favicon.ico`).
pub const ICON_PATH: &str = "/ui/static/icon.svg";

/// The stylesheet.
pub const CSS: &str = include_str!("../assets/panel.css");
/// The live-refresh script.
pub const JS: &str = include_str!("../assets/panel.js");
/// The icon.
pub const ICON: &str = include_str!("../assets/icon.svg");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Small files, and a new binary may change them: revalidate rather than cache stale.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The routes serving the static files (and `/favicon.ico`, answered with the icon).
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(CSS_PATH, get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route(
            JS_PATH,
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(ICON_PATH, get(|| async { asset("image/svg+xml", ICON) }))
        .route("/favicon.ico", get(|| async { asset("image/svg+xml", ICON) }))
}
