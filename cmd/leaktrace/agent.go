//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/leaktrace/leaktrace/agent"
	"github.com/leaktrace/leaktrace/report"
	"github.com/leaktrace/leaktrace/tracer"
)

type agentFlags struct {
	listen        []string
	telemetryPath string
	webConfig     string
	configFile    string
	interval      time.Duration
	ringBuffer    int
	stackBytes    int
	noStackSites  bool
	pairWindow    time.Duration
	cfg           agent.Config // flags write here; only those set override the file
	webhook       string
	alertmanager  string
	externalURL   string
	labels        []string
}

func newAgentCmd() *cobra.Command {
	f := agentFlags{cfg: agent.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Trace the host as a daemon: Prometheus metrics and threshold alerts on fd usage and leaks",
		Long: `Trace every process on the host (or those --pid, --comm, --cgroup, --exe select, in the
kernel), keep each live process's handles and each call site's statistics, and serve
them as Prometheus metrics. Alerts fire on fd usage against each process's RLIMIT_NOFILE
(warn/error/critical), on EMFILE/ENFILE failures, on sites whose outstanding handles
keep growing, and on unreaped children; they go to a JSON log on stderr and, when set,
to a webhook and to Alertmanager. SIGHUP reloads --config.file; SIGTERM detaches and
flushes the alert queues. Endpoints: the metrics path, /healthz, /readyz, /debug/leaks
(the live report as JSON), /debug/alerts, /debug/incidents, and a dashboard at /.

Each process's resident memory is sampled too, with alerts on its size (absolute, or
a fraction of its cgroup's memory limit: memory.max, or memory.limit_in_bytes
where the memory controller is on cgroup v1) and on sustained growth. When a process fails
to get an fd (EMFILE/ENFILE), its whole fd table is kept as an incident in
--incidents.dir: render one with 'leaktrace report FILE'.`,
		Example: `  sudo leaktrace agent
  sudo leaktrace agent --comm nginx --alert.webhook-url http://hooks.internal/leaks
  sudo leaktrace agent --config.file /etc/leaktrace/agent.yml --web.config.file /etc/leaktrace/web.yml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.listen, "web.listen-address", []string{"localhost:9808"}, "`address`es to serve metrics on (repeat, or comma-separate)")
	fl.StringVar(&f.telemetryPath, "web.telemetry-path", "/metrics", "path of the metrics")
	fl.StringVar(&f.webConfig, "web.config.file", "", "exporter-toolkit web `file` for TLS and basic auth")
	fl.StringVar(&f.configFile, "config.file", "", "YAML `file` of thresholds, filters, sinks and limits (flags set explicitly win)")
	fl.DurationVar(&f.interval, "interval", 5*time.Second, "how often counts are sampled and alerts evaluated")
	fl.IntVar(&f.ringBuffer, "ring-buffer-size", tracer.DefaultRingBufferBytes, "kernel ring buffer size in `bytes` (a power of two)")
	fl.IntVar(&f.stackBytes, "stack-bytes", tracer.DefaultStackBytes, "bytes of user stack copied per event for unwinding (0-8192; 0 copies none)")
	fl.DurationVar(&f.pairWindow, "pair-window", tracer.DefaultPairWindow, pairWindowHelp)
	fl.BoolVar(&f.noStackSites, "no-stack-sites", false, noStackSitesHelp)
	c := &f.cfg
	fl.IntSliceVar(&c.Filters.PIDs, "pid", nil, "trace this `pid` and its children (repeatable)")
	fl.StringSliceVar(&c.Filters.Comms, "comm", nil, "trace processes with this `comm` and their children (repeatable)")
	fl.StringSliceVar(&c.Filters.Cgroups, "cgroup", nil, "trace processes in this cgroup v2 `path` (as /proc/PID/cgroup shows it) and their children")
	fl.StringSliceVar(&c.Filters.Exes, "exe", nil, "trace processes running this executable `path` and their children")
	fl.Float64Var(&c.Thresholds.FDWarn, "alert.fd-usage-warn", c.Thresholds.FDWarn, "warn at this `percent` of RLIMIT_NOFILE")
	fl.Float64Var(&c.Thresholds.FDError, "alert.fd-usage-error", c.Thresholds.FDError, "error at this `percent` of RLIMIT_NOFILE")
	fl.Float64Var(&c.Thresholds.FDCritical, "alert.fd-usage-critical", c.Thresholds.FDCritical, "critical at this `percent` of RLIMIT_NOFILE")
	fl.IntVar(&c.Thresholds.GrowthMin, "alert.growth-min", c.Thresholds.GrowthMin, "alert when a site's outstanding handles grow by `N` over the growth window")
	fl.DurationVar(&c.Thresholds.GrowthWindow, "alert.growth-window", c.Thresholds.GrowthWindow, "window of the growth alert and rates")
	fl.DurationVar(&c.Thresholds.MinAge, "alert.min-age", c.Thresholds.MinAge, "handles outstanding longer than this are leak suspects")
	fl.DurationVar(&c.Thresholds.FDFailureHold, "alert.fd-failure-hold", c.Thresholds.FDFailureHold, "an EMFILE/ENFILE alert resolves this long after the last failure")
	fl.StringVar(&f.webhook, "alert.webhook-url", "", "POST alert transitions as JSON to this `URL`")
	fl.StringVar(&f.alertmanager, "alert.alertmanager-url", "", "send alerts to the Alertmanager at this base `URL` (v2 API)")
	fl.StringVar(&f.externalURL, "web.external-url", "", "the `URL` this agent is reached at, which alerts link back to (default: http(s)://HOSTNAME:PORT of the first listen address)")
	fl.StringArrayVar(&f.labels, "alert.external-label", nil, "add `NAME=VALUE` to every alert (repeatable; instance defaults to the host name)")
	fl.IntVar(&c.Limits.MaxProcesses, "limits.max-processes", c.Limits.MaxProcesses, "processes with per-process state and series; the rest are counted")
	fl.IntVar(&c.Limits.TopSites, "limits.top-sites", c.Limits.TopSites, "call sites exported one by one; the rest are summed as site=\"other\"")
	fl.IntVar(&c.Limits.MaxStacks, "limits.max-stacks", c.Limits.MaxStacks, "distinct creation stacks kept; handles from further ones have no site")
	fl.Var(&c.Thresholds.MemWarn, "alert.memory-warn", "warn when a process's resident memory reaches this `size` (1.5GiB, 512MiB, bytes)")
	fl.Var(&c.Thresholds.MemError, "alert.memory-error", "error at this resident memory `size`")
	fl.Var(&c.Thresholds.MemCritical, "alert.memory-critical", "critical at this resident memory `size`")
	fl.Var(&c.Thresholds.MemGrowthPerHour, "alert.memory-growth-per-hour", "alert when resident memory grows by more than this `size` per hour over both halves of the growth window")
	fl.StringVar(&c.Incidents.Dir, "incidents.dir", c.Incidents.Dir, "`directory` of fd-exhaustion incidents (JSON; '' keeps them in memory)")
	fl.IntVar(&c.Incidents.Max, "incidents.max", c.Incidents.Max, "incidents kept; the oldest is removed first")
	return cmd
}

// config is the file's configuration with the flags that were set on top.
func (f *agentFlags) config(fl *pflag.FlagSet) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	if f.configFile != "" {
		var err error
		if cfg, err = agent.LoadConfig(f.configFile, cfg); err != nil {
			return cfg, err
		}
	}
	set := func(name string, apply func()) {
		if fl.Changed(name) {
			apply()
		}
	}
	c, t, l := &f.cfg, &cfg.Thresholds, &cfg.Limits
	set("pid", func() { cfg.Filters.PIDs = c.Filters.PIDs })
	set("comm", func() { cfg.Filters.Comms = c.Filters.Comms })
	set("cgroup", func() { cfg.Filters.Cgroups = c.Filters.Cgroups })
	set("exe", func() { cfg.Filters.Exes = c.Filters.Exes })
	set("alert.fd-usage-warn", func() { t.FDWarn = c.Thresholds.FDWarn })
	set("alert.fd-usage-error", func() { t.FDError = c.Thresholds.FDError })
	set("alert.fd-usage-critical", func() { t.FDCritical = c.Thresholds.FDCritical })
	set("alert.growth-min", func() { t.GrowthMin = c.Thresholds.GrowthMin })
	set("alert.growth-window", func() { t.GrowthWindow = c.Thresholds.GrowthWindow })
	set("alert.min-age", func() { t.MinAge = c.Thresholds.MinAge })
	set("alert.fd-failure-hold", func() { t.FDFailureHold = c.Thresholds.FDFailureHold })
	// A URL flag keeps the file's http_config, timeout and attempts for that sink.
	sinkURL := func(s **agent.HTTPSink, url string) {
		if *s == nil {
			*s = &agent.HTTPSink{HTTPConfig: promconfig.DefaultHTTPClientConfig}
		}
		(*s).URL = url
	}
	set("alert.webhook-url", func() { sinkURL(&cfg.Sinks.Webhook, f.webhook) })
	set("alert.alertmanager-url", func() { sinkURL(&cfg.Sinks.Alertmanager, f.alertmanager) })
	if len(f.labels) > 0 {
		labels := maps.Clone(cfg.Sinks.ExternalLabels)
		if labels == nil {
			labels = map[string]string{}
		}
		for _, l := range f.labels {
			k, v, _ := strings.Cut(l, "=")
			labels[k] = v
		}
		cfg.Sinks.ExternalLabels = labels
	}
	set("limits.max-processes", func() { l.MaxProcesses = c.Limits.MaxProcesses })
	set("limits.top-sites", func() { l.TopSites = c.Limits.TopSites })
	set("limits.max-stacks", func() { l.MaxStacks = c.Limits.MaxStacks })
	set("alert.memory-warn", func() { t.MemWarn = c.Thresholds.MemWarn })
	set("alert.memory-error", func() { t.MemError = c.Thresholds.MemError })
	set("alert.memory-critical", func() { t.MemCritical = c.Thresholds.MemCritical })
	set("alert.memory-growth-per-hour", func() { t.MemGrowthPerHour = c.Thresholds.MemGrowthPerHour })
	set("incidents.dir", func() { cfg.Incidents.Dir = c.Incidents.Dir })
	set("incidents.max", func() { cfg.Incidents.Max = c.Incidents.Max })
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("flags: %w", err)
	}
	return cfg, nil
}

func runAgent(cmd *cobra.Command, f *agentFlags) error {
	level := slog.LevelInfo
	if v, _ := cmd.Flags().GetBool("verbose"); v {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := f.validate(); err != nil {
		return err
	}
	cfg, err := f.config(cmd.Flags())
	if err != nil {
		return &userError{code: exitUsage, msg: err.Error()}
	}
	if f.webConfig != "" {
		if err := web.Validate(f.webConfig); err != nil {
			return &userError{code: exitUsage, msg: fmt.Sprintf("--web.config.file %s: %v", f.webConfig, err)}
		}
	}
	if err := tracer.CheckPrivileges(); err != nil {
		return &userError{code: exitUsage, msg: err.Error()}
	}
	// Listen first: a taken port is the operator's to fix before anything loads.
	var listeners []net.Listener
	for _, addr := range f.listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return &userError{code: exitUsage, msg: fmt.Sprintf("--web.listen-address %s: %v", addr, err)}
		}
		defer l.Close()
		listeners = append(listeners, l)
	}
	for _, addr := range exposedAddrs(listeners, f.webConfig) {
		log.Warn("SERVING WITHOUT TLS OR AUTHENTICATION ON A NON-LOOPBACK ADDRESS: anyone who reaches it reads /debug/leaks, every traced process's file paths, peers and call stacks; give --web.config.file (TLS and basic auth) or listen on localhost",
			"address", addr)
	}
	extURL := f.externalURL
	if extURL == "" {
		extURL = defaultExternalURL(listeners[0].Addr(), webTLS(f.webConfig))
	}
	a, err := agent.New(agent.Options{Config: cfg, Interval: f.interval, Log: log,
		Tracer: tracer.Config{RingBufferBytes: f.ringBuffer, StackBytes: stackBytes(f.stackBytes),
			PairInKernel: f.pairWindow > 0, PairWindow: f.pairWindow, NoStackSites: f.noStackSites},
		ExternalURL: extURL})
	if err != nil {
		var te *tracer.Error
		if errors.As(err, &te) {
			return kernelError(err)
		}
		return &userError{code: exitUsage, msg: err.Error()}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	srv := &http.Server{Handler: a.Handler(f.telemetryPath, report.BuildVersion()), ReadHeaderTimeout: 10 * time.Second}
	webFlags := &web.FlagConfig{WebListenAddresses: &f.listen, WebSystemdSocket: new(bool), WebConfigFile: &f.webConfig}
	for _, l := range listeners {
		log.Info("listening", "address", l.Addr().String(), "telemetry_path", f.telemetryPath)
		go func() {
			if err := web.Serve(l, srv, webFlags, log); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("serving HTTP", "err", err)
				cancel()
			}
		}()
	}
	go func() {
		for range hup {
			cfg, err := f.config(cmd.Flags())
			if err != nil {
				log.Error("reload failed: keeping the running configuration", "err", err)
				continue
			}
			if err := a.Reload(cfg); err != nil {
				log.Error("reload failed: keeping the running configuration", "err", err)
			}
		}
	}()

	runErr := a.Run(ctx)
	shut, c2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer c2()
	srv.Shutdown(shut)
	log.Info("agent stopped")
	return runErr
}
