package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// abConcurrency is ab's -c: concurrent requests.
const abConcurrency = 20

// nginxConf is a throwaway nginx: one worker, in the foreground, every path
// in the bench's temp dir, serving a small static file (opened and closed per
// request, as nginx does without open_file_cache) on loopback only. It runs
// as root, which owns the temp dir.
const nginxConf = `user root;
worker_processes 1;
daemon off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path {{dir}}/tmp/body;
	proxy_temp_path {{dir}}/tmp/proxy;
	fastcgi_temp_path {{dir}}/tmp/fastcgi;
	scgi_temp_path {{dir}}/tmp/scgi;
	uwsgi_temp_path {{dir}}/tmp/uwsgi;
	server {
		listen {{addr}};
		root {{dir}}/html;
	}
}
`

// nginx is the server the bench started, stopped by its master's pid.
type nginx struct {
	cmd    *exec.Cmd
	tail   *tailBuffer
	exited chan error
	url    string
}

// startNginx starts nginx and checks ab is there, or says why the nginx row
// is skipped.
func (b *bench) startNginx() (*nginx, string) {
	for _, tool := range []struct{ bin, pkg string }{{"nginx", "nginx-light"}, {"ab", "apache2-utils"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			return nil, fmt.Sprintf("%s is not installed (apt-get install -y %s)", tool.bin, tool.pkg)
		}
	}
	dir := filepath.Join(b.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "html"), 0o755); err != nil {
		return nil, fmt.Sprintf("creating nginx's directory: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Sprintf("creating nginx's directory: %v", err)
	}
	// The size of nginx's own default index page.
	if err := os.WriteFile(filepath.Join(dir, "html", "index.html"), bytes.Repeat([]byte("x"), 615), 0o644); err != nil {
		return nil, fmt.Sprintf("writing nginx's page: %v", err)
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err.Error()
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{addr}}", addr).Replace(nginxConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Sprintf("writing nginx's config: %v", err)
	}
	n := &nginx{tail: &tailBuffer{}, exited: make(chan error, 1), url: "http://" + addr + "/"}
	n.cmd = exec.Command("nginx", "-p", dir, "-c", confPath)
	n.cmd.Stdout, n.cmd.Stderr = n.tail, n.tail
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Sprintf("starting nginx: %v", err)
	}
	go func() { n.exited <- n.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-n.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Sprintf("nginx exited at start: %v: %s%s", err, n.tail.String(), log)
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			logf("nginx (pid %d) serving %s", n.cmd.Process.Pid, n.url)
			return n, ""
		}
	}
	n.stop()
	return nil, "nginx did not listen within 10s"
}

// stop quits nginx gracefully through its master, by pid.
func (n *nginx) stop() {
	n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// ab runs ApacheBench without keep-alive and returns its requests per second.
func (n *nginx) ab(requests int) (float64, error) {
	cmd := exec.Command("ab", "-q", "-n", strconv.Itoa(requests), "-c", strconv.Itoa(abConcurrency), n.url)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("ab against nginx: %w\n%s", err, out.String())
	}
	return parseAB(out.String(), requests)
}

// parseAB reads ab's requests per second, and fails when a request failed or
// was not answered 2xx: such a run measures something else.
func parseAB(out string, requests int) (float64, error) {
	var rps float64
	complete, failed, non2xx := -1, 0, 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		var err error
		switch strings.TrimSpace(k) {
		case "Requests per second":
			rps, err = strconv.ParseFloat(f[0], 64)
		case "Complete requests":
			complete, err = strconv.Atoi(f[0])
		case "Failed requests":
			failed, err = strconv.Atoi(f[0])
		case "Non-2xx responses":
			non2xx, err = strconv.Atoi(f[0])
		}
		if err != nil {
			return 0, fmt.Errorf("reading ab's %q: %w", k, err)
		}
	}
	switch {
	case rps <= 0 || complete < 0:
		return 0, errors.New("ab printed no requests per second")
	case complete != requests || failed > 0 || non2xx > 0:
		return 0, fmt.Errorf("ab: %d of %d requests complete, %d failed, %d not 2xx", complete, requests, failed, non2xx)
	}
	return rps, nil
}
