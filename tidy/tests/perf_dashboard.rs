//! Runs `python3 perf/test_dashboard.py`, so CI exercises the perf dashboard generator
//! (`perf/` is Python, not a crate). Needs `python3` (3.11 or newer) on the PATH.

use std::path::Path;
use std::process::Command;

#[test]
fn perf_dashboard_generator_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tidy/ has a parent");
    let output = Command::new("python3")
        .arg(root.join("perf").join("test_dashboard.py"))
        .current_dir(root)
        .output()
        .expect("python3 is needed to test perf/dashboard.py; install Python 3.11 or newer");
    assert!(
        output.status.success(),
        "python3 perf/test_dashboard.py failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
