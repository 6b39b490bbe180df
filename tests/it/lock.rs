//! `podstack lock` and `podstack wheelhouse` as a user runs them: against PyPI for real (small
//! pure-Python packages), and against a local file server for wheels by URL (a redirect, a
//! 404, a wrong hash, a dropped connection, a host that does not answer).

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use crate::support::file_server::{Behaviour, FileServer};
use crate::support::http::free_port;
use crate::support::{copy_project, podstack, Podstack};

/// six 1.17.0's wheel on PyPI, as its project page lists it.
const SIX_WHEEL_SHA256: &str = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274";
/// python-dateutil 2.9.0.post0's wheel on PyPI.
const DATEUTIL_WHEEL_SHA256: &str =
    "a8b2bc7bffae282281c8140a97d3aa9c14da0b136dfe83f850eea9a5f7470427";

/// A copy of the project with one more stack, `stacks/t.toml`, whose base and builder are
/// pinned (so that only what the test adds is open), and its own lock cache.
struct Project {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Project {
    fn new(python: &str, wheels: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_project(dir.path());
        let digest = format!("sha256:{}", "1".repeat(64));
        let manifest = format!(
            r#"[stack]
name = "t"
version = "0.1.0"

[base]
image = "debian:bookworm"
digest = "{digest}"
builder_digest = "{digest}"
python = "3.11"

[python]
packages = [{python}]
{wheels}
[comfyui]
path = "tests/fixtures/comfyui"
requirements = false
"#
        );
        std::fs::write(dir.path().join("stacks/t.toml"), manifest).expect("write manifest");
        Self {
            dir,
            cache: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lock_file(&self) -> PathBuf {
        self.path().join("stacks/t.lock")
    }

    fn podstack<const N: usize>(&self, args: [&str; N]) -> Podstack {
        podstack(args)
            .current_dir(self.path())
            .env("PODSTACK_CACHE_DIR", self.cache.path())
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that are not all alike, so a resumed download that skips or repeats some is caught.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + usize::from(seed)) % 251).expect("below 251"))
        .collect()
}

#[test]
fn locks_small_packages_from_pypi_with_their_dependencies() {
    let project = Project::new(r#""python-dateutil==2.9.0.post0", "iniconfig>=2,<3""#, "");
    let out = tempfile::tempdir().expect("temp dir");
    let out = out.path().display().to_string();
    let unlocked = project
        .podstack(["build", "t", "--strict", "--out", &out])
        .run()
        .expect_code(1);
    assert!(
        unlocked
            .stderr
            .contains("error: the Python packages are not locked: there is no stacks/t.lock, so pip may install any file for them\n  hint: run `podstack lock` for this stack and commit the lock file"),
        "{}",
        unlocked.stderr
    );

    let run = project.podstack(["lock", "t"]).run().expect_code(0);
    assert!(
        run.stdout
            .starts_with("stacks/t.lock written (1 fetched in "),
        "{}",
        run.stdout
    );
    for line in [
        "  + python-dateutil 2.9.0.post0",
        "  + six 1.17.0",
        "locked 3 Python packages (0 in the torch layer), 3 files, from PyPI",
    ] {
        assert!(run.stderr.contains(line), "{line} in\n{}", run.stderr);
    }
    assert!(
        run.stdout
            .ends_with("pip downloads at most 1 MB of wheels (0 MB for the torch layer)\n"),
        "{}",
        run.stdout
    );
    let lock = std::fs::read_to_string(project.lock_file()).expect("lock file");
    assert!(
        lock.contains(&format!(
            "name = \"six\"\nversion = \"1.17.0\"\nlayer = \"packages\"\nfiles = [\n    {{ file = \"six-1.17.0-py2.py3-none-any.whl\", sha256 = \"{SIX_WHEEL_SHA256}\", size = 11050 }},\n]"
        )),
        "{lock}"
    );
    assert!(lock.contains(DATEUTIL_WHEEL_SHA256), "{lock}");
    assert!(
        lock.contains("name = \"iniconfig\"\nversion = \"2."),
        "{lock}"
    );

    let built = project
        .podstack(["build", "t", "--strict", "--out", &out])
        .run()
        .expect_code(0);
    assert!(built.stdout.starts_with("t:0.1.0-"), "{}", built.stdout);
    let requirements =
        std::fs::read_to_string(Path::new(&out).join("t/requirements.lock.txt")).expect("written");
    assert!(
        requirements.contains(&format!(
            "six==1.17.0 \\\n    --hash=sha256:{SIX_WHEEL_SHA256}\n"
        )),
        "{requirements}"
    );
    let dockerfile =
        std::fs::read_to_string(Path::new(&out).join("t/Dockerfile")).expect("written");
    assert!(
        dockerfile.contains("pip install --require-hashes -c /opt/podstack/constraints.txt -r /opt/podstack/requirements.lock.txt"),
        "{dockerfile}"
    );
    let stack: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&out).join("t/stack.json")).expect("written"),
    )
    .expect("JSON");
    assert!(
        stack["packages"]
            .as_array()
            .expect("packages")
            .contains(&serde_json::json!({"name": "six", "version": "1.17.0"})),
        "the pod verifies the whole closure: {}",
        stack["packages"]
    );

    // Everything is kept: nothing is fetched, and nothing changes.
    let started = Instant::now();
    let again = project.podstack(["lock", "t"]).run().expect_code(0);
    assert!(
        again
            .stdout
            .starts_with("stacks/t.lock is up to date (0 fetched in "),
        "{}",
        again.stdout
    );
    assert!(
        started.elapsed().as_secs_f64() < 2.0,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(project.lock_file()).expect("lock"),
        lock
    );

    let update = project
        .podstack(["lock", "t", "--update", "iniconfig"])
        .run()
        .expect_code(0);
    assert!(
        update.stdout.contains("(1 fetched in "),
        "{}",
        update.stdout
    );
    let unknown = project
        .podstack(["lock", "t", "--update", "nosuch"])
        .run()
        .expect_code(2);
    assert!(
        unknown.stderr.starts_with("error: `--update nosuch` names nothing in stacks/t.toml\n  hint: names here: base, builder, iniconfig, python-dateutil, six"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn a_wheelhouse_holds_every_locked_file_checked() {
    let project = Project::new(r#""python-dateutil==2.9.0.post0""#, "");
    let house = tempfile::tempdir().expect("temp dir");
    let house_path = house.path().join("wheelhouse");
    let house_arg = house_path.display().to_string();
    let missing = project
        .podstack(["wheelhouse", "t", &house_arg])
        .run()
        .expect_code(1);
    assert!(
        missing.stderr.contains("hint: run `podstack lock t` first"),
        "{}",
        missing.stderr
    );
    project.podstack(["lock", "t"]).run().expect_code(0);
    let filled = project
        .podstack(["wheelhouse", "t", &house_arg])
        .run()
        .expect_code(0);
    assert!(
        filled
            .stdout
            .ends_with("2 files checked against stacks/t.lock (2 downloaded, 240942 bytes)\n"),
        "{}",
        filled.stdout
    );
    let six = std::fs::read(house_path.join("six-1.17.0-py2.py3-none-any.whl")).expect("six");
    assert_eq!(sha256(&six), SIX_WHEEL_SHA256);
    let conf = std::fs::read_to_string(house_path.join("pip.conf")).expect("pip.conf");
    assert!(
        conf.ends_with("[global]\nno-index = true\nfind-links = /wheelhouse\n"),
        "{conf}"
    );
    let again = project
        .podstack(["wheelhouse", "t", &house_arg])
        .run()
        .expect_code(0);
    assert!(again.stdout.contains("(0 downloaded"), "{}", again.stdout);

    // A lock that does not match what the index serves: the file is refused, not kept.
    let lock = std::fs::read_to_string(project.lock_file()).expect("lock");
    std::fs::write(
        project.lock_file(),
        lock.replace(SIX_WHEEL_SHA256, &"0".repeat(64)),
    )
    .expect("tamper");
    let other = house.path().join("other");
    let refused = project
        .podstack(["wheelhouse", "t", &other.display().to_string()])
        .run()
        .expect_code(1);
    assert!(
        refused.stderr.contains(&format!(
            "served a file with sha256 {SIX_WHEEL_SHA256}, the lock says {}; it was not kept",
            "0".repeat(64)
        )),
        "{}",
        refused.stderr
    );
    assert!(!other.join("six-1.17.0-py2.py3-none-any.whl").exists());
    assert!(!other.join(".six-1.17.0-py2.py3-none-any.whl.part").exists());
}

#[test]
fn locks_url_wheels_through_redirects_and_dropped_connections() {
    let server = FileServer::start();
    let demo = payload(300_000, 1);
    let flaky = payload(1_000_000, 2);
    server
        .route(
            "/dl/demo-1.0-py3-none-any.whl",
            Vec::new(),
            Behaviour::Redirect("/files/demo-1.0-py3-none-any.whl".to_owned()),
        )
        .route(
            "/files/demo-1.0-py3-none-any.whl",
            demo.clone(),
            Behaviour::Serve,
        )
        .route(
            "/flaky/flaky-2.0-py3-none-any.whl",
            flaky.clone(),
            Behaviour::Drop {
                after: 100_000,
                times: 1,
            },
        );
    let demo_url = server.url("/dl/demo-1.0-py3-none-any.whl");
    let flaky_url = server.url("/flaky/flaky-2.0-py3-none-any.whl");
    let wheels = format!("\n[[wheel]]\nurl = \"{demo_url}\"\n\n[[wheel]]\nurl = \"{flaky_url}\"\n");
    let project = Project::new("", &wheels);
    project.podstack(["lock", "t"]).run().expect_code(0);
    let lock = std::fs::read_to_string(project.lock_file()).expect("lock");
    assert!(
        lock.contains(&format!(
            "[[wheel]]\nurl = \"{demo_url}\"\nsha256 = \"{}\"\nsize = 300000\n",
            sha256(&demo)
        )),
        "the URL as given, the hash of what it served:\n{lock}"
    );
    assert!(
        lock.contains(&format!(
            "[[wheel]]\nurl = \"{flaky_url}\"\nsha256 = \"{}\"\nsize = 1000000\n",
            sha256(&flaky)
        )),
        "{lock}"
    );
    let ranges: Vec<Option<String>> = server
        .seen()
        .into_iter()
        .filter(|seen| seen.path.starts_with("/flaky/"))
        .map(|seen| seen.range)
        .collect();
    assert_eq!(
        ranges,
        [None, Some("bytes=100000-".to_owned())],
        "resumed, not restarted"
    );
    assert_eq!(server.sent("/flaky/flaky-2.0-py3-none-any.whl"), 1_000_000);

    let out = tempfile::tempdir().expect("temp dir");
    project
        .podstack([
            "build",
            "t",
            "--strict",
            "--out",
            &out.path().display().to_string(),
        ])
        .run()
        .expect_code(0);
    let dockerfile = std::fs::read_to_string(out.path().join("t/Dockerfile")).expect("written");
    assert!(
        dockerfile.contains(&format!("'{demo_url}#sha256={}'", sha256(&demo))),
        "{dockerfile}"
    );
}

#[test]
fn each_failed_wheel_is_reported_with_its_likely_cause_and_nothing_is_written() {
    let server = FileServer::start();
    server.route(
        "/w/pinned-1.0-py3-none-any.whl",
        payload(5_000, 3),
        Behaviour::Serve,
    );
    let gone = server.url("/gone/flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl");
    let pinned = server.url("/w/pinned-1.0-py3-none-any.whl");
    let wrong = "e".repeat(64);
    let wheels = format!(
        "\n[[wheel]]\nurl = \"{gone}\"\n\n[[wheel]]\nurl = \"{pinned}\"\nsha256 = \"{wrong}\"\n"
    );
    let project = Project::new("", &wheels);
    let run = project.podstack(["lock", "t"]).run().expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "error: wheel flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl: {gone} answered 404 Not Found\n  hint: no cp311 build of flash_attn 2.8.3 exists at this address: try the abi3 wheel of the same release (e.g. `cp39-abi3`), or check the release's file list\n"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "error: wheel pinned-1.0-py3-none-any.whl: {pinned} served a file with sha256 {}, the manifest pins {wrong}\n",
            sha256(&payload(5_000, 3))
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .ends_with("stacks/t.toml: 2 input(s) failed; stacks/t.lock was not written\n"),
        "{}",
        run.stderr
    );
    assert!(!project.lock_file().exists());
}

#[test]
fn a_host_that_does_not_answer_leaves_its_input_unresolved_and_strict_refuses_it() {
    let closed = free_port();
    let url = format!("http://127.0.0.1:{closed}/away-1.0-py3-none-any.whl");
    let project = Project::new("", &format!("\n[[wheel]]\nurl = \"{url}\"\n"));
    let run = project.podstack(["lock", "t"]).run().expect_code(0);
    assert!(
        run.stderr.contains("unresolved: wheel away-1.0-py3-none-any.whl (wheel[0].url): 127.0.0.1 cannot be reached ("),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("1 input(s) unresolved"),
        "{}",
        run.stdout
    );
    let lock = std::fs::read_to_string(project.lock_file()).expect("lock");
    assert!(
        lock.contains(
            "[[unresolved]]\ninput = \"wheel away-1.0-py3-none-any.whl\"\nkey = \"wheel[0].url\"\n"
        ),
        "{lock}"
    );
    let out = tempfile::tempdir().expect("temp dir");
    let strict = project
        .podstack([
            "build",
            "t",
            "--strict",
            "--out",
            &out.path().display().to_string(),
        ])
        .run()
        .expect_code(1);
    assert!(
        strict
            .stderr
            .contains("error: wheel `away-1.0-py3-none-any.whl` is not pinned by sha256"),
        "{}",
        strict.stderr
    );
}

/// A wheel: a zip with a module and `<dist_info>/METADATA` (made by Python's zipfile).
fn wheel_zip(dist_info: &str, metadata: &str) -> Vec<u8> {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import io, sys, zipfile\n\
             buffer = io.BytesIO()\n\
             with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as wheel:\n\
             \x20   wheel.writestr('filelock/__init__.py', 'x = 1\\n' * 5000)\n\
             \x20   wheel.writestr(sys.argv[1] + '/METADATA', sys.argv[2])\n\
             sys.stdout.buffer.write(buffer.getvalue())\n",
        )
        .args([dist_info, metadata])
        .output()
        .expect("python3 makes a zip");
    assert!(output.status.success(), "{output:?}");
    output.stdout
}

/// A PyTorch-style simple index (PEP 503) on the local server: torch's link carries no hash,
/// so the lock downloads the file to hash it; its requirements come from PEP 658 metadata.
#[test]
fn locks_torch_and_what_it_needs_from_its_cuda_index() {
    let server = FileServer::start();
    let torch = payload(200_000, 7);
    let vision = payload(20_000, 8);
    let audio = payload(10_000, 9);
    let filelock = wheel_zip(
        "filelock-3.20.0.dist-info",
        "Metadata-Version: 2.1\nName: filelock\nVersion: 3.20.0\nRequires-Dist: zipdep\n\nthe description\n",
    );
    let zipdep = payload(3_000, 11);
    let wheel = |name: &str, version: &str| {
        format!("{name}-{version}-cp311-cp311-manylinux_2_28_x86_64.whl")
    };
    let page = |links: &[(String, Option<String>)]| {
        let mut html = String::from("<!DOCTYPE html><html><body>\n");
        for (file, sha) in links {
            let href = format!("/files/{}", file.replace('+', "%2B"));
            let fragment = sha
                .as_ref()
                .map(|sha| format!("#sha256={sha}"))
                .unwrap_or_default();
            // filelock's metadata is not served: it is read out of the wheel itself.
            let metadata = if file.starts_with("filelock") {
                ""
            } else {
                " data-dist-info-metadata=\"true\""
            };
            html.push_str(&format!(
                "<a href=\"{href}{fragment}\" data-requires-python=\"&gt;=3.9\"{metadata}>{file}</a><br/>\n"
            ));
        }
        html.push_str("</body></html>\n");
        html.into_bytes()
    };
    let torch_file = wheel("torch", "2.8.0+cu129");
    let vision_file = wheel("torchvision", "0.23.0+cu129");
    let audio_file = wheel("torchaudio", "2.8.0+cu129");
    let filelock_file = "filelock-3.20.0-py3-none-any.whl".to_owned();
    let zipdep_file = "zipdep-1.0-py3-none-any.whl".to_owned();
    // (project, file, body, sha256 in the link, Requires-Dist lines of its metadata)
    type Listing<'a> = (&'a str, &'a String, &'a Vec<u8>, Option<String>, &'a str);
    let routes: [Listing<'_>; 5] = [
        (
            "torch",
            &torch_file,
            &torch,
            None,
            "Requires-Dist: filelock\nRequires-Dist: pywin32; sys_platform == \"win32\"\n",
        ),
        (
            "torchvision",
            &vision_file,
            &vision,
            Some(sha256(&vision)),
            "Requires-Dist: torch==2.8.0\n",
        ),
        (
            "torchaudio",
            &audio_file,
            &audio,
            Some(sha256(&audio)),
            "Requires-Dist: torch==2.8.0\n",
        ),
        (
            "filelock",
            &filelock_file,
            &filelock,
            Some(sha256(&filelock)),
            "",
        ),
        ("zipdep", &zipdep_file, &zipdep, Some(sha256(&zipdep)), ""),
    ];
    for (project, file, body, sha, requires) in routes {
        server
            .route(
                &format!("/whl/cu129/{project}/"),
                page(&[(file.clone(), sha)]),
                Behaviour::Serve,
            )
            .route(
                &format!("/files/{}", file.replace('+', "%2B")),
                body.clone(),
                Behaviour::Serve,
            );
        if project != "filelock" {
            server.route(
                &format!("/files/{}.metadata", file.replace('+', "%2B")),
                format!("Metadata-Version: 2.1\nName: {project}\nVersion: 1\n{requires}\nthe description\n").into_bytes(),
                Behaviour::Serve,
            );
        }
    }
    let project = Project::new("", "");
    let manifest = std::fs::read_to_string(project.path().join("stacks/t.toml"))
        .expect("manifest")
        .replace(
            "[comfyui]",
            "[torch]\nversion = \"2.8.0\"\ncuda = \"12.9\"\ntorchvision = \"0.23.0\"\ntorchaudio = \"2.8.0\"\n\n[comfyui]",
        );
    std::fs::write(project.path().join("stacks/t.toml"), manifest).expect("write");
    let run = project
        .podstack(["lock", "t"])
        .env("PODSTACK_PYTORCH_INDEX_URL", server.url("/whl"))
        .run()
        .expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "locked 5 Python packages (5 in the torch layer), 5 files, from {}",
            server.url("/whl/cu129")
        )),
        "{}",
        run.stderr
    );
    let lock = std::fs::read_to_string(project.lock_file()).expect("lock");
    assert!(
        lock.contains(&format!(
            "name = \"torch\"\nversion = \"2.8.0+cu129\"\nlayer = \"torch\"\nfiles = [\n    {{ file = \"{torch_file}\", sha256 = \"{}\", size = 200000 }},\n]",
            sha256(&torch)
        )),
        "torch hashed from its download:\n{lock}"
    );
    assert!(
        lock.contains(&format!("sha256 = \"{}\"", sha256(&filelock))),
        "{lock}"
    );
    assert!(
        lock.contains("name = \"zipdep\""),
        "filelock's requirement, read out of its wheel over ranges:\n{lock}"
    );
    let filelock_ranges: Vec<Option<String>> = server
        .seen()
        .into_iter()
        .filter(|seen| seen.path == format!("/files/{filelock_file}"))
        .map(|seen| seen.range)
        .collect();
    assert!(
        filelock_ranges.iter().all(Option::is_some) && !filelock_ranges.is_empty(),
        "{filelock_ranges:?}"
    );
    assert!(
        !lock.contains("pywin32"),
        "markers are evaluated for the image: {lock}"
    );
    let out = tempfile::tempdir().expect("temp dir");
    project
        .podstack([
            "build",
            "t",
            "--strict",
            "--out",
            &out.path().display().to_string(),
        ])
        .run()
        .expect_code(0);
    let dockerfile = std::fs::read_to_string(out.path().join("t/Dockerfile")).expect("written");
    assert!(
        dockerfile.contains("pip install --index-url https://download.pytorch.org/whl/cu129 --require-hashes -r /opt/podstack/torch.lock.txt"),
        "{dockerfile}"
    );
    let torch_lock = std::fs::read_to_string(out.path().join("t/torch.lock.txt")).expect("written");
    assert!(
        torch_lock.contains(&format!(
            "torch==2.8.0+cu129 \\\n    --hash=sha256:{}\n",
            sha256(&torch)
        )),
        "{torch_lock}"
    );
}

#[test]
fn a_lock_with_fields_that_are_not_data_is_resolved_again_not_kept_from() {
    let project = Project::new("", "");
    let digest = format!("sha256:{}", "1".repeat(64));
    std::fs::write(
        project.lock_file(),
        format!(
            "version = 1\n\n[[image]]\nimage = \"debian:bookworm\\nRUN id\"\ndigest = \"{digest}\"\n"
        ),
    )
    .expect("write lock");
    let run = project.podstack(["lock", "t"]).run().expect_code(0);
    let shown = project.lock_file().display().to_string();
    let expected = format!(
        "{shown}:4:9: error: `debian:bookworm\\nRUN id` is not an image reference: `bookworm\\nRUN id` is not a tag\n"
    );
    assert!(
        run.stderr.contains(&expected),
        "expected {expected:?} in\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("stacks/t.lock: not trusted; every input is resolved again\n"),
        "{}",
        run.stderr
    );
    let lock = std::fs::read_to_string(project.lock_file()).expect("rewritten");
    assert!(!lock.contains("RUN id"), "{lock}");
}
