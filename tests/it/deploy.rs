//! The Compose and Kubernetes files `podstack build` renders, read back as the engines read
//! them: the values that decide whether pods run, share their volume, stop without losing
//! outputs and keep their secrets out of the files.

use std::path::Path;

use serde_json::Value;

use crate::support::{copy_project, podstack};

/// The smoke stack with sync, two pods of two GPUs each (so two ComfyUI slots each, one per
/// GPU) on an RWX class, and its output dir.
fn studio() -> (tempfile::TempDir, tempfile::TempDir) {
    let project = tempfile::tempdir().expect("temp dir");
    copy_project(project.path());
    let path = project.path().join("stacks/smoke.toml");
    let text = std::fs::read_to_string(&path).expect("smoke.toml");
    let text = text.replace("replicas = 3", "replicas = 2\ngpus_per_pod = 2\nstorage_class = \"nfs-rwx\"\ncpu = 0.5\nmemory_gb = 16")
        + "\n[sync]\nremote = \"studio\"\nbackend = \"webdav\"\nroot = \"out\"\noptions = { url = \"https://dav.example\", user = \"studio\" }\nfolders = [{ path = \"output\", mode = \"mirror\" }]\nfinal_sync = \"1m\"\n";
    std::fs::write(&path, text).expect("write smoke.toml");
    let out = tempfile::tempdir().expect("temp dir");
    podstack(["build", "smoke", "--out", &out.path().display().to_string()])
        .current_dir(project.path())
        .run()
        .expect_code(0);
    (project, out)
}

/// Every YAML document of a file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("generated file");
    serde_norway::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("valid YAML"))
        .collect()
}

fn kubernetes(out: &Path) -> Vec<Value> {
    ["statefulset.yaml", "volume.yaml", "services.yaml"]
        .iter()
        .flat_map(|file| documents(&out.join("smoke/kubernetes").join(file)))
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn the_statefulset_asks_for_gpus_probes_health_and_waits_for_the_final_sync() {
    let (_project, out) = studio();
    let objects = kubernetes(out.path());
    let [set] = of_kind(&objects, "StatefulSet")[..] else {
        panic!("one StatefulSet: {objects:?}")
    };
    assert_eq!(set["spec"]["replicas"], 2);
    let pod = &set["spec"]["template"]["spec"];
    // stop_grace 3s + final_sync 1m + 5 s for the supervisor to exit
    assert_eq!(pod["terminationGracePeriodSeconds"], 68);
    let container = &pod["containers"][0];
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], 2);
    assert_eq!(container["resources"]["requests"]["cpu"], "500m");
    assert_eq!(container["resources"]["requests"]["memory"], "16Gi");
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["path"], "/api/health",
            "{probe}"
        );
        assert_eq!(container[probe]["httpGet"]["port"], "panel", "{probe}");
    }
    let ports: Vec<_> = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default(),
                p["containerPort"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("panel", Some(7777)),
            ("comfyui", Some(8188)),
            ("comfyui-1", Some(8189))
        ],
        "a ComfyUI port per slot"
    );
    let pod_id = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|var| var["name"] == "PODSTACK_POD_ID")
        .expect("PODSTACK_POD_ID");
    assert_eq!(
        pod_id["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert!(set["metadata"]["name"] == "smoke" && set["spec"]["serviceName"] == "smoke");
}

#[test]
fn the_pods_share_one_read_write_many_claim() {
    let (_project, out) = studio();
    let objects = kubernetes(out.path());
    let [claim] = of_kind(&objects, "PersistentVolumeClaim")[..] else {
        panic!("one claim: {objects:?}")
    };
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"])
    );
    assert_eq!(claim["spec"]["storageClassName"], "nfs-rwx");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "100Gi");
    let set = of_kind(&objects, "StatefulSet")[0];
    let volumes = &set["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes[0]["persistentVolumeClaim"]["claimName"],
        claim["metadata"]["name"]
    );
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/workspace"
    );
}

