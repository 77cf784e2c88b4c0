// tern-goqemu: a third-party QMP client (DigitalOcean's go-qemu, package qmp, as Debian 12
// ships it) drives a whole migration between two ternd processes that it starts:
//
//	destination: ternd --socket DIR/dst.sock --incoming tcp:127.0.0.1:0
//	source:      ternd --socket DIR/src.sock --guest threads,...
//
// Both monitors: qmp.NewSocketMonitor + Connect (greeting, qmp_capabilities), query-version,
// query-status, migrate-set-capabilities with "events" (so MIGRATION events flow), Events.
// Source: migrate-set-parameters, migrate to the URI the destination listens on
// (__io.github.tern_query-incoming, a tern extension), then query-migrate until "completed". Checks the MIGRATION events of both
// sides, that the destination completed and verified every page, and that errors come back as
// errors. Exits 0 on success, 1 with the reason on stderr otherwise.
//
// Built without network access: GO111MODULE=off GOPATH=/usr/share/gocode (tests/control/goqemu/
// run.sh does it).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// tern's downstream QMP prefix (control/qmp_names.h): the commands that are not QEMU's carry it.
const ternExtension = "__io.github.tern_"

const guest = "threads,vcpus=2,ram=64M,page=4K,wss=25%,rate=20000,pattern=random,seed=1"

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tern-goqemu: FAIL: "+format+"\n", args...)
	cleanup()
	os.Exit(1)
}

func logf(format string, args ...interface{}) {
	fmt.Printf("tern-goqemu: "+format+"\n", args...)
}

var children []*exec.Cmd

