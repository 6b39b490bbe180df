//! Facts about a base image that its tag tells: the CUDA of an `nvidia/cuda` image and the
//! glibc of the distribution it is built on (from the compat data), used when `[base]` leaves
//! them out.

use super::Base;
use crate::compat::Compat;
use crate::version::{CudaVersion, GlibcVersion};

impl Base {
    /// `cuda`, or the `X.Y` of an `nvidia/cuda:X.Y.Z-...` tag.
    pub fn cuda_version(&self) -> Option<CudaVersion> {
        self.cuda.or_else(|| {
            let tag = self.image.strip_prefix("nvidia/cuda:")?;
            let mut parts = tag.split(['.', '-']);
            format!("{}.{}", parts.next()?, parts.next()?).parse().ok()
        })
    }

    /// `glibc`, or the glibc of a distribution named in the tag.
    pub fn glibc_version(&self) -> Option<GlibcVersion> {
        self.glibc.or_else(|| {
            Compat::embedded()
                .distro_of(&self.image)
                .map(|distro| distro.glibc)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(image: &str) -> Base {
        Base {
            image: image.to_owned(),
            digest: None,
            local: false,
            python: crate::version::PythonVersion::new(3, 11),
            cuda: None,
            glibc: None,
            builder: String::new(),
            builder_digest: None,
        }
    }

    #[test]
    fn reads_cuda_and_glibc_from_known_tags() {
        let cuda = base("nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04");
        assert_eq!(cuda.cuda_version(), Some(CudaVersion::new(12, 9)));
        assert_eq!(cuda.glibc_version(), Some(GlibcVersion::new(2, 35)));
        let debian = base("debian:bookworm-slim");
        assert_eq!(debian.cuda_version(), None);
        assert_eq!(debian.glibc_version(), Some(GlibcVersion::new(2, 36)));
        assert_eq!(base("alpine:3.20").glibc_version(), None);
    }

    #[test]
    fn explicit_values_win() {
        let mut explicit = base("nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04");
        explicit.cuda = Some(CudaVersion::new(12, 8));
        explicit.glibc = Some(GlibcVersion::new(2, 28));
        assert_eq!(explicit.cuda_version(), Some(CudaVersion::new(12, 8)));
        assert_eq!(explicit.glibc_version(), Some(GlibcVersion::new(2, 28)));
    }
}
