package unit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Handler constructors: each directive table entry is one line built from
// these, so that the tables read like the man pages.

func str(get func(*Unit) *string) directive {
	return directive{h: func(a *applier, v string) error { *get(a.u) = v; return nil }}
}

func boolean(get func(*Unit) *bool) directive {
	return directive{h: func(a *applier, v string) error {
		b, err := parseBool(v)
		if err == nil {
			*get(a.u) = b
		}
		return err
	}}
}

func integer(get func(*Unit) *int) directive {
	return directive{h: func(a *applier, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid number %q", v)
		}
		*get(a.u) = n
		return nil
	}}
}

// duration sets a time span; "infinity" stores inf (0 where 0 means "none").
func duration(get func(*Unit) *time.Duration, inf time.Duration) directive {
	return directive{h: func(a *applier, v string) error {
		d, isInf, err := parseTimespan(v, time.Second)
		if err != nil {
			return err
		}
		if isInf {
			d = inf
		}
		*get(a.u) = d
		return nil
	}}
}

// words appends whitespace-separated (quoted) words; empty resets the list.
func words(get func(*Unit) *[]string) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" {
			*get(a.u) = nil
			return nil
		}
		ws, err := splitWords(v)
		if err != nil {
			return err
		}
		*get(a.u) = append(*get(a.u), ws...)
		return nil
	}}
}

// unitList appends unit names; invalid names are warned about one by one.
func unitList(get func(*Unit) *[]string) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" {
			*get(a.u) = nil
			return nil
		}
		ws, err := splitWords(v)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if !ValidName(w) {
				a.warn(fmt.Sprintf("%s=: invalid unit name %q; ignored", a.cur.Key, w))
				continue
			}
			*get(a.u) = append(*get(a.u), w)
		}
		return nil
	}}
}

func depDirective(d Dep) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" {
			delete(a.u.Deps, d)
			return nil
		}
		ws, err := splitWords(v)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if !ValidName(w) {
				a.warn(fmt.Sprintf("%s=: invalid unit name %q; ignored", a.cur.Key, w))
				continue
			}
			a.u.Deps[d] = append(a.u.Deps[d], w)
		}
		return nil
	}}
}

func condition(kind string, assert bool) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" { // empty resets all conditions (or asserts) so far
			keep := a.u.Conditions[:0]
			for _, c := range a.u.Conditions {
				if c.Assert != assert {
					keep = append(keep, c)
				}
			}
			a.u.Conditions = keep
			return nil
		}
		c := Condition{Kind: kind, Assert: assert}
		if strings.HasPrefix(v, "|") {
			c.Trigger, v = true, strings.TrimLeft(v[1:], " ")
		}
		if strings.HasPrefix(v, "!") {
			c.Negate, v = true, strings.TrimLeft(v[1:], " ")
		}
		c.Value = v
		a.u.Conditions = append(a.u.Conditions, c)
		return nil
	}}
}

var conditionKinds = []string{
	"PathExists", "PathExistsGlob", "PathIsDirectory", "PathIsSymbolicLink", "PathIsMountPoint",
	"PathIsReadWrite", "PathIsEncrypted", "DirectoryNotEmpty", "FileNotEmpty", "FileIsExecutable",
	"User", "Group", "Host", "KernelCommandLine", "KernelVersion", "Virtualization", "Architecture",
	"Firmware", "Security", "Capability", "ACPower", "NeedsUpdate", "FirstBoot", "ControlGroupController",
	"Memory", "CPUs", "CPUFeature", "Environment", "Credential", "OSRelease", "MemoryPressure",
	"CPUPressure", "IOPressure",
}

var unitDirectives = func() map[string]directive {
	m := map[string]directive{
		"Description":           str(func(u *Unit) *string { return &u.Description }),
		"Documentation":         words(func(u *Unit) *[]string { return &u.Documentation }),
		"DefaultDependencies":   boolean(func(u *Unit) *bool { return &u.DefaultDependencies }),
		"StopWhenUnneeded":      boolean(func(u *Unit) *bool { return &u.StopWhenUnneeded }),
		"RefuseManualStart":     boolean(func(u *Unit) *bool { return &u.RefuseManualStart }),
		"RefuseManualStop":      boolean(func(u *Unit) *bool { return &u.RefuseManualStop }),
		"AllowIsolate":          boolean(func(u *Unit) *bool { return &u.AllowIsolate }),
		"IgnoreOnIsolate":       boolean(func(u *Unit) *bool { return &u.IgnoreOnIsolate }),
		"JobTimeoutSec":         duration(func(u *Unit) *time.Duration { return &u.JobTimeout }, 0),
		"StartLimitIntervalSec": duration(func(u *Unit) *time.Duration { return &u.StartLimitInterval }, 0),
		"StartLimitInterval":    duration(func(u *Unit) *time.Duration { return &u.StartLimitInterval }, 0),
		"StartLimitBurst":       integer(func(u *Unit) *int { return &u.StartLimitBurst }),
		"OnFailureJobMode": {h: func(a *applier, v string) error {
			switch v {
			case "fail", "replace", "replace-irreversibly", "isolate", "flush", "ignore-dependencies", "ignore-requirements":
				a.u.OnFailureJobMode = v
				return nil
			}
			return fmt.Errorf("unknown job mode %q", v)
		}},
	}
	for _, d := range []Dep{Requires, Requisite, Wants, BindsTo, PartOf, Upholds, Conflicts, OnFailure,
		OnSuccess, After, Before, PropagatesReloadTo, ReloadPropagatedFrom, JoinsNamespaceOf} {
		m[string(d)] = depDirective(d)
	}
	m["PropagateReloadTo"] = depDirective(PropagatesReloadTo)
	m["PropagateReloadFrom"] = depDirective(ReloadPropagatedFrom)
	m["RequiresOverridable"] = depDirective(Requires)
	m["RequisiteOverridable"] = depDirective(Requisite)
	m["BindTo"] = depDirective(BindsTo)
	for _, k := range conditionKinds {
		m["Condition"+k] = condition(k, false)
		m["Assert"+k] = condition(k, true)
	}
	return m
}()

