//! `GET /metrics` in Prometheus's text format: the queue by state, builds by outcome
//! and their durations (read from the database at each scrape, so every process
//! sharing it reports the same), and this server's HTTP requests and latency by route
//! family (counted in memory).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::SharedState;

type Labels = Vec<(&'static str, String)>;
/// Label values known when the server is built, so that counting allocates nothing.
type StaticLabels<const N: usize> = [(&'static str, &'static str); N];

/// What the server counts itself.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<StaticLabels<3>, Counter>,
    latency: Family<StaticLabels<1>, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

fn duration_histogram() -> Histogram {
    // 1 s to about 4.5 h.
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }
}

/// The route family of a path, a small fixed set of label values.
fn route_family(path: &str) -> &'static str {
    match path {
        "/" => "home",
        "/metrics" => "metrics",
        "/-/login" => "login",
        "/releases/queue" => "queue",
        _ if path.starts_with("/-/static/") => "static",
        _ if path.starts_with("/api/") => "api",
        _ if path.starts_with("/crate/") => "crate",
        _ if path.contains("/static.files/") => "static",
        _ => "docs",
    }
}

/// Counts every request and its latency by route family and status class.
pub async fn track(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let family = route_family(request.uri().path());
    // Static label values: nothing is allocated per request.
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .requests
        .get_or_create(&[("route", family), ("method", method), ("status", status)])
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&[("route", family)])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<SharedState>) -> Response {
    let encoded = match state.catalog.store().catalog().metrics().await {
        Ok(stored) => encode(&stored, &state.metrics),
        Err(error) => Err(error.to_string()),
    };
    match encoded {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}

fn encode(
    stored: &docbuild_store::catalog::StoreMetrics,
    http: &HttpMetrics,
) -> Result<String, String> {
    let mut registry = Registry::default();

    let jobs = Family::<Labels, Gauge>::default();
    // Every state is reported, zero included, so that a dashboard's series exist.
    for state in ["queued", "running", "done"] {
        jobs.get_or_create(&vec![("state", state.to_string())])
            .set(0);
    }
    for (state, count) in &stored.jobs {
        jobs.get_or_create(&vec![("state", state.clone())])
            .set(*count);
    }
    registry.register("docbuild_jobs", "Jobs in the queue by state", jobs);

    let builds = Family::<Labels, Counter>::default();
    let durations = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
        duration_histogram as fn() -> Histogram,
    );
    for (outcome, duration_ms) in &stored.builds {
        let labels = vec![("outcome", outcome.clone())];
        builds.get_or_create(&labels).inc();
        if let Some(ms) = duration_ms {
            durations
                .get_or_create(&labels)
                .observe(*ms as f64 / 1000.0);
        }
    }
    registry.register("docbuild_builds", "Builds finished, by outcome", builds);
    registry.register(
        "docbuild_build_duration_seconds",
        "How long builds took, by outcome",
        durations,
    );
    registry.register(
        "docbuild_http_requests",
        "HTTP requests by route family, method and status class",
        http.requests.clone(),
    );
    registry.register(
        "docbuild_http_request_duration_seconds",
        "HTTP request latency by route family",
        http.latency.clone(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::route_family;

    #[test]
    fn routes_fall_into_few_families() {
        assert_eq!(route_family("/serde/1.0.0/serde/"), "docs");
        assert_eq!(
            route_family("/serde/1.0.0/static.files/main-1.js"),
            "static"
        );
        assert_eq!(route_family("/api/v1/builds"), "api");
        assert_eq!(route_family("/crate/serde/1.0.0"), "crate");
        assert_eq!(route_family("/metrics"), "metrics");
    }
}
