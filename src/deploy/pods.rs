//! The pods a deployment runs from one image: their ids, the ports each one serves and
//! publishes, the GPUs each one gets, and how long each one may take to stop. Compose and
//! Kubernetes lay out the same plan, so a pod is called the same on a box and in a cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::manifest::Manifest;

/// What the supervisor may still do after SIGTERM once its own deadlines have passed: stop
/// rclone, reap, write its last lines and exit.
pub const EXIT_MARGIN: Duration = Duration::from_secs(5);

/// A port every pod serves, under the name the Kubernetes objects give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedPort {
    /// An IANA service name (at most 15 characters): `panel`, `comfyui`, `jupyter`.
    pub name: String,
    pub port: u16,
}

/// A container port published on the Compose host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub host: u32,
    pub container: u16,
}

/// One pod of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pod {
    /// `<stack>-<index>`: the Compose service and host name, the StatefulSet's pod name, and
    /// the supervisor's pod id (`PODSTACK_POD_ID`) that names its leases and files.
    pub id: String,
    pub index: u32,
    /// Its ports on the Compose host: container port + index × the ComfyUI ports per pod.
    pub published: Vec<Published>,
    /// The host's GPUs it reserves under Compose, by index: its own, never another pod's.
    pub gpu_ids: Vec<u32>,
}

/// Every pod of a stack's deployment and what they all share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodPlan {
    pub panel: NamedPort,
    /// The ComfyUI ports of one pod, one per slot (`Manifest::slots_per_pod`).
    pub comfyui: Vec<NamedPort>,
    pub jupyter: Option<NamedPort>,
    pub pods: Vec<Pod>,
    pub gpus_per_pod: u32,
    /// Seconds between SIGTERM and SIGKILL that lose nothing: the services' stop grace, the
    /// final sync's deadline and [`EXIT_MARGIN`].
    pub stop_grace_seconds: u64,
}

/// Two ports of the plan that land on the same host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortClash {
    pub host: u32,
    pub first: String,
    pub second: String,
}

impl PodPlan {
    pub fn of(manifest: &Manifest) -> Self {
        let runtime = &manifest.runtime;
        let panel = NamedPort {
            name: "panel".to_owned(),
            port: runtime.panel_port,
        };
        // Slot N's ComfyUI is `comfyui-N` (slot 0 keeps the name it had before slots).
        let comfyui: Vec<NamedPort> = manifest
            .comfyui_ports()
            .into_iter()
            .enumerate()
            .map(|(slot, port)| NamedPort {
                name: if slot == 0 {
                    "comfyui".to_owned()
                } else {
                    format!("comfyui-{slot}")
                },
                port,
            })
            .collect();
        let jupyter = runtime.jupyter.enabled.then(|| NamedPort {
            name: "jupyter".to_owned(),
            port: runtime.jupyter.port,
        });
        let gpus_per_pod = manifest.gpus_per_pod();
        let stride = u32::try_from(comfyui.len()).unwrap_or(u32::MAX);
        let pods = (0..manifest.deploy.replicas)
            .map(|index| Pod {
                id: format!("{}-{index}", manifest.stack.name),
                index,
                published: std::iter::once(&panel)
                    .chain(&comfyui)
                    .chain(&jupyter)
                    .map(|port| Published {
                        host: u32::from(port.port) + index * stride,
                        container: port.port,
                    })
                    .collect(),
                gpu_ids: (index * gpus_per_pod..(index + 1) * gpus_per_pod).collect(),
            })
            .collect();
        let final_sync = manifest
            .sync
            .as_ref()
            .map_or(Duration::ZERO, |sync| sync.final_sync.0);
        let grace = runtime.stop_grace.0 + final_sync + EXIT_MARGIN;
        Self {
            panel,
            comfyui,
            jupyter,
            pods,
            gpus_per_pod,
            stop_grace_seconds: grace.as_millis().div_ceil(1000) as u64,
        }
    }

    /// Every published port above 65535 or taken twice, e.g. pod 1's panel on pod 0's
    /// ComfyUI port; empty when each pod's ports are its own.
    pub fn clashes(&self) -> Vec<PortClash> {
        let mut taken: BTreeMap<u32, String> = BTreeMap::new();
        let mut clashes = Vec::new();
        for pod in &self.pods {
            for (published, name) in pod.published.iter().zip(self.port_names()) {
                let what = format!("{}'s {name} port", pod.id);
                if published.host > u32::from(u16::MAX) {
                    clashes.push(PortClash {
                        host: published.host,
                        first: what,
                        second: "the largest port, 65535".to_owned(),
                    });
                } else if let Some(first) = taken.get(&published.host) {
                    clashes.push(PortClash {
                        host: published.host,
                        first: first.clone(),
                        second: what,
                    });
                } else {
                    taken.insert(published.host, what);
                }
            }
        }
        clashes
    }

