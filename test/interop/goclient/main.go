// A third-party QMP client built on Debian's go-qemu library, used by go-qemu.test.ts to
// check that minivm speaks QMP the way real clients expect. It prints one JSON line per step.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"
)

func emit(step string, v interface{}, err error) {
	out := map[string]interface{}{"step": step}
	if err != nil {
		out["error"] = err.Error()
	} else {
		out["value"] = v
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: goclient SOCKET")
		os.Exit(2)
	}
	mon, err := qmp.NewSocketMonitor("unix", os.Args[1], 5*time.Second)
	if err != nil {
		emit("dial", nil, err)
		os.Exit(1)
	}
	if err := mon.Connect(); err != nil {
		emit("connect", nil, err)
		os.Exit(1)
	}
	defer mon.Disconnect()
	emit("connect", "ok", nil)

	reply, err := mon.Run([]byte(`{"execute":"query-name"}`))
	var rawReply interface{}
	if err == nil {
		err = json.Unmarshal(reply, &rawReply)
	}
	emit("raw query-name", rawReply, err)

	r := raw.NewMonitor(mon)
	status, err := r.QueryStatus()
	emit("query-status", map[string]interface{}{"running": status.Running, "status": status.Status.String()}, err)

	out, err := r.HumanMonitorCommand("info status", nil)
	emit("hmp info status", out, err)

	_, err = mon.Run([]byte(`{"execute":"nosuch"}`))
	emit("unknown command", nil, err)
}