#[test]
fn each_pod_has_a_service_for_its_panel_and_every_slots_comfyui_port() {
    let (_project, out) = studio();
    let objects = kubernetes(out.path());
    let services = of_kind(&objects, "Service");
    let names: Vec<_> = services
        .iter()
        .map(|s| s["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, ["smoke", "smoke-0", "smoke-1"]);
    assert_eq!(
        services[0]["spec"]["clusterIP"], "None",
        "the StatefulSet's headless Service"
    );
    for (index, service) in services[1..].iter().enumerate() {
        assert_eq!(
            service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
            format!("smoke-{index}")
        );
        let ports: Vec<_> = service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| (p["port"].as_u64(), p["targetPort"].clone()))
            .collect();
        assert_eq!(
            ports,
            [
                (Some(7777), "panel".into()),
                (Some(8188), "comfyui".into()),
                (Some(8189), "comfyui-1".into())
            ]
        );
    }
}

#[test]
fn secrets_are_referenced_never_written() {
    let (_project, out) = studio();
    let objects = kubernetes(out.path());
    assert!(
        of_kind(&objects, "Secret").is_empty(),
        "no Secret object is generated"
    );
    let container =
        &of_kind(&objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"],
        "smoke-secrets"
    );
    let literal: Vec<_> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter(|var| var.get("value").is_some())
        .map(|var| var["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        literal,
        ["PODSTACK_EXPECTED_DIGEST"],
        "the only literal value"
    );

    let compose = &documents(&out.path().join("smoke/compose.yaml"))[0];
    for (id, service) in compose["services"].as_object().expect("services") {
        assert_eq!(
            service["env_file"],
            "${PODSTACK_ENV_FILE:?set PODSTACK_ENV_FILE to the env file with the pods' secrets}",
            "{id}"
        );
        let names: Vec<_> = service["environment"]
            .as_object()
            .expect("environment")
            .keys()
            .collect();
        assert_eq!(
            names,
            ["PODSTACK_POD_ID", "PODSTACK_EXPECTED_DIGEST"],
            "{id}"
        );
    }
}

#[test]
fn compose_gives_each_pod_its_own_id_ports_and_gpus() {
    // Two slots a pod (per-gpu, two GPUs a pod): each pod publishes both ComfyUI ports, and
    // the next pod's ports start two further on.
    let (_project, out) = studio();
    let compose = &documents(&out.path().join("smoke/compose.yaml"))[0];
    let services = compose["services"].as_object().expect("services");
    assert_eq!(services.keys().collect::<Vec<_>>(), ["smoke-0", "smoke-1"]);
    for (index, (id, service)) in services.iter().enumerate() {
        assert_eq!(service["environment"]["PODSTACK_POD_ID"], id.as_str());
        assert_eq!(service["hostname"], id.as_str());
        assert_eq!(
            service["ports"],
            serde_json::json!([
                format!("{}:7777", 7777 + 2 * index),
                format!("{}:8188", 8188 + 2 * index),
                format!("{}:8189", 8189 + 2 * index)
            ])
        );
        let gpus = &service["deploy"]["resources"]["reservations"]["devices"][0];
        let own: Vec<String> = (index * 2..index * 2 + 2)
            .map(|gpu| gpu.to_string())
            .collect();
        assert_eq!(gpus["device_ids"], serde_json::json!(own), "{id}");
        assert_eq!(gpus["capabilities"], serde_json::json!(["gpu"]));
        assert_eq!(service["stop_grace_period"], "68s");
        assert_eq!(
            service["volumes"],
            serde_json::json!(["workspace:/workspace"])
        );
        assert_eq!(
            service["healthcheck"]["test"],
            serde_json::json!(["CMD", "podstack", "health", "--port", "7777"])
        );
        assert!(service["image"]
            .as_str()
            .is_some_and(|image| image.starts_with("smoke:0.1.0-")));
    }
}

#[test]
fn the_runpod_template_lists_every_slots_comfyui_port() {
    let (_project, out) = studio();
    let text = std::fs::read_to_string(out.path().join("smoke/runpod-template.json"))
        .expect("the RunPod template");
    let template: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        template["ports"],
        serde_json::json!(["7777/http", "8188/http", "8189/http"]),
        "the panel and both slots' ComfyUI: RunPod's proxy serves only the ports listed"
    );
}

#[test]
fn more_pods_change_the_deployments_not_the_image() {
    let (project, out) = studio();
    let path = project.path().join("stacks/smoke.toml");
    let text = std::fs::read_to_string(&path).expect("smoke.toml");
    std::fs::write(&path, text.replace("replicas = 2", "replicas = 5")).expect("write");
    let more = tempfile::tempdir().expect("temp dir");
    podstack([
        "build",
        "smoke",
        "--out",
        &more.path().display().to_string(),
    ])
    .current_dir(project.path())
    .run()
    .expect_code(0);
    let read =
        |dir: &Path, file: &str| std::fs::read_to_string(dir.join("smoke").join(file)).expect(file);
    assert_eq!(read(out.path(), "DIGEST"), read(more.path(), "DIGEST"));
    assert_ne!(
        read(out.path(), "compose.yaml"),
        read(more.path(), "compose.yaml")
    );
    let compose = &documents(&more.path().join("smoke/compose.yaml"))[0];
    assert_eq!(compose["services"].as_object().map(|s| s.len()), Some(5));
}

#[test]
fn deployment_keys_that_cannot_work_are_named() {
    let project = tempfile::tempdir().expect("temp dir");
    copy_project(project.path());
    let path = project.path().join("stacks/smoke.toml");
    let text = std::fs::read_to_string(&path).expect("smoke.toml");
    let text = text.replace(
        "replicas = 3",
        "replicas = 500\nstorage_class = \"Fast_RWX\"\ncpu = 0\nmemory_gb = 0",
    );
    std::fs::write(&path, text).expect("write");
    let run = podstack(["check", "smoke"])
        .current_dir(project.path())
        .run()
        .expect_code(1);
    for expected in [
        "error: 500 pods is not a deployment podstack renders\n  hint: use 1-256 (the default is 1)",
        "error: `Fast_RWX` is not a Kubernetes StorageClass name",
        "error: 0 cores is not a CPU request",
        "stacks/smoke.toml:40:13: error: a memory per pod of 0 GiB holds nothing",
        "error: smoke-0's comfyui port and smoke-411's panel port both land on host port 8188 in compose.yaml (and 88 more ports)\n",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n---\n{}", run.stderr);
    }
}
