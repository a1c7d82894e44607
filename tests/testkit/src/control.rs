//! The control API, through which Python, Node and Kotlin tests drive a testkit
//! running as a separate process exactly as Rust tests drive it in-process.
//!
//! `GET /upstreams`; `PUT /upstreams/{i}/behavior`, `GET /upstreams/{i}/requests`,
//! `POST /upstreams/{i}/{reset,stop,start}`; `POST /reset`; `PUT /dns/{name}`;
//! `POST /proxies {"target": "host:port"}` → `{"index", "address"}` (a TCP proxy, for
//! cutting a client's connections to RabbitMQ or Redis), `GET /proxies/{i}` →
//! `{"address", "accepted", "held_bytes", "faults"}`,
//! `POST /proxies/{i}/{hold,cut,reset,stop,listen}`, `PUT /proxies/{i}/faults`
//! `{"latency_ms", "bandwidth_bytes_per_sec", "blackhole"}` (fields left out are off).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::net::TcpStream;

use crate::behavior::Behavior;
use crate::dns::{DnsRecords, DnsTable};
use crate::http1::{Conn, Request, Response};
use crate::proxy::{Faults, Proxy};
use crate::upstream::Upstream;

/// The TCP proxies made with `POST /proxies`, by index.
#[derive(Default)]
pub(crate) struct Proxies(Mutex<Vec<Arc<Proxy>>>);

impl Proxies {
    fn get(&self, index: &str) -> Option<Arc<Proxy>> {
        let list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        index
            .parse::<usize>()
            .ok()
            .and_then(|i| list.get(i).cloned())
    }
}

pub(crate) async fn serve_connection(
    upstreams: Arc<[Upstream]>,
    dns: Arc<DnsTable>,
    proxies: Arc<Proxies>,
    stream: TcpStream,
) {
    let mut conn = Conn::new(stream);
    while let Some(request) = conn.next_request().await {
        let response = route(&upstreams, &dns, &proxies, &request).await;
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

async fn route(
    upstreams: &[Upstream],
    dns: &DnsTable,
    proxies: &Proxies,
    request: &Request,
) -> Response {
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
        ("POST", ["proxies"]) => post_proxy(proxies, &request.body).await,
        (method, ["proxies", index, rest @ ..]) => {
            let Some(proxy) = proxies.get(index) else {
                return Response::error(404, format!("no proxy {index:?}"));
            };
            match (method, rest) {
                ("GET", []) => Response::json(200, &proxy.status()),
                ("POST", ["hold"]) => {
                    proxy.hold();
                    Response::empty(204)
                }
                ("POST", ["cut"]) => {
                    proxy.cut();
                    Response::empty(204)
                }
                ("POST", ["reset"]) => {
                    proxy.reset();
                    Response::empty(204)
                }
                ("PUT", ["faults"]) => match serde_json::from_slice::<Faults>(&request.body) {
                    Ok(faults) => {
                        proxy.set_faults(faults);
                        Response::empty(204)
                    }
                    Err(e) => Response::error(400, format!("not faults: {e}")),
                },
                ("POST", ["stop"]) => {
                    proxy.stop();
                    Response::empty(204)
                }
                ("POST", ["listen"]) => match proxy.listen() {
                    Ok(()) => Response::empty(204),
                    Err(e) => Response::error(409, format!("cannot listen again: {e}")),
                },
                _ => not_found(request),
            }
        }
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

/// `{"target": "host:port"}` → a new proxy to it, `{"index": i, "address": "..."}`.
async fn post_proxy(proxies: &Proxies, body: &[u8]) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewProxy {
        target: String,
    }
    let target = match serde_json::from_slice::<NewProxy>(body) {
        Ok(new) => new.target,
        Err(e) => return Response::error(400, format!("invalid proxy: {e}")),
    };
    let addr = match tokio::net::lookup_host(&target).await.map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => return Response::error(400, format!("invalid proxy target {target:?}")),
    };
    let proxy: SocketAddr = addr;
    match Proxy::start(proxy).await {
        Ok(proxy) => {
            let mut list = proxies.0.lock().unwrap_or_else(PoisonError::into_inner);
            let index = list.len();
            let address = proxy.addr().to_string();
            list.push(Arc::new(proxy));
            Response::json(
                200,
                &serde_json::json!({ "index": index, "address": address }),
            )
        }
        Err(e) => Response::error(500, format!("cannot start a proxy: {e}")),
    }
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