var installDirectives = map[string]directive{
	"WantedBy":   unitList(func(u *Unit) *[]string { return &u.Install.WantedBy }),
	"RequiredBy": unitList(func(u *Unit) *[]string { return &u.Install.RequiredBy }),
	"UpheldBy":   unitList(func(u *Unit) *[]string { return &u.Install.UpheldBy }),
	"Alias":      unitList(func(u *Unit) *[]string { return &u.Install.Alias }),
	"Also":       unitList(func(u *Unit) *[]string { return &u.Install.Also }),
	"DefaultInstance": {h: func(a *applier, v string) error {
		a.u.Install.DefaultInstance = v
		return nil
	}},
}

// unsupported lists directives that systemd documents but Corral does not
// implement yet; they get a distinct warning from typos.
var unsupported = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`SourcePath FailureAction SuccessAction FailureActionExitStatus
	SuccessActionExitStatus JobRunningTimeoutSec JobTimeoutAction JobTimeoutRebootArgument
	StartLimitAction RebootArgument CollectMode OnSuccessJobMode SurviveFinalKillSignal
	ProtectKernelTunables ProtectKernelModules ProtectKernelLogs ProtectControlGroups ProtectClock
	ProtectHostname ProtectProc ProcSubset RestrictAddressFamilies RestrictNamespaces RestrictRealtime
	RestrictSUIDSGID LockPersonality MemoryDenyWriteExecute SystemCallFilter SystemCallArchitectures
	SystemCallErrorNumber SystemCallLog PrivateUsers PrivateMounts PrivateIPC ReadWritePaths ReadOnlyPaths
	InaccessiblePaths ExecPaths NoExecPaths TemporaryFileSystem BindPaths BindReadOnlyPaths
	DeviceAllow DevicePolicy IPAddressAllow IPAddressDeny IPAccounting CPUAccounting MemoryAccounting
	TasksAccounting IOAccounting BlockIOAccounting KeyringMode SecureBits Personality
	IgnoreSIGPIPE TimerSlackNSec CPUSchedulingPolicy CPUSchedulingPriority CPUSchedulingResetOnFork
	CPUAffinity NUMAPolicy NUMAMask IOSchedulingClass IOSchedulingPriority MountFlags RootImage
	RootHash RootVerity MountAPIVFS LogLevelMax LogExtraFields LogRateLimitIntervalSec
	LogRateLimitBurst LogNamespace SyslogFacility SyslogLevel SyslogLevelPrefix
	UtmpIdentifier UtmpMode SELinuxContext AppArmorProfile SmackProcessLabel
	LoadCredential LoadCredentialEncrypted SetCredential SetCredentialEncrypted ImportCredential
	StandardInputText StandardInputData Slice Delegate ManagedOOMSwap ManagedOOMMemoryPressure
	ManagedOOMMemoryPressureLimit ManagedOOMPreference OOMPolicy USBFunctionDescriptors
	USBFunctionStrings FileDescriptorStorePreserve ReloadSignal OpenFile ExtensionImages
	ExtensionDirectories MountImages ProtectSystem DisableControllers IODeviceWeight
	IOReadBandwidthMax IOWriteBandwidthMax IOReadIOPSMax IOWriteIOPSMax IODeviceLatencyTargetSec
	BlockIOWeight BlockIODeviceWeight BlockIOReadBandwidth BlockIOWriteBandwidth StartupCPUWeight
	StartupIOWeight StartupCPUShares StartupAllowedCPUs StartupAllowedMemoryNodes
	SocketProtocol BindToDevice Mark IPTOS IPTTL Priority PipeSize MessageQueueMaxMessages
	MessageQueueMessageSize SmackLabel SmackLabelIPIn SmackLabelIPOut SELinuxContextFromNet
	DeferAcceptSec KeepAliveTimeSec KeepAliveIntervalSec KeepAliveProbes TCPCongestion
	ExecStopPre FlushPending Writable ListenUSBFunction ListenSpecial ListenNetlink ListenMessageQueue
	ListenFIFO Conflicts NetworkNamespacePath IPCNamespacePath CoredumpFilter
	Perpetual CoredumpReceive RequiresMountsFor WantsMountsFor Timestamping PassPacketInfo PAMName RestartMode RestartSteps RestartMaxDelaySec UnsetEnvironment`) {
		m[k] = true
	}
	return m
}()
