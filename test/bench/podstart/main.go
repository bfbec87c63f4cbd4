// Command podstart measures the time from `kubectl create` of the two-container
// demo pod to both containers Running and ready, on peapod and (when it is
// installed) under `podman kube play`, in one run, and prints a table.
//
//	go build -o bin/ ./cmd/... && go run ./test/bench/podstart -n 10
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/peapod-dev/peapod/internal/testimage"
)

const podTemplate = `apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: client
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do wget -q -O - http://127.0.0.1:8080/ || true; sleep 2; done"]
`

func main() {
	n := flag.Int("n", 10, "pods to start, one after another")
	bin := flag.String("bin", "bin", "directory with the binaries of go build ./cmd/...")
	withPodman := flag.Bool("podman", true, "also measure `podman kube play` when podman is installed")
	flag.Parse()
	if err := run(*n, *bin, *withPodman); err != nil {
		fmt.Fprintln(os.Stderr, "podstart:", err)
		os.Exit(1)
	}
}

func run(n int, bin string, withPodman bool) error {
	tmp, err := os.MkdirTemp("", "peapod-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "busybox.tar")
	f, err := os.Create(rootfs)
	if err != nil {
		return err
	}
	if err := testimage.RootfsTar(f); err != nil {
		return err
	}
	f.Close()

	rows := [][]string{}
	peapod, err := measurePeapod(n, bin, tmp, rootfs)
	if err != nil {
		return fmt.Errorf("peapod: %w", err)
	}
	rows = append(rows, row("peapod (kubectl create → Running 2/2)", peapod))
	if _, err := exec.LookPath("podman"); withPodman && err == nil {
		podman, err := measurePodman(n, tmp, rootfs)
		if err != nil {
			return fmt.Errorf("podman: %w", err)
		}
		rows = append(rows, row("podman kube play (returns once started)", podman))
		rows = append(rows, []string{"ratio podman/peapod (median)", fmt.Sprintf("%.2fx", float64(median(podman))/float64(median(peapod))), "", ""})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "two-container pod, %d runs\tmedian\tmin\tmax\n", n)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func measurePeapod(n int, bin, tmp, rootfs string) ([]time.Duration, error) {
	root := filepath.Join(tmp, "root")
	peapod := filepath.Join(bin, "peapod")
	serve := exec.Command(peapod, "serve", "--root", root, "--address", "127.0.0.1:0",
		"--cni-bridge", "ppbench0", "--cni-subnet", "10.206.0.0/24", "--cgroup-root", "/peapod-bench", "--log-level", "warn")
	serve.Stderr = os.Stderr
	if err := serve.Start(); err != nil {
		return nil, err
	}
	defer func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
	}()
	kubeconfig := filepath.Join(root, "kubeconfig")
	for i := 0; ; i++ {
		if _, err := os.Stat(kubeconfig); err == nil {
			break
		}
		if i > 300 {
			return nil, fmt.Errorf("no kubeconfig after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := exec.Command(peapod, "--root", root, "image", "import", rootfs, "busybox:bench").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("import: %v: %s", err, out)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var times []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("bench-%d", i)
		manifest := filepath.Join(tmp, name+".yaml")
		if err := os.WriteFile(manifest, []byte(fmt.Sprintf(podTemplate, name, "busybox:bench", "busybox:bench")), 0o644); err != nil {
			return nil, err
		}
		w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		if err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
		start := time.Now()
		if out, err := exec.Command("kubectl", "--kubeconfig", kubeconfig, "create", "-f", manifest).CombinedOutput(); err != nil {
			w.Stop()
			return nil, fmt.Errorf("kubectl create: %v: %s", err, out)
		}
		timeout := time.After(60 * time.Second)
	wait:
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					return nil, fmt.Errorf("watch of %s ended", name)
				}
				if p, ok := ev.Object.(*corev1.Pod); ok && allReady(p) {
					break wait
				}
			case <-timeout:
				return nil, fmt.Errorf("%s not Running within 60s", name)
			}
		}
		times = append(times, time.Since(start))
		w.Stop()
		if err := cs.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return nil, err
		}
		for {
			if _, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return times, nil
}

func allReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready || c.State.Running == nil {
			return false
		}
	}
	return true
}

func measurePodman(n int, tmp, rootfs string) ([]time.Duration, error) {
	const img = "localhost/peapod-bench-busybox:latest"
	if out, err := exec.Command("podman", "import", "--change", "ENV=PATH=/bin", rootfs, img).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("podman import: %v: %s", err, out)
	}
	defer exec.Command("podman", "rmi", "-f", img).Run()
	var times []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("pbench-%d", i)
		manifest := filepath.Join(tmp, name+".yaml")
		if err := os.WriteFile(manifest, []byte(fmt.Sprintf(podTemplate, name, img, img)), 0o644); err != nil {
			return nil, err
		}
		start := time.Now()
		out, err := exec.Command("podman", "kube", "play", manifest).CombinedOutput()
		elapsed := time.Since(start)
		if err != nil {
			exec.Command("podman", "kube", "down", manifest).Run()
			return nil, fmt.Errorf("podman kube play: %v: %s", err, out)
		}
		times = append(times, elapsed)
		if out, err := exec.Command("podman", "kube", "down", manifest).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("podman kube down: %v: %s", err, out)
		}
	}
	return times, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func row(name string, d []time.Duration) []string {
	ms := func(x time.Duration) string { return fmt.Sprintf("%.0f ms", float64(x)/float64(time.Millisecond)) }
	return []string{name, ms(median(d)), ms(slices.Min(d)), ms(slices.Max(d))}
}
