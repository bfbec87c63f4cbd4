package criruntime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser picks the container's user as containerd does: the security
// context's run_as_user or run_as_username, else the image's User
// ("name", "uid", "name:group", "uid:gid"); run_as_group overrides the
// group; names are looked up in the container's own /etc/passwd and
// /etc/group. Additional groups are the primary group, the groups that list
// the user in /etc/group, and the supplemental groups asked for.
func resolveUser(rootfs, imageUser string, sc *runtimeapi.LinuxContainerSecurityContext) (specs.User, error) {
	passwd, err := readPasswd(rootfs)
	if err != nil {
		return specs.User{}, err
	}
	groups, err := readGroups(rootfs)
	if err != nil {
		return specs.User{}, err
	}
	byUID := func(uid uint32) (passwdEntry, bool) {
		for _, e := range passwd {
			if e.uid == uid {
				return e, true
			}
		}
		return passwdEntry{}, false
	}
	byName := func(name string) (passwdEntry, bool) {
		for _, e := range passwd {
			if e.name == name {
				return e, true
			}
		}
		return passwdEntry{}, false
	}

	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return specs.User{}, invalidf("run_as_group needs run_as_user or run_as_username")
	}
	var u specs.User
	var username string
	switch {
	case sc.GetRunAsUser() != nil:
		u.UID = uint32(sc.GetRunAsUser().GetValue())
		if e, ok := byUID(u.UID); ok {
			u.GID, username = e.gid, e.name
		}
	case sc.GetRunAsUsername() != "":
		e, ok := byName(sc.GetRunAsUsername())
		if !ok {
			return specs.User{}, invalidf("user %q not found in the image's /etc/passwd", sc.GetRunAsUsername())
		}
		u.UID, u.GID, username = e.uid, e.gid, e.name
	case imageUser != "":
		user, group, hasGroup := strings.Cut(imageUser, ":")
		if n, err := strconv.ParseUint(user, 10, 32); err == nil {
			u.UID = uint32(n)
			if e, ok := byUID(u.UID); ok {
				u.GID, username = e.gid, e.name
			}
		} else {
			e, ok := byName(user)
			if !ok {
				return specs.User{}, invalidf("image user %q not found in the image's /etc/passwd", user)
			}
			u.UID, u.GID, username = e.uid, e.gid, e.name
		}
		if hasGroup {
			if n, err := strconv.ParseUint(group, 10, 32); err == nil {
				u.GID = uint32(n)
			} else {
				i := slices.IndexFunc(groups, func(g groupEntry) bool { return g.name == group })
				if i < 0 {
					return specs.User{}, invalidf("image group %q not found in the image's /etc/group", group)
				}
				u.GID = groups[i].gid
			}
		}
	default:
		if e, ok := byUID(0); ok {
			username = e.name
		}
	}
	if g := sc.GetRunAsGroup(); g != nil {
		u.GID = uint32(g.GetValue())
	}

	gids := []uint32{u.GID}
	// SupplementalGroupsPolicy Strict: only the groups asked for, not those
	// /etc/group gives the user.
	if username != "" && sc.GetSupplementalGroupsPolicy() != runtimeapi.SupplementalGroupsPolicy_Strict {
		for _, g := range groups {
			if slices.Contains(g.members, username) && !slices.Contains(gids, g.gid) {
				gids = append(gids, g.gid)
			}
		}
	}
	for _, g := range sc.GetSupplementalGroups() {
		if !slices.Contains(gids, uint32(g)) {
			gids = append(gids, uint32(g))
		}
	}
	u.AdditionalGids = gids
	return u, nil
}

// openInRootfs opens a file of the container's rootfs without following
// symlinks out of it; a missing file is (nil, nil).
func openInRootfs(rootfs, path string) (*os.File, error) {
	p, err := securejoin.SecureJoin(rootfs, path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in container rootfs: %w", path, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s in container rootfs: %w", path, err)
	}
	return f, nil
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	f, err := openInRootfs(rootfs, "/etc/passwd")
	if f == nil || err != nil {
		return nil, err
	}
	defer f.Close()
	var out []passwdEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		uid, err1 := strconv.ParseUint(fields[2], 10, 32)
		gid, err2 := strconv.ParseUint(fields[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: fields[0], uid: uint32(uid), gid: uint32(gid)})
	}
	return out, sc.Err()
}

func readGroups(rootfs string) ([]groupEntry, error) {
	f, err := openInRootfs(rootfs, "/etc/group")
	if f == nil || err != nil {
		return nil, err
	}
	defer f.Close()
	var out []groupEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		gid, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			continue
		}
		g := groupEntry{name: fields[0], gid: uint32(gid)}
		if len(fields) > 3 && fields[3] != "" {
			g.members = strings.Split(fields[3], ",")
		}
		out = append(out, g)
	}
	return out, sc.Err()
}
