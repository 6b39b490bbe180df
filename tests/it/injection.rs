//! A manifest or a lock file is data: whatever it holds, the Dockerfile's `RUN` lines are the
//! commands podstack means, with each value one shell word (issue 12). Rendered manifests are
//! checked by splitting their `RUN` lines as `sh` would; a property test feeds generated
//! manifests through parsing, validation and rendering, none of which may panic.

use std::path::Path;

use podstack::manifest::{validate, Loaded, Manifest, Source};
use podstack::project::Project;
use podstack::render::render;
use proptest::prelude::*;

use crate::support::{copy_project, podstack, repo};

/// The `RUN` instructions of a Dockerfile in shell form, continuation lines joined and the
/// Dockerfile's own `--mount=...` flags dropped.
fn run_commands(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| line.strip_prefix("RUN "))
        .filter(|command| !command.starts_with('['))
        .map(|command| {
            let mut rest = command.trim_start();
            while let Some(after) = rest.strip_prefix("--mount=") {
                rest = after
                    .split_once(' ')
                    .map_or("", |(_, tail)| tail)
                    .trim_start();
            }
            rest.to_owned()
        })
        .collect()
}

/// The text of a command with every single-quoted part emptied and every backslash escape
/// (`\'`) made a plain `_`: what `sh` interprets.
fn unquoted(command: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '\\' if !quoted => {
                chars.next();
                out.push('_');
            }
            _ if !quoted => out.push(c),
            _ => {}
        }
    }
    out
}

/// The simple commands of a `RUN` line, split as `sh` splits words, at `&&` and `;`.
fn simple_commands(command: &str) -> Vec<Vec<String>> {
    let active = unquoted(command);
    for c in ['$', '`', '|', '<', '>', '(', ')', '"', '\n', '#'] {
        assert!(!active.contains(c), "`{c}` reaches sh in {command:?}");
    }
    for word in active.split_whitespace() {
        if word.contains([';', '&']) {
            assert!(
                word == "&&" || word == "];" || word.ends_with("/requirements.txt;"),
                "`{word}` is an operator the template does not have, in {command:?}"
            );
        }
    }
    let words = shell_words::split(command).expect("a RUN line is one shell command list");
    let mut commands = vec![Vec::new()];
    for word in words {
        if word == "&&" {
            commands.push(Vec::new());
        } else if let Some(word) = word.strip_suffix(';').filter(|_| word != ";") {
            commands.last_mut().expect("one").push(word.to_owned());
            commands.push(Vec::new());
        } else {
            commands.last_mut().expect("one").push(word);
        }
    }
    commands
}

