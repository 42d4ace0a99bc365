//! Command-line stand-in for Authgear's resolver server (`authgear start resolver`).

use std::net::TcpListener;
use std::process::ExitCode;

use authgear_standin::cli::{parse_flags, wait_for_stop_signal};
use authgear_standin::{start_resolver_with, Directory, Fault, ResolverOptions};

const USAGE: &str = "\
Usage: authgear-standin-resolver --directory FILE [--listen ADDRESS] [--fault FAULT]

Serves Authgear's resolver contract on GET and HEAD /resolve and /_resolver/resolve,
with users, sessions and tokens from a directory JSON file. Logs one line per request
to stderr, without credential values. Stops on SIGINT or SIGTERM.

Options:
  --directory FILE   directory JSON file (required)
  --listen ADDRESS   address and port to listen on; port 0 picks a free port
                     [default: 127.0.0.1:3001]
  --fault FAULT      fault for every resolve request: none, internal_error_text,
                     internal_error_json, hangup, delay_ms=N, status=N,
                     header=NAME:VALUE, or a fault in its JSON form [default: none]
  -h, --help         print this help
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("authgear-standin-resolver: {message}");
            eprintln!("Run with --help for usage.");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let Some(flags) = parse_flags(std::env::args().skip(1), &["directory", "listen", "fault"])?
    else {
        print!("{USAGE}");
        return Ok(());
    };
    let listen = flags.get("listen").map_or("127.0.0.1:3001", String::as_str);
    let directory_path = flags.get("directory").ok_or("missing --directory FILE")?;
    let fault: Fault = match flags.get("fault") {
        Some(text) => text.parse()?,
        None => Fault::None,
    };

    let directory = Directory::load(directory_path).map_err(|error| error.to_string())?;
    let listener = TcpListener::bind(listen)
        .map_err(|error| format!("failed to listen on {listen}: {error}"))?;
    let options = ResolverOptions {
        fault: fault.clone(),
        log_requests: true,
    };
    let resolver = start_resolver_with(listener, directory, options)
        .map_err(|error| format!("failed to start the resolver: {error}"))?;
    eprintln!(
        "authgear-standin-resolver: listening on {} with directory {directory_path} and fault {fault}",
        resolver.addr()
    );

    let signal = wait_for_stop_signal()
        .map_err(|error| format!("failed to wait for a stop signal: {error}"))?;
    eprintln!("authgear-standin-resolver: stopping on {signal}");
    resolver.shutdown();
    Ok(())
}
