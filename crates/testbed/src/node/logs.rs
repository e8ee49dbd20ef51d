//! Container logs: where each container's output goes, and the kubelet-style HTTPS endpoint
//! (`/containerLogs/{ns}/{pod}/{container}`) that the API server's `pods/log` proxies to.

use std::{
    collections::HashMap,
    io::SeekFrom,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use tokio::{
    io::{AsyncReadExt, AsyncSeekExt},
    net::TcpListener,
    sync::watch,
};

/// Where one container's current and previous log live, and whether it is still running.
#[derive(Debug, Clone)]
pub struct ContainerLog {
    /// The current instance's log file.
    pub path: PathBuf,
    /// The previous instance's log (after a restart), for `previous=true`.
    pub previous: Option<PathBuf>,
    /// `true` while the process runs; `follow` ends when it turns `false`.
    pub running: watch::Receiver<bool>,
}

/// The containers' logs of one pod, by container name.
type PodLogs = HashMap<String, ContainerLog>;

/// Log files of the pods on one node, keyed by namespace and pod name.
#[derive(Debug, Clone, Default)]
pub struct LogStore {
    inner: Arc<RwLock<HashMap<(String, String), PodLogs>>>,
}

impl LogStore {
    /// Records (or replaces) the log of `container` in `ns/pod`.
    pub fn set(&self, ns: &str, pod: &str, container: &str, log: ContainerLog) {
        if let Ok(mut map) = self.inner.write() {
            map.entry((ns.to_owned(), pod.to_owned()))
                .or_default()
                .insert(container.to_owned(), log);
        }
    }

    /// Forgets a pod (it was deleted).
    pub fn remove_pod(&self, ns: &str, pod: &str) {
        if let Ok(mut map) = self.inner.write() {
            map.remove(&(ns.to_owned(), pod.to_owned()));
        }
    }

    fn get(&self, ns: &str, pod: &str, container: &str) -> Option<ContainerLog> {
        self.inner
            .read()
            .ok()?
            .get(&(ns.to_owned(), pod.to_owned()))?
            .get(container)
            .cloned()
    }
}

/// Query parameters the API server forwards from `pods/log`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// Stream new output until the container ends.
    #[serde(default)]
    pub follow: Option<String>,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// At most N bytes.
    pub limit_bytes: Option<u64>,
    /// The previous instance's log.
    #[serde(default)]
    pub previous: Option<String>,
}

fn flag(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "true" || v == "1")
}

/// Byte offset at which the last `lines` lines of `file` start. Reads backwards in blocks so that
/// a huge log costs only the bytes of its tail.
async fn tail_offset(file: &mut tokio::fs::File, len: u64, lines: u64) -> std::io::Result<u64> {
    if lines == 0 {
        return Ok(len);
    }
    const BLOCK: u64 = 64 * 1024;
    let mut pos = len;
    let mut newlines = 0u64;
    // A trailing newline ends the last line; it does not start a new one.
    let mut skip_last = true;
    let mut buf = vec![0u8; usize::try_from(BLOCK).unwrap_or(65_536)];
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let n = usize::try_from(pos - start).unwrap_or(0);
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut buf[..n]).await?;
        for i in (0..n).rev() {
            if buf[i] == b'\n' {
                if skip_last && start + i as u64 == len - 1 {
                    skip_last = false;
                    continue;
                }
                newlines += 1;
                if newlines == lines {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        skip_last = false;
        pos = start;
    }
    Ok(0)
}

async fn container_logs(
    State(store): State<LogStore>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(log) = store.get(&ns, &pod, &container) else {
        return (
            StatusCode::NOT_FOUND,
            format!("container {container:?} in pod {ns}/{pod} is not on this node"),
        )
            .into_response();
    };
    let previous = flag(q.previous.as_ref());
    let path = if previous {
        match log.previous.clone() {
            Some(p) => p,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                )
                    .into_response();
            }
        }
    } else {
        log.path.clone()
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot open log: {e}")).into_response();
        }
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let start = match q.tail_lines {
        Some(n) => tail_offset(&mut file, len, n).await.unwrap_or(0),
        None => 0,
    };
    if file.seek(SeekFrom::Start(start)).await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot seek log").into_response();
    }
    let follow = flag(q.follow.as_ref()) && !previous;
    let stream = LogStream {
        file,
        remaining: q.limit_bytes.unwrap_or(u64::MAX),
        follow,
        running: log.running,
    };
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream.into_stream()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

struct LogStream {
    file: tokio::fs::File,
    remaining: u64,
    follow: bool,
    running: watch::Receiver<bool>,
}

impl LogStream {
    fn into_stream(self) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
        futures::stream::unfold(self, |mut s| async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if s.remaining == 0 {
                    return None;
                }
                let want = usize::try_from(s.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
                match s.file.read(&mut buf[..want]).await {
                    Ok(0) => {
                        // At the end of what was written so far: a follower waits for more while
                        // the container runs; the file is re-read after it stops, so the last
                        // bytes written before exit are never lost.
                        if !s.follow {
                            return None;
                        }
                        if !*s.running.borrow() {
                            s.follow = false;
                            continue;
                        }
                        let _ = tokio::time::timeout(Duration::from_millis(100), s.running.changed()).await;
                    }
                    Ok(n) => {
                        s.remaining -= n as u64;
                        buf.truncate(n);
                        return Some((Ok(Bytes::from(buf)), s));
                    }
                    Err(e) => return Some((Err(e), s)),
                }
            }
        })
    }
}

/// Serves the log endpoint over TLS on a free loopback port; returns the bound address.
///
/// # Errors
/// When the port cannot be bound or the certificate is unusable.
pub async fn serve(
    store: LogStore,
    cert_pem: &str,
    key_pem: &str,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, std::io::Error> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .with_state(store);
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn offset_of(content: &str, lines: u64) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, content).unwrap();
        let mut f = tokio::fs::File::open(&p).await.unwrap();
        tail_offset(&mut f, content.len() as u64, lines).await.unwrap()
    }

    #[tokio::test]
    async fn tail_lines_counts_lines_from_the_end() {
        assert_eq!(offset_of("a\nb\nc\n", 1).await, 4);
        assert_eq!(offset_of("a\nb\nc\n", 2).await, 2);
        assert_eq!(offset_of("a\nb\nc\n", 5).await, 0);
        assert_eq!(offset_of("a\nb\nc", 1).await, 4);
        assert_eq!(offset_of("", 3).await, 0);
        assert_eq!(offset_of("a\nb\n", 0).await, 4);
    }

    #[tokio::test]
    async fn tail_works_across_block_boundaries() {
        let line = "x".repeat(999) + "\n";
        let content = line.repeat(300);
        assert_eq!(offset_of(&content, 7).await, (content.len() - 7 * 1000) as u64);
    }
}
