//! Helpers shared by the two binaries: flag parsing and waiting for a stop signal.

use std::collections::HashMap;
use std::io;

/// Parses `--name value` pairs. `flags` lists the accepted names without dashes.
///
/// Returns `Ok(None)` when `-h` or `--help` is present. A missing value, an unknown flag, a
/// repeated flag or a positional argument is an error that names it.
pub fn parse_flags(
    arguments: impl IntoIterator<Item = String>,
    flags: &[&str],
) -> Result<Option<HashMap<String, String>>, String> {
    let mut values = HashMap::new();
    let mut arguments = arguments.into_iter();
    while let Some(argument) = arguments.next() {
        if argument == "-h" || argument == "--help" {
            return Ok(None);
        }
        let Some(name) = argument
            .strip_prefix("--")
            .filter(|name| flags.contains(name))
        else {
            return Err(format!("unknown argument {argument:?}"));
        };
        let Some(value) = arguments.next() else {
            return Err(format!("missing value for --{name}"));
        };
        if values.insert(name.to_owned(), value).is_some() {
            return Err(format!("--{name} given more than once"));
        }
    }
    Ok(Some(values))
}

/// Blocks until the process receives SIGINT or, on Unix, SIGTERM. Returns the signal's name.
pub fn wait_for_stop_signal() -> io::Result<&'static str> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
                _ = terminate.recv() => Ok("SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.map(|()| "SIGINT")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(list: &[&str]) -> Vec<String> {
        list.iter().map(|argument| argument.to_string()).collect()
    }

    #[test]
    fn flags_parse() {
        let parsed = parse_flags(
            arguments(&["--listen", "127.0.0.1:0", "--fault", "hangup"]),
            &["listen", "fault"],
        );
        let values = parsed.unwrap().unwrap();
        assert_eq!(
            values.get("listen").map(String::as_str),
            Some("127.0.0.1:0")
        );
        assert_eq!(values.get("fault").map(String::as_str), Some("hangup"));
    }

    #[test]
    fn help_flag_returns_none() {
        assert_eq!(
            parse_flags(arguments(&["--listen", "x", "--help"]), &["listen"]),
            Ok(None)
        );
    }

    #[test]
    fn bad_arguments_rejected() {
        let cases: [&[&str]; 4] = [
            &["--port", "1"],
            &["--listen"],
            &["positional"],
            &["--listen", "a", "--listen", "b"],
        ];
        for case in cases {
            assert!(
                parse_flags(arguments(case), &["listen"]).is_err(),
                "{case:?} was accepted"
            );
        }
    }
}
