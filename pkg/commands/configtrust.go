package commands

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// flagsOnly are the flags that only the command line may set: each one
// confirms, weakens or redirects something on the operator's behalf, so a
// config file in a shared repository or an inherited CMEKCTL_* variable must
// not set it. The value says why, for the refusal.
var flagsOnly = map[string]string{
	"yes":          "it confirms a destructive verb",
	"allow-disk":   "it lets unwrapped keys be written to a disk",
	"audit-log":    "it chooses or turns off the audit log",
	"server":       "it chooses where the Cloud API key is sent",
	"api-key-file": "it chooses which file is sent as the Cloud API key",
	"insecure-kms": "it allows plaintext transport to a KMS",
}

// checkFlagsOnly refuses a flags-only flag set by the environment or the
// config file.
func checkFlagsOnly(f *Factory, name, src string) error {
	why, ok := flagsOnly[name]
	if !ok || (src != srcEnv && src != srcFile) {
		return nil
	}
	from := envName(name)
	if src == srcFile {
		from = fmt.Sprintf("%s:%d", f.Config.Path, f.Config.Flags[name].Line)
	}
	return &ExitError{Code: ExitUsage,
		Err:  fmt.Errorf("--%s is set by %s, but it is a command-line flag only: %s", name, from, why),
		Hint: fmt.Sprintf("remove it there and pass --%s on the command line when you mean it", name)}
}

// loadConfigFile reads the config file at path after the checks the
// keyring gets (see checkConfigFile), from the descriptor it checked.
func loadConfigFile(path string, knownFlag func(string) bool) (*config.Config, error) {
	fh, err := openConfigFile(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, 4<<20))
	if err != nil {
		return nil, err
	}
	return config.Parse(path, data, knownFlag)
}

// openConfigFile opens the config file and refuses it unless, like a
// keyring, it is a regular file owned by the user running cmekctl (or
// root) that no other user can read or write, in directories no other user
// can write to (ssh's StrictModes rule; a sticky directory such as /tmp is
// fine). A symbolic link (a dotfiles manager's) is followed, and the link and
// the directories above it get the same owner checks. A config file names
// keyrings, KMS URIs and flag defaults: whoever can change it steers cmekctl.
func openConfigFile(path string) (*os.File, error) {
	refuse := func(format string, args ...any) error {
		return &ExitError{Code: ExitPermissions, Err: fmt.Errorf("config file "+format, args...),
			Hint: "a config file steers cmekctl: keep it, and the directories above it, writable only by you (chmod 600 FILE)"}
	}
	euid := os.Geteuid()
	othersOwn := func(fi os.FileInfo) (int, bool) {
		uid, ok := safefile.Owner(fi)
		return uid, ok && uid != euid && uid != 0
	}
	ancestors := func(p string) error {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				return err
			}
			if uid, bad := othersOwn(fi); bad {
				return refuse("%s: directory %s above it is owned by uid %d, not by you or root", path, d, uid)
			}
			if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
				return refuse("%s: directory %s above it has mode %04o, which others can write to", path, d, fi.Mode().Perm())
			}
			if d == filepath.Dir(d) {
				return nil
			}
		}
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	if real != path {
		if lfi, err := os.Lstat(path); err == nil && lfi.Mode()&os.ModeSymlink != 0 {
			if uid, bad := othersOwn(lfi); bad {
				return nil, refuse("%s is a symbolic link owned by uid %d, not by you or root", path, uid)
			}
		}
		if err := ancestors(path); err != nil {
			return nil, err
		}
	}
	lfi, err := os.Lstat(real)
	if err != nil {
		return nil, err
	}
	if !lfi.Mode().IsRegular() {
		return nil, refuse("%s is not a regular file", real)
	}
	if uid, bad := othersOwn(lfi); bad {
		return nil, refuse("%s is owned by uid %d, not by you (uid %d) or root", real, uid, euid)
	}
	if lfi.Mode().Perm()&0o077 != 0 {
		return nil, refuse("%s has mode %04o, which others can access: run chmod 600 %s", real, lfi.Mode().Perm(), real)
	}
	if err := ancestors(real); err != nil {
		return nil, err
	}
	fh, err := os.OpenFile(real, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err != nil || !os.SameFile(fi, lfi) {
		fh.Close()
		return nil, refuse("%s changed while it was checked", real)
	}
	return fh, nil
}

// flagsOnlyNames lists the flags-only flags, sorted, for help text.
func flagsOnlyNames() []string {
	var n []string
	for k := range flagsOnly {
		n = append(n, "--"+k)
	}
	slices.Sort(n)
	return n
}
