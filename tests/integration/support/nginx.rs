//! Runs the real nginx binary with the module loaded, from a configuration
//! written per test into a temporary prefix directory.
//!
//! `TEST_NGINX_BINARY` replaces the nginx binary that the module was built
//! against, and `TEST_NGINX_MODULE` replaces the module built next to this
//! test binary, so that another nginx build (Debian's, for example) can run
//! the same tests.
//!
//! `TEST_NGINX_WRAPPER` runs nginx under another program, such as
//! `valgrind --tool=memcheck`: its words go before the nginx command line,
//! nginx runs as a single process (`master_process off`), so that the
//! wrapper runs the process that serves requests, and the start and stop
//! timeouts grow to `WRAPPED_TIMEOUT`.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Maximum time to wait for nginx to accept connections after it starts.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum time to wait for nginx to exit after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The start and stop timeouts under `TEST_NGINX_WRAPPER`: valgrind takes
/// several seconds to start nginx, and some more to write its report at exit.
const WRAPPED_TIMEOUT: Duration = Duration::from_secs(60);

/// Returns the words of `TEST_NGINX_WRAPPER`, or `None` when it is unset or
/// blank.
fn wrapper() -> Option<Vec<String>> {
    let value = std::env::var("TEST_NGINX_WRAPPER").ok()?;
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    (!words.is_empty()).then_some(words)
}

fn startup_timeout() -> Duration {
    if wrapper().is_some() {
        WRAPPED_TIMEOUT
    } else {
        STARTUP_TIMEOUT
    }
}

fn shutdown_timeout() -> Duration {
    if wrapper().is_some() {
        WRAPPED_TIMEOUT
    } else {
        SHUTDOWN_TIMEOUT
    }
}

/// Number of error log lines printed when a test fails.
const ERROR_LOG_TAIL_LINES: usize = 80;

/// Number of attempts to start nginx when another process took the port
/// picked for it between the pick and nginx's bind().
const START_ATTEMPTS: usize = 4;

/// Returns the nginx binary to run: `TEST_NGINX_BINARY`, or the binary of the
/// vendored build that the module was compiled against.
pub fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TEST_NGINX_BINARY") {
        return PathBuf::from(path);
    }
    match option_env!("AUTHGEAR_NGINX_BUILD_DIR") {
        Some(dir) => Path::new(dir).join("nginx"),
        None => panic!(
            "no nginx binary: the build script did not export AUTHGEAR_NGINX_BUILD_DIR, \
             so set TEST_NGINX_BINARY to the nginx binary to test"
        ),
    }
}

/// Returns the module to load: `TEST_NGINX_MODULE`, or the cdylib that
/// `cargo build` put into the same profile directory as this test binary.
///
/// `cargo test` does not build a cdylib-only library for integration tests,
/// so the default module panics when it is missing or older than a file
/// under `src/`, rather than testing stale code.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TEST_NGINX_MODULE") {
        // `load_module` resolves a relative path against nginx's prefix,
        // which is a temporary directory here.
        return std::path::absolute(&path).unwrap_or_else(|error| {
            panic!(
                "invalid TEST_NGINX_MODULE {}: {error}",
                Path::new(&path).display()
            )
        });
    }
    // The test binary is <target>/<profile>/deps/integration-<hash>.
    let exe = std::env::current_exe().expect("path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary inside <target>/<profile>/deps");
    let module = profile_dir.join("libngx_http_authgear_module.so");
    let built = fs::metadata(&module)
        .and_then(|metadata| metadata.modified())
        .unwrap_or_else(|error| {
            panic!(
                "module not found at {} ({error}): run `cargo build` before the tests, \
                 or set TEST_NGINX_MODULE",
                module.display()
            )
        });

    // cargo's dep-info file lists the sources the module was built from;
    // test-only files are not among them.
    let dep_info = profile_dir.join("libngx_http_authgear_module.d");
    let sources = module_sources(&dep_info).unwrap_or_else(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        newest_file(&src)
            .map(|(path, _)| path)
            .into_iter()
            .collect()
    });
    for source in sources {
        let Ok(modified) = fs::metadata(&source).and_then(|metadata| metadata.modified()) else {
            continue;
        };
        assert!(
            modified <= built,
            "module {} is older than {}: run `cargo build` before the tests, \
             or set TEST_NGINX_MODULE to test that module anyway",
            module.display(),
            source.display()
        );
    }
    module
}

