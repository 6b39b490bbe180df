//! GPU models and their compute capability, looked up by the names nvidia-smi prints.

use serde::Deserialize;

use super::Compat;
use crate::version::GpuArch;

/// A GPU model (`RTX 4090`) and its compute capability.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub name: String,
    pub arch: GpuArch,
    pub source: String,
}

/// The words of a GPU name that tell models apart: lower case, split at anything that is not
/// a letter or digit, without the vendor and brand words nvidia-smi adds.
fn model_words(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .filter(|word| word != "nvidia" && word != "geforce")
        .collect()
}

impl Compat {
    /// The GPU a name means, as nvidia-smi prints it (`NVIDIA GeForce RTX 4090`,
    /// `NVIDIA H100 80GB HBM3`): the known model whose name appears as whole words, the
    /// longest such name winning (`RTX 6000 Ada` over a shorter match).
    pub fn gpu_by_name(&self, name: &str) -> Option<&Gpu> {
        let words = model_words(name);
        self.gpus
            .iter()
            .filter_map(|gpu| {
                let model = model_words(&gpu.name);
                let found = !model.is_empty() && words.windows(model.len()).any(|w| w == model);
                found.then_some((model.len(), gpu.name.len(), gpu))
            })
            .max_by_key(|&(words, chars, _)| (words, chars))
            .map(|(_, _, gpu)| gpu)
    }

    /// The names of the known GPUs of compute capability `arch`, in data order.
    pub fn gpus_for_arch(&self, arch: GpuArch) -> Vec<&str> {
        self.gpus
            .iter()
            .filter(|gpu| gpu.arch == arch)
            .map(|gpu| gpu.name.as_str())
            .collect()
    }

    /// An arch for messages, with the GPUs that have it: `10.0 (B200, GB200)`, or `11.0`.
    pub fn arch_label(&self, arch: GpuArch) -> String {
        let gpus = self.gpus_for_arch(arch);
        if gpus.is_empty() {
            arch.to_string()
        } else {
            format!("{arch} ({})", gpus.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_nvidia_smi_names() {
        let compat = Compat::embedded();
        let cases = [
            ("NVIDIA GeForce RTX 4090", Some(("RTX 4090", "8.9"))),
            ("NVIDIA GeForce RTX 3090 Ti", Some(("RTX 3090", "8.6"))),
            ("NVIDIA GeForce RTX 5090", Some(("RTX 5090", "12.0"))),
            ("NVIDIA H100 80GB HBM3", Some(("H100", "9.0"))),
            ("NVIDIA H100 NVL", Some(("H100", "9.0"))),
            ("NVIDIA H200", Some(("H200", "9.0"))),
            ("NVIDIA B200", Some(("B200", "10.0"))),
            ("NVIDIA A100-SXM4-80GB", Some(("A100", "8.0"))),
            ("NVIDIA A100 80GB PCIe", Some(("A100", "8.0"))),
            ("Tesla V100-SXM2-16GB", Some(("V100", "7.0"))),
            ("Tesla T4", Some(("T4", "7.5"))),
            ("NVIDIA A40", Some(("A40", "8.6"))),
            ("NVIDIA A10", Some(("A10", "8.6"))),
            ("NVIDIA RTX A6000", Some(("RTX A6000", "8.6"))),
            ("NVIDIA L40S", Some(("L40S", "8.9"))),
            ("NVIDIA L40", Some(("L40", "8.9"))),
            ("NVIDIA L4", Some(("L4", "8.9"))),
            (
                "NVIDIA RTX 6000 Ada Generation",
                Some(("RTX 6000 Ada", "8.9")),
            ),
            (
                "NVIDIA RTX PRO 6000 Blackwell Server Edition",
                Some(("RTX PRO 6000 Blackwell", "12.0")),
            ),
            ("nvidia geforce rtx 4090", Some(("RTX 4090", "8.9"))),
            ("Quadro RTX 6000", None),
            ("NVIDIA A1000", None),
            ("AMD Instinct MI300X", None),
            ("", None),
        ];
        for (smi, expected) in cases {
            let found = compat
                .gpu_by_name(smi)
                .map(|gpu| (gpu.name.as_str(), gpu.arch.to_string()));
            let expected = expected.map(|(name, arch)| (name, arch.to_string()));
            assert_eq!(found, expected, "{smi}");
        }
    }

    #[test]
    fn names_the_gpus_of_an_arch() {
        let compat = Compat::embedded();
        let arch = |text: &str| text.parse::<GpuArch>().unwrap();
        assert_eq!(compat.gpus_for_arch(arch("9.0")), ["H100", "H200", "GH200"]);
        assert_eq!(compat.arch_label(arch("10.0")), "10.0 (B200, GB200)");
        assert_eq!(compat.arch_label(arch("11.0")), "11.0");
    }
}