/// Checks that a rendered Dockerfile runs exactly the commands the manifest asks for.
fn assert_runs_as_intended(manifest: &Manifest, dockerfile: &str) {
    let commands: Vec<Vec<String>> = run_commands(dockerfile)
        .iter()
        .flat_map(|command| simple_commands(command))
        .collect();
    let python = manifest.base.python.to_string();
    let mut apt: Vec<String> = [
        format!("python{python}"),
        format!("python{python}-venv"),
        "ca-certificates".to_owned(),
    ]
    .into_iter()
    .chain(manifest.system.apt.iter().cloned())
    .collect();
    if manifest.comfyui.repo.is_some() || !manifest.comfyui.custom_nodes.is_empty() {
        apt.push("git".to_owned());
    }
    apt.sort();
    apt.dedup();
    let installs: Vec<&Vec<String>> = commands
        .iter()
        .filter(|words| words.starts_with(&["apt-get".to_owned(), "install".to_owned()]))
        .collect();
    assert_eq!(installs.len(), 1, "{dockerfile}");
    assert_eq!(installs[0][4..], apt, "{dockerfile}");

    let wheels: Vec<String> = manifest
        .wheels
        .iter()
        .map(|wheel| match &wheel.sha256 {
            Some(hash) => format!("{}#sha256={hash}", wheel.url),
            None => wheel.url.clone(),
        })
        .collect();
    let wheel_install = commands.iter().find(|words| {
        words.len() > 4
            && words[..4] == ["pip", "install", "-c", "/opt/podstack/constraints.txt"]
            && !words.contains(&"-r".to_owned())
    });
    match wheel_install {
        Some(words) => assert_eq!(words[4..], wheels, "{dockerfile}"),
        None => assert!(wheels.is_empty(), "{dockerfile}"),
    }

    let mut fetches: Vec<Vec<String>> = Vec::new();
    let fetch = |dir: String, repo: &str, commit: Option<&String>, git_ref: Option<&String>| {
        let revision = commit.or(git_ref).expect("a revision").clone();
        [
            "git", "-C", &dir, "fetch", "-q", "--depth", "1", repo, &revision,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    if let Some(repo) = &manifest.comfyui.repo {
        fetches.push(fetch(
            "/opt/ComfyUI".to_owned(),
            repo,
            manifest.comfyui.commit.as_ref(),
            manifest.comfyui.git_ref.as_ref(),
        ));
    }
    for node in &manifest.comfyui.custom_nodes {
        fetches.push(fetch(
            format!("/opt/ComfyUI/custom_nodes/{}", node.folder_name()),
            &node.repo,
            node.commit.as_ref(),
            node.git_ref.as_ref(),
        ));
    }
    let rendered: Vec<Vec<String>> = commands
        .iter()
        .filter(|words| words.len() > 3 && words[0] == "git" && words[3] == "fetch")
        .cloned()
        .collect();
    assert_eq!(rendered, fetches, "{dockerfile}");
    for line in dockerfile.lines().filter(|line| line.starts_with("FROM ")) {
        let words = line.split_whitespace().count();
        assert!(words == 2 || words == 4, "{line}");
    }
}

/// Parses, validates and (when valid) renders manifest text in memory; `None` when refused.
fn render_text(text: &str) -> Option<(Manifest, String)> {
    let manifest: Manifest = toml::from_str(text).ok()?;
    if validate(&manifest, false)
        .iter()
        .any(|problem| problem.is_error())
    {
        return None;
    }
    let loaded = Loaded {
        source: Source {
            path: repo().join("stacks/generated.toml"),
            shown_as: "stacks/generated.toml".to_owned(),
            text: text.to_owned(),
        },
        manifest: manifest.clone(),
    };
    let project = Project { root: repo() };
    let rendered = render(&project, &loaded, None).expect("a valid manifest renders");
    let dockerfile = rendered.files["Dockerfile"].clone();
    Some((manifest, dockerfile))
}

fn valid_manifest() -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/malformed/valid.toml")).expect("valid")
}

/// Values a manifest may hold that mean something to a shell; accepted, they stay data.
const ACCEPTED_ODDITIES: &str = r#"
[system]
apt = ["g++", "libstdc++6", "ffmpeg"]

[[wheel]]
url = "https://example.com/$(id)/a;b&c/x-1.0-py3-none-any.whl?x=1&y=$HOME"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[[comfyui.custom_nodes]]
repo = "https://github.com/ltdrdata/ComfyUI-Manager"
ref = "release/3.3+x"
"#;

#[test]
fn every_accepted_manifest_of_the_corpus_runs_only_its_own_commands() {
    let mut rendered = 0;
    let corpus = std::fs::read_dir(repo().join("tests/fixtures/malformed")).expect("corpus");
    let mut texts: Vec<String> = corpus
        .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("read"))
        .collect();
    texts.push(format!("{}{ACCEPTED_ODDITIES}", valid_manifest()));
    for text in &texts {
        if let Some((manifest, dockerfile)) = render_text(text) {
            assert_runs_as_intended(&manifest, &dockerfile);
            rendered += 1;
        }
    }
    assert!(rendered >= 2, "{rendered}");
    let odd = render_text(&texts[texts.len() - 1]).expect("the oddities are accepted");
    assert!(
        odd.1.contains("'https://example.com/$(id)/a;b&c/x-1.0-py3-none-any.whl?x=1&y=$HOME#sha256=0000000000000000000000000000000000000000000000000000000000000000'"),
        "{}",
        odd.1
    );
}

