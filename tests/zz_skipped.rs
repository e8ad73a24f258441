//! Role: the last test target of `cargo test` (targets run in name order; the library has no
//! doctests, `doctest = false`): prints how many tests this run skipped and why, from the
//! notes `common::skip` leaves under target/tmp/meshsniff-skipped/, then removes them. A
//! skipped test's own `SKIPPED` line is in captured stderr, which a passing run never shows.

mod common;

use std::collections::BTreeMap;

fn main() {
    let dir = common::skip_dir();
    let run = std::os::unix::process::parent_id().to_string();
    // reason -> tests skipped for it
    let mut by_reason: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut total = 0usize;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.splitn(3, '-');
        let (cargo, _pid, test) = (parts.next(), parts.next(), parts.next());
        let (Some(cargo), Some(test)) = (cargo, test) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if cargo != run {
            // A note of another `cargo test`: keep it while that run is still going.
            if !std::path::Path::new(&format!("/proc/{cargo}")).exists() {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let why = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        by_reason.entry(why).or_default().push(test.to_string());
        total += 1;
    }
    // Worded unlike the test runner's own lines (`test result: …`), so a reader of the log
    // does not take it for one.
    if total == 0 {
        let strict = std::env::var_os(common::REQUIRE_ENV).is_some();
        println!(
            "meshsniff: no test was skipped in this run{}",
            if strict {
                format!(" ({} is set: a skip fails its test)", common::REQUIRE_ENV)
            } else {
                String::new()
            }
        );
        return;
    }
    println!(
        "meshsniff: SKIPPED {total} test{} in this run, checking nothing:",
        if total == 1 { "" } else { "s" }
    );
    for (why, mut tests) in by_reason {
        tests.sort();
        println!("  {} ({}): {}", why, tests.len(), tests.join(", "));
    }
    println!(
        "meshsniff: to run them: as root, with ../shared/ beside the checkout and the packages \
         of .ci/run (README, Tests); {}=1 makes every skip a failure",
        common::REQUIRE_ENV
    );
}