/// Reads the source files of a cargo dep-info file (`target: source ...`).
fn module_sources(dep_info: &Path) -> Option<Vec<PathBuf>> {
    let text = fs::read_to_string(dep_info).ok()?;
    let first = text.lines().next()?;
    let (_, sources) = first.split_once(": ")?;
    Some(sources.split_whitespace().map(PathBuf::from).collect())
}

/// Returns the most recently modified file under `dir`, recursively.
fn newest_file(dir: &Path) -> Option<(PathBuf, std::time::SystemTime)> {
    let mut newest: Option<(PathBuf, std::time::SystemTime)> = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest_file(&path)
        } else {
            entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .map(|modified| (path, modified))
        };
        if let Some(candidate) = candidate {
            if newest.as_ref().is_none_or(|(_, time)| candidate.1 > *time) {
                newest = Some(candidate);
            }
        }
    }
    newest
}

/// Returns a port on 127.0.0.1 that was free a moment ago.
///
/// NOTE: another process can take the port before nginx binds it, so
/// `NginxBuilder::start` retries with new ports when nginx reports
/// "Address already in use".
pub fn pick_free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Binds a listener on an ephemeral port of 127.0.0.1, for the stand-in servers.
pub fn bind_local() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")
}

/// A configuration to run or check, and the temporary prefix directory that
/// contains it with the logs, pid file and temporary files.
pub struct NginxBuilder {
    dir: TempDir,
    worker_processes: u32,
    main: String,
    http: String,
    server: String,
    http2_listener: bool,
    error_log_level: String,
}

