package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ociImage is an OCI image made ready for a guest: its read-only ext4 file
// and the parts of its config a container inherits.
type ociImage struct {
	ID         string // sha256:...
	File       string // cached ext4
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// imageInfo is the part of containerd's verbose ImageStatus "info" VM
// pods read (the OCI image config).
type imageInfo struct {
	ImageSpec struct {
		Config struct {
			Entrypoint []string `json:"Entrypoint"`
			Cmd        []string `json:"Cmd"`
			Env        []string `json:"Env"`
			WorkingDir string   `json:"WorkingDir"`
			User       string   `json:"User"`
		} `json:"config"`
	} `json:"imageSpec"`
}

// ociImageFor resolves ref through containerd and returns its ext4 file,
// building it on first use: the image's snapshot is mounted read-only
// with `ctr images mount` (containerd has already applied the layers and
// their whiteouts), copied into an ext4 with `mkfs.ext4 -d`, and cached
// under ImageDir by image ID, so every later pod of the image costs a
// file copy.
func (b *Backend) ociImageFor(ctx context.Context, ref string) (*ociImage, error) {
	if b.images == nil {
		return nil, invalid("image %q: this VM handler has no containerd to take images from (only %s)", ref, ImageName)
	}
	st, err := b.images.ImageStatus(ctx, remoteSpec(&runtimeapi.ImageSpec{Image: ref}), true)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if st.GetImage() == nil {
		return nil, fmt.Errorf("image %s: %w (pull it first)", ref, errImageMissing)
	}
	img := &ociImage{ID: st.GetImage().GetId()}
	var info imageInfo
	if raw := st.GetInfo()["info"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return nil, fmt.Errorf("image %s: config: %w", ref, err)
		}
	}
	c := info.ImageSpec.Config
	img.Entrypoint, img.Cmd, img.Env, img.WorkingDir, img.User = c.Entrypoint, c.Cmd, c.Env, c.WorkingDir, c.User
	hexID, ok := strings.CutPrefix(img.ID, "sha256:")
	if !ok || len(hexID) != 64 || strings.ContainsAny(hexID, "/.") {
		return nil, fmt.Errorf("image %s: unexpected id %q", ref, img.ID)
	}
	img.File = filepath.Join(b.cfg.ImageDir, hexID+".ext4")
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	if _, err := os.Stat(img.File); err == nil {
		return img, nil
	}
	t0 := time.Now()
	if err := b.buildExt4(ctx, img.ID, img.File); err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	b.log.Info("vm image built", "image", ref, "id", img.ID, "file", img.File, "took", time.Since(t0))
	return img, nil
}

var errImageMissing = errors.New("not present in containerd")

func (b *Backend) buildExt4(ctx context.Context, id, dst string) error {
	ctr, err := exec.LookPath(b.cfg.Ctr)
	if err != nil {
		return fmt.Errorf("containerd's ctr: %w", err)
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.cfg.ImageDir, 0o700); err != nil {
		return err
	}
	r := make([]byte, 6)
	rand.Read(r)
	tmp := filepath.Join(b.cfg.ImageDir, ".build-"+hex.EncodeToString(r))
	mnt := tmp + ".mnt"
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return err
	}
	defer os.Remove(mnt)
	defer os.Remove(tmp)
	ctrArgs := []string{ctr, "--address", strings.TrimPrefix(b.cfg.Containerd, "unix://"), "--namespace", "k8s.io"}
	x := b.exec()
	if _, err := x.Command(ctx, nil, append(ctrArgs, "images", "mount", id, mnt)...); err != nil {
		return fmt.Errorf("mount image snapshot: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := x.Command(cctx, nil, append(ctrArgs, "images", "unmount", "--rm", mnt)...); err != nil {
			b.log.Warn("unmount image snapshot", "dir", mnt, "err", err)
		}
	}()
	size, err := ext4Size(mnt)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		_, err = x.Command(ctx, nil, mkfs, "-q", "-F", "-O", "^has_journal", "-E", "root_owner=0:0", "-L", "oci",
			"-d", mnt, tmp, strconv.FormatInt(size>>10, 10)+"k")
		if err == nil || try == 1 {
			break
		}
		size *= 2 // the estimate was short (many small files, long names)
	}
	if err != nil {
		return fmt.Errorf("mkfs.ext4 -d: %w", err)
	}
	return os.Rename(tmp, dst)
}

// ext4Size estimates the filesystem a tree needs: its blocks, an inode
// per entry, and slack for metadata.
func ext4Size(dir string) (int64, error) {
	var blocks, inodes int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		inodes++
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			blocks += (fi.Size() + 4095) / 4096
		} else if d.IsDir() {
			blocks++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	size := blocks*4096 + inodes*512
	size += size/5 + 16<<20
	return (size + 1<<20 - 1) &^ (1<<20 - 1), nil
}

// SlotSize is the size of each spare disk a VM boots with (sparse, so it
// costs nothing until an image is written into it); an image larger than
// this cannot be run.
const SlotSize = 4 << 30

// Slots is how many OCI images one VM pod can use: microvm has no
// hotplug, so the VM boots with this many empty virtio-blk disks, and the
// host writes an image's ext4 into the next free one at CreateContainer.
const Slots = 4

// createSlots makes the pod's empty slot files.
func createSlots(dir string) ([]string, error) {
	var out []string
	for i := range Slots {
		p := filepath.Join(dir, fmt.Sprintf("slot%d.img", i))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		err = f.Truncate(SlotSize)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("slot %s: %w", p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// fillSlot copies an image's ext4 into a slot file, keeping holes where
// the image has none to write (the slot is fresh, all zeros).
func fillSlot(slot, image string) error {
	src, err := os.Open(image)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > SlotSize {
		return fmt.Errorf("image %s is %d bytes, larger than a VM slot (%d)", image, fi.Size(), SlotSize)
	}
	dst, err := os.OpenFile(slot, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("fill %s from %s: %w", slot, image, err)
	}
	return dst.Close()
}
