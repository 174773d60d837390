package unit

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// commands appends one Exec*= line; empty resets the list.
func commands(get func(*Unit) *[]Command) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" {
			*get(a.u) = nil
			if a.cur.Key == "ExecStart" {
				a.execStartCount = 0
			}
			return nil
		}
		c, err := parseCommand(v, a.warn)
		if err != nil {
			return err
		}
		*get(a.u) = append(*get(a.u), c)
		if a.cur.Key == "ExecStart" {
			a.execStartCount++
		}
		return nil
	}}
}

func svcDur(get func(*Service) *time.Duration) directive {
	return duration(func(u *Unit) *time.Duration { return get(u.Service) }, 0)
}

func exitSet(get func(*Service) *ExitStatusSet) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" {
			*get(a.u.Service) = ExitStatusSet{}
			return nil
		}
		return parseExitStatusSet(v, get(a.u.Service))
	}}
}

func signal(get func(*Unit) *int) directive {
	return directive{h: func(a *applier, v string) error {
		n, err := parseSignal(v)
		if err == nil {
			*get(a.u) = n
		}
		return err
	}}
}

func killMode(get func(*Unit) *KillMode) directive {
	return directive{h: func(a *applier, v string) error {
		switch m := KillMode(v); m {
		case KillControlGroup, KillMixed, KillProcess, KillNone:
			*get(a.u) = m
			return nil
		}
		return fmt.Errorf("unknown kill mode %q", v)
	}}
}

func sliceName(get func(*Unit) *string) directive {
	return directive{h: func(a *applier, v string) error {
		if TypeOf(v) != TypeSlice || !ValidName(v) {
			return fmt.Errorf("%q is not a slice unit name", v)
		}
		*get(a.u) = v
		return nil
	}}
}