#[test]
fn the_shipped_stacks_run_only_their_own_commands() {
    let out = tempfile::tempdir().expect("temp dir");
    podstack(["build", "--out", &out.path().display().to_string()])
        .run()
        .expect_code(0);
    for stack in ["comfyui-cu128", "comfyui-cu129", "smoke"] {
        let loaded = podstack::manifest::load(
            &repo().join(format!("stacks/{stack}.toml")),
            &format!("stacks/{stack}.toml"),
        )
        .expect("loads");
        let mut manifest = loaded.manifest;
        let lock_path =
            podstack::lock::lockfile::path_for(&repo().join(format!("stacks/{stack}.toml")));
        let mut lock = podstack::lock::lockfile::Lockfile::read(&lock_path, stack).expect("lock");
        podstack::lock::lockfile::pin(lock.as_mut(), &mut manifest, stack, false);
        let dockerfile =
            std::fs::read_to_string(out.path().join(stack).join("Dockerfile")).expect("rendered");
        assert_runs_as_intended(&manifest, &dockerfile);
    }
}

/// Strings that mean something to a shell, a Dockerfile, pip, git, apt, argparse or a URL
/// parser, mixed with plain ones.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "ffmpeg",
        "a",
        "-",
        "--",
        "-o",
        "--upload-pack=",
        ";",
        "&&",
        "|",
        "$(id)",
        "`id`",
        "\n",
        "\r",
        "RUN ",
        "\"",
        "'",
        "\\",
        " ",
        "#",
        "?",
        "@",
        ":",
        "/",
        "..",
        ".",
        "_",
        "+",
        "%2B",
        "=",
        "==",
        "https://",
        "http://localhost",
        "file:///",
        "x.whl",
        "-1.0-py3-none-any",
        "é",
        "\u{0}",
        "{",
        "}",
        "[",
        "]",
        "0",
        "9",
        "v",
        "A",
        "cu129",
    ]);
    prop::collection::vec(pieces, 0..8).prop_map(|pieces| pieces.concat())
}

/// How a value of each slot of [`manifest_with`] starts.
const PLAUSIBLE: [&str; 13] = [
    "ffmpeg",
    "https://example.com/",
    "https://github.com/a/",
    "v1",
    "node",
    "https://github.com/a/",
    "nvidia/cuda:12.9.1",
    "einops",
    "2.8.0",
    "stack",
    "--preview-method",
    "https://example.com/",
    "ghcr.io/",
];

/// The places of `valid.toml` a generated value goes, as TOML keys and sections.
fn manifest_with(slot: usize, value: &str) -> String {
    let quoted = toml::Value::String(value.to_owned()).to_string();
    let valid = valid_manifest();
    let node = |key: &str| {
        format!(
            "{valid}\n[[comfyui.custom_nodes]]\nrepo = \"https://github.com/ltdrdata/ComfyUI-Manager\"\ncommit = \"00a2ac7f2fcd4f9f0f17abdabc9061b37b6b726a\"\n{key} = {quoted}\n"
        )
    };
    match slot {
        0 => format!("{valid}\n[system]\napt = [{quoted}, \"ffmpeg\"]\n"),
        1 => format!("{valid}\n[[wheel]]\nurl = {quoted}\n"),
        2 => valid.replace("\"https://github.com/Comfy-Org/ComfyUI\"", &quoted),
        3 => valid.replace(
            "commit = \"a125cd84b054a57729b5eecab930ca9408719832\"",
            &format!("ref = {quoted}"),
        ),
        4 => node("name"),
        5 => node("repo").replace(
            "repo = \"https://github.com/ltdrdata/ComfyUI-Manager\"\ncommit",
            "commit",
        ),
        6 => valid.replace("\"nvidia/cuda:12.9.1-cudnn-runtime-ubuntu22.04\"", &quoted),
        7 => valid.replace(
            "\"xformers==0.0.32.post2\"",
            &format!("\"xformers==0.0.32.post2\", {quoted}"),
        ),
        8 => valid.replace("version = \"2.8.0\"", &format!("version = {quoted}")),
        9 => valid.replace("name = \"bad\"", &format!("name = {quoted}")),
        10 => format!("{valid}comfyui_args = [{quoted}]\n"),
        11 => format!("{valid}\n[[model]]\nurl = {quoted}\ndest = \"checkpoints/x\"\n"),
        _ => format!("{valid}\n[deploy]\nregistry = {quoted}\n"),
    }
}

