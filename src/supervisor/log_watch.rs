//! ComfyUI's log read as events: the start-up stage and its percentage from the lines ComfyUI
//! prints in order, the printed ready line, the attention it confirms, custom nodes that failed
//! to import, a running prompt's sampler progress bar, finished prompts (the moment for memory
//! relief), and the lines that explain a failure (a taken port, a missing kernel package, no
//! NVIDIA driver, a refused command line). The lines are ComfyUI 0.3.64's,
//! as FACTS.md and the project's recording of a real start-up show.
//! Readiness also needs `GET /system_stats` to answer 200; the driver checks that.

use serde::Serialize;

use super::attention::{confirm, ConfirmedAttention};
use crate::manifest::MemoryPolicy;
use crate::service::exit_reason::KnownFailure;

/// The body of `POST /free` that unloads models and frees cached memory between prompts.
pub const FREE_MEMORY_BODY: &str = r#"{"unload_models": true, "free_memory": true}"#;

/// Start-up lines, in the order ComfyUI prints them, and the stage each one begins.
const STAGES: [(&str, &str, u8); 6] = [
    ("Setting output directory to:", "preparing folders", 10),
    ("Total VRAM ", "detecting the device", 25),
    ("pytorch version:", "loading PyTorch", 35),
    ("ComfyUI version:", "loading ComfyUI", 55),
    ("Import times for custom nodes:", "loading custom nodes", 70),
    ("Starting server", "starting the server", 90),
];
/// The attention line comes between `pytorch version` and `ComfyUI version`.
const ATTENTION_STAGE: (&str, u8) = ("loading attention", 45);
const GUI_LINE: &str = "To see the GUI go to:";
const GOT_PROMPT: &str = "got prompt";
const PROMPT_EXECUTED: &str = "Prompt executed in ";
const NO_DRIVER: &str = "Found no NVIDIA driver on your system";
const ARGPARSE_ERROR: &str = "main.py: error: ";
/// `nodes.py`: `"{:6.1f} seconds (IMPORT FAILED): {path}"` in the import times of custom nodes.
const IMPORT_TIME_FAILED: &str = " seconds (IMPORT FAILED): ";
/// `nodes.py`: `"IMPORT FAILED: {node}"` for built-in extra and API nodes.
const IMPORT_FAILED: &str = "IMPORT FAILED: ";

/// A custom node ComfyUI could not import: its nodes are missing from every workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportFailure {
    /// The node's folder (or file) name: `ComfyUI-Impact-Pack`.
    pub node: String,
    /// Where ComfyUI looked for it, when the log line says.
    pub path: Option<String>,
}

/// A running prompt's sampler, from its progress bar (`10/20`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptProgress {
    pub step: u32,
    pub steps: u32,
    pub percent: u8,
}

/// Something ComfyUI's log says.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    /// Start-up reached a stage; stages only move forward.
    Stage { name: &'static str, percent: u8 },
    /// ComfyUI says which attention it uses, or that sage failed at run time.
    Attention(ConfirmedAttention),
    /// `To see the GUI go to: ...`, the first time.
    GuiLinePrinted,
    /// `got prompt`: a prompt was queued.
    PromptQueued,
    /// `Prompt executed in 3.21 seconds`: a prompt finished; time for memory relief.
    PromptDone { seconds: Option<f64> },
    /// A line that explains why ComfyUI is about to exit.
    Failure(KnownFailure),
    /// A custom node failed to import.
    ImportFailed(ImportFailure),
    /// A sampler's progress bar moved.
    Progress(PromptProgress),
}

/// Reads one ComfyUI process's log, line by line; a new process needs a new watch.
#[derive(Debug, Default)]
pub struct LogWatch {
    percent: u8,
    gui_line_seen: bool,
}

