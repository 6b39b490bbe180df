//! The real distribution registry (Debian's `docker-registry`, the registry Docker Hub runs)
//! on loopback, with images written into it by the real Docker engine (`docker push`) or
//! through its HTTP API (blobs by monolithic upload, manifests and indexes by PUT, as
//! `docker push` does) where a test needs what the engine does not make, such as an index of
//! several platforms.

use std::process::{Child, Command, Stdio};

use sha2::{Digest as _, Sha256};

use super::http::{free_port, http};
use super::wait::eventually;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A registry serving on 127.0.0.1 from a temporary folder; stopped when dropped.
pub struct Registry {
    pub port: u16,
    child: Child,
    _storage: tempfile::TempDir,
}

/// A blob or manifest as a manifest points at it.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

impl Pushed {
    fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Registry {
    pub fn start() -> Self {
        let storage = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.path().join("data").display()
            ),
        )
        .expect("write the registry's config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("the plan's registry tests run the real distribution registry: `docker-registry serve` fails ({err})\n  hint: apt-get install docker-registry (ci/test.sh does this)")
            });
        let registry = Self {
            port,
            child,
            _storage: storage,
        };
        eventually("the registry to answer /v2/", || {
            http(port, "GET", "/v2/", None, &[])
                .ok()
                .filter(|reply| reply.status == 200)
        });
        registry
    }

    /// `127.0.0.1:PORT/repository`.
    pub fn image(&self, repository: &str) -> String {
        format!("127.0.0.1:{}/{repository}", self.port)
    }

    /// Uploads `content` as a blob of `repository` in one request.
    pub fn blob(&self, repository: &str, media_type: &str, content: &str) -> Pushed {
        let started = http(
            self.port,
            "POST",
            &format!("/v2/{repository}/blobs/uploads/"),
            None,
            &[],
        )
        .expect("start an upload");
        assert_eq!(started.status, 202, "{started:?}");
        let location = started.header("location").expect("an upload location");
        let path = location
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
            .unwrap_or(location);
        let digest = sha256(content.as_bytes());
        let separator = if path.contains('?') { '&' } else { '?' };
        let done = http(
            self.port,
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            Some(content),
            &[("Content-Type", "application/octet-stream")],
        )
        .expect("finish the upload");
        assert_eq!(done.status, 201, "{done:?}");
        Pushed {
            digest,
            size: content.len() as u64,
            media_type: media_type.to_owned(),
        }
    }

    /// Puts an image manifest of `config` and `layers` under `reference` (a tag or its digest).
    pub fn image_manifest(
        &self,
        repository: &str,
        reference: Option<&str>,
        media_type: &str,
        config: &Pushed,
        layers: &[Pushed],
    ) -> Pushed {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Pushed::descriptor).collect::<Vec<_>>(),
        });
        self.manifest(repository, reference, media_type, &body.to_string())
    }

    /// Puts an OCI index of `(manifest, os, architecture)` entries under `reference`.
    pub fn index(
        &self,
        repository: &str,
        reference: Option<&str>,
        entries: &[(&Pushed, &str, &str)],
    ) -> Pushed {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(manifest, os, architecture)| {
                let mut entry = manifest.descriptor();
                entry["platform"] = serde_json::json!({"os": os, "architecture": architecture});
                entry
            })
            .collect();
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        self.manifest(repository, reference, OCI_INDEX, &body.to_string())
    }

    fn manifest(
        &self,
        repository: &str,
        reference: Option<&str>,
        media_type: &str,
        body: &str,
    ) -> Pushed {
        let digest = sha256(body.as_bytes());
        let reference = reference.unwrap_or(&digest);
        let put = http(
            self.port,
            "PUT",
            &format!("/v2/{repository}/manifests/{reference}"),
            Some(body),
            &[("Content-Type", media_type)],
        )
        .expect("put a manifest");
        assert_eq!(put.status, 201, "{put:?}");
        assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));
        Pushed {
            digest,
            size: body.len() as u64,
            media_type: media_type.to_owned(),
        }
    }
}

/// An image the local Docker engine imported and pushed to a [`Registry`]; removed from the
/// engine when dropped.
pub struct EnginePushed {
    pub image: String,
}

impl Registry {
    /// Imports a one-file image into the local Docker engine as `repository:tag` of this
    /// registry and pushes it with `docker push`.
    pub fn docker_push(&self, repository: &str, tag: &str) -> EnginePushed {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::write(root.path().join("hello.txt"), "a base image\n").expect("write");
        let tar = root.path().join("root.tar");
        let image = format!("{}:{tag}", self.image(repository));
        for args in [
            vec![
                "tar".to_owned(),
                "-C".to_owned(),
                root.path().display().to_string(),
                "-cf".to_owned(),
                tar.display().to_string(),
                "hello.txt".to_owned(),
            ],
            vec![
                "docker".to_owned(),
                "import".to_owned(),
                tar.display().to_string(),
                image.clone(),
            ],
            vec!["docker".to_owned(), "push".to_owned(), image.clone()],
        ] {
            let output = Command::new(&args[0])
                .args(&args[1..])
                .output()
                .unwrap_or_else(|err| panic!("{args:?}: {err}\n  hint: this test pushes with the real Docker engine, which ci/test.sh installs and starts"));
            assert!(
                output.status.success(),
                "{args:?}: {}\n  hint: this test pushes with a running Docker engine; ci/test.sh installs and starts one before the tests",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        EnginePushed { image }
    }

    /// The manifest the registry holds under `reference`, as Docker schema 2 or OCI JSON.
    pub fn manifest_of(&self, repository: &str, reference: &str) -> serde_json::Value {
        let reply = http(
            self.port,
            "GET",
            &format!("/v2/{repository}/manifests/{reference}"),
            None,
            &[("Accept", &format!("{DOCKER_MANIFEST}, {OCI_MANIFEST}"))],
        )
        .expect("get a manifest");
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()
    }
}

impl Drop for EnginePushed {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.image])
            .output();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
