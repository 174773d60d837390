package unit

import (
	"fmt"
	"strings"
	"syscall"
	"time"
)

// newUnit returns a unit with systemd's defaults for its type, before any
// file is applied.
func newUnit(name string) *Unit {
	u := &Unit{
		Name:                name,
		Type:                TypeOf(name),
		Deps:                map[Dep][]string{},
		DefaultDependencies: true,
		OnFailureJobMode:    "replace",
		StartLimitInterval:  10 * time.Second,
		StartLimitBurst:     5,
	}
	ex := Exec{
		RuntimeDirectoryMode: 0o755, StateDirectoryMode: 0o755, LogsDirectoryMode: 0o755,
		RuntimeDirectoryPreserve: "no",
		StandardInput:            "null",
		StandardOutput:           Output{Kind: "journal"},
		StandardError:            Output{Kind: "inherit"},
	}
	switch u.Type {
	case TypeService:
		u.Service = &Service{
			Exec: ex, ExitType: "main", GuessMainPID: true, Restart: RestartNo,
			RestartSec: 100 * time.Millisecond, TimeoutStartSec: 90 * time.Second,
			TimeoutStopSec: 90 * time.Second, KillMode: KillControlGroup,
			KillSignal: int(syscall.SIGTERM), FinalKillSignal: int(syscall.SIGKILL),
			SendSIGKILL: true,
		}
	case TypeSocket:
		prefix := strings.TrimSuffix(name, ".socket")
		u.Socket = &Socket{
			Exec: ex, SocketMode: 0o666, DirectoryMode: 0o755, Backlog: 4096,
			FileDescriptorName: prefix, BindIPv6Only: "default", MaxConnections: 64,
			TimeoutSec: 90 * time.Second, KillMode: KillControlGroup, KillSignal: int(syscall.SIGTERM),
		}
	case TypeSlice:
		u.Slice = &Slice{}
	case TypeMount:
		u.Mount = &Mount{DirectoryMode: 0o755, TimeoutSec: 90 * time.Second}
	}
	return u
}

// finalize fills defaults that depend on other settings and runs the
// semantic checks that make a unit "bad-setting".
func (a *applier) finalize() error {
	u := a.u
	switch {
	case u.Service != nil:
		s := u.Service
		if s.Type == "" {
			switch {
			case s.BusName != "" && len(s.ExecStart) > 0:
				s.Type = Dbus
			case len(s.ExecStart) > 0:
				s.Type = Simple
			default:
				s.Type = Oneshot
			}
		}
		if _, set := a.last["Service.TimeoutAbortSec"]; !set {
			s.TimeoutAbortSec = s.TimeoutStopSec
		}
		if s.RestartKillSignal == 0 {
			s.RestartKillSignal = s.KillSignal
		}
		// systemd.service(5): a oneshot has no start timeout unless one
		// is set (it may legitimately run for long).
		_, setStart := a.last["Service.TimeoutStartSec"]
		_, setBoth := a.last["Service.TimeoutSec"]
		if s.Type == Oneshot && !setStart && !setBoth {
			s.TimeoutStartSec = 0
		}
		// systemd.exec(5): with StandardInput= a socket or tty, output
		// defaults to the same place (so `cat` on an Accept=yes connection
		// echoes to the peer).
		if _, set := a.last["Service.StandardOutput"]; !set {
			switch s.StandardInput {
			case "socket", "tty", "tty-force", "tty-fail":
				s.StandardOutput = Output{Kind: "inherit"}
			}
		}
		if _, set := a.last["Service.NotifyAccess"]; !set && s.Type == Notify {
			s.NotifyAccess = NotifyMain
		}
		if s.NotifyAccess == "" {
			s.NotifyAccess = NotifyNone
		}
		if s.Slice == "" {
			s.Slice = "system.slice"
		}
		if len(s.ExecStart) == 0 && s.Type != Oneshot {
			return a.badAt("Service.Type", fmt.Sprintf("service has no ExecStart= setting, which is only allowed for Type=oneshot (Type=%s)", s.Type))
		}
		if len(s.ExecStart) == 0 && len(s.ExecStop) == 0 && !a.successAction {
			return a.badAt("Service.ExecStart", "service has no ExecStart=, ExecStop= or SuccessAction= setting")
		}
		if a.execStartCount > 1 && s.Type != Oneshot {
			return a.badAt("Service.ExecStart", fmt.Sprintf("service has more than one ExecStart= setting, which is only allowed for Type=oneshot (Type=%s)", s.Type))
		}
		if s.Type == Dbus && s.BusName == "" {
			return a.badAt("Service.Type", "Type=dbus requires BusName=")
		}
	case u.Socket != nil:
		k := u.Socket
		if len(k.Listen) == 0 {
			return a.badAt("Socket.ListenStream", "socket unit has no Listen*= setting")
		}
		if k.Accept && k.Service != "" {
			return a.badAt("Socket.Service", "Service= may not be used with Accept=yes")
		}
		if k.Service == "" && !k.Accept {
			prefix, instance, _ := SplitName(u.Name)
			if instance != "" {
				k.Service = prefix + "@" + instance + ".service"
			} else {
				k.Service = prefix + ".service"
			}
		}
		if k.Slice == "" {
			k.Slice = "system.slice"
		}
	case u.Mount != nil:
		return a.finalizeMount()
	}
	return nil
}