impl LogWatch {
    /// The events one line of ComfyUI's output holds, usually none.
    pub fn line(&mut self, line: &str) -> Vec<LogEvent> {
        let line = line.trim_end();
        let mut events = Vec::new();
        if let Some(confirmed) = confirm(line) {
            if matches!(confirmed, ConfirmedAttention::Using { .. }) {
                self.advance(ATTENTION_STAGE.0, ATTENTION_STAGE.1, &mut events);
            }
            events.push(LogEvent::Attention(confirmed));
        } else if let Some(&(_, name, percent)) =
            STAGES.iter().find(|(start, _, _)| line.starts_with(start))
        {
            self.advance(name, percent, &mut events);
        } else if line.starts_with(GUI_LINE) {
            if !self.gui_line_seen {
                self.gui_line_seen = true;
                events.push(LogEvent::GuiLinePrinted);
            }
        } else if line == GOT_PROMPT {
            events.push(LogEvent::PromptQueued);
        } else if let Some(rest) = line.strip_prefix(PROMPT_EXECUTED) {
            let seconds = rest.strip_suffix(" seconds").and_then(|s| s.parse().ok());
            events.push(LogEvent::PromptDone { seconds });
        } else if let Some(failure) = known_failure(line) {
            events.push(LogEvent::Failure(failure));
        } else if let Some(failure) = import_failure(line) {
            events.push(LogEvent::ImportFailed(failure));
        } else if let Some(progress) = progress_bar(line) {
            events.push(LogEvent::Progress(progress));
        }
        events
    }

    fn advance(&mut self, name: &'static str, percent: u8, events: &mut Vec<LogEvent>) {
        if percent > self.percent {
            self.percent = percent;
            events.push(LogEvent::Stage { name, percent });
        }
    }
}

fn import_failure(line: &str) -> Option<ImportFailure> {
    if let Some((_, path)) = line.split_once(IMPORT_TIME_FAILED) {
        let name = path.rsplit('/').next().unwrap_or(path);
        return Some(ImportFailure {
            node: name.strip_suffix(".py").unwrap_or(name).to_owned(),
            path: Some(path.to_owned()),
        });
    }
    let node = line.strip_prefix(IMPORT_FAILED)?;
    Some(ImportFailure {
        node: node.to_owned(),
        path: None,
    })
}

/// tqdm's bar as samplers print it: ` 50%|█████     | 10/20 [00:05<00:05,  2.00it/s]`.
fn progress_bar(line: &str) -> Option<PromptProgress> {
    let mut parts = line.splitn(3, '|');
    let percent = parts.next()?.trim().strip_suffix('%')?;
    percent.parse::<u8>().ok()?;
    parts.next()?;
    let counts = parts.next()?.trim_start().split(' ').next()?;
    let (step, steps) = counts.split_once('/')?;
    let (step, steps): (u32, u32) = (step.parse().ok()?, steps.parse().ok()?);
    if steps == 0 || step > steps {
        return None;
    }
    Some(PromptProgress {
        step,
        steps,
        percent: u8::try_from(u64::from(step) * 100 / u64::from(steps)).unwrap_or(100),
    })
}

fn known_failure(line: &str) -> Option<KnownFailure> {
    if let Some(message) = line.strip_prefix(ARGPARSE_ERROR) {
        return Some(KnownFailure::ArgumentRefused {
            message: message.to_owned(),
        });
    }
    if line.contains(NO_DRIVER) {
        return Some(KnownFailure::NoNvidiaDriver);
    }
    if let Some(rest) = line.strip_prefix("Port ") {
        let (port, rest) = rest.split_once(" is already in use on address ")?;
        let address = rest.split_once(". ").map_or(rest, |(address, _)| address);
        return Some(KnownFailure::PortInUse {
            port: port.parse().ok()?,
            address: address.trim_end_matches('.').to_owned(),
        });
    }
    if let Some((_, rest)) = line.split_once("error while attempting to bind on address (") {
        let (tuple, _) = rest.split_once(')')?;
        let mut parts = tuple.split(',').map(str::trim);
        let address = parts.next()?.trim_matches('\'').to_owned();
        let port = parts.next()?.parse().ok()?;
        return line
            .ends_with("address already in use")
            .then_some(KnownFailure::PortInUse { port, address });
    }
    let rest = line.strip_prefix("To use the ")?;
    let (flag, rest) = rest.split_once(" feature, the ")?;
    let package = rest.strip_suffix(" package must be installed first.")?;
    Some(KnownFailure::AttentionPackageMissing {
        flag: flag.trim_matches('`').to_owned(),
        package: package.trim_matches('`').to_owned(),
    })
}

/// RAM and GPU memory in use, from ComfyUI's `GET /system_stats`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryUse {
    pub ram_used_percent: f64,
    /// `None` in CPU mode, where ComfyUI's only device is the CPU.
    pub vram_used_percent: Option<f64>,
}

