//! The attention kernel ComfyUI runs with: chosen from the manifest's policy, the GPU's compute
//! capability and the kernels the image installs (sage has no kernels for a B200, L10), passed
//! as ComfyUI's own flag, and confirmed from the line ComfyUI prints rather than from our own
//! echo (L9). A confirmation that differs from the request is a warning.

use std::fmt;

use serde::Serialize;

use super::gpu::Device;
use crate::manifest::AttentionPolicy;
use crate::resolved::AttentionKernel;

/// An attention implementation ComfyUI can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernel {
    /// SageAttention (`--use-sage-attention`).
    Sage,
    /// flash-attn (`--use-flash-attention`).
    Flash,
    /// xformers, which ComfyUI uses whenever it imports.
    Xformers,
    /// PyTorch's scaled dot product attention (`--use-pytorch-cross-attention`).
    Pytorch,
    /// ComfyUI's split attention (`--use-split-cross-attention`).
    Split,
    /// ComfyUI's sub-quadratic attention, what it uses on the CPU.
    SubQuadratic,
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sage => "sage attention",
            Self::Flash => "flash attention",
            Self::Xformers => "xformers attention",
            Self::Pytorch => "pytorch attention",
            Self::Split => "split attention",
            Self::SubQuadratic => "sub-quadratic attention",
        })
    }
}

/// The kernel podstack asks ComfyUI for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttentionChoice {
    pub kernel: Kernel,
    /// The ComfyUI flag that gets this kernel: `--use-sage-attention`,
    /// `--use-flash-attention`, `--use-pytorch-cross-attention`, `--cpu` for CPU mode, none
    /// for xformers (ComfyUI uses it when it imports).
    pub flag: Option<&'static str>,
    /// The policy, the GPU, and each kernel passed over with its reason.
    pub why: String,
}

/// The kernels that come from a package, in `auto`'s order of preference, with the ComfyUI
/// flag that selects each.
const KERNELS: [(AttentionPolicy, Kernel, Option<&str>); 3] = [
    (
        AttentionPolicy::Sage,
        Kernel::Sage,
        Some("--use-sage-attention"),
    ),
    (
        AttentionPolicy::Flash,
        Kernel::Flash,
        Some("--use-flash-attention"),
    ),
    (AttentionPolicy::Xformers, Kernel::Xformers, None),
];

/// What ComfyUI says about its attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ConfirmedAttention {
    /// `Using ... attention`, printed once at start-up.
    Using { kernel: Kernel },
    /// `Error running sage attention: <error>, using pytorch attention instead.`: sage failed
    /// at run time and that call ran on PyTorch attention.
    SageFailed { error: String },
}

/// Chooses the kernel for `device` under `policy`, from the kernels the image installs. `auto`
/// tries sage, flash, xformers, then PyTorch's own; a named kernel falls back to PyTorch's.
pub fn choose(
    policy: AttentionPolicy,
    device: &Device,
    installed: &[AttentionKernel],
) -> AttentionChoice {
    let gpu = match device {
        Device::Cpu => return AttentionChoice {
            kernel: Kernel::SubQuadratic,
            flag: Some("--cpu"),
            why: "no NVIDIA GPU: ComfyUI runs on the CPU (--cpu) with its sub-quadratic attention"
                .to_owned(),
        },
        Device::Gpu(gpu) => gpu,
    };
    let on = match gpu.arch {
        Some(arch) => format!("{arch} ({})", gpu.name),
        None => format!("{} (architecture unknown)", gpu.name),
    };
    let mut reasons = Vec::new();
    let candidates = KERNELS
        .iter()
        .filter(|(kernel_policy, ..)| policy == AttentionPolicy::Auto || policy == *kernel_policy);
    for &(candidate, kernel, flag) in candidates {
        let package = candidate.package().unwrap_or_default();
        let Some(wheel) = installed.iter().find(|wheel| wheel.policy == candidate) else {
            reasons.push(format!("{package} is not installed"));
            continue;
        };
        let runs =
            wheel.archs.is_empty() || gpu.arch.is_some_and(|arch| wheel.archs.contains(&arch));
        if runs {
            reasons.push(match gpu.arch {
                Some(arch) if !wheel.archs.is_empty() => {
                    format!(
                        "{} {} has kernels for {arch} ({})",
                        wheel.package,
                        wheel.version,
                        arch.sm()
                    )
                }
                _ => format!("{} {} is installed", wheel.package, wheel.version),
            });
            return AttentionChoice {
                kernel,
                flag,
                why: format!(
                    "gpu.attention = {} on {on}: {}",
                    policy_name(policy),
                    reasons.join("; ")
                ),
            };
        }
        reasons.push(match gpu.arch {
            Some(arch) => format!(
                "{} {} has no kernels for {arch} ({})",
                wheel.package,
                wheel.version,
                arch.sm()
            ),
            None => format!(
                "{} {} has kernels only for known architectures",
                wheel.package, wheel.version
            ),
        });
    }
    reasons.push("PyTorch's own attention always runs".to_owned());
    AttentionChoice {
        kernel: Kernel::Pytorch,
        // Explicit even without xformers: a custom node may bring xformers in (L9).
        flag: Some("--use-pytorch-cross-attention"),
        why: format!(
            "gpu.attention = {} on {on}: {}",
            policy_name(policy),
            reasons.join("; ")
        ),
    }
}

