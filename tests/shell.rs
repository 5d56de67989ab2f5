//! The interactive shell in a real (pseudo-)terminal: continuation prompt, completion,
//! type-ahead, history and Ctrl-C, driven by `tests/shell/drive.py`. Skips with a message
//! when python3 is not installed.

use std::process::Command;

#[test]
fn the_shell_in_a_terminal() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is not installed, and it drives the pseudo-terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/shell/drive.py");
    let output = Command::new("python3")
        .args([script, env!("CARGO_BIN_EXE_recfusion"), dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
