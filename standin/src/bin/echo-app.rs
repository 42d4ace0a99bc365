//! Command-line echo application: responds to every request with a JSON description of it.

use std::net::TcpListener;
use std::process::ExitCode;

use authgear_standin::cli::{parse_flags, wait_for_stop_signal};
use authgear_standin::{start_echo_with, EchoOptions};

const USAGE: &str = "\
Usage: echo-app [--listen ADDRESS]

Responds to every method on every path with 200 application/json describing the request:
method, uri, version, headers, body_length and body_sha256. Logs one line per request
to stderr. Stops on SIGINT or SIGTERM.

Options:
  --listen ADDRESS   address and port to listen on; port 0 picks a free port
                     [default: 127.0.0.1:3002]
  -h, --help         print this help
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("echo-app: {message}");
            eprintln!("Run with --help for usage.");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let Some(flags) = parse_flags(std::env::args().skip(1), &["listen"])? else {
        print!("{USAGE}");
        return Ok(());
    };
    let listen = flags.get("listen").map_or("127.0.0.1:3002", String::as_str);

    let listener = TcpListener::bind(listen)
        .map_err(|error| format!("failed to listen on {listen}: {error}"))?;
    let echo = start_echo_with(listener, EchoOptions { log_requests: true })
        .map_err(|error| format!("failed to start the echo application: {error}"))?;
    eprintln!("echo-app: listening on {}", echo.addr());

    let signal = wait_for_stop_signal()
        .map_err(|error| format!("failed to wait for a stop signal: {error}"))?;
    eprintln!("echo-app: stopping on {signal}");
    echo.shutdown();
    Ok(())
}
