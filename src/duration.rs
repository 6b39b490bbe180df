//! Durations as people write them in a manifest: `500ms`, `10s`, `2m`, `1h`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `std::time::Duration` that reads and writes as `10s`, `2m`, `500ms` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

const MAX_MILLIS: u64 = 30 * 24 * 3_600_000;

const UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{s}` is not a duration; write a whole number and a unit: `500ms`, `10s`, `2m` or `1h`")
        };
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = s.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let (_, millis) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(bad)?;
        let millis = number.checked_mul(*millis).ok_or_else(bad)?;
        // Far past anything podstack waits for, and safe to add to any clock reading.
        if millis > MAX_MILLIS {
            return Err(format!(
                "`{s}` is longer than 30 days, more than podstack ever waits; write at most `720h`"
            ));
        }
        Ok(Self::from_millis(millis))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        let (unit, size) = UNITS
            .iter()
            .rev()
            .find(|(_, size)| millis % u128::from(*size) == 0 && millis >= u128::from(*size))
            .map_or(("ms", 1), |(unit, size)| (*unit, u128::from(*size)));
        write!(f, "{}{unit}", millis / size)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(ms|s|m|h)$",
            "description": "A duration: a whole number and a unit, e.g. 500ms, 10s, 2m, 1h",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_each_unit() {
        for (text, millis) in [
            ("500ms", 500),
            ("10s", 10_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_millis(millis), "{text}");
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(HumanDuration::from_millis(90_000).to_string(), "90s");
        assert_eq!(HumanDuration::from_millis(0).to_string(), "0ms");
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "10", "s", "1.5s", "10 s", "-1s", "3d"] {
            let err = bad.parse::<HumanDuration>().unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
    }
}