var serviceDirectives = func() map[string]directive {
	m := execDirectives()
	addLimits(m)
	s := func(u *Unit) *Service { return u.Service }
	for k, d := range map[string]directive{
		"Type": {h: func(a *applier, v string) error {
			switch t := ServiceType(v); t {
			case Simple, ExecType, Forking, Oneshot, Notify, Idle:
				a.u.Service.Type = t
			case Dbus:
				a.u.Service.Type = t
				a.warn("Type=dbus is run as Type=simple (no D-Bus name watching)")
			case "notify-reload":
				a.u.Service.Type = Notify
				a.warn("Type=notify-reload is run as Type=notify")
			default:
				return &badSettingError{fmt.Sprintf("unknown service type %q", v)}
			}
			return nil
		}},
		"ExitType": {h: func(a *applier, v string) error {
			if v != "main" && v != "cgroup" {
				return fmt.Errorf("unknown exit type %q", v)
			}
			a.u.Service.ExitType = v
			return nil
		}},
		"RemainAfterExit": boolean(func(u *Unit) *bool { return &s(u).RemainAfterExit }),
		"GuessMainPID":    boolean(func(u *Unit) *bool { return &s(u).GuessMainPID }),
		"PIDFile": {h: func(a *applier, v string) error {
			if v != "" && !filepath.IsAbs(v) { // systemd: relative to /run
				v = filepath.Join(a.spec.root("run"), v)
			}
			a.u.Service.PIDFile = v
			return nil
		}},
		"BusName":       str(func(u *Unit) *string { return &s(u).BusName }),
		"ExecCondition": commands(func(u *Unit) *[]Command { return &s(u).ExecCondition }),
		"ExecStartPre":  commands(func(u *Unit) *[]Command { return &s(u).ExecStartPre }),
		"ExecStart":     commands(func(u *Unit) *[]Command { return &s(u).ExecStart }),
		"ExecStartPost": commands(func(u *Unit) *[]Command { return &s(u).ExecStartPost }),
		"ExecReload":    commands(func(u *Unit) *[]Command { return &s(u).ExecReload }),
		"ExecStop":      commands(func(u *Unit) *[]Command { return &s(u).ExecStop }),
		"ExecStopPost":  commands(func(u *Unit) *[]Command { return &s(u).ExecStopPost }),
		"Restart": {h: func(a *applier, v string) error {
			switch p := RestartPolicy(v); p {
			case RestartNo, RestartAlways, RestartOnSuccess, RestartOnFailure, RestartOnAbnormal, RestartOnAbort, RestartOnWatchdog:
				a.u.Service.Restart = p
				return nil
			}
			return fmt.Errorf("unknown restart policy %q", v)
		}},
		"RestartSec":               svcDur(func(s *Service) *time.Duration { return &s.RestartSec }),
		"RestartPreventExitStatus": exitSet(func(s *Service) *ExitStatusSet { return &s.RestartPreventExitStatus }),
		"RestartForceExitStatus":   exitSet(func(s *Service) *ExitStatusSet { return &s.RestartForceExitStatus }),
		"SuccessExitStatus":        exitSet(func(s *Service) *ExitStatusSet { return &s.SuccessExitStatus }),
		"TimeoutStartSec":          svcDur(func(s *Service) *time.Duration { return &s.TimeoutStartSec }),
		"TimeoutStopSec":           svcDur(func(s *Service) *time.Duration { return &s.TimeoutStopSec }),
		"TimeoutAbortSec":          svcDur(func(s *Service) *time.Duration { return &s.TimeoutAbortSec }),
		"TimeoutSec": {h: func(a *applier, v string) error {
			d, inf, err := parseTimespan(v, time.Second)
			if err != nil {
				return err
			}
			if inf {
				d = 0
			}
			a.u.Service.TimeoutStartSec, a.u.Service.TimeoutStopSec = d, d
			return nil
		}},
		"RuntimeMaxSec":     svcDur(func(s *Service) *time.Duration { return &s.RuntimeMaxSec }),
		"WatchdogSec":       svcDur(func(s *Service) *time.Duration { return &s.WatchdogSec }),
		"KillMode":          killMode(func(u *Unit) *KillMode { return &s(u).KillMode }),
		"KillSignal":        signal(func(u *Unit) *int { return &s(u).KillSignal }),
		"RestartKillSignal": signal(func(u *Unit) *int { return &s(u).RestartKillSignal }),
		"FinalKillSignal":   signal(func(u *Unit) *int { return &s(u).FinalKillSignal }),
		"SendSIGKILL":       boolean(func(u *Unit) *bool { return &s(u).SendSIGKILL }),
		"SendSIGHUP":        boolean(func(u *Unit) *bool { return &s(u).SendSIGHUP }),
		"NotifyAccess": {h: func(a *applier, v string) error {
			switch n := NotifyAccess(v); n {
			case NotifyNone, NotifyMain, NotifyExecAccess, NotifyAll:
				a.u.Service.NotifyAccess = n
				return nil
			}
			return fmt.Errorf("unknown notify access %q", v)
		}},
		"Sockets":                unitList(func(u *Unit) *[]string { return &s(u).Sockets }),
		"FileDescriptorStoreMax": integer(func(u *Unit) *int { return &s(u).FileDescriptorStoreMax }),
		"Slice":                  sliceName(func(u *Unit) *string { return &s(u).Slice }),
		"PermissionsStartOnly": {h: func(a *applier, v string) error {
			if _, err := parseBool(v); err != nil {
				return err
			}
			a.warn("PermissionsStartOnly= is deprecated and ignored; use the '+' prefix")
			return nil
		}},
		"StartLimitIntervalSec": duration(func(u *Unit) *time.Duration { return &u.StartLimitInterval }, 0),
		"StartLimitInterval":    duration(func(u *Unit) *time.Duration { return &u.StartLimitInterval }, 0),
		"StartLimitBurst":       integer(func(u *Unit) *int { return &u.StartLimitBurst }),
	} {
		m[k] = d
	}
	return m
}()

