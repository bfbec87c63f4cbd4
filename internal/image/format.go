package image

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// FormatList writes imgs as a table like `crictl images`: one row per tag
// (or digest, or "<none>" for an untagged image).
func FormatList(w io.Writer, imgs []*Image) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTAG\tIMAGE ID\tSIZE")
	for _, img := range imgs {
		id := strings.TrimPrefix(img.ID, "sha256:")
		if len(id) > 12 {
			id = id[:12]
		}
		size := HumanSize(img.Size)
		names := img.RepoTags
		if len(names) == 0 {
			names = img.RepoDigests
		}
		if len(names) == 0 {
			fmt.Fprintf(tw, "<none>\t<none>\t%s\t%s\n", id, size)
		}
		for _, n := range names {
			repo, tag := splitRef(n)
			if tag == "" {
				tag = "<none>"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", repo, tag, id, size)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write image list: %w", err)
	}
	return nil
}

// HumanSize formats bytes in decimal units with three significant digits, as
// crictl and docker do ("4.26MB").
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	v := float64(n)
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%s", v, units[i])
}
