//! HTTP/1.1 server on a background thread, shared by the resolver and the echo application.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

/// Error a handler returns to close the connection without sending a response.
#[derive(Debug)]
pub(crate) struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("connection closed without a response on purpose")
    }
}

impl std::error::Error for Hangup {}

pub(crate) type HandlerResult = Result<Response<Full<Bytes>>, Hangup>;

/// Settings that differ between the servers.
pub(crate) struct ServerConfig {
    /// Name of the thread and prefix of log lines.
    pub name: &'static str,
    /// Whether response header names are sent in title case (`X-Authgear-User-Id`) as Go
    /// sends them, rather than in lower case.
    pub title_case_headers: bool,
    /// Whether connection errors are logged to stderr.
    pub log_errors: bool,
}

/// A server accepting connections on a background thread with its own single-threaded
/// tokio runtime. Dropping it stops the server and closes every open connection.
pub(crate) struct BackgroundServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Starts serving `listener`, calling `handler` for every request.
    pub(crate) fn start<H, F>(
        listener: std::net::TcpListener,
        config: ServerConfig,
        handler: H,
    ) -> io::Result<Self>
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = HandlerResult> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };

        let connections = Arc::new(AtomicUsize::new(0));
        let (shutdown, shutdown_received) = oneshot::channel();
        let accepted = Arc::clone(&connections);
        let thread = thread::Builder::new()
            .name(config.name.to_owned())
            .spawn(move || {
                runtime.block_on(accept_loop(
                    listener,
                    config,
                    handler,
                    accepted,
                    shutdown_received,
                ));
                // Dropping the runtime here cancels the tasks of open connections, which closes them.
            })?;

        Ok(BackgroundServer {
            addr,
            connections,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn reset_connections(&self) {
        self.connections.store(0, Ordering::SeqCst);
    }

    /// Stops accepting, closes open connections and waits for the thread to end.
    pub(crate) fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The receiver is gone only if the accept loop already ended, which is fine.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                eprintln!("server thread panicked while stopping");
            }
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop<H, F>(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    handler: H,
    connections: Arc<AtomicUsize>,
    mut shutdown: oneshot::Receiver<()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HandlerResult> + Send + 'static,
{
    let config = Arc::new(config);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // For example too many open files: wait instead of spinning on the error.
                eprintln!("{}: failed to accept a connection: {error}", config.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        connections.fetch_add(1, Ordering::SeqCst);
        if let Err(error) = stream.set_nodelay(true) {
            eprintln!(
                "{}: failed to set TCP_NODELAY for {peer}: {error}",
                config.name
            );
        }

        let handler = handler.clone();
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            let service = service_fn(handler);
            let result = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .title_case_headers(config.title_case_headers)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = result {
                if config.log_errors {
                    eprintln!(
                        "{}: connection from {peer} ended with an error: {error}",
                        config.name
                    );
                }
            }
        });
    }
}

/// Builds a response with a fixed body. `content_type` is omitted when `None`.
pub(crate) fn response(
    status: u16,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    if let Some(content_type) = content_type {
        builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
    }
    builder
        .body(Full::new(body.into()))
        .expect("status and content type are valid")
}
