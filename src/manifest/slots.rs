//! `runtime.slots`: how many ComfyUIs a pod runs side by side, each serving one user.
//! `"per-gpu"` (the default) gives each GPU its own; a number asks for that many, the GPUs
//! shared out between them (checked against the probe's VRAM when the pod starts).

use std::fmt;
use std::num::NonZeroU8;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most slots a pod runs: eight GPUs is the largest RunPod machine.
pub const MAX_SLOTS: u8 = 8;

/// `runtime.slots`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotCount {
    /// One slot per GPU found, one in CPU mode.
    #[default]
    PerGpu,
    /// This many slots, whatever the GPUs.
    Fixed(NonZeroU8),
}

impl SlotCount {
    pub fn is_per_gpu(&self) -> bool {
        *self == Self::PerGpu
    }
}

impl fmt::Display for SlotCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PerGpu => f.write_str("per-gpu"),
            Self::Fixed(count) => write!(f, "{count}"),
        }
    }
}

impl Serialize for SlotCount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::PerGpu => s.serialize_str("per-gpu"),
            Self::Fixed(count) => s.serialize_u8(count.get()),
        }
    }
}

impl<'de> Deserialize<'de> for SlotCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SlotCountVisitor)
    }
}

struct SlotCountVisitor;

const EXPECTED: &str = "\"per-gpu\" or a number of slots from 1 to 8";

impl Visitor<'_> for SlotCountVisitor {
    type Value = SlotCount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<SlotCount, E> {
        match value {
            "per-gpu" => Ok(SlotCount::PerGpu),
            other => Err(E::custom(format!(
                "`{other}` is not a slot count; write {EXPECTED}"
            ))),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<SlotCount, E> {
        u8::try_from(value)
            .ok()
            .filter(|count| *count <= MAX_SLOTS)
            .and_then(NonZeroU8::new)
            .map(SlotCount::Fixed)
            .ok_or_else(|| {
                E::custom(format!(
                    "{value} slots is not a slot count; write {EXPECTED}"
                ))
            })
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<SlotCount, E> {
        self.visit_i64(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl schemars::JsonSchema for SlotCount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SlotCount".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "\"per-gpu\" (one ComfyUI per GPU) or a number of ComfyUIs from 1 to 8",
            "oneOf": [
                {"const": "per-gpu"},
                {"type": "integer", "minimum": 1, "maximum": MAX_SLOTS},
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Runtime {
        slots: SlotCount,
    }

    fn read(toml_text: &str) -> Result<SlotCount, String> {
        toml::from_str::<Runtime>(toml_text)
            .map(|runtime| runtime.slots)
            .map_err(|err| err.message().to_owned())
    }

    #[test]
    fn reads_per_gpu_or_a_count() {
        assert_eq!(read("slots = \"per-gpu\""), Ok(SlotCount::PerGpu));
        assert_eq!(
            read("slots = 4"),
            Ok(SlotCount::Fixed(NonZeroU8::new(4).unwrap()))
        );
        let json = serde_json::to_string(&Runtime {
            slots: SlotCount::Fixed(NonZeroU8::new(2).unwrap()),
        })
        .unwrap();
        assert_eq!(json, r#"{"slots":2}"#);
    }

    #[test]
    fn refuses_what_is_not_a_slot_count() {
        for (text, said) in [
            ("slots = 0", "0 slots is not a slot count"),
            ("slots = 9", "9 slots is not a slot count"),
            ("slots = -1", "-1 slots is not a slot count"),
            ("slots = \"auto\"", "`auto` is not a slot count"),
        ] {
            let err = read(text).unwrap_err();
            assert!(err.contains(said), "{text}: {err}");
            assert!(
                err.contains("\"per-gpu\" or a number of slots from 1 to 8"),
                "{err}"
            );
        }
    }
}