impl MemoryUse {
    /// Reads `{"system": {"ram_total", "ram_free"}, "devices": [{"type", "vram_total",
    /// "vram_free"}]}`; the first device that is not the CPU counts as VRAM.
    pub fn from_system_stats(stats: &serde_json::Value) -> Option<Self> {
        let used = |value: &serde_json::Value, total: &str, free: &str| {
            let total = value.get(total)?.as_f64()?;
            let free = value.get(free)?.as_f64()?;
            (total > 0.0).then(|| (total - free) / total * 100.0)
        };
        let ram_used_percent = used(stats.get("system")?, "ram_total", "ram_free")?;
        let vram_used_percent = stats
            .get("devices")?
            .as_array()?
            .iter()
            .find(|device| device.get("type").and_then(|kind| kind.as_str()) != Some("cpu"))
            .and_then(|device| used(device, "vram_total", "vram_free"));
        Some(Self {
            ram_used_percent,
            vram_used_percent,
        })
    }
}

/// Whether to ask ComfyUI to free memory after a prompt: RAM or VRAM use is above the
/// manifest's threshold.
pub fn should_free(
    ram_used_percent: f64,
    vram_used_percent: Option<f64>,
    policy: &MemoryPolicy,
) -> bool {
    ram_used_percent > f64::from(policy.free_above_ram_percent)
        || vram_used_percent.is_some_and(|vram| vram > f64::from(policy.free_above_vram_percent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::attention::Kernel;

    /// What the real ComfyUI 0.3.64 printed in CPU mode (the project's recording
    /// `comfyui-0.3.64-cpu/startup-stderr.log`, see FACTS.md).
    const RECORDED: &str = r#"Setting output directory to: /workspace/output/alice
Setting input directory to: /workspace/input/alice
Setting user directory to: /workspace/users/alice
Checkpoint files will always be loaded safely.
Total VRAM 24105 MB, total RAM 24105 MB
pytorch version: 2.8.0+cu128
Set vram state to: DISABLED
Device: cpu
Using sub quadratic optimization for attention, if you have memory or speed issues try using: --use-split-cross-attention
Python version: 3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]
ComfyUI version: 0.3.64
Setting temp directory to: /tmp/podstack/comfyui/temp
ComfyUI frontend version: 1.27.10
[Prompt Server] web root: /opt/venv/lib/python3.11/site-packages/comfyui_frontend_package/static

Import times for custom nodes:
   0.0 seconds: /opt/ComfyUI/custom_nodes/websocket_image_save.py

setup plugin alembic.autogenerate.schemas
setup plugin alembic.autogenerate.tables
setup plugin alembic.autogenerate.types
setup plugin alembic.autogenerate.constraints
setup plugin alembic.autogenerate.defaults
setup plugin alembic.autogenerate.comments
setup plugin alembic.ext.checkconstraint_byname
Failed to initialize database. Please ensure you have installed the latest requirements. If the error persists, please report this as in future the database will be required: (sqlite3.OperationalError) unable to open database file
(Background on this error at: https://sqlalche.me/e/21/e3q8)
Starting server

To see the GUI go to: http://127.0.0.1:8199
got prompt
got prompt
invalid prompt: {'type': 'invalid_prompt', 'message': 'Cannot execute because node NoSuchNode does not exist.', 'details': "Node ID '#1'", 'extra_info': {}}
"#;

    fn stage(name: &'static str, percent: u8) -> LogEvent {
        LogEvent::Stage { name, percent }
    }

    /// What the real ComfyUI 0.3.64 printed in the `comfyui-cu128` image, on the CPU, with
    /// torch 2.8.0+cu128 and xformers installed, then two EmptyImage -> SaveImage prompts
    /// (`ci/image-e2e-real.sh`; podstack's timestamps taken off).
    const RECORDED_IN_THE_IMAGE: &str =
        include_str!("../../tests/fixtures/comfyui-0.3.64-image/startup-and-two-prompts.log");

    /// The events of a whole recorded log.
    fn events_of(log: &str) -> Vec<LogEvent> {
        let mut watch = LogWatch::default();
        log.lines().flat_map(|line| watch.line(line)).collect()
    }

    /// What a start-up on the CPU reports, up to the GUI line, then `after`.
    fn cpu_start_up_then(after: &[LogEvent]) -> Vec<LogEvent> {
        [
            stage("preparing folders", 10),
            stage("detecting the device", 25),
            stage("loading PyTorch", 35),
            stage("loading attention", 45),
            // Whatever imports (xformers in the image), on the CPU ComfyUI uses its
            // sub-quadratic attention.
            LogEvent::Attention(ConfirmedAttention::Using {
                kernel: Kernel::SubQuadratic,
            }),
            stage("loading ComfyUI", 55),
            stage("loading custom nodes", 70),
            stage("starting the server", 90),
            LogEvent::GuiLinePrinted,
        ]
        .into_iter()
        .chain(after.iter().cloned())
        .collect()
    }

    #[test]
    fn follows_the_real_image_start_up_and_its_prompts() {
        assert_eq!(
            events_of(RECORDED_IN_THE_IMAGE),
            cpu_start_up_then(&[
                LogEvent::PromptQueued,
                LogEvent::PromptDone {
                    seconds: Some(0.05)
                },
                LogEvent::PromptQueued,
                LogEvent::PromptDone { seconds: Some(0.0) },
            ])
        );
    }

    #[test]
    fn follows_the_recorded_start_up() {
        assert_eq!(
            events_of(RECORDED),
            cpu_start_up_then(&[LogEvent::PromptQueued, LogEvent::PromptQueued])
        );
    }

    #[test]
    fn reads_prompts_attention_and_the_gui_line_once() {
        let log = [
            "Using sage attention",
            "Starting server",
            "To see the GUI go to: http://0.0.0.0:8188",
            "To see the GUI go to: http://[::]:8188",
            "Prompt executed in 3.21 seconds",
            "Prompt executed in 1 minute",
            "Error running sage attention: Unsupported CUDA architecture: sm100, using pytorch attention instead.",
            "Using pytorch attention in VAE",
            "pytorch version: 2.8.0+cu129",
        ]
        .join("\n");
        assert_eq!(
            events_of(&log),
            [
                stage("loading attention", 45),
                LogEvent::Attention(ConfirmedAttention::Using {
                    kernel: Kernel::Sage
                }),
                stage("starting the server", 90),
                LogEvent::GuiLinePrinted,
                LogEvent::PromptDone {
                    seconds: Some(3.21)
                },
                LogEvent::PromptDone { seconds: None },
                LogEvent::Attention(ConfirmedAttention::SageFailed {
                    error: "Unsupported CUDA architecture: sm100".to_owned()
                }),
            ]
        );
    }

    #[test]
    fn names_custom_nodes_that_failed_to_import() {
        // nodes.py's formats: "{:6.1f} seconds (IMPORT FAILED): {path}" and "IMPORT FAILED: {node}".
        let mut watch = LogWatch::default();
        assert_eq!(
            watch.line("   0.1 seconds (IMPORT FAILED): /opt/ComfyUI/custom_nodes/ComfyUI-Broken"),
            [LogEvent::ImportFailed(ImportFailure {
                node: "ComfyUI-Broken".to_owned(),
                path: Some("/opt/ComfyUI/custom_nodes/ComfyUI-Broken".to_owned()),
            })]
        );
        assert_eq!(
            watch.line("  12.3 seconds (IMPORT FAILED): /opt/ComfyUI/custom_nodes/one_file.py"),
            [LogEvent::ImportFailed(ImportFailure {
                node: "one_file".to_owned(),
                path: Some("/opt/ComfyUI/custom_nodes/one_file.py".to_owned()),
            })]
        );
        assert_eq!(
            watch.line("IMPORT FAILED: nodes_canny.py"),
            [LogEvent::ImportFailed(ImportFailure {
                node: "nodes_canny.py".to_owned(),
                path: None,
            })]
        );
        assert_eq!(
            watch.line("   0.0 seconds: /opt/ComfyUI/custom_nodes/websocket_image_save.py"),
            []
        );
    }

    #[test]
    fn follows_a_samplers_progress_bar() {
        let mut watch = LogWatch::default();
        assert_eq!(
            watch.line(" 50%|█████     | 10/20 [00:05<00:05,  2.00it/s]"),
            [LogEvent::Progress(PromptProgress {
                step: 10,
                steps: 20,
                percent: 50
            })]
        );
        assert_eq!(
            watch.line("100%|██████████| 20/20 [00:10<00:00,  2.00it/s]"),
            [LogEvent::Progress(PromptProgress {
                step: 20,
                steps: 20,
                percent: 100
            })]
        );
        for noise in ["a|b|c", "50%|x| 3/0 [", "x%|y| 1/2 ["] {
            assert_eq!(watch.line(noise), [], "{noise}");
        }
    }

    #[test]
    fn recognises_the_lines_that_explain_a_failure() {
        let cases = [
            (
                "Port 8188 is already in use on address 0.0.0.0. Please close the other application or use a different port with --port.",
                KnownFailure::PortInUse { port: 8188, address: "0.0.0.0".to_owned() },
            ),
            (
                "OSError: [Errno 98] error while attempting to bind on address ('127.0.0.1', 8199): address already in use",
                KnownFailure::PortInUse { port: 8199, address: "127.0.0.1".to_owned() },
            ),
            (
                "OSError: [Errno 98] error while attempting to bind on address ('::', 8188, 0, 0): address already in use",
                KnownFailure::PortInUse { port: 8188, address: "::".to_owned() },
            ),
            (
                "To use the `--use-sage-attention` feature, the `sageattention` package must be installed first.",
                KnownFailure::AttentionPackageMissing {
                    flag: "--use-sage-attention".to_owned(),
                    package: "sageattention".to_owned(),
                },
            ),
            (
                "To use the --use-flash-attention feature, the flash-attn package must be installed first.",
                KnownFailure::AttentionPackageMissing {
                    flag: "--use-flash-attention".to_owned(),
                    package: "flash-attn".to_owned(),
                },
            ),
            (
                "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a driver from http://www.nvidia.com/Download/index.aspx",
                KnownFailure::NoNvidiaDriver,
            ),
            (
                "main.py: error: argument --user-directory: The path '/workspace/users/missing' does not exist.",
                KnownFailure::ArgumentRefused {
                    message: "argument --user-directory: The path '/workspace/users/missing' does not exist.".to_owned(),
                },
            ),
        ];
        for (line, failure) in cases {
            assert_eq!(
                LogWatch::default().line(line),
                [LogEvent::Failure(failure)],
                "{line}"
            );
        }
        for line in ["Port of call", "Total VRAM", "To use the GUI"] {
            assert!(known_failure(line).is_none(), "{line}");
        }
    }

    #[test]
    fn reads_memory_use_from_system_stats() {
        // Recorded from ComfyUI 0.3.64 in CPU mode (`comfyui-0.3.64-cpu/system_stats.json`).
        let cpu: serde_json::Value = serde_json::from_str(
            r#"{"system": {"os": "posix", "ram_total": 25276063744, "ram_free": 24258285568, "comfyui_version": "0.3.64", "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95", "required_templates_version": "0.1.95", "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]", "pytorch_version": "2.8.0+cu128", "embedded_python": false, "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8199", "--output-directory", "/workspace/output/alice", "--input-directory", "/workspace/input/alice", "--user-directory", "/workspace/users/alice", "--temp-directory", "/tmp/podstack/comfyui", "--disable-auto-launch"]}, "devices": [{"name": "cpu", "type": "cpu", "index": null, "vram_total": 25276063744, "vram_free": 24258285568, "torch_vram_total": 25276063744, "torch_vram_free": 24258285568}]}"#,
        )
        .unwrap();
        let cpu = MemoryUse::from_system_stats(&cpu).unwrap();
        assert!((cpu.ram_used_percent - 4.026_7).abs() < 0.001, "{cpu:?}");
        assert_eq!(cpu.vram_used_percent, None);
        let gpu = serde_json::json!({
            "system": {"ram_total": 1000, "ram_free": 500},
            "devices": [{"name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", "type": "cuda", "vram_total": 200, "vram_free": 10}],
        });
        assert_eq!(
            MemoryUse::from_system_stats(&gpu),
            Some(MemoryUse {
                ram_used_percent: 50.0,
                vram_used_percent: Some(95.0)
            })
        );
        assert_eq!(
            MemoryUse::from_system_stats(&serde_json::json!({"devices": []})),
            None
        );
    }

    #[test]
    fn frees_memory_above_the_thresholds() {
        let policy = MemoryPolicy {
            free_above_ram_percent: 90,
            free_above_vram_percent: 80,
        };
        assert!(!should_free(50.0, Some(50.0), &policy));
        assert!(should_free(90.5, None, &policy));
        assert!(should_free(10.0, Some(80.1), &policy));
        assert!(!should_free(90.0, Some(80.0), &policy));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(FREE_MEMORY_BODY).unwrap(),
            serde_json::json!({"unload_models": true, "free_memory": true})
        );
    }
}