proptest! {
    // Bounded: a few hundred manifests in a few seconds of the normal test run.
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_time: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_values_never_panic_and_stay_data(
        slot in 0usize..13,
        plausible in any::<bool>(),
        value in hostile_text(),
        wheel in "[a-z]{1,5}-[0-9]\\.[0-9]-py3-none-any\\.whl",
    ) {
        // Half the values start as the slot's values do, so that some get past the parsers.
        let value = if plausible {
            format!("{}{value}", PLAUSIBLE[slot])
        } else {
            value
        };
        let value = if slot == 1 { format!("{value}/{wheel}") } else { value };
        if let Some((manifest, dockerfile)) = render_text(&manifest_with(slot, &value)) {
            assert_runs_as_intended(&manifest, &dockerfile);
        }
    }

    /// Lines near the PEP 508 grammar, where a parser's own edge cases live (a name or an
    /// extra ending in `.`, `-` or `_` made pep508_rs 0.9 panic).
    #[test]
    fn requirement_lines_never_panic(
        line in "[a-zA-Z0-9]{0,3}[._-]{0,2} ?(\\[ ?[a-z0-9]{0,2}[._-]{0,2}( ?, ?[a-z0-9]{0,2}[._-]?)? ?\\]?)?( ?(==|>=|~=|===|@ )[0-9a-z.+*_-]{0,6})?( ?; ?(python_version|extra) ?[<>=!]{1,2} ?'[0-9a-z._-]{0,4}')?",
    ) {
        let _ = podstack::manifest::parse_requirement(&line);
        let quoted = toml::Value::String(line.clone()).to_string();
        let text = valid_manifest().replace(
            "\"xformers==0.0.32.post2\"",
            &format!("\"xformers==0.0.32.post2\", {quoted}"),
        );
        if let Some((manifest, dockerfile)) = render_text(&text) {
            assert_runs_as_intended(&manifest, &dockerfile);
        }
    }

    #[test]
    fn mangled_manifest_text_never_panics(
        at in 0usize..600,
        insert in hostile_text(),
    ) {
        let valid = valid_manifest();
        let mut at = at.min(valid.len());
        while !valid.is_char_boundary(at) {
            at -= 1;
        }
        let text = format!("{}{insert}{}", &valid[..at], &valid[at..]);
        if let Some((manifest, dockerfile)) = render_text(&text) {
            assert_runs_as_intended(&manifest, &dockerfile);
        }
    }
}

#[test]
fn lock_fields_are_checked_on_read_with_the_manifests_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_project(dir.path());
    let lock_path = dir.path().join("stacks/smoke.lock");
    let lock = std::fs::read_to_string(&lock_path).expect("lock");
    let hostile = lock
        .replace(
            "version = \"23.0.1\"",
            "version = \"23.0.1\\n--extra-index-url https://evil.example/simple\"",
        )
        .replace(
            "name = \"six\"",
            "name = \"six\\n--index-url https://evil.example\"",
        )
        .replace(
            "sha256 = \"4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\"",
            "sha256 = \"zz; id\"",
        );
    std::fs::write(&lock_path, hostile).expect("write");
    let run = podstack(["check", "smoke"]).current_dir(dir.path()).run();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let shown = lock_path.display().to_string();
    for expected in [
        format!("{shown}:21:11: error: `23.0.1\\n--extra-index-url https://evil.example/simple` is not a PEP 440 version: "),
        format!("{shown}:36:8: error: `six\\n--index-url https://evil.example` is not a Python package name\n  hint: a name is ASCII letters and digits, with `.`, `-` or `_` only between them (PEP 508), e.g. `scipy`\n"),
        format!("{shown}:40:58: error: `zz; id` is not a sha256\n  hint: write the 64 lower-case hex digits of `sha256sum <file>`\n"),
        format!("{shown}: 3 error(s) in the lock file; nothing was rendered\n  hint: run `podstack lock smoke` to write it again\n"),
    ] {
        assert!(run.stderr.contains(&expected), "expected {expected:?} in\n{}", run.stderr);
    }
}

