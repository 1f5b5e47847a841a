"""A real Kubernetes control plane on 127.0.0.1 for the e2e suite, and a node that runs pods as processes.

`binaries` finds (or builds, via build.sh) kube-apiserver, kube-controller-manager, kubectl and helm;
`controlplane` starts etcd + apiserver + controller manager; `node` is a kubelet stand-in.
"""
