//! Where faults go: a Kubernetes cluster (`kube`) or supervised local processes (`local`).

pub mod kube;
pub mod local;