    fn port_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.panel)
            .chain(&self.comfyui)
            .chain(&self.jupyter)
            .map(|port| port.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;

    fn manifest(extra: &str) -> Manifest {
        let text = format!(
            "[stack]\nname = \"studio\"\nversion = \"1.0.0\"\n[base]\nimage = \"debian:bookworm\"\npython = \"3.11\"\n[comfyui]\npath = \"comfy\"\n{extra}"
        );
        toml::from_str(&text).expect("a manifest")
    }

    #[test]
    fn pods_are_named_after_the_stack_and_publish_their_own_ports() {
        let plan = PodPlan::of(&manifest("[deploy]\nreplicas = 3\n"));
        let ids: Vec<_> = plan.pods.iter().map(|pod| pod.id.as_str()).collect();
        assert_eq!(ids, ["studio-0", "studio-1", "studio-2"]);
        let pod2: Vec<_> = plan.pods[2]
            .published
            .iter()
            .map(|p| (p.host, p.container))
            .collect();
        assert_eq!(pod2, [(7779, 7777), (8190, 8188)]);
        assert_eq!(plan.comfyui.len(), 1, "no GPU: one ComfyUI slot, one port");
        assert!(plan.clashes().is_empty());
    }

    #[test]
    fn every_slot_publishes_its_comfyui_port() {
        for extra in [
            "[runtime]\nslots = 2\n[deploy]\nreplicas = 2\n",
            // per-gpu cannot see the pod's GPUs at build time: gpus_per_pod says how many.
            "[deploy]\nreplicas = 2\ngpus_per_pod = 2\n",
        ] {
            let plan = PodPlan::of(&manifest(extra));
            let names: Vec<_> = plan
                .comfyui
                .iter()
                .map(|p| (p.name.as_str(), p.port))
                .collect();
            assert_eq!(names, [("comfyui", 8188), ("comfyui-1", 8189)], "{extra}");
            let pod1: Vec<_> = plan.pods[1]
                .published
                .iter()
                .map(|p| (p.host, p.container))
                .collect();
            assert_eq!(pod1, [(7779, 7777), (8190, 8188), (8191, 8189)], "{extra}");
            assert!(plan.clashes().is_empty(), "{:?}", plan.clashes());
        }
    }

    #[test]
    fn each_pod_reserves_its_own_gpus() {
        let plan = PodPlan::of(&manifest("[deploy]\nreplicas = 3\ngpus_per_pod = 2\n"));
        let ids: Vec<_> = plan.pods.iter().map(|pod| pod.gpu_ids.clone()).collect();
        assert_eq!(ids, [vec![0, 1], vec![2, 3], vec![4, 5]]);
        let cpu_only = PodPlan::of(&manifest("[deploy]\nreplicas = 2\n"));
        assert_eq!(cpu_only.gpus_per_pod, 0, "no [torch]: no GPU by default");
        assert!(cpu_only.pods.iter().all(|pod| pod.gpu_ids.is_empty()));
    }

    #[test]
    fn grace_covers_the_stop_grace_the_final_sync_and_the_exit() {
        let mut stack = manifest("[runtime]\nstop_grace = \"2500ms\"\n");
        assert_eq!(
            PodPlan::of(&stack).stop_grace_seconds,
            8,
            "2.5 s + 5 s, rounded up"
        );
        stack = manifest(
            "[runtime]\nstop_grace = \"10s\"\n[sync]\nremote = \"dav\"\nbackend = \"webdav\"\nroot = \"out\"\nfolders = [{ path = \"output\", mode = \"mirror\" }]\n",
        );
        assert_eq!(
            stack.sync.as_ref().map(|s| s.final_sync),
            Some(HumanDuration::from_secs(30))
        );
        assert_eq!(PodPlan::of(&stack).stop_grace_seconds, 45);
    }

    #[test]
    fn a_pod_whose_port_is_another_pods_is_named() {
        let plan = PodPlan::of(&manifest(
            "[runtime]\npanel_port = 8000\ncomfyui_port = 8002\n[deploy]\nreplicas = 3\n",
        ));
        assert_eq!(
            plan.clashes(),
            [PortClash {
                host: 8002,
                first: "studio-0's comfyui port".to_owned(),
                second: "studio-2's panel port".to_owned(),
            }]
        );
        let high = PodPlan::of(&manifest(
            "[runtime]\ncomfyui_port = 65535\n[deploy]\nreplicas = 2\n",
        ));
        assert_eq!(high.clashes()[0].host, 65536);
    }
}
