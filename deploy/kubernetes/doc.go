// Package kubernetes holds soakd's Kubernetes manifests: the harness as a
// Deployment, each component's nodes as a StatefulSet with a headless
// Service, RBAC for the Chaos Mesh objects, soakd's config and a
// Prometheus scrape config as ConfigMaps, and a kustomization listing
// them (README.md). It has no runtime code; manifests_test.go decodes
// every document into the Kubernetes API types and checks the manifests
// against each other, against soakd's config and against the Chaos Mesh
// objects internal/chaosmesh renders for them. Its test is the only code
// outside internal/chaosmesh that imports Kubernetes packages.
package kubernetes