var socketDirectives = func() map[string]directive {
	m := execDirectives()
	addLimits(m)
	k := func(u *Unit) *Socket { return u.Socket }
	listen := func(kind string) directive {
		return directive{h: func(a *applier, v string) error {
			if v == "" {
				a.u.Socket.Listen = nil
				return nil
			}
			if kind == "fifo" && !filepath.IsAbs(v) {
				return &badSettingError{fmt.Sprintf("FIFO path %q is not absolute", v)}
			}
			if (kind == "stream" || kind == "datagram" || kind == "seqpacket") && strings.HasPrefix(v, "/") {
				v = filepath.Clean(v)
			}
			a.u.Socket.Listen = append(a.u.Socket.Listen, SocketListen{Kind: kind, Address: v})
			return nil
		}}
	}
	sbool := func(get func(*Socket) *bool) directive {
		return boolean(func(u *Unit) *bool { return get(k(u)) })
	}
	sint := func(get func(*Socket) *int) directive {
		return integer(func(u *Unit) *int { return get(k(u)) })
	}
	smode := func(get func(*Socket) *uint32) directive {
		return directive{h: func(a *applier, v string) error {
			md, err := parseMode(v)
			if err == nil {
				*get(a.u.Socket) = md
			}
			return err
		}}
	}
	sdur := func(get func(*Socket) *time.Duration) directive {
		return duration(func(u *Unit) *time.Duration { return get(k(u)) }, 0)
	}
	sbuf := func(get func(*Socket) *int) directive {
		return directive{h: func(a *applier, v string) error {
			n, _, err := parseSize(v)
			if err == nil {
				*get(a.u.Socket) = int(n)
			}
			return err
		}}
	}
	for key, d := range map[string]directive{
		"ListenStream":           listen("stream"),
		"ListenDatagram":         listen("datagram"),
		"ListenSequentialPacket": listen("seqpacket"),
		"ListenFIFO":             listen("fifo"),
		"ListenSpecial":          listen("special"),
		"ListenNetlink":          listen("netlink"),
		"ListenMessageQueue":     listen("mqueue"),
		"Accept":                 sbool(func(s *Socket) *bool { return &s.Accept }),
		"Service": {h: func(a *applier, v string) error {
			if TypeOf(v) != TypeService || !ValidName(v) || IsTemplate(v) {
				return &badSettingError{fmt.Sprintf("Service=%q is not a service unit name", v)}
			}
			a.u.Socket.Service = v
			return nil
		}},
		"SocketMode":         smode(func(s *Socket) *uint32 { return &s.SocketMode }),
		"DirectoryMode":      smode(func(s *Socket) *uint32 { return &s.DirectoryMode }),
		"SocketUser":         str(func(u *Unit) *string { return &k(u).SocketUser }),
		"SocketGroup":        str(func(u *Unit) *string { return &k(u).SocketGroup }),
		"FileDescriptorName": str(func(u *Unit) *string { return &k(u).FileDescriptorName }),
		"Backlog":            sint(func(s *Socket) *int { return &s.Backlog }),
		"BindIPv6Only": {h: func(a *applier, v string) error {
			switch v {
			case "default", "both", "ipv6-only":
				a.u.Socket.BindIPv6Only = v
				return nil
			}
			return fmt.Errorf("invalid BindIPv6Only= %q", v)
		}},
		"ReusePort":               sbool(func(s *Socket) *bool { return &s.ReusePort }),
		"FreeBind":                sbool(func(s *Socket) *bool { return &s.FreeBind }),
		"Transparent":             sbool(func(s *Socket) *bool { return &s.Transparent }),
		"Broadcast":               sbool(func(s *Socket) *bool { return &s.Broadcast }),
		"PassCredentials":         sbool(func(s *Socket) *bool { return &s.PassCredentials }),
		"PassSecurity":            sbool(func(s *Socket) *bool { return &s.PassSecurity }),
		"KeepAlive":               sbool(func(s *Socket) *bool { return &s.KeepAlive }),
		"NoDelay":                 sbool(func(s *Socket) *bool { return &s.NoDelay }),
		"ReceiveBuffer":           sbuf(func(s *Socket) *int { return &s.ReceiveBuffer }),
		"SendBuffer":              sbuf(func(s *Socket) *int { return &s.SendBuffer }),
		"RemoveOnStop":            sbool(func(s *Socket) *bool { return &s.RemoveOnStop }),
		"Symlinks":                words(func(u *Unit) *[]string { return &k(u).Symlinks }),
		"MaxConnections":          sint(func(s *Socket) *int { return &s.MaxConnections }),
		"MaxConnectionsPerSource": sint(func(s *Socket) *int { return &s.MaxConnectionsPerSource }),
		"TriggerLimitIntervalSec": sdur(func(s *Socket) *time.Duration { return &s.TriggerLimitIntervalSec }),
		"TriggerLimitBurst":       sint(func(s *Socket) *int { return &s.TriggerLimitBurst }),
		"PollLimitIntervalSec":    sdur(func(s *Socket) *time.Duration { return &s.PollLimitIntervalSec }),
		"PollLimitBurst":          sint(func(s *Socket) *int { return &s.PollLimitBurst }),
		"ExecStartPre":            commands(func(u *Unit) *[]Command { return &k(u).ExecStartPre }),
		"ExecStartPost":           commands(func(u *Unit) *[]Command { return &k(u).ExecStartPost }),
		"ExecStopPre":             commands(func(u *Unit) *[]Command { return &k(u).ExecStopPre }),
		"ExecStopPost":            commands(func(u *Unit) *[]Command { return &k(u).ExecStopPost }),
		"TimeoutSec":              sdur(func(s *Socket) *time.Duration { return &s.TimeoutSec }),
		"KillMode":                killMode(func(u *Unit) *KillMode { return &k(u).KillMode }),
		"KillSignal":              signal(func(u *Unit) *int { return &k(u).KillSignal }),
		"Slice":                   sliceName(func(u *Unit) *string { return &k(u).Slice }),
	} {
		m[key] = d
	}
	return m
}()

var _ = strconv.Itoa
