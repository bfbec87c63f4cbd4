package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/dirs"
	"github.com/peapod-dev/peapod/internal/image"
)

func newImageCommand(g *globalFlags) *cobra.Command {
	c := &cobra.Command{Use: "image", Short: "Manage images: import, load, pull, list, inspect, remove, prune"}
	c.AddCommand(
		&cobra.Command{
			Use:   "import ROOTFS.tar NAME",
			Short: "Make a single-layer image NAME from a root filesystem tarball (like docker import)",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				store, f, err := g.storeAndArchive(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				img, err := store.Import(cmd.Context(), f, args[1])
				if err != nil {
					return fmt.Errorf("import %s as %s: %w", args[0], args[1], err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), img.ID)
				return nil
			},
		},
		&cobra.Command{
			Use:   "load FILE",
			Short: "Load images from a docker-archive or OCI-layout tarball (docker save, podman save, skopeo copy)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				store, f, err := g.storeAndArchive(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				imgs, err := store.Load(cmd.Context(), f)
				if err != nil {
					return fmt.Errorf("load %s: %w", args[0], err)
				}
				for _, img := range imgs {
					fmt.Fprintf(cmd.OutOrStdout(), "Loaded %s %s\n", img.ID, strings.Join(img.RepoTags, " "))
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "pull REF",
			Short: "Pull an image from its registry (or the mirrors configured in ROOT/certs.d)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				store, err := g.imageStore()
				if err != nil {
					return err
				}
				var o image.PullOptions
				var shown atomic.Bool
				if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					progress := image.NewProgressPrinter(f)
					o.Progress = func(p image.Progress) { shown.Store(true); progress(p) }
				}
				img, err := store.Pull(cmd.Context(), args[0], o)
				if shown.Load() {
					// End the status line before the ID or an error follows.
					fmt.Fprintln(cmd.ErrOrStderr())
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), img.ID)
				return nil
			},
		},
		&cobra.Command{
			Use:     "ls",
			Aliases: []string{"list"},
			Short:   "List images",
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				store, err := g.imageStore()
				if err != nil {
					return err
				}
				imgs, err := store.List()
				if err != nil {
					return err
				}
				return image.FormatList(cmd.OutOrStdout(), imgs)
			},
		},
		&cobra.Command{
			Use:   "inspect REF",
			Short: "Show an image's config, layers and size as JSON",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				store, err := g.imageStore()
				if err != nil {
					return err
				}
				img, err := store.Resolve(args[0])
				if err != nil {
					return err
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(img)
			},
		},
		&cobra.Command{
			Use:     "rm REF...",
			Aliases: []string{"remove"},
			Short:   "Remove images; refused for an image a container uses",
			Args:    cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				store, err := g.imageStore()
				if err != nil {
					return err
				}
				used, err := g.imagesInUse(cmd.Context())
				if err != nil {
					return err
				}
				var errs []error
				for _, ref := range args {
					img, err := store.Resolve(ref)
					if err != nil {
						errs = append(errs, err)
						continue
					}
					if c, ok := used[img.ID]; ok {
						errs = append(errs, fmt.Errorf("image %s is used by container %s: remove the container first", ref, c))
						continue
					}
					if err := store.Remove(img.ID); err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintln(cmd.OutOrStdout(), "Deleted", img.ID)
				}
				return errors.Join(errs...)
			},
		},
		&cobra.Command{
			Use:   "prune",
			Short: "Remove every image no container uses, and blobs no image references",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				store, err := g.imageStore()
				if err != nil {
					return err
				}
				used, err := g.imagesInUse(cmd.Context())
				if err != nil {
					return err
				}
				removed, err := store.Prune(func(img *image.Image) bool { _, ok := used[img.ID]; return ok })
				for _, id := range removed {
					fmt.Fprintln(cmd.OutOrStdout(), "Deleted", id)
				}
				return err
			},
		},
	)
	return c
}

// imageStore opens the image store directly: it takes its database lock only
// for each operation, so the CLI and a running daemon share it safely.
func (g *globalFlags) imageStore() (*image.Store, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("images are managed as root (the store under %s belongs to root)", g.root)
	}
	d, err := g.dirs()
	if err != nil {
		return nil, err
	}
	return image.Open(d.Images(), registries(d))
}

// storeAndArchive opens the image store and the tarball to bring into it.
func (g *globalFlags) storeAndArchive(path string) (*image.Store, *os.File, error) {
	store, err := g.imageStore()
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	return store, f, nil
}

// registries is the registry configuration shared by the daemon and the CLI.
func registries(d dirs.Dirs) image.Option {
	return image.WithRegistries(d.RegistryConf(), d.AuthFile())
}

// imagesInUse asks the running daemon which images its containers use (image
// ID → one container ID). Only the runtime knows; containers outlive the
// daemon, so without it nothing can be removed safely.
func (g *globalFlags) imagesInUse(ctx context.Context) (map[string]string, error) {
	d, err := g.dirs()
	if err != nil {
		return nil, err
	}
	sock := d.CRISocket()
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("peapod serve is not running for %s (no %s): it must answer which images containers use", d.Root, sock)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to the CRI socket %s: %w", sock, err)
	}
	defer conn.Close()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containers through %s: %w", filepath.Base(sock), err)
	}
	used := map[string]string{}
	for _, c := range resp.Containers {
		used[c.ImageRef] = c.Id
		if c.ImageId != "" {
			used[c.ImageId] = c.Id
		}
	}
	return used, nil
}
