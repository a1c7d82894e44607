//! The control API, through which Python, Node and Kotlin tests drive a testkit
//! running as a separate process exactly as Rust tests drive it in-process.

use std::io::ErrorKind;
use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpStream;

use crate::behavior::Behavior;
use crate::dns::{DnsRecords, DnsTable};
use crate::http1::{Conn, Request, Response};
use crate::upstream::Upstream;

pub(crate) async fn serve_connection(
    upstreams: Arc<[Upstream]>,
    dns: Arc<DnsTable>,
    stream: TcpStream,
) {
    let mut conn = Conn::new(stream);
    while let Some(request) = conn.next_request().await {
        let response = route(&upstreams, &dns, &request).await;
        let close = !request.keep_alive;
        let head_only = request.method == "HEAD";
        if conn.respond(&response, head_only, close).await.is_err() || close {
            return;
        }
    }
}

#[derive(Serialize)]
struct Listing {
    index: usize,
    url: String,
}

async fn route(upstreams: &[Upstream], dns: &DnsTable, request: &Request) -> Response {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["upstreams"]) => {
            let listing: Vec<Listing> = upstreams
                .iter()
                .map(|u| Listing {
                    index: u.index(),
                    url: u.url(),
                })
                .collect();
            Response::json(200, &listing)
        }
        ("PUT", ["dns", name]) => put_dns(dns, name, &request.body),
        ("POST", ["reset"]) => {
            upstreams.iter().for_each(Upstream::reset);
            Response::empty(204)
        }
        (method, ["upstreams", index, operation]) => {
            let Some(upstream) = index.parse::<usize>().ok().and_then(|i| upstreams.get(i)) else {
                return Response::error(
                    404,
                    format!("no upstream {index:?}; there are {}", upstreams.len()),
                );
            };
            match (method, *operation) {
                ("PUT", "behavior") => put_behavior(upstream, &request.body),
                ("GET", "requests") => Response::json(200, &upstream.requests()),
                ("POST", "reset") => {
                    upstream.reset();
                    Response::empty(204)
                }
                ("POST", "stop") => {
                    upstream.stop().await;
                    Response::empty(204)
                }
                ("POST", "start") => match upstream.start() {
                    Ok(()) => Response::empty(204),
                    Err(e) if e.kind() == ErrorKind::AddrInUse => Response::error(
                        409,
                        format!("{} was taken while stopped: {e}", upstream.url()),
                    ),
                    Err(e) => Response::error(500, format!("cannot listen again: {e}")),
                },
                _ => not_found(request),
            }
        }
        _ => not_found(request),
    }
}

fn put_behavior(upstream: &Upstream, body: &[u8]) -> Response {
    let behavior: Behavior = match serde_json::from_slice(body) {
        Ok(behavior) => behavior,
        Err(e) => return Response::error(400, format!("invalid behavior: {e}")),
    };
    if let Err(e) = behavior.validate() {
        return Response::error(400, format!("invalid behavior: {e}"));
    }
    upstream.set_behavior(behavior);
    Response::empty(204)
}

fn put_dns(dns: &DnsTable, name: &str, body: &[u8]) -> Response {
    let records: DnsRecords = match serde_json::from_slice(body) {
        Ok(records) => records,
        Err(e) => return Response::error(400, format!("invalid DNS records: {e}")),
    };
    match dns.set(name, records) {
        Ok(()) => Response::empty(204),
        Err(e) => Response::error(400, format!("invalid DNS records: {e}")),
    }
}

fn not_found(request: &Request) -> Response {
    Response::error(
        404,
        format!("no route for {} {}", request.method, request.path),
    )
}
