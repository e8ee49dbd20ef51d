//! The page shell every panel page shares: the document head (stylesheet, icon and the refresh
//! script, all from `/ui/static/`, so no inline script or style exists), a top bar with
//! breadcrumbs, and the `<main>` element that the live refresh swaps.

use maud::{DOCTYPE, Markup, html};

use crate::{BASE, assets};

/// What surrounds a page's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// Shown in the top bar and the window title: the operator or Katalog serving the panel.
    pub brand: String,
    /// The page's own title.
    pub title: String,
    /// Links from the dashboard down to this page; the last one is this page (no link).
    pub breadcrumbs: Vec<Crumb>,
    /// Seconds between live refreshes; `None` turns refreshing off for this page.
    pub refresh_seconds: Option<u32>,
}

/// One breadcrumb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crumb {
    /// The text.
    pub label: String,
    /// Where it leads; `None` for the current page.
    pub href: Option<String>,
}

impl Crumb {
    /// A breadcrumb linking to `href`.
    #[must_use]
    pub fn link(label: impl Into<String>, href: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            href: Some(href.into()),
        }
    }

    /// The current page's breadcrumb.
    #[must_use]
    pub fn here(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            href: None,
        }
    }
}

/// The default refresh interval.
pub const DEFAULT_REFRESH_SECONDS: u32 = 5;

impl Shell {
    /// A shell with the default refresh interval.
    #[must_use]
    pub fn new(brand: impl Into<String>, title: impl Into<String>, breadcrumbs: Vec<Crumb>) -> Self {
        Self {
            brand: brand.into(),
            title: title.into(),
            breadcrumbs,
            refresh_seconds: Some(DEFAULT_REFRESH_SECONDS),
        }
    }

    /// The whole document around `content`.
    #[must_use]
    pub fn render(&self, content: &Markup) -> Markup {
        let refresh = self.refresh_seconds.map(|s| s.to_string());
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="referrer" content="no-referrer";
                    title { (self.title) " · " (self.brand) }
                    link rel="stylesheet" href=(assets::CSS_PATH);
                    link rel="icon" type="image/svg+xml" href=(assets::ICON_PATH);
                    script src=(assets::JS_PATH) defer {}
                }
                body data-refresh-seconds=[refresh] {
                    header class="topbar" {
                        a class="brand" href={ (BASE) "/" } {
                            span class="brand-mark" { "◆" }
                            (self.brand)
                        }
                        nav class="crumbs" aria-label="breadcrumbs" {
                            @for (i, crumb) in self.breadcrumbs.iter().enumerate() {
                                @if i > 0 { span class="sep" { "/" } }
                                @match &crumb.href {
                                    Some(href) => a href=(href) { (crumb.label) },
                                    None => span class="here" { (crumb.label) },
                                }
                            }
                        }
                        span class="refresh" id="refresh-status" {
                            @if self.refresh_seconds.is_some() { "live" } @else { "static" }
                        }
                    }
                    main id="main" { (content) }
                    footer class="footer" {
                        "Read-only view. Values come from the live cluster and are shown as text."
                    }
                }
            }
        }
    }
}

/// A section with a heading; used by every page so their headings and spacing match.
#[must_use]
pub fn section(id: &str, title: &str, body: &Markup) -> Markup {
    html! {
        section class="card" id=(id) {
            h2 { (title) }
            (body)
        }
    }
}

/// A two-column key/value table.
#[must_use]
pub fn kv_table(rows: &[(String, String)]) -> Markup {
    html! {
        table class="kv" {
            thead { tr { th { "Field" } th { "Value" } } }
            tbody {
                @for (k, v) in rows { tr { td class="key" { (k) } td { (v) } } }
            }
        }
    }
}

/// `markup` as a `text/html` response with `status`.
#[must_use]
pub fn respond(status: http::StatusCode, markup: &Markup) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        status,
        [(http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.clone().into_string(),
    )
        .into_response()
}

/// A page saying what went wrong (`404`: no such OMJob), in the panel's shell.
#[must_use]
pub fn error_page(brand: &str, status: http::StatusCode, message: &str) -> axum::response::Response {
    let shell = Shell::new(
        brand,
        status.canonical_reason().unwrap_or("Error"),
        vec![Crumb::link("Dashboard", "/ui/"), Crumb::here(status.as_str())],
    );
    let content = html! {
        div class="title-block" { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } }
        p class="alert bad" id="error" { (message) }
    };
    respond(status, &shell.render(&content))
}