impl Default for NginxBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NginxBuilder {
    /// Creates an empty configuration with one worker process.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("authgear-nginx-")
            .tempdir()
            .expect("create a temporary prefix directory");
        NginxBuilder {
            dir,
            worker_processes: 1,
            main: String::new(),
            http: String::new(),
            server: String::new(),
            http2_listener: false,
            error_log_level: "debug".to_owned(),
        }
    }

    /// Returns the prefix directory, which configurations can use for `root`
    /// and log paths.
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    pub fn worker_processes(mut self, count: u32) -> Self {
        self.worker_processes = count;
        self
    }

    /// Appends directives to the main context, before the `events` block.
    pub fn main(mut self, directives: &str) -> Self {
        self.main.push_str(directives);
        self.main.push('\n');
        self
    }

    /// Appends directives to the `http` block, before the server.
    pub fn http(mut self, directives: &str) -> Self {
        self.http.push_str(directives);
        self.http.push('\n');
        self
    }

    /// Appends directives to the body of the server, after its `listen` lines.
    pub fn server(mut self, directives: &str) -> Self {
        self.server.push_str(directives);
        self.server.push('\n');
        self
    }

    /// Sets the level of the error log, `debug` by default. Tests that send
    /// thousands of requests use `notice`, because an nginx built with
    /// `--with-debug` writes about 16 KB of debug lines per request.
    pub fn error_log_level(mut self, level: &str) -> Self {
        self.error_log_level = level.to_owned();
        self
    }

    /// Adds a second `listen` port that speaks cleartext HTTP/2 only.
    pub fn http2_listener(mut self) -> Self {
        self.http2_listener = true;
        self
    }

    /// Writes `contents` to `relative_path` under the prefix, creating parent
    /// directories.
    pub fn write_file(&self, relative_path: &str, contents: &str) {
        let path = self.prefix().join(relative_path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create directories under the prefix");
        }
        fs::write(&path, contents).expect("write a file under the prefix");
    }

    fn conf_path(&self) -> PathBuf {
        self.prefix().join("nginx.conf")
    }

    fn error_log_path(&self) -> PathBuf {
        self.prefix().join("error.log")
    }

    /// Renders the whole nginx.conf for the given listen ports.
    fn render(&self, port: u16, http2_port: Option<u16>) -> String {
        let prefix = self.prefix().display();
        let module = module_path();
        let user = if is_root() {
            // Workers of a root master run as `nobody` by default, which
            // cannot read the 0700 temporary directory.
            "user root;\n"
        } else {
            ""
        };
        let http2_listen = match http2_port {
            Some(port) => format!("        listen 127.0.0.1:{port} http2;\n"),
            None => String::new(),
        };
        format!(
            "load_module {module};\n\
             daemon off;\n\
             master_process {master_process};\n\
             worker_processes {workers};\n\
             {user}\
             pid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log {error_log_level};\n\
             {main}\n\
             events {{\n\
             \x20   worker_connections 128;\n\
             }}\n\
             \n\
             http {{\n\
             \x20   access_log {prefix}/access.log;\n\
             \x20   client_body_temp_path {prefix}/client_body_temp;\n\
             \x20   proxy_temp_path {prefix}/proxy_temp;\n\
             \x20   fastcgi_temp_path {prefix}/fastcgi_temp;\n\
             \x20   uwsgi_temp_path {prefix}/uwsgi_temp;\n\
             \x20   scgi_temp_path {prefix}/scgi_temp;\n\
             \x20   default_type application/octet-stream;\n\
             \n\
             {http}\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port};\n\
             {http2_listen}\
             \x20       server_name localhost;\n\
             \n\
             {server}\n\
             \x20   }}\n\
             }}\n",
            module = module.display(),
            master_process = if wrapper().is_some() { "off" } else { "on" },
            workers = self.worker_processes,
            error_log_level = self.error_log_level,
            main = self.main,
            http = self.http,
            server = self.server,
        )
    }

    fn command(&self) -> Command {
        let mut command = match wrapper() {
            Some(words) => {
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]).arg(nginx_binary());
                command
            }
            None => Command::new(nginx_binary()),
        };
        command
            .arg("-p")
            .arg(self.prefix())
            .arg("-c")
            .arg(self.conf_path())
            .arg("-e")
            .arg(self.error_log_path())
            .stdin(Stdio::null());
        command
    }

    /// Runs `nginx -t` on the configuration and returns its result.
    pub fn check(self) -> ConfigCheck {
        let conf = self.render(pick_free_port(), None);
        fs::write(self.conf_path(), &conf).expect("write nginx.conf");
        let Output { status, stderr, .. } =
            self.command().arg("-t").output().expect("run nginx -t");
        ConfigCheck {
            success: status.success(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            conf_path: self.conf_path(),
            conf,
            _dir: self.dir,
        }
    }

    /// Starts nginx and waits until its port accepts connections.
    ///
    /// Panics with nginx's output when it exits or does not accept
    /// connections within `STARTUP_TIMEOUT` (`WRAPPED_TIMEOUT` under
    /// `TEST_NGINX_WRAPPER`).
    pub fn start(self) -> Nginx {
        let mut attempt = 1;
        loop {
            let port = pick_free_port();
            let http2_port = self.http2_listener.then(pick_free_port);
            fs::write(self.conf_path(), self.render(port, http2_port)).expect("write nginx.conf");
            let _ = fs::remove_file(self.error_log_path());

            let stderr =
                fs::File::create(self.prefix().join("stderr.log")).expect("create stderr.log");
            let child = self
                .command()
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|error| {
                    panic!("failed to start {}: {error}", nginx_binary().display())
                });

            let mut nginx = Nginx {
                child: Some(child),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                http2_addr: http2_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
                prefix: self.prefix().to_owned(),
                dir: None,
            };
            match nginx.wait_until_ready() {
                Ok(()) => {
                    nginx.dir = Some(self.dir);
                    return nginx;
                }
                Err(StartError::AddressInUse) if attempt < START_ATTEMPTS => {
                    nginx.stop();
                    attempt += 1;
                }
                Err(error) => {
                    // Dropping `nginx` while panicking prints its output.
                    panic!("nginx did not start: {error}");
                }
            }
        }
    }
}

/// The result of `nginx -t`.
pub struct ConfigCheck {
    pub success: bool,
    pub stderr: String,
    pub conf_path: PathBuf,
    /// The configuration that was checked.
    pub conf: String,
    _dir: TempDir,
}

impl ConfigCheck {
    /// Returns the 1-based line number of the `occurrence`-th (1-based) line
    /// of the configuration that contains `needle`.
    pub fn line_of(&self, needle: &str, occurrence: usize) -> usize {
        self.conf
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains(needle))
            .nth(occurrence - 1)
            .map(|(index, _)| index + 1)
            .unwrap_or_else(|| {
                panic!(
                    "{needle:?} occurs fewer than {occurrence} times in:\n{}",
                    self.conf
                )
            })
    }

    /// Returns the `nginx: [emerg] ...` line nginx prints for an error at `line`.
    pub fn emerg_line(&self, message: &str, line: usize) -> String {
        format!(
            "nginx: [emerg] {message} in {}:{line}",
            self.conf_path.display()
        )
    }
}

