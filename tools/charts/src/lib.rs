//! podstack-charts: draws the book's benchmark charts as SVG from the JSON results the
//! benchmark scripts write, so a re-run of a benchmark re-draws its chart (`ci/charts.sh`).
//! A workspace member of its own, so podstack itself does not depend on the plotting library.

pub mod bars;
pub mod charts;
pub mod reference;
pub mod results;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::reference::Reference;

/// Why the charts could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartsError {
    #[error("cannot read {path}: {source}\n  hint: run {bench} first; it writes this file")]
    Read {
        path: String,
        bench: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a result of {bench}: {source}\n  hint: run {bench} again to rewrite it"
    )]
    Parse {
        path: String,
        bench: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} differ from what the results draw\n  hint: run ci/charts.sh and commit the result", .0.join(", "))]
    Stale(Vec<String>),
    #[error(transparent)]
    Draw(#[from] bars::DrawError),
}

fn read<T: DeserializeOwned>(
    dir: &Path,
    file: &str,
    bench: &'static str,
) -> Result<T, ChartsError> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|source| ChartsError::Read {
        path: path.display().to_string(),
        bench,
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ChartsError::Parse {
        path: path.display().to_string(),
        bench,
        source,
    })
}

/// Every chart drawn from the results in `data`: its file name and its SVG.
pub fn draw_all(data: &Path) -> Result<Vec<(&'static str, String)>, ChartsError> {
    let reference = Reference::embedded();
    let sync = read(data, "bench-sync.json", "ci/bench-sync.sh")?;
    let supervisor = read(data, "bench-supervisor.json", "ci/bench-supervisor.sh")?;
    let plan = read(data, "plan-vs-docker.json", "ci/plan-vs-docker.sh")?;
    let charts = [
        ("sync-latency.svg", charts::sync_latency(&sync, &reference)),
        (
            "status-latency.svg",
            charts::status_latency(&supervisor, &reference),
        ),
        ("plan-bytes.svg", charts::plan_bytes(&plan)),
    ];
    let mut drawn = Vec::new();
    for (file, chart) in charts {
        let mut svg = chart.svg()?;
        if !svg.ends_with('\n') {
            svg.push('\n');
        }
        drawn.push((file, svg));
    }
    Ok(drawn)
}

/// Draws every chart into `out`; returns the files written.
pub fn write_all(data: &Path, out: &Path) -> Result<Vec<PathBuf>, ChartsError> {
    let mut written = Vec::new();
    for (file, svg) in draw_all(data)? {
        let path = out.join(file);
        std::fs::create_dir_all(out)
            .and_then(|()| std::fs::write(&path, svg))
            .map_err(|source| ChartsError::Write {
                path: path.display().to_string(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}

/// Fails when a chart in `out` is not what the results in `data` draw (CI's drift check).
pub fn check_all(data: &Path, out: &Path) -> Result<(), ChartsError> {
    let stale: Vec<String> = draw_all(data)?
        .into_iter()
        .map(|(file, svg)| (out.join(file), svg))
        .filter(|(path, svg)| std::fs::read_to_string(path).ok().as_ref() != Some(svg))
        .map(|(path, _)| path.display().to_string())
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(ChartsError::Stale(stale))
    }
}
