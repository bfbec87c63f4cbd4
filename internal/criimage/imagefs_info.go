package criimage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsInfo reports the disk space and inodes the image store uses.
func (s *Service) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	bytes, inodes, err := usage(s.store.Dir())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "image filesystem usage: %v", err)
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp:  s.clock.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: s.store.Dir()},
		UsedBytes:  &runtimeapi.UInt64Value{Value: bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}}}, nil
}

// usage counts allocated bytes and inodes under dir, each inode once however
// many hard links it has. Entries that vanish meanwhile (a removal running)
// are skipped.
func usage(dir string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			var fi fs.FileInfo
			if fi, err = d.Info(); err == nil {
				st, ok := fi.Sys().(*syscall.Stat_t)
				if !ok {
					return fmt.Errorf("stat %s: no inode information", p)
				}
				if !seen[st.Ino] {
					seen[st.Ino] = true
					inodes++
					bytes += uint64(st.Blocks) * 512
				}
				return nil
			}
		}
		if p != dir && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	return bytes, inodes, err
}
