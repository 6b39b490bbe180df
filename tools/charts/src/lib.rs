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

/// Draws every chart from the results in `data` into `out`; returns the files written.
pub fn draw_all(data: &Path, out: &Path) -> Result<Vec<PathBuf>, ChartsError> {
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
    let mut written = Vec::new();
    for (file, chart) in charts {
        let path = out.join(file);
        let mut svg = chart.svg()?;
        if !svg.ends_with('\n') {
            svg.push('\n');
        }
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