#[derive(Debug)]
enum StartError {
    /// nginx could not bind its port because another process had taken it.
    AddressInUse,
    Exited(std::process::ExitStatus),
    TimedOut,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::AddressInUse => formatter.write_str("address already in use"),
            StartError::Exited(status) => write!(formatter, "nginx exited with {status}"),
            StartError::TimedOut => write!(
                formatter,
                "nginx did not accept connections within {} s",
                startup_timeout().as_secs()
            ),
        }
    }
}

/// A running nginx master process and its prefix directory.
pub struct Nginx {
    child: Option<Child>,
    addr: SocketAddr,
    http2_addr: Option<SocketAddr>,
    prefix: PathBuf,
    /// The prefix directory, deleted on drop. It is `None` while nginx starts.
    dir: Option<TempDir>,
}

impl Nginx {
    /// Returns the address of the HTTP/1.1 listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the address of the HTTP/2 listener added by
    /// `NginxBuilder::http2_listener`.
    pub fn http2_addr(&self) -> SocketAddr {
        self.http2_addr
            .expect("the configuration has no HTTP/2 listener: call NginxBuilder::http2_listener")
    }

    /// Returns the whole error log, debug lines included.
    pub fn error_log(&self) -> String {
        read_lossy(&self.prefix.join("error.log"))
    }

    /// Returns the error log lines at `[error]` level, or at a more severe
    /// level, that contain `needle`.
    pub fn error_lines_containing(&self, needle: &str) -> Vec<String> {
        self.error_log()
            .lines()
            .filter(|line| is_error_or_worse(line) && line.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Waits up to `timeout` for the file `relative_path` under the prefix to
    /// contain at least `count` lines, and returns its lines.
    ///
    /// nginx writes an access log line after it has sent the response, so a
    /// test that reads the log right after the response must wait.
    pub fn wait_for_lines(
        &self,
        relative_path: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let path = self.prefix.join(relative_path);
        let deadline = Instant::now() + timeout;
        loop {
            let lines: Vec<String> = read_lossy(&path).lines().map(str::to_owned).collect();
            if lines.len() >= count || Instant::now() >= deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_until_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + startup_timeout();
        let child = self.child.as_mut().expect("a started nginx");
        loop {
            if let Some(status) = child.try_wait().expect("poll nginx") {
                let output = format!(
                    "{}{}",
                    read_lossy(&self.prefix.join("stderr.log")),
                    read_lossy(&self.prefix.join("error.log"))
                );
                if output.contains("Address already in use") {
                    return Err(StartError::AddressInUse);
                }
                return Err(StartError::Exited(status));
            }
            let listening = [Some(self.addr), self.http2_addr]
                .into_iter()
                .flatten()
                .all(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok());
            if listening {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::TimedOut);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops nginx with SIGTERM (fast shutdown), and kills it when it has not
    /// exited within `SHUTDOWN_TIMEOUT` (`WRAPPED_TIMEOUT` under
    /// `TEST_NGINX_WRAPPER`).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
        // SAFETY: kill() has no memory-safety preconditions, and `pid` is
        // our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + shutdown_timeout();
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "nginx (pid {pid}) did not exit within {} s of SIGTERM; killing it",
            shutdown_timeout().as_secs()
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Returns nginx's stderr, its warnings and errors, and the tail of its
    /// error log, for failure messages.
    fn diagnostics(&self) -> String {
        let stderr = read_lossy(&self.prefix.join("stderr.log"));
        let log = self.error_log();
        let lines: Vec<&str> = log.lines().collect();
        let problems: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| line.contains("[warn]") || is_error_or_worse(line))
            .collect();
        let tail = &lines[lines.len().saturating_sub(ERROR_LOG_TAIL_LINES)..];
        format!(
            "--- nginx stderr ---\n{stderr}\
             --- warnings and errors in {prefix}/error.log ---\n{problems}\n\
             --- last {count} lines of {prefix}/error.log ---\n{tail}\n---",
            prefix = self.prefix.display(),
            problems = problems.join("\n"),
            count = tail.len(),
            tail = tail.join("\n"),
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Read the log before the shutdown adds its own lines to the tail.
        let diagnostics = thread::panicking().then(|| self.diagnostics());
        self.stop();
        if let Some(diagnostics) = diagnostics {
            eprintln!("{diagnostics}");
        }
    }
}

/// Reports whether an error log line is at level `error` or more severe.
fn is_error_or_worse(line: &str) -> bool {
    ["[error]", "[crit]", "[alert]", "[emerg]"]
        .iter()
        .any(|level| line.contains(level))
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn is_root() -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