fn policy_name(policy: AttentionPolicy) -> &'static str {
    match policy {
        AttentionPolicy::Auto => "auto",
        AttentionPolicy::Sage => "sage",
        AttentionPolicy::Flash => "flash",
        AttentionPolicy::Xformers => "xformers",
        AttentionPolicy::Pytorch => "pytorch",
    }
}

/// Reads one of ComfyUI's log lines for what it says about attention (FACTS.md). Lines are
/// matched whole: `Using pytorch attention in VAE` is about the VAE, not the model.
pub fn confirm(line: &str) -> Option<ConfirmedAttention> {
    let line = line.trim();
    let kernel = match line {
        "Using sage attention" => Some(Kernel::Sage),
        // ComfyUI before 0.3.4x printed it in lower case.
        "Using Flash Attention" | "Using flash attention" => Some(Kernel::Flash),
        "Using xformers attention" => Some(Kernel::Xformers),
        "Using pytorch attention" => Some(Kernel::Pytorch),
        "Using split optimization for attention" => Some(Kernel::Split),
        _ if line.starts_with("Using sub quadratic optimization for attention") => {
            Some(Kernel::SubQuadratic)
        }
        _ => None,
    };
    if let Some(kernel) = kernel {
        return Some(ConfirmedAttention::Using { kernel });
    }
    let error = line
        .strip_prefix("Error running sage attention: ")?
        .strip_suffix(", using pytorch attention instead.")?;
    Some(ConfirmedAttention::SageFailed {
        error: error.to_owned(),
    })
}

