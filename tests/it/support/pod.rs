//! `podstack supervise` as a pod runs it, for the tests that need one running: the real
//! binary, a temporary volume, the stand-in ComfyUI and the fake nvidia-smi, over real HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{free_port, http, Reply};
use super::repo;
use super::wait::{alive, eventually, DEADLINE};

/// A prompt the stand-in ComfyUI answers with one PNG.
pub const PROMPT: &str =
    r#"{"prompt": {"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI"}}}}"#;

/// A supervisor to be started: the smoke stack's stack.json, edited.
pub struct PodBuilder {
    stack: Value,
    env: Vec<(String, String)>,
    volume: Option<PathBuf>,
    pod_id: String,
    /// Whether the runtime folder is sealed as an image build seals it.
    sealed: bool,
    /// A runtime file sealed and then changed before the pod starts (a hot patch, L2).
    drifted_file: Option<String>,
}

/// The shipped smoke stack with users alice and bob, a quick restart policy, no GPU.
pub fn pod() -> PodBuilder {
    PodBuilder::smoke()
}

impl PodBuilder {
    fn smoke() -> Self {
        let text = std::fs::read_to_string(repo().join("generated/smoke/stack.json"))
            .expect("generated/smoke/stack.json");
        let mut stack: Value = serde_json::from_str(&text).expect("stack.json is JSON");
        stack["runtime"]["users"] = json!(["alice", "bob"]);
        stack["runtime"]["restart"] = json!({
            "backoff_initial": "200ms", "backoff_max": "1s", "crash_loop_failures": 5, "crash_loop_window": "2m"
        });
        PodBuilder {
            stack,
            env: vec![
                ("FAKE_NVIDIA_SMI".into(), "none".into()),
                ("STANDIN_STARTUP_SECONDS".into(), "0.3".into()),
            ],
            volume: None,
            pod_id: "test-pod".into(),
            sealed: false,
            drifted_file: None,
        }
    }

    /// Sets a value in stack.json by JSON pointer, e.g. `/runtime/stop_grace`; the last key
    /// may be new (a setting the shipped stack leaves at its default).
    pub fn set(mut self, pointer: &str, value: Value) -> Self {
        if let Some(slot) = self.stack.pointer_mut(pointer) {
            *slot = value;
            return self;
        }
        let (parent, key) = pointer
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{pointer} is not a JSON pointer"));
        self.stack
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("no {parent} in stack.json"))
            .insert(key.to_owned(), value);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(key, _)| key != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// The fake nvidia-smi's machine and the GPU name the stand-in reports.
    pub fn gpu(self, mode: &str, name: &str) -> Self {
        self.env("FAKE_NVIDIA_SMI", mode).env("STANDIN_GPU", name)
    }

    /// Installs SageAttention 2.2 (kernels for 8.0 8.6 8.9 9.0 12.0) and torch 2.8.0 in the stack.
    pub fn with_sage(mut self) -> Self {
        self.stack["attention_kernels"] = json!([{
            "policy": "sage", "package": "sageattention", "version": "2.2.0.post4",
            "archs": ["8.0", "8.6", "8.9", "9.0", "12.0"]
        }]);
        self.stack["torch"] = json!({"version": "2.8.0", "cuda": "12.9"});
        self
    }

    pub fn volume(mut self, volume: &Path) -> Self {
        self.volume = Some(volume.to_owned());
        self
    }

    pub fn pod_id(mut self, id: &str) -> Self {
        self.pod_id = id.into();
        self
    }

    /// Seals the runtime folder, as an image build does.
    pub fn sealed(mut self) -> Self {
        self.sealed = true;
        self
    }

    /// Seals the runtime folder (as an image build does), then changes `name` in it.
    pub fn drifted(mut self, name: &str) -> Self {
        self.drifted_file = Some(name.into());
        self.sealed()
    }