#[test]
fn two_manifests_of_one_stack_name_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_project(dir.path());
    let stacks = dir.path().join("stacks");
    std::fs::copy(stacks.join("smoke.toml"), stacks.join("smoke-copy.toml")).expect("copy");
    let line_col = stack_name_place(&stacks.join("smoke-copy.toml"));
    // `check` takes the stacks in the order given, `build` every stack in name order.
    for (args, second, first) in [
        (vec!["check", "smoke", "smoke-copy"], "smoke-copy", "smoke"),
        (vec!["build"], "smoke", "smoke-copy"),
    ] {
        let run = podstack(&args).current_dir(dir.path()).run();
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        let expected = format!(
            "stacks/{second}.toml:{line_col}: error: stack name `smoke` is also the name of stacks/{first}.toml: both would render generated/smoke/\n  hint: give each manifest its own stack.name\n"
        );
        assert!(
            run.stderr.contains(&expected),
            "{args:?}: expected {expected:?} in\n{}",
            run.stderr
        );
    }
}

/// `line:col` of `name = "..."` under `[stack]`.
fn stack_name_place(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    let line = text
        .lines()
        .position(|line| line.starts_with("name = "))
        .expect("a name");
    format!("{}:8", line + 1)
}

#[test]
fn wheel_compat_reads_names_and_urls_as_pip_does() {
    let upper = podstack([
        "wheel-compat",
        "xformers-0.0.32.post2-CP39-ABI3-MANYLINUX_2_28_X86_64.whl",
        "--python",
        "3.11",
        "--glibc",
        "2.35",
    ])
    .run()
    .expect_code(0);
    assert!(
        upper.stdout.contains("cp39-abi3 (stable ABI"),
        "{}",
        upper.stdout
    );
    for (tag, oldest) in [
        ("manylinux_2_4_x86_64", "2.5"),
        ("manylinux_1_5_x86_64", "2.5"),
    ] {
        let run = podstack([
            "wheel-compat",
            &format!("x-1.0-cp311-cp311-{tag}.whl"),
            "--python",
            "3.11",
            "--glibc",
            "2.35",
        ])
        .run()
        .expect_code(1);
        assert!(
            run.stdout.contains(&format!(
                "`{tag}` is not a tag pip installs: manylinux tags on x86_64 start at glibc {oldest} (`manylinux_2_5_x86_64`)"
            )),
            "{}",
            run.stdout
        );
    }
    for url in [
        "https://download.pytorch.org/whl/cu129/torch-2.8.0%2Bcu129-cp311-cp311-manylinux_2_28_x86_64.whl",
        "https://download.pytorch.org/whl/cu129/torch-2.8.0%2Bcu129-cp311-cp311-manylinux_2_28_x86_64.whl?download=1",
        "https://download.pytorch.org/whl/cu129/torch-2.8.0%2Bcu129-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=00",
    ] {
        let run = podstack(["wheel-compat", url, "--python", "3.11", "--glibc", "2.35"])
            .run()
            .expect_code(0);
        assert!(
            run.stdout.starts_with(
                "torch-2.8.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl installs on CPython 3.11"
            ),
            "{url}: {}",
            run.stdout
        );
    }
}
