//! The reference figures the charts draw beside the measured ones (`reference.toml`): the
//! field's where a benchmark cannot run the field's system, and podstack's targets, each with
//! its source.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub field: FieldFigures,
    pub target: Targets,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldFigures {
    pub status_p99_ms: FieldRange,
}

/// A figure the field reported as a range over its runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRange {
    pub low: f64,
    pub high: f64,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub status_p99_ms: Target,
    pub sync_over_min_age_s: Target,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub value: f64,
    pub source: String,
}

impl Reference {
    /// The figures compiled into the tool.
    pub fn embedded() -> Self {
        toml::from_str(include_str!("../reference.toml"))
            .unwrap_or_else(|err| panic!("tools/charts/reference.toml does not parse: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_figure_names_its_source() {
        let reference = Reference::embedded();
        for source in [
            &reference.field.status_p99_ms.source,
            &reference.target.status_p99_ms.source,
            &reference.target.sync_over_min_age_s.source,
        ] {
            assert!(!source.trim().is_empty());
        }
    }
}
