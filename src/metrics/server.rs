//! The metrics listener: `/metrics` (Prometheus text, encoded by
//! `prometheus-client`) and `/health` on one address, served by a thread of
//! its own so a slow scraper never holds up shipping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Response, Server};

use super::{Exposition, Registry};

/// OpenMetrics text, which Prometheus reads (prometheus-client encodes it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{flag} {addr}: cannot listen: {reason}")]
    Bind {
        /// The key or flag the address came from, to name it.
        flag: String,
        addr: SocketAddr,
        reason: String,
    },
}

/// The running listener; dropping it stops it.
pub struct MetricsServer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listen on `addr` (named `flag` in messages) and serve `source`.
    pub fn start(
        addr: SocketAddr,
        flag: &str,
        source: Arc<dyn Exposition>,
    ) -> Result<Self, MetricsError> {
        let server = Server::http(addr).map_err(|e| MetricsError::Bind {
            flag: flag.to_string(),
            addr,
            reason: e.to_string(),
        })?;
        // Port 0 picks a free port: report the one bound.
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("logferry-metrics".into())
            .spawn(move || serve(&serving, source.as_ref()))
            .expect("spawning the metrics thread");
        tracing::info!(%addr, "metrics at /metrics, health at /health");
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &Server, source: &dyn Exposition) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (Method::Get | Method::Head, "/metrics") => {
                let mut registry = Registry::default();
                source.register(&mut registry);
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => Response::from_string(body).with_header(header(CONTENT_TYPE)),
                    Err(_) => Response::from_string("encoding failed\n").with_status_code(500),
                }
            }
            (Method::Get | Method::Head, "/health") => match source.health() {
                Ok(()) => Response::from_string("ok\n"),
                Err(reason) => Response::from_string(format!("{reason}\n")).with_status_code(503),
            },
            _ => {
                Response::from_string("not found: try /metrics or /health\n").with_status_code(404)
            }
        };
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "metrics client went away");
        }
    }
}

fn header(content_type: &str) -> Header {
    Header::from_bytes("Content-Type", content_type).expect("a valid header")
}
