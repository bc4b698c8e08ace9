//! The phone page's files under `/ward/` (placeholder until the page is merged: serves nothing).

pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
}
