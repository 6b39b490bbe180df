//! Small `major.minor` versions that the manifest and the compatibility data speak in:
//! CPython (`3.11`), glibc (`2.28`), CUDA (`12.9`) and GPU compute capability (`8.9`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! major_minor {
    ($(#[$doc:meta])* $name:ident, $what:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            pub major: u16,
            pub minor: u16,
        }

        impl $name {
            pub const fn new(major: u16, minor: u16) -> Self {
                Self { major, minor }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                let bad = || format!("`{s}` is not a {} version; write it as major.minor, e.g. `{}`", $what, $example);
                let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
                let digits = |part: &str| -> Result<u16, String> {
                    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    part.parse().map_err(|_| bad())
                };
                Ok(Self::new(digits(major)?, digits(minor)?))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}.{}", self.major, self.minor)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": "^[0-9]+\\.[0-9]+$",
                    "description": concat!("A ", $what, " version as major.minor, e.g. ", $example),
                })
            }
        }
    };
}

major_minor!(
    /// A CPython version (`3.11`).
    PythonVersion, "Python", "3.11"
);
major_minor!(
    /// A glibc version (`2.28`), as in `manylinux_2_28`.
    GlibcVersion, "glibc", "2.28"
);
major_minor!(
    /// A CUDA toolkit version (`12.9`); torch names its build for it `cu129`.
    CudaVersion, "CUDA", "12.9"
);
major_minor!(
    /// A GPU compute capability (`8.9`); kernels for it are named `sm_89`.
    GpuArch, "GPU compute capability", "8.9"
);

impl CudaVersion {
    /// The torch index and local-version name of a build for this CUDA: `cu129`.
    pub fn torch_variant(self) -> String {
        format!("cu{}{}", self.major, self.minor)
    }
}

impl GpuArch {
    /// The kernel architecture name: `sm_89`.
    pub fn sm(self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_major_minor() {
        let py: PythonVersion = "3.11".parse().unwrap();
        assert_eq!(py, PythonVersion::new(3, 11));
        assert_eq!(py.to_string(), "3.11");
        assert!(PythonVersion::new(3, 9) < PythonVersion::new(3, 11));
    }

    #[test]
    fn rejects_what_is_not_major_minor() {
        for bad in ["3", "3.", ".11", "3.11.2", "three.eleven", "3.-1", ""] {
            let err = bad.parse::<PythonVersion>().unwrap_err();
            assert!(err.contains("major.minor"), "{bad}: {err}");
        }
    }

    #[test]
    fn names_cuda_variants_and_sm_archs() {
        assert_eq!(CudaVersion::new(12, 9).torch_variant(), "cu129");
        assert_eq!(GpuArch::new(12, 0).sm(), "sm_120");
        assert_eq!(GpuArch::new(8, 9).sm(), "sm_89");
    }
}
