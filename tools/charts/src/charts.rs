//! The book's three charts, each built from one benchmark's JSON result: sync latency against
//! the field's loop, status latency against the field's panel, and the bytes `podstack plan`
//! predicts per change against the layers Docker rebuilt.

use plotters::style::RGBColor;

use crate::bars::{BarChart, Figure, Scale, Series};
use crate::reference::Reference;
use crate::results::{PlanBench, SupervisorBench, SyncBench};

const PODSTACK: RGBColor = RGBColor(37, 99, 235);
const FIELD: RGBColor = RGBColor(156, 163, 175);
const DOCKER: RGBColor = RGBColor(234, 138, 36);

/// The connections at which the status latency is compared (the field's figure is at 200).
const STATUS_CONNECTIONS: u32 = 200;

fn seconds(value: f64) -> String {
    format!("{value:.1} s")
}

fn milliseconds(value: f64) -> String {
    if value == 0.0 {
        "0 ms".to_owned()
    } else if value < 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.0} ms")
    }
}

fn bytes(value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = value;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `sync-latency.svg`: file written -> complete on the remote, p50 and p95.
pub fn sync_latency(bench: &SyncBench, reference: &Reference) -> BarChart {
    let workload = &bench.workload;
    let goal = workload.min_age_s + reference.target.sync_over_min_age_s.value;
    BarChart {
        title: "Sync: file written -> on the remote".to_owned(),
        y_label: "upload latency".to_owned(),
        scale: Scale::Linear,
        format: seconds,
        groups: vec!["p50".to_owned(), "p95".to_owned()],
        series: vec![
            Series {
                name: "podstack".to_owned(),
                color: PODSTACK,
                figures: vec![
                    Some(Figure::one(bench.podstack.p50_s)),
                    Some(Figure::one(bench.podstack.p95_s)),
                ],
            },
            Series {
                name: "field loop (rclone sync per user, then sleep 60)".to_owned(),
                color: FIELD,
                figures: vec![
                    Some(Figure::one(bench.field_loop.p50_s)),
                    Some(Figure::one(bench.field_loop.p95_s)),
                ],
            },
        ],
        goal: Some((goal, format!("target: min_age + 5 s = {}", seconds(goal)))),
        notes: vec![
            format!(
                "{} users x {} files of 2-20 MB ({} GB), one file per user per second, to rclone serve webdav on loopback; min_age {}",
                workload.users,
                workload.files_per_user,
                workload.gigabytes,
                seconds(workload.min_age_s)
            ),
            format!(
                "uploads per file: podstack {:.2}, field loop {:.2}; field loop: FIELD-LESSONS L25, run in the same benchmark",
                bench.podstack.uploads_per_file, bench.field_loop.uploads_per_file
            ),
            bench.run.note(),
        ],
    }
}

/// `status-latency.svg`: `GET /api/status` at 200 concurrent connections.
pub fn status_latency(bench: &SupervisorBench, reference: &Reference) -> BarChart {
    let round = bench
        .status_under_load
        .iter()
        .find(|round| round.connections == STATUS_CONNECTIONS);
    let field = &reference.field.status_p99_ms;
    let target = &reference.target.status_p99_ms;
    BarChart {
        title: format!("GET /api/status under {STATUS_CONNECTIONS} concurrent connections"),
        y_label: "latency".to_owned(),
        scale: Scale::Linear,
        format: milliseconds,
        groups: vec!["p50".to_owned(), "p99".to_owned()],
        series: vec![
            Series {
                name: "podstack".to_owned(),
                color: PODSTACK,
                figures: vec![
                    round.map(|round| Figure::one(round.p50_ms)),
                    round.map(|round| Figure::one(round.p99_ms)),
                ],
            },
            Series {
                name: "field panel (p99 only)".to_owned(),
                color: FIELD,
                figures: vec![
                    None,
                    Some(Figure {
                        low: field.low,
                        high: field.high,
                    }),
                ],
            },
        ],
        goal: Some((
            target.value,
            format!("target: p99 <= {}", milliseconds(target.value)),
        )),
        notes: vec![
            format!(
                "wrk, 2 threads, 10 s{}; field: {}",
                round.map_or(String::new(), |round| format!(
                    ", podstack {:.0} requests/s",
                    round.requests_per_s
                )),
                field.source
            ),
            bench.run.note(),
        ],
    }
}

/// `plan-bytes.svg`: per change, the pull bytes the plan predicted and what Docker rebuilt.
pub fn plan_bytes(bench: &PlanBench) -> BarChart {
    let differ: Vec<String> = bench
        .changes
        .iter()
        .filter(|change| {
            !change.verdicts_that_differ.is_empty() || change.planned_unknown_layers > 0
        })
        .map(|change| {
            format!(
                "{}: {} unknown layer(s), verdicts that differ: {}",
                change.change,
                change.planned_unknown_layers,
                if change.verdicts_that_differ.is_empty() {
                    "none".to_owned()
                } else {
                    change.verdicts_that_differ.join(", ")
                }
            )
        })
        .collect();
    let mut notes = vec![format!(
        "stack `{}`: `podstack plan --json` against the last commit, then docker build; layers compared by their content (RootFS diff ids)",
        bench.stack
    )];
    notes.push(if differ.is_empty() {
        "the plan named the rebuilt layers exactly in every change".to_owned()
    } else {
        differ.join("; ")
    });
    notes.push(bench.run.note());
    BarChart {
        title: "Bytes every pod pulls after a change: plan vs Docker".to_owned(),
        y_label: "bytes (log scale)".to_owned(),
        scale: Scale::Log,
        format: bytes,
        groups: bench
            .changes
            .iter()
            .map(|change| change.change.clone())
            .collect(),
        series: vec![
            Series {
                name: "podstack plan (predicted)".to_owned(),
                color: PODSTACK,
                figures: bench
                    .changes
                    .iter()
                    .map(|change| Some(Figure::one(change.planned_bytes as f64)))
                    .collect(),
            },
            Series {
                name: "Docker (layers rebuilt)".to_owned(),
                color: DOCKER,
                figures: bench
                    .changes
                    .iter()
                    .map(|change| Some(Figure::one(change.docker_bytes as f64)))
                    .collect(),
            },
        ],
        goal: None,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_a_person_writes_them() {
        assert_eq!(bytes(268.0), "268 B");
        assert_eq!(bytes(1_234_567.0), "1.2 MB");
        assert_eq!(bytes(265_000_000.0), "265 MB");
        assert_eq!(milliseconds(4.04), "4.0 ms");
        assert_eq!(milliseconds(42.7), "43 ms");
        assert_eq!(seconds(5.25), "5.2 s");
    }
}