/// A warning when ComfyUI does not run the kernel podstack asked for.
pub fn mismatch(requested: &AttentionChoice, confirmed: &ConfirmedAttention) -> Option<String> {
    let asked = requested.kernel;
    match confirmed {
        ConfirmedAttention::Using { kernel } if *kernel == asked => None,
        ConfirmedAttention::Using { kernel } => Some(match requested.flag {
            Some(flag) => format!(
                "requested {asked} but ComfyUI reports {kernel}: it was started with {flag} and still chose another kernel"
            ),
            None => format!("requested {asked} but ComfyUI reports {kernel}: xformers did not load in ComfyUI's Python"),
        }),
        ConfirmedAttention::SageFailed { error } => Some(format!(
            "requested {asked} but ComfyUI reports sage attention failing at run time ({error}) and uses pytorch attention instead: set gpu.attention = \"xformers\" or \"pytorch\" for this GPU"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::gpu::Gpu;
    use crate::version::GpuArch;

    fn archs(list: &[&str]) -> Vec<GpuArch> {
        list.iter().map(|arch| arch.parse().unwrap()).collect()
    }

    fn sage() -> AttentionKernel {
        AttentionKernel {
            policy: AttentionPolicy::Sage,
            package: "sageattention".to_owned(),
            version: "2.2.0.post4".to_owned(),
            archs: archs(&["8.0", "8.6", "8.9", "9.0", "12.0"]),
        }
    }

    fn flash() -> AttentionKernel {
        AttentionKernel {
            policy: AttentionPolicy::Flash,
            package: "flash-attn".to_owned(),
            version: "2.8.3".to_owned(),
            archs: archs(&["8.0", "8.6", "8.9", "9.0"]),
        }
    }

    fn xformers() -> AttentionKernel {
        AttentionKernel {
            policy: AttentionPolicy::Xformers,
            package: "xformers".to_owned(),
            version: "0.0.32.post2".to_owned(),
            archs: Vec::new(),
        }
    }

    fn on(name: &str, arch: Option<&str>) -> Device {
        Device::Gpu(Gpu {
            index: 0,
            name: name.to_owned(),
            arch: arch.map(|arch| arch.parse().unwrap()),
            memory_mib: None,
            driver: None,
        })
    }

    #[test]
    fn chooses_per_gpu() {
        let rtx4090 = on("NVIDIA GeForce RTX 4090", Some("8.9"));
        let rtx5090 = on("NVIDIA GeForce RTX 5090", Some("12.0"));
        let h100 = on("NVIDIA H100 80GB HBM3", Some("9.0"));
        let b200 = on("NVIDIA B200", Some("10.0"));
        let t4 = on("Tesla T4", Some("7.5"));
        let all = [sage(), xformers()];
        let no_xformers = [sage()];
        let cases = [
            (
                AttentionPolicy::Auto,
                &rtx4090,
                &all[..],
                Kernel::Sage,
                Some("--use-sage-attention"),
            ),
            (
                AttentionPolicy::Auto,
                &rtx5090,
                &all[..],
                Kernel::Sage,
                Some("--use-sage-attention"),
            ),
            (
                AttentionPolicy::Auto,
                &h100,
                &all[..],
                Kernel::Sage,
                Some("--use-sage-attention"),
            ),
            (
                AttentionPolicy::Auto,
                &b200,
                &all[..],
                Kernel::Xformers,
                None,
            ),
            (
                AttentionPolicy::Auto,
                &b200,
                &no_xformers[..],
                Kernel::Pytorch,
                Some("--use-pytorch-cross-attention"),
            ),
            (
                AttentionPolicy::Sage,
                &b200,
                &all[..],
                Kernel::Pytorch,
                Some("--use-pytorch-cross-attention"),
            ),
            (AttentionPolicy::Auto, &t4, &all[..], Kernel::Xformers, None),
            (
                AttentionPolicy::Sage,
                &t4,
                &no_xformers[..],
                Kernel::Pytorch,
                Some("--use-pytorch-cross-attention"),
            ),
            (
                AttentionPolicy::Xformers,
                &rtx4090,
                &all[..],
                Kernel::Xformers,
                None,
            ),
            (
                AttentionPolicy::Xformers,
                &rtx4090,
                &no_xformers[..],
                Kernel::Pytorch,
                Some("--use-pytorch-cross-attention"),
            ),
            (
                AttentionPolicy::Pytorch,
                &rtx4090,
                &all[..],
                Kernel::Pytorch,
                Some("--use-pytorch-cross-attention"),
            ),
            (
                AttentionPolicy::Auto,
                &rtx4090,
                &[][..],
                Kernel::Pytorch,
                Some("--use-pytorch-cross-attention"),
            ),
            (
                AttentionPolicy::Auto,
                &Device::Cpu,
                &all[..],
                Kernel::SubQuadratic,
                Some("--cpu"),
            ),
            (
                AttentionPolicy::Sage,
                &Device::Cpu,
                &all[..],
                Kernel::SubQuadratic,
                Some("--cpu"),
            ),
        ];
        for (policy, device, installed, kernel, flag) in cases {
            let choice = choose(policy, device, installed);
            assert_eq!(
                (choice.kernel, choice.flag),
                (kernel, flag),
                "{policy:?} on {device:?}: {}",
                choice.why
            );
        }
    }

    #[test]
    fn never_gives_a_b200_sage() {
        for policy in [AttentionPolicy::Auto, AttentionPolicy::Sage] {
            for installed in [vec![sage()], vec![sage(), flash(), xformers()]] {
                let choice = choose(policy, &on("NVIDIA B200", Some("10.0")), &installed);
                assert_ne!(choice.kernel, Kernel::Sage);
                assert_ne!(choice.flag, Some("--use-sage-attention"));
            }
        }
    }

    #[test]
    fn says_why_in_plain_words() {
        let b200 = choose(
            AttentionPolicy::Auto,
            &on("NVIDIA B200", Some("10.0")),
            &[sage(), flash(), xformers()],
        );
        assert_eq!(
            b200.why,
            "gpu.attention = auto on 10.0 (NVIDIA B200): sageattention 2.2.0.post4 has no kernels for 10.0 (sm_100); flash-attn 2.8.3 has no kernels for 10.0 (sm_100); xformers 0.0.32.post2 is installed"
        );
        let rtx4090 = choose(
            AttentionPolicy::Auto,
            &on("NVIDIA GeForce RTX 4090", Some("8.9")),
            &[sage()],
        );
        assert_eq!(
            rtx4090.why,
            "gpu.attention = auto on 8.9 (NVIDIA GeForce RTX 4090): sageattention 2.2.0.post4 has kernels for 8.9 (sm_89)"
        );
        let unknown = choose(
            AttentionPolicy::Sage,
            &on("NVIDIA Mystery X1", None),
            &[sage()],
        );
        assert_eq!(
            unknown.why,
            "gpu.attention = sage on NVIDIA Mystery X1 (architecture unknown): sageattention 2.2.0.post4 has kernels only for known architectures; PyTorch's own attention always runs"
        );
        let cpu = choose(AttentionPolicy::Auto, &Device::Cpu, &[]);
        assert_eq!(
            cpu.why,
            "no NVIDIA GPU: ComfyUI runs on the CPU (--cpu) with its sub-quadratic attention"
        );
    }

    #[test]
    fn reads_comfyuis_own_lines() {
        let using = |kernel| Some(ConfirmedAttention::Using { kernel });
        let cases = [
            ("Using sage attention", using(Kernel::Sage)),
            ("Using Flash Attention", using(Kernel::Flash)),
            ("Using flash attention", using(Kernel::Flash)),
            ("Using xformers attention", using(Kernel::Xformers)),
            ("Using pytorch attention\n", using(Kernel::Pytorch)),
            ("Using split optimization for attention", using(Kernel::Split)),
            (
                "Using sub quadratic optimization for attention, if you have memory or speed issues try using: --use-split-cross-attention",
                using(Kernel::SubQuadratic),
            ),
            (
                "Error running sage attention: Unsupported CUDA architecture: sm100, using pytorch attention instead.",
                Some(ConfirmedAttention::SageFailed {
                    error: "Unsupported CUDA architecture: sm100".to_owned(),
                }),
            ),
            ("Using pytorch attention in VAE", None),
            ("Using xformers attention in VAE", None),
            ("Device: cpu", None),
            ("", None),
        ];
        for (line, confirmed) in cases {
            assert_eq!(confirm(line), confirmed, "{line}");
        }
    }

    #[test]
    fn warns_when_comfyui_runs_another_kernel() {
        let rtx4090 = on("NVIDIA GeForce RTX 4090", Some("8.9"));
        let sage_choice = choose(AttentionPolicy::Auto, &rtx4090, &[sage(), xformers()]);
        let xformers_choice = choose(AttentionPolicy::Xformers, &rtx4090, &[xformers()]);
        let cpu_choice = choose(AttentionPolicy::Auto, &Device::Cpu, &[]);
        let using = |kernel| ConfirmedAttention::Using { kernel };
        assert_eq!(mismatch(&sage_choice, &using(Kernel::Sage)), None);
        assert_eq!(mismatch(&cpu_choice, &using(Kernel::SubQuadratic)), None);
        assert_eq!(
            mismatch(&sage_choice, &using(Kernel::Xformers)).unwrap(),
            "requested sage attention but ComfyUI reports xformers attention: it was started with --use-sage-attention and still chose another kernel"
        );
        assert_eq!(
            mismatch(&xformers_choice, &using(Kernel::Pytorch)).unwrap(),
            "requested xformers attention but ComfyUI reports pytorch attention: xformers did not load in ComfyUI's Python"
        );
        let failed = ConfirmedAttention::SageFailed {
            error: "Unsupported CUDA architecture: sm100".to_owned(),
        };
        assert_eq!(
            mismatch(&sage_choice, &failed).unwrap(),
            "requested sage attention but ComfyUI reports sage attention failing at run time (Unsupported CUDA architecture: sm100) and uses pytorch attention instead: set gpu.attention = \"xformers\" or \"pytorch\" for this GPU"
        );
    }
}