    pub fn start(self) -> Pod {
        let dir = tempfile::tempdir().expect("temp dir");
        let volume = self
            .volume
            .clone()
            .unwrap_or_else(|| dir.path().join("volume"));
        let panel = free_port();
        let comfyui = free_port();
        // The runtime folder holds stack.json alone, as /opt/podstack does in an image.
        let runtime = dir.path().join("runtime");
        std::fs::create_dir(&runtime).expect("runtime folder");
        let config = runtime.join("stack.json");
        std::fs::write(
            &config,
            serde_json::to_string_pretty(&self.stack).expect("JSON"),
        )
        .expect("write stack.json");
        if let Some(name) = &self.drifted_file {
            std::fs::write(runtime.join(name), "as built\n").expect("write the runtime file");
        }
        if self.sealed {
            crate::support::podstack(["seal", "--runtime-dir"])
                .arg(&runtime)
                .arg("--binary")
                .arg(env!("CARGO_BIN_EXE_podstack"))
                .run()
                .expect_code(0);
        }
        if let Some(name) = &self.drifted_file {
            std::fs::write(runtime.join(name), "patched in the pod\n")
                .expect("change the runtime file");
        }
        let pidfile = dir.path().join("comfyui.pid");
        let output = dir.path().join("supervisor.out");
        let out = std::fs::File::create(&output).expect("output file");
        let err = out.try_clone().expect("output file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_podstack"));
        command
            .arg("supervise")
            .args(["--config", &config.display().to_string()])
            .args(["--volume", &volume.display().to_string()])
            .args([
                "--comfyui-dir",
                &repo().join("tests/fixtures/comfyui").display().to_string(),
            ])
            .args(["--python", "python3"])
            .args(["--listen", "127.0.0.1", "--panel-listen", "127.0.0.1"])
            .args([
                "--panel-port",
                &panel.to_string(),
                "--comfyui-port",
                &comfyui.to_string(),
            ])
            .args(["--pod-id", &self.pod_id])
            .env(
                "PODSTACK_NVIDIA_SMI",
                repo().join("tests/fixtures/nvidia-smi/nvidia-smi"),
            )
            .env("PODSTACK_UI_DIR", repo().join("templates/ui"))
            .env("STANDIN_PIDFILE", &pidfile)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for name in [
            "PODSTACK_CONFIG",
            "PODSTACK_PANEL_TOKEN",
            "PODSTACK_PANEL_TOKEN_FILE",
            "PODSTACK_DIGEST",
            "PODSTACK_COMFYUI_CGROUP",
            "PODSTACK_START_USER",
            "PODSTACK_EXPECTED_DIGEST",
            "PODSTACK_VERIFY_POLICY",
            "RUNPOD_POD_ID",
            "JUPYTER_TOKEN",
            "STANDIN_GPU",
        ] {
            command.env_remove(name);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let child = command.spawn().expect("podstack supervise starts");
        let pod = Pod {
            child,
            _dir: dir,
            volume,
            panel,
            comfyui,
            pidfile,
            output,
            token: self
                .env
                .iter()
                .find(|(k, _)| k == "PODSTACK_PANEL_TOKEN")
                .map(|(_, v)| v.clone()),
        };
        eventually("the panel to answer", || {
            http(panel, "GET", "/api/health", None, &[]).ok()
        });
        pod
    }
}

/// A running supervisor; killed (with what it started) when dropped.
pub struct Pod {
    child: Child,
    /// Holds stack.json, the output and (unless shared) the volume until the pod is dropped.
    _dir: tempfile::TempDir,
    pub volume: PathBuf,
    pub panel: u16,
    pub comfyui: u16,
    pidfile: PathBuf,
    output: PathBuf,
    token: Option<String>,
}

impl Pod {
    fn auth(&self) -> Vec<(&str, String)> {
        self.token
            .iter()
            .map(|token| ("Authorization", format!("Bearer {token}")))
            .collect()
    }

    pub fn get(&self, path: &str) -> Reply {
        let auth = self.auth();
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http(self.panel, "GET", path, None, &headers)
            .unwrap_or_else(|err| self.fail(&format!("GET {path}: {err}")))
    }

    pub fn post(&self, path: &str, body: Value) -> Reply {
        let auth = self.auth();
        let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http(self.panel, "POST", path, Some(&body.to_string()), &headers)
            .unwrap_or_else(|err| self.fail(&format!("POST {path}: {err}")))
    }

    pub fn status(&self) -> Value {
        self.get("/api/status").json()
    }

    /// Polls the status until `done` holds for it; returns that status.
    #[track_caller]
    pub fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < DEADLINE {
            last = self.status();
            if done(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.fail(&format!(
            "gave up waiting for {what}; last status:\n{last:#}"
        ))
    }

    /// Starts each user, in the named slot or where the pod puts them, and waits until every
    /// one is ready in a slot; returns that status.
    #[track_caller]
    pub fn start_in_slots(&self, users: &[(&str, Option<u64>)]) -> Value {
        for (user, slot) in users {
            let body = match slot {
                Some(slot) => json!({"user": user, "slot": slot}),
                None => json!({"user": user}),
            };
            let reply = self.post("/api/start", body);
            assert_eq!(reply.status, 202, "starting {user}: {}", reply.body);
        }
        let names: Vec<&str> = users.iter().map(|(user, _)| *user).collect();
        self.wait_for(&format!("{} ready", names.join(" and ")), |status| {
            names.iter().all(|user| ready_in_slot(status, user))
        })
    }

    #[track_caller]
    pub fn wait_comfyui(&self, state: &str) -> Value {
        self.wait_for(&format!("ComfyUI {state}"), |status| {
            status["services"]["comfyui"]["state"] == state
        })
    }

    /// Starts `user`'s ComfyUI and waits until it is ready.
    #[track_caller]
    pub fn start_ready(&self, user: &str) -> Value {
        let reply = self.post("/api/start", json!({ "user": user }));
        assert_eq!(reply.status, 202, "{}", reply.body);
        self.wait_comfyui("ready")
    }

    /// What the supervisor printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n---- supervisor output ----\n{}", self.output())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pid the stand-in ComfyUI wrote last.
    pub fn comfyui_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Sends `signal` to the supervisor and waits for it to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status();
        assert!(sent.is_ok_and(|status| status.success()), "kill -{signal}");
        let child = &mut self.child;
        eventually("the supervisor to exit", || child.try_wait().ok().flatten())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- supervisor output ----\n{}", self.output());
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(pid) = self.comfyui_pid().filter(|pid| alive(*pid)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// The slot `user` is in, from a status.
pub fn slot_of<'a>(status: &'a Value, user: &str) -> Option<&'a Value> {
    status["slots"]
        .as_array()?
        .iter()
        .find(|slot| slot["user"] == user)
}

/// Whether `user`'s ComfyUI is ready in a slot.
pub fn ready_in_slot(status: &Value, user: &str) -> bool {
    slot_of(status, user).is_some_and(|slot| slot["comfyui"]["state"] == "ready")
}
