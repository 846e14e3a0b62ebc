//! The command line of the real binary: `--help`, `--version`, unknown flags and bad settings.

use crate::support::process::{Finished, ServiceCommand};
use crate::support::{Backend, ServiceStore};

/// Runs the binary with `args` and extra `env` to completion: (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    // Should it start after all, it must not touch the working directory.
    let store = ServiceStore::new(Backend::Sqlite, "cli");
    let command = env
        .iter()
        .fold(ServiceCommand::new().store(&store), |c, (k, v)| {
            c.env(k, *v)
        });
    let Finished {
        code,
        stdout,
        stderr,
    } = command.run(args);
    (code, stdout, stderr)
}

#[test]
fn help_and_version_print_something_useful() {
    let (code, out, err) = run(&["--help"], &[]);
    assert_eq!(code, Some(0), "--help: {out}{err}");
    for variable in ["DATABASE_URL", "PORT"] {
        assert!(
            out.contains(variable),
            "--help does not mention {variable}:\n{out}"
        );
    }

    let (code, out, err) = run(&["--version"], &[]);
    assert_eq!(code, Some(0), "--version: {out}{err}");
    assert!(
        out.contains(env!("CARGO_PKG_VERSION")),
        "--version does not print {}: {out:?}",
        env!("CARGO_PKG_VERSION")
    );

    let (code, out, err) = run(&["--no-such-flag"], &[]);
    assert!(
        code.is_some_and(|c| c != 0),
        "an unknown flag must fail, got {code:?}: {out}{err}"
    );
    assert!(err.contains("--no-such-flag"), "stderr: {err}");

    let (code, out, err) = run(&[], &[("PORT", "notaport")]);
    assert!(
        code.is_some_and(|c| c != 0),
        "PORT=notaport must fail, got {code:?}: {out}{err}"
    );
    assert!(err.contains("PORT"), "stderr does not name PORT: {err:?}");
}

#[test]
fn help_names_every_environment_variable_the_service_reads() {
    let (code, out, err) = run(&["--help"], &[]);
    assert_eq!(code, Some(0), "--help: {out}{err}");
    let missing: Vec<&str> = session_service::config::VARIABLES
        .iter()
        .map(|variable| variable.name)
        .filter(|name| !out.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "--help does not mention {missing:?}:\n{out}"
    );
}
