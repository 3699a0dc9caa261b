package filekms

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// ext4Image makes an ext4 filesystem image of 32 MiB in a temporary
// directory and mounts it through a loop device; the cleanup unmounts it
// (mount's loop devices detach themselves). It skips, saying why, only
// where the machine lacks the capability (not root, no mkfs.ext4 or mount,
// no loop device, mounting not permitted); any other failure fails.
func ext4Image(t *testing.T) (image, mnt string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounting a filesystem image through a loop device (CI runs it as root)")
	}
	for _, tool := range []string{"mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (e2fsprogs, util-linux) to build and mount an ext4 image: %v", tool, err)
		}
	}
	dir := t.TempDir()
	image, mnt = filepath.Join(dir, "fs.ext4"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// nodiscard: blocks freed by the filesystem are not punched out of the
	// image, as they are not wiped on most disks.
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "nodiscard", image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command("mount", "-o", "loop", image, mnt).CombinedOutput()
	if err != nil {
		msg := strings.ToLower(string(out))
		for _, capability := range []string{"permission denied", "operation not permitted", "only root", "free loop device", "failed to setup loop device", "no such device"} {
			if strings.Contains(msg, capability) {
				t.Skipf("this machine cannot mount a loop device (%s): %v\n%s", capability, err, out)
			}
		}
		t.Fatalf("mount -o loop %s: %v\n%s", image, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil && !strings.Contains(string(out), "not mounted") {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	return image, mnt
}

// readImage reads the raw image once every write has reached it.
func readImage(t *testing.T, image string) []byte {
	t.Helper()
	syscall.Sync()
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forms are the ways a secret may sit on a disk: raw, base64 (JSON) and hex.
func forms(b []byte) [][]byte {
	return [][]byte{b, []byte(base64.StdEncoding.EncodeToString(b)), []byte(hex.EncodeToString(b))}
}

// TestRemanenceOnExt4Image: on a real ext4 filesystem (an image mounted
// through a loop device), create, rotate, disable, enable and destroy a
// key; then scan the raw image, every block of it (free, journal and
// metadata blocks included), for every version's material and for the
// key's secret, raw, base64 or hex. Before the destroy, the scan finds the
// secret (so it can find things); after it, nothing: what the image still
// holds of the key (earlier state files, sealed) opens nothing. A copy of
// files (TestRemanenceCopiesAreUseless) cannot show this: blocks an
// earlier save freed, and the journal, are only on the device.
func TestRemanenceOnExt4Image(t *testing.T) {
	image, mnt := ext4Image(t)
	u, _ := url.Parse("file-kms://" + filepath.Join(mnt, "kms", "k1"))
	k, err := OpenWith(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, op := range []func(context.Context) (provider.KeyState, error){k.Create, k.Rotate, k.Rotate, k.Disable, k.Enable} {
		if _, err := op(ctx); err != nil {
			t.Fatal(err)
		}
	}
	secrets := versionMaterials(t, k)
	secret, err := os.ReadFile(k.secretPath())
	if err != nil || len(secret) != keyBytes || len(secrets) != 3 {
		t.Fatalf("secret file: %d bytes, %v; %d versions", len(secret), err, len(secrets))
	}
	w, err := k.Wrap(ctx, make([]byte, 32), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(k.path())
	if err != nil {
		t.Fatal(err)
	}
	// The control: the live secret is on the device.
	if img := readImage(t, image); !bytes.Contains(img, secret) {
		t.Fatal("the scan does not find the live secret in the image: it would prove nothing")
	}
	if _, err := k.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	img := readImage(t, image)
	for i, s := range append(secrets, secret) {
		what := "the key's secret"
		if i < len(secrets) {
			what = "version " + string(rune('1'+i)) + "'s material"
		}
		for j, f := range forms(s) {
			if bytes.Contains(img, f) {
				t.Errorf("%s is still on the device (form %d of raw, base64, hex)", what, j)
			}
		}
	}
	// The image, mounted again: the key is destroyed, and its state file
	// of before the destroy, put back, opens nothing.
	if out, err := exec.Command("mount", "-o", "loop", image, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount again: %v\n%s", err, out)
	}
	if st, err := k.Describe(ctx); err != nil || st.State != provider.StateDestroyed || st.Recoverable {
		t.Fatalf("after a remount: %+v %v", st, err)
	}
	if err := os.WriteFile(k.path(), before, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = k.Unwrap(ctx, w, []byte("aad"))
	var pe *provider.Error
	if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("unwrap with the state file of before the destroy: %v, want it refused for want of the secret", err)
	}
}
