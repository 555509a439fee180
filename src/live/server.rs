//! The dashboard's HTTP server (axum): the page, its event stream, `/metrics`, `/api/state` and the
//! report files once written. Every handler reads what the sampler took; none touches the run's metrics.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::Stream;

use super::sample::{ClientGuard, Shared};
use super::{page, prometheus};
use crate::background::CancellationToken;

/// Serves until `stop` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let app = Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/api/state", get(state))
        .route("/files/{name}", get(file))
        .with_state(shared);
    let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "the dashboard stopped serving");
    }
}

async fn index(State(shared): State<Arc<Shared>>) -> Html<String> {
    Html(page::render(&shared.info))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let at = std::time::Instant::now();
    let text = prometheus::render(&shared.info, &shared.snapshot(), shared.busy_secs(), shared.clients());
    shared.add_busy(at.elapsed());
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], text).into_response()
}

/// The page's data: what it starts from, the latest tick and the end, as one JSON object.
async fn state(State(shared): State<Arc<Shared>>) -> Response {
    let (_, latest) = shared.latest();
    let end = shared.end();
    let body = format!(
        "{{\"hello\":{},\"tick\":{},\"end\":{}}}",
        shared.hello_json(),
        latest.as_deref().unwrap_or("null"),
        end.as_deref().unwrap_or("null")
    );
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// A file of the run folder, once the run has written it (only the names the run listed).
async fn file(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(path) = shared.report_file(&name) else {
        return (StatusCode::NOT_FOUND, "no such report file (yet)").into_response();
    };
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{}: {e}", path.display())).into_response(),
    }
}

/// One page's event stream: `hello` (the run and its history), then `tick` every sample, `phase` when the
/// run moves on between samples, and `end` with the verdict, after which the stream closes.
async fn events(State(shared): State<Arc<Shared>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = PageStream {
        rx: shared.subscribe(),
        _guard: shared.client(),
        shared,
        hello_sent: false,
        done: false,
        last_seq: 0,
        last_phase: "",
    };
    let events = futures::stream::unfold(stream, |mut s| async move {
        let event = s.next().await?;
        Some((Ok(event), s))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Where one page's stream is.
struct PageStream {
    shared: Arc<Shared>,
    rx: tokio::sync::watch::Receiver<u64>,
    _guard: ClientGuard,
    hello_sent: bool,
    done: bool,
    last_seq: u64,
    last_phase: &'static str,
}

impl PageStream {
    /// The next event to send, waiting for one; None once the end was sent.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.done {
                return None;
            }
            if !self.hello_sent {
                self.hello_sent = true;
                self.last_phase = self.shared.phase();
                return Some(Event::default().event("hello").data(self.shared.hello_json()));
            }
            if let Some(end) = self.shared.end() {
                self.done = true;
                return Some(Event::default().event("end").data(&*end));
            }
            let (seq, latest) = self.shared.latest();
            if seq > self.last_seq
                && let Some(json) = latest
            {
                self.last_seq = seq;
                let at = std::time::Instant::now();
                let event = Event::default().event("tick").data(&*json);
                self.shared.add_busy(at.elapsed());
                return Some(event);
            }
            let phase = self.shared.phase();
            if phase != self.last_phase {
                self.last_phase = phase;
                let data = serde_json::json!({ "phase": phase, "elapsed": self.shared.elapsed() });
                return Some(Event::default().event("phase").data(data.to_string()));
            }
            self.rx.changed().await.ok()?;
        }
    }
}
