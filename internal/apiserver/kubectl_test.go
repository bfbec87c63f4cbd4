package apiserver

import (
	"testing"
)

const twoContainerPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: server
    image: busybox
    command: ["httpd", "-f", "-p", "8080"]
    ports:
    - containerPort: 8080
  - name: client
    image: busybox:1.36
`

func TestKubectlSmoke(t *testing.T) {
	ts := startServer(t)
	t.Log(ts.mustKubectl(t, twoContainerPod, "create", "--validate=false", "-f", "-"))
	t.Log(ts.mustKubectl(t, "", "get", "pods"))
	t.Log(ts.mustKubectl(t, "", "get", "pods", "-o", "wide"))
	t.Log(ts.mustKubectl(t, "", "get", "pod", "web", "-o", "yaml"))
	t.Log(ts.mustKubectl(t, "", "get", "ns"))
	t.Log(ts.mustKubectl(t, "", "get", "nodes", "-o", "wide"))
	t.Log(ts.mustKubectl(t, "", "logs", "web", "-c", "server"))
	t.Log(ts.mustKubectl(t, "", "delete", "pod", "web", "--wait=false"))
	t.Log(ts.mustKubectl(t, "", "get", "pods"))
	t.Log(ts.mustKubectl(t, "", "delete", "pod", "web", "--force", "--grace-period=0"))
	t.Log(ts.mustKubectl(t, "", "get", "pods"))
}
