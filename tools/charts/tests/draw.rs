//! The tool draws every chart from small JSON results like the benchmark scripts write, and
//! each SVG names its series and writes its figures.

use std::path::Path;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn drawn() -> (tempfile::TempDir, Vec<String>) {
    let out = tempfile::tempdir().expect("temp dir");
    let written = podstack_charts::write_all(fixtures(), out.path()).expect("charts drawn");
    let names = written
        .iter()
        .map(|path| {
            path.file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    (out, names)
}

fn svg(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(name)).expect("svg written");
    assert!(text.starts_with("<svg"), "{name}: {text}");
    assert!(text.trim_end().ends_with("</svg>"), "{name}");
    text
}

#[test]
fn draws_the_three_charts_the_book_shows() {
    let (_out, names) = drawn();
    assert_eq!(
        names,
        ["sync-latency.svg", "status-latency.svg", "plan-bytes.svg"]
    );
}

#[test]
fn sync_latency_names_podstack_the_field_loop_and_the_target() {
    let (out, _) = drawn();
    let text = svg(out.path(), "sync-latency.svg");
    for expected in [
        "podstack",
        "field loop (rclone sync per user, then sleep 60)",
        "\n4.0 s\n",
        "\n62.9 s\n",
        "target: min_age + 5 s = 7.0 s",
        "4 users x 50 files of 2-20 MB (2.1 GB)",
        "by `ci/bench-x.sh`, 2 cores, load average 4.2 at start, 5.1 at end",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}

#[test]
fn status_latency_compares_200_connections_with_the_field_panel_s_range() {
    let (out, _) = drawn();
    let text = svg(out.path(), "status-latency.svg");
    for expected in [
        "GET /api/status under 200 concurrent connections",
        "field panel (p99 only)",
        "\n4.0 ms\n",
        "\n43 ms\n",
        "\n7.3 ms-7.8 ms\n",
        "target: p99 &lt;= 5.0 ms",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert!(
        !text.contains("\n109 ms\n"),
        "the 1,000-connection round is not this chart's"
    );
}

#[test]
fn plan_bytes_puts_the_prediction_beside_docker_per_change() {
    let (out, _) = drawn();
    let text = svg(out.path(), "plan-bytes.svg");
    for expected in [
        "podstack plan (predicted)",
        "Docker (layers rebuilt)",
        "(a) control panel file",
        "(b) runtime setting",
        "\n100 KB\n",
        "\n2.7 KB\n",
        "the plan named the rebuilt layers exactly in every change",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}

#[test]
fn a_missing_result_names_the_benchmark_that_writes_it() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = podstack_charts::write_all(empty.path(), empty.path()).expect_err("no results");
    let message = err.to_string();
    assert!(
        message.contains("bench-sync.json")
            && message.contains("hint: run ci/bench-sync.sh first; it writes this file"),
        "{message}"
    );
}

#[test]
fn check_passes_on_current_charts_and_names_a_stale_one() {
    let (out, _) = drawn();
    podstack_charts::check_all(fixtures(), out.path()).expect("current");
    std::fs::write(out.path().join("plan-bytes.svg"), "<svg/>\n").expect("write");
    let err = podstack_charts::check_all(fixtures(), out.path()).expect_err("stale");
    assert_eq!(
        err.to_string(),
        format!(
            "{} differ from what the results draw\n  hint: run ci/charts.sh and commit the result",
            out.path().join("plan-bytes.svg").display()
        )
    );
}
