package incident

import (
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/leaktrace/leaktrace/report"
)

// TextOptions tune WriteText.
type TextOptions struct {
	MaxSites  int // sites listed (0: 10)
	MaxFrames int // frames per site (0: 12)
	FDs       bool
}

// WriteText renders an incident for a person: what failed, memory, fds by
// kind and age, the sites holding them with their stacks, growing sites.
func WriteText(w io.Writer, inc *Incident, o TextOptions) error {
	if o.MaxSites <= 0 {
		o.MaxSites = 10
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = 12
	}
	var b strings.Builder
	fmt.Fprintf(&b, "leaktrace incident %s\n", inc.Name)
	fmt.Fprintf(&b, "%s: pid %d (%s) failed to get an fd: %s, %d fds open", inc.Time.UTC().Format("2006-01-02 15:04:05.000 UTC"), inc.PID, inc.Comm, inc.Errno, inc.Open)
	if inc.FDLimit > 0 && inc.FDLimit < 1<<53 {
		fmt.Fprintf(&b, " of a limit of %d", inc.FDLimit)
	}
	b.WriteString("\n")
	if inc.Exe != "" {
		fmt.Fprintf(&b, "executable: %s\n", inc.Exe)
	}
	if inc.Cgroup != "" {
		fmt.Fprintf(&b, "cgroup: %s\n", inc.Cgroup)
	}
	if m := inc.Memory; m != nil {
		fmt.Fprintf(&b, "memory: resident %s (anon %s, file %s, shmem %s), virtual %s\n",
			mib(m.Resident), mib(m.Anon), mib(m.File), mib(m.Shmem), mib(m.Virtual))
	}
	if !inc.Complete {
		b.WriteString("INCOMPLETE: events were lost before this snapshot; the table may differ from the kernel's\n")
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(inc.Kinds)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, inc.Kinds[k]))
	}
	fmt.Fprintf(&b, "by kind: %s\n", strings.Join(kinds, ", "))
	var ages []string
	for _, a := range inc.Ages {
		ages = append(ages, fmt.Sprintf("%s %d", a.Label, a.Count))
	}
	fmt.Fprintf(&b, "by age:  %s\n", strings.Join(ages, ", "))

	fmt.Fprintf(&b, "\nsites holding its fds (%d):\n", len(inc.Sites))
	for i, s := range inc.Sites {
		if i == o.MaxSites {
			fmt.Fprintf(&b, "  … %d more sites\n", len(inc.Sites)-i)
			break
		}
		fmt.Fprintf(&b, "%5d  %s", s.Count, SiteName(s))
		if s.Key != "" {
			fmt.Fprintf(&b, "  oldest %.0fs", s.OldestAgeSeconds)
		}
		if len(s.Kinds) > 0 {
			var ks []string
			for _, k := range slices.Sorted(maps.Keys(s.Kinds)) {
				ks = append(ks, fmt.Sprintf("%s %d", k, s.Kinds[k]))
			}
			fmt.Fprintf(&b, "  [%s]", strings.Join(ks, ", "))
		}
		b.WriteString("\n")
		for j, f := range s.Stack {
			if j == o.MaxFrames {
				fmt.Fprintf(&b, "         … %d more frames\n", len(s.Stack)-j)
				break
			}
			b.WriteString("         " + frameText(f) + "\n")
		}
	}
	if len(inc.Growing) > 0 {
		b.WriteString("\ngrowing sites (over the agent's growth window, all processes):\n")
		for _, s := range inc.Growing {
			fmt.Fprintf(&b, "  %+5d  %s  (%.3g/s)\n", s.Growth, SiteName(s), s.GrowthPerSecond)
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if o.FDs {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nFD\tKIND\tAGE\tSITE\tTARGET")
		for _, f := range inc.FDs {
			fmt.Fprintf(tw, "%d\t%s\t%.0fs\t%s\t%s\n", f.FD, f.Kind, f.AgeSeconds, f.Site, f.Target)
		}
		return tw.Flush()
	}
	return nil
}

func frameText(f report.Frame) string {
	s := f.Function
	if s == "" {
		s = fmt.Sprintf("%#x", f.Address)
	}
	if f.File != "" {
		s += fmt.Sprintf(" %s:%d", f.File, f.Line)
	}
	if f.Module != "" {
		s += " [" + path.Base(f.Module) + "]"
	}
	return s
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