func cleanup() {
	for _, c := range children {
		if c.Process != nil {
			c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range children {
		done := make(chan struct{})
		go func(c *exec.Cmd) { c.Wait(); close(done) }(c)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	children = nil
}

func startTernd(bin, sock string, args ...string) {
	argv := append([]string{"--socket", sock, "--no-pin", "--log-level", "warn"}, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fail("starting %s: %v", bin, err)
	}
	children = append(children, cmd)
}

// connect dials until ternd listens, then does go-qemu's handshake.
func connect(sock string) *qmp.SocketMonitor {
	deadline := time.Now().Add(20 * time.Second)
	for {
		mon, err := qmp.NewSocketMonitor("unix", sock, 2*time.Second)
		if err == nil {
			if err := mon.Connect(); err != nil {
				fail("%s: Connect (greeting, qmp_capabilities): %v", sock, err)
			}
			return mon
		}
		if time.Now().After(deadline) {
			fail("%s: no QMP socket after 20 s: %v", sock, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run executes one command through go-qemu's Run and returns the "return" member.
func run(mon *qmp.SocketMonitor, who, execute string, args interface{}) json.RawMessage {
	out, err := runErr(mon, execute, args)
	if err != nil {
		fail("%s: %s: %v", who, execute, err)
	}
	return out
}

func runErr(mon *qmp.SocketMonitor, execute string, args interface{}) (json.RawMessage, error) {
	cmd, err := json.Marshal(qmp.Command{Execute: execute, Args: args})
	if err != nil {
		return nil, err
	}
	raw, err := mon.Run(cmd)
	if err != nil {
		return nil, err
	}
	var reply struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, fmt.Errorf("reply %q: %v", raw, err)
	}
	if reply.Return == nil {
		return nil, fmt.Errorf("reply without \"return\": %s", raw)
	}
	return reply.Return, nil
}

// eventLog collects the MIGRATION statuses one monitor reports.
type eventLog struct {
	mu       sync.Mutex
	statuses []string
	other    []string
	changed  chan struct{}
}

func collect(mon *qmp.SocketMonitor, who string) *eventLog {
	ch, err := mon.Events(context.Background())
	if err != nil {
		fail("%s: Events: %v", who, err)
	}
	l := &eventLog{changed: make(chan struct{}, 1)}
	go func() {
		for e := range ch {
			l.mu.Lock()
			if e.Event == "MIGRATION" {
				s, _ := e.Data["status"].(string)
				l.statuses = append(l.statuses, s)
				if e.Timestamp.Seconds == 0 {
					l.other = append(l.other, "MIGRATION event without a timestamp")
				}
			} else {
				l.other = append(l.other, e.Event)
			}
			l.mu.Unlock()
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.statuses...)
}

// waitFor waits until `status` was reported or `limit` passes.
func (l *eventLog) waitFor(status string, limit time.Duration) bool {
	deadline := time.After(limit)
	for {
		for _, s := range l.snapshot() {
			if s == status {
				return true
			}
		}
		select {
		case <-l.changed:
		case <-deadline:
			return false
		}
	}
}

type migrationInfo struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
	RAM       *struct {
		Total       uint64 `json:"total"`
		Transferred uint64 `json:"transferred"`
		Remaining   uint64 `json:"remaining"`
	} `json:"ram"`
}

func queryMigrate(mon *qmp.SocketMonitor, who string) migrationInfo {
	var q migrationInfo
	raw := run(mon, who, "query-migrate", nil)
	if err := json.Unmarshal(raw, &q); err != nil {
		fail("%s: query-migrate %s: %v", who, raw, err)
	}
	return q
}

func pollDone(mon *qmp.SocketMonitor, who string, limit time.Duration) migrationInfo {
	deadline := time.Now().Add(limit)
	polls := 0
	for {
		q := queryMigrate(mon, who)
		polls++
		switch q.Status {
		case "completed", "failed", "cancelled":
			logf("%s: query-migrate %q after %d polls", who, q.Status, polls)
			return q
		}
		if time.Now().After(deadline) {
			fail("%s: still %q after %v", who, q.Status, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func main() {
	ternd := flag.String("ternd", "", "path to ternd")
	dir := flag.String("dir", "", "directory for the sockets (default: a new one in $TMPDIR)")
	flag.Parse()
	if *ternd == "" {
		fmt.Fprintln(os.Stderr, "usage: tern-goqemu -ternd PATH [-dir DIR]")
		os.Exit(2)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "tern-goqemu-")
		if err != nil {
			fail("%v", err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	dstSock := filepath.Join(*dir, "dst.sock")
	srcSock := filepath.Join(*dir, "src.sock")
	// Both ternd authenticate their channels with a throwaway key (docs/security.md).
	key := filepath.Join(*dir, "goqemu.psk")
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		fail("random key: %v", err)
	}
	if err := os.WriteFile(key, []byte(hex.EncodeToString(secret)+"\n"), 0600); err != nil {
		fail("%v", err)
	}
	startTernd(*ternd, dstSock, "--auth-key-file", key, "--incoming", "tcp:127.0.0.1:0")
	startTernd(*ternd, srcSock, "--auth-key-file", key, "--guest", guest)
	defer cleanup()

	dst := connect(dstSock)
	src := connect(srcSock)
	defer dst.Disconnect()
	defer src.Disconnect()
	logf("connected: version %s, capabilities %v", src.Version, src.Capabilities)
	if len(src.Capabilities) != 0 {
		fail("greeting offers capabilities %v, tern offers none", src.Capabilities)
	}

	// Queries a QMP client asks first.
	var ver struct {
		QEMU    struct{ Major, Minor, Micro int } `json:"qemu"`
		Package string                            `json:"package"`
	}
	if err := json.Unmarshal(run(src, "source", "query-version", nil), &ver); err != nil {
		fail("query-version: %v", err)
	}
	logf("query-version: %d.%d.%d %q", ver.QEMU.Major, ver.QEMU.Minor, ver.QEMU.Micro, ver.Package)
	var st struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	json.Unmarshal(run(src, "source", "query-status", nil), &st)
	if st.Status != "running" || !st.Running {
		fail("source query-status: %+v, want running", st)
	}
	json.Unmarshal(run(dst, "destination", "query-status", nil), &st)
	if st.Status != "inmigrate" {
		fail("destination query-status: %+v, want inmigrate", st)
	}
	// Errors come back as errors through go-qemu (it reads "desc").
	if _, err := runErr(src, "no-such-command", nil); err == nil {
		fail("no-such-command: no error")
	} else {
		logf("unknown command refused: %v", err)
	}

	// Capabilities: events on both sides so MIGRATION events flow.
	caps := map[string]interface{}{"capabilities": []map[string]interface{}{
		{"capability": "events", "state": true},
	}}
	run(src, "source", "migrate-set-capabilities", caps)
	run(dst, "destination", "migrate-set-capabilities", caps)
	var got []struct {
		Capability string `json:"capability"`
		State      bool   `json:"state"`
	}
	json.Unmarshal(run(src, "source", "query-migrate-capabilities", nil), &got)
	eventsOn := false
	for _, c := range got {
		if c.Capability == "events" {
			eventsOn = c.State
		}
	}
	if !eventsOn {
		fail("query-migrate-capabilities does not show events on: %+v", got)
	}
	run(src, "source", "migrate-set-parameters", map[string]interface{}{
		"multifd-channels": 2, "downtime-limit": 300, "max-bandwidth": uint64(4) << 30,
	})
	var params map[string]interface{}
	json.Unmarshal(run(src, "source", "query-migrate-parameters", nil), &params)
	if v, _ := params["multifd-channels"].(float64); v != 2 {
		fail("query-migrate-parameters: multifd-channels %v, want 2", params["multifd-channels"])
	}
	srcEvents := collect(src, "source")
	dstEvents := collect(dst, "destination")

	// Before any migration, query-migrate is {} as in QEMU.
	if raw := run(src, "source", "query-migrate", nil); strings.TrimSpace(string(raw)) != "{}" {
		fail("query-migrate before migrate: %s, want {}", raw)
	}

	var inc struct {
		URI string `json:"uri"`
	}
	json.Unmarshal(run(dst, "destination", ternExtension+"query-incoming", nil), &inc)
	if !strings.HasPrefix(inc.URI, "tcp:127.0.0.1:") || inc.URI == "tcp:127.0.0.1:0" {
		fail("%squery-incoming: uri %q", ternExtension, inc.URI)
	}
	logf("migrate to %s", inc.URI)
	run(src, "source", "migrate", map[string]interface{}{"uri": inc.URI})

	sq := pollDone(src, "source", 120*time.Second)
	if sq.Status != "completed" {
		fail("source ended %q: %s", sq.Status, sq.ErrorDesc)
	}
	if sq.RAM == nil || sq.RAM.Total != 64<<20 || sq.RAM.Transferred == 0 {
		fail("source query-migrate ram: %+v", sq.RAM)
	}
	dq := pollDone(dst, "destination", 30*time.Second)
	if dq.Status != "completed" {
		fail("destination ended %q: %s", dq.Status, dq.ErrorDesc)
	}
	if !srcEvents.waitFor("completed", 10*time.Second) {
		fail("source: no MIGRATION completed event; got %v", srcEvents.snapshot())
	}
	if !dstEvents.waitFor("completed", 10*time.Second) {
		fail("destination: no MIGRATION completed event; got %v", dstEvents.snapshot())
	}
	se := srcEvents.snapshot()
	if len(se) == 0 || se[0] != "setup" || !contains(se, "active") {
		fail("source MIGRATION events %v: want setup first, then active ... completed", se)
	}
	logf("source MIGRATION events: %v", se)
	logf("destination MIGRATION events: %v", dstEvents.snapshot())
	for _, l := range []*eventLog{srcEvents, dstEvents} {
		l.mu.Lock()
		if len(l.other) > 0 {
			fail("unexpected events: %v", l.other)
		}
		l.mu.Unlock()
	}

	// The guest runs on the destination, every page verified.
	var g struct {
		Running      bool `json:"running"`
		Verification *struct {
			PagesChecked uint64 `json:"pages-checked"`
			Mismatches   uint64 `json:"mismatches"`
		} `json:"verification"`
	}
	json.Unmarshal(run(dst, "destination", ternExtension+"query-guest", nil), &g)
	if !g.Running || g.Verification == nil || g.Verification.PagesChecked == 0 ||
		g.Verification.Mismatches != 0 {
		fail("destination %squery-guest: running %v, verification %+v", ternExtension, g.Running, g.Verification)
	}
	json.Unmarshal(run(dst, "destination", "query-status", nil), &st)
	if st.Status != "running" {
		fail("destination query-status after migration: %+v", st)
	}
	logf("ok: %d bytes sent, destination verified %d pages, 0 mismatches",
		sq.RAM.Transferred, g.Verification.PagesChecked)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
