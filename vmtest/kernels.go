package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Kernel is one Debian cloud kernel of the matrix, pinned to an exact
// package version: the cloud flavour has virtio, the serial console and
// initramfs support built in, so it boots from -kernel/-initrd alone.
type Kernel struct {
	Name      string // short name: the table's first column and -kernels
	Suite     string // the Debian suite that ships it
	Package   string // the binary package that holds the kernel image (vmlinuz)
	Version   string // exact package version
	Supported bool   // false: leaktrace must refuse it (exit 125, one line)
}

// matrix is what `make vmtest` boots. A pinned version that the archive no
// longer carries fails the fetch with the command to find its successor.
var matrix = []Kernel{
	{Name: "5.10", Suite: "bullseye", Package: "linux-image-5.10.0-32-cloud-amd64", Version: "5.10.223-1"},
	{Name: "6.1", Suite: "bookworm", Package: "linux-image-6.1.0-50-cloud-amd64", Version: "6.1.176-1", Supported: true},
	{Name: "6.12", Suite: "trixie", Package: "linux-image-6.12.117+deb13-cloud-amd64", Version: "6.12.117-1", Supported: true},
	{Name: "6.18", Suite: "trixie-backports", Package: "linux-image-6.18.15+deb13-cloud-amd64", Version: "6.18.15-1~bpo13+1", Supported: true},
	// From 7.x the image package is split: vmlinuz lives in linux-binary-*.
	{Name: "7.3", Suite: "trixie-backports", Package: "linux-binary-7.3.4+deb13-cloud-amd64", Version: "7.3.4-1~bpo13+1", Supported: true},
}

func (k Kernel) String() string {
	return fmt.Sprintf("%s (%s %s)", k.Name, k.Suite, k.Version)
}

// selectKernels returns the matrix's kernels named in a comma-separated list
// ("" or "all": every one).
func selectKernels(names string) ([]Kernel, error) {
	if names == "" || names == "all" {
		return matrix, nil
	}
	var ks []Kernel
	for _, n := range strings.Split(names, ",") {
		i := slices.IndexFunc(matrix, func(k Kernel) bool { return k.Name == strings.TrimSpace(n) })
		if i < 0 {
			var all []string
			for _, k := range matrix {
				all = append(all, k.Name)
			}
			return nil, fmt.Errorf("no kernel %q in the matrix (have %s)", n, strings.Join(all, ", "))
		}
		ks = append(ks, matrix[i])
	}
	return ks, nil
}

// kernelStore keeps each pinned kernel's vmlinuz under dir/kernels, fetched
// once through an apt configuration of its own under dir/apt: the host's apt
// sources, lists and caches are never touched, and nothing is installed.
type kernelStore struct {
	dir    string
	mirror string // Debian archive URI; "" reads it from the host's apt sources
	log    io.Writer
}

func (s *kernelStore) vmlinuzPath(k Kernel) string {
	return filepath.Join(s.dir, "kernels", k.Package+"_"+k.Version, "vmlinuz")
}

// ensure fetches the kernels not yet in the store; a store that has them all
// runs no apt at all.
func (s *kernelStore) ensure(ctx context.Context, ks []Kernel) error {
	var missing []Kernel
	for _, k := range ks {
		if _, err := os.Stat(s.vmlinuzPath(k)); err != nil {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	apt, err := s.aptConfig(ks)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.log, "vmtest: fetching %d kernel(s) into %s\n", len(missing), s.dir)
	if err := apt.run(ctx, "", "update"); err != nil {
		return err
	}
	debs := filepath.Join(s.dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	for _, k := range missing {
		if err := s.fetch(ctx, apt, debs, k); err != nil {
			return err
		}
	}
	return nil
}

func (s *kernelStore) fetch(ctx context.Context, apt aptConfig, debs string, k Kernel) error {
	// apt-get download names the file NAME_VERSION_ARCH.deb with ':' escaped.
	deb := filepath.Join(debs, fmt.Sprintf("%s_%s_amd64.deb", k.Package, strings.ReplaceAll(k.Version, ":", "%3a")))
	if err := apt.run(ctx, debs, "download", k.Package+"="+k.Version); err != nil {
		return fmt.Errorf("%w (is %s %s still in %s? see: apt-cache -c %s madison %s)",
			err, k.Package, k.Version, k.Suite, apt.conf, k.Package)
	}
	defer os.Remove(deb)
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "debs"), "x-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v: %s", deb, err, out)
	}
	// Up to 6.x in /boot; from 7.x in the modules directory.
	found, _ := filepath.Glob(filepath.Join(tmp, "boot", "vmlinuz-*"))
	more, _ := filepath.Glob(filepath.Join(tmp, "usr", "lib", "modules", "*", "vmlinuz"))
	found = append(found, more...)
	if len(found) != 1 {
		return fmt.Errorf("%s holds %d kernels (/boot/vmlinuz-*, /usr/lib/modules/*/vmlinuz), want 1", deb, len(found))
	}
	dst := s.vmlinuzPath(k)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// Rename last: a vmlinuz in the store is always whole.
	if err := os.Rename(found[0], dst); err != nil {
		return fmt.Errorf("storing %s: %w", dst, err)
	}
	fmt.Fprintf(s.log, "vmtest: %s -> %s\n", k, dst)
	return nil
}

// aptConfig is a private apt configuration file.
type aptConfig struct {
	conf string
}

// aptConfig writes dir/apt/apt.conf and a sources file for the suites of ks.
// apt still reads the host's apt.conf.d (proxies, date checks), minus the
// hooks that would act on the host's own state.
func (s *kernelStore) aptConfig(ks []Kernel) (aptConfig, error) {
	mirror := s.mirror
	if mirror == "" {
		var err error
		if mirror, err = hostMirror(); err != nil {
			return aptConfig{}, err
		}
	}
	dir := filepath.Join(s.dir, "apt")
	for _, d := range []string{"sources", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return aptConfig{}, err
		}
	}
	var suites []string
	for _, k := range ks {
		if !slices.Contains(suites, k.Suite) {
			suites = append(suites, k.Suite)
		}
	}
	sources := fmt.Sprintf("Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
		mirror, strings.Join(suites, " "))
	if err := os.WriteFile(filepath.Join(dir, "sources", "vmtest.sources"), []byte(sources), 0o644); err != nil {
		return aptConfig{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), nil, 0o644); err != nil {
		return aptConfig{}, err
	}
	conf := fmt.Sprintf(`// leaktrace vmtest: a private apt state; written by vmtest, safe to delete.
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "%[1]s/sources";
Dir::State::Lists "%[1]s/lists";
Dir::State::status "%[1]s/status";
Dir::Cache "%[1]s/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear Acquire::IndexTargets::deb::DEP-11;
#clear Acquire::IndexTargets::deb::DEP-11-icons-small;
#clear Acquire::IndexTargets::deb::DEP-11-icons;
#clear Acquire::IndexTargets::deb::Contents-deb;
`, dir)
	path := filepath.Join(dir, "apt.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return aptConfig{}, err
	}
	return aptConfig{conf: path}, nil
}

func (a aptConfig) run(ctx context.Context, dir string, args ...string) error {
	args = append([]string{"-c", a.conf, "-qq"}, args...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
