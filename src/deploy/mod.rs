//! Deployments of a built image beyond single RunPod pods: `compose.yaml` for one multi-GPU
//! box and `kubernetes/` for a cluster, rendered from the same manifest and pinned to the
//! same digest tag. This module builds their render context; the pod plan (ids, ports, GPUs,
//! grace) is decided once in [`pods`], the templates only lay it out.
//!
//! These files describe how to run the image, not what is in it: they are not digest inputs,
//! so more replicas or another storage class never change the image tag.

pub mod health;
pub mod pods;

use serde::Serialize;

use crate::manifest::Manifest;
pub use pods::{NamedPort, Pod, PodPlan, PortClash, EXIT_MARGIN};

/// The variable naming the Compose env file with the pods' secrets.
pub const ENV_FILE_VARIABLE: &str = "PODSTACK_ENV_FILE";

/// Everything the Compose and Kubernetes templates see.
#[derive(Debug, Serialize)]
pub struct DeployContext {
    pub header: String,
    /// `<stack>`: the StatefulSet, the headless Service and the prefix of every object.
    pub name: String,
    /// The image by its digest tag, with `deploy.registry` in front when set.
    pub image: String,
    pub digest: String,
    pub volume: String,
    pub replicas: u32,
    pub plan: PodPlan,
    /// Every port one pod serves: the panel, its ComfyUI ports, JupyterLab.
    pub ports: Vec<NamedPort>,
    /// The Kubernetes Secret every pod takes its variables from (`<stack>-secrets`).
    pub secret: String,
    pub env_file_variable: &'static str,
    /// The shared volume's claim (`<stack>-workspace`), ReadWriteMany.
    pub claim: String,
    pub storage_class: Option<String>,
    pub volume_gb: u32,
    /// A Kubernetes quantity: `2`, `500m`.
    pub cpu: String,
    pub memory_gb: u32,
}

impl DeployContext {
    pub fn new(manifest: &Manifest, header: String, image: String, digest: &str) -> Self {
        let plan = PodPlan::of(manifest);
        let ports = std::iter::once(&plan.panel)
            .chain(&plan.comfyui)
            .chain(&plan.jupyter)
            .cloned()
            .collect();
        let name = manifest.stack.name.clone();
        let deploy = &manifest.deploy;
        Self {
            header,
            secret: format!("{name}-secrets"),
            claim: format!("{name}-workspace"),
            image,
            digest: digest.to_owned(),
            volume: manifest.runtime.volume.clone(),
            replicas: deploy.replicas,
            plan,
            ports,
            env_file_variable: ENV_FILE_VARIABLE,
            storage_class: (!deploy.storage_class.is_empty()).then(|| deploy.storage_class.clone()),
            volume_gb: deploy.volume_gb,
            cpu: cpu_quantity(deploy.cpu),
            memory_gb: deploy.memory_gb,
            name,
        }
    }
}

/// Cores as a Kubernetes quantity: whole cores as they are, anything else in millicores.
fn cpu_quantity(cores: f64) -> String {
    let millis = (cores * 1000.0).round() as u64;
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_requests_read_as_kubernetes_quantities() {
        assert_eq!(cpu_quantity(2.0), "2");
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(cpu_quantity(1.25), "1250m");
    }
}
