//go:build linux

package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Memory series, named after the standard process_resident_memory_bytes
// and process_virtual_memory_bytes: virtual is not a kind of resident, so
// it is its own metric.
var (
	descResident  = prometheus.NewDesc(namespace+"_process_resident_memory_bytes", "A process's resident memory by kind (anon, file, shmem; their sum is VmRSS), from /proc/PID/status at the last evaluation.", append(procLabels, "kind"), nil)
	descVirtual   = prometheus.NewDesc(namespace+"_process_virtual_memory_bytes", "A process's virtual memory size (VmSize) at the last evaluation.", procLabels, nil)
	descMemLimit  = prometheus.NewDesc(namespace+"_process_memory_limit_bytes", "The lowest memory limit of the process's cgroup and its ancestors (memory.max on cgroup v2, else memory.limit_in_bytes of v1's memory controller); absent when none is set.", procLabels, nil)
	descMemGrowth = prometheus.NewDesc(namespace+"_process_resident_memory_growth_bytes_per_second", "Change of the process's resident memory per second over the growth window.", procLabels, nil)
	descIncidents = prometheus.NewDesc(namespace+"_fd_incidents_total", "fd-exhaustion incidents written since the agent started, and those removed to stay within incidents.max.", []string{"result"}, nil)

	memoryDescs = []*prometheus.Desc{descResident, descVirtual, descMemLimit, descMemGrowth, descIncidents}
)

// collectMemory sends p's memory series.
func collectMemory(ch chan<- prometheus.Metric, p *ProcessStat, l []string) {
	if !p.MemoryOK {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	m := p.Memory
	gauge(descResident, float64(m.Anon), append(l, "anon")...)
	gauge(descResident, float64(m.File), append(l, "file")...)
	gauge(descResident, float64(m.Shmem), append(l, "shmem")...)
	gauge(descVirtual, float64(m.Virtual), l...)
	if p.MemoryLimit > 0 {
		gauge(descMemLimit, float64(p.MemoryLimit), l...)
	}
	gauge(descMemGrowth, p.MemoryGrowth, l...)
}

// collectIncidents sends the incident counters.
func (a *Agent) collectIncidents(ch chan<- prometheus.Metric) {
	if a.incidents == nil {
		return
	}
	w, r := a.incidents.Counts()
	ch <- prometheus.MustNewConstMetric(descIncidents, prometheus.CounterValue, float64(w), "written")
	ch <- prometheus.MustNewConstMetric(descIncidents, prometheus.CounterValue, float64(r), "removed")
}
