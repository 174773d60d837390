// Package unit is Corral's model of systemd unit files: the parser, the
// loader that walks the search path (templates, drop-ins, .wants/ links),
// specifier expansion, and the typed configuration that the job engine and
// the service supervisor consume.
//
// The typed structs below are the contract between the parser and everything
// that runs units. They hold parsed values (durations, enums, commands), never
// raw strings that another package would have to parse a second time.
package unit

import (
	"strconv"
	"strings"
	"time"
)

// Type is the unit type, taken from the unit name's suffix.
type Type string

// Unit types. Timer, path, mount and device come in later issues; the loader
// still recognises their suffixes so that dependencies on them resolve to a
// clear "unsupported" load error instead of "not found".
const (
	TypeService Type = "service"
	TypeSocket  Type = "socket"
	TypeTarget  Type = "target"
	TypeSlice   Type = "slice"
	TypeTimer   Type = "timer"
	TypePath    Type = "path"
	TypeMount   Type = "mount"
	TypeDevice  Type = "device"

	// Types Corral will not run but must still recognise, because
	// distribution packages ship them next to services.
	TypeAutomount Type = "automount"
	TypeSwap      Type = "swap"
	TypeScope     Type = "scope"
)

// TypeOf returns the type of a unit name ("foo@bar.service" → service), or ""
// when the suffix is not a unit type.
func TypeOf(name string) Type {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return ""
	}
	switch t := Type(name[i+1:]); t {
	case TypeService, TypeSocket, TypeTarget, TypeSlice, TypeTimer, TypePath, TypeMount, TypeDevice,
		TypeAutomount, TypeSwap, TypeScope:
		return t
	}
	return ""
}

// LoadState mirrors systemd's LoadState property: it is how a broken unit
// file is reported without disturbing any other unit.
type LoadState string

// Load states, as systemd names them.
const (
	LoadLoaded     LoadState = "loaded"
	LoadNotFound   LoadState = "not-found"
	LoadBadSetting LoadState = "bad-setting"
	LoadError      LoadState = "error"
	LoadMasked     LoadState = "masked"
)

// Dep is a dependency kind between units. Every kind is stored on the unit
// that names it; the loader also fills the inverse kinds (RequiredBy for
// Requires, Before for After, ...) so that the job engine can walk the graph
// in both directions without re-deriving it.
type Dep string

// Dependency kinds (forward and their inverses).
const (
	Requires             Dep = "Requires"
	Requisite            Dep = "Requisite"
	Wants                Dep = "Wants"
	BindsTo              Dep = "BindsTo"
	PartOf               Dep = "PartOf"
	Upholds              Dep = "Upholds"
	Conflicts            Dep = "Conflicts"
	OnFailure            Dep = "OnFailure"
	OnSuccess            Dep = "OnSuccess"
	After                Dep = "After"
	Before               Dep = "Before"
	PropagatesReloadTo   Dep = "PropagatesReloadTo"
	ReloadPropagatedFrom Dep = "ReloadPropagatedFrom"
	JoinsNamespaceOf     Dep = "JoinsNamespaceOf"

	RequiredBy   Dep = "RequiredBy"
	RequisiteOf  Dep = "RequisiteOf"
	WantedBy     Dep = "WantedBy"
	BoundBy      Dep = "BoundBy"
	ConsistsOf   Dep = "ConsistsOf"
	UpheldBy     Dep = "UpheldBy"
	ConflictedBy Dep = "ConflictedBy"
	OnFailureOf  Dep = "OnFailureOf"
	OnSuccessOf  Dep = "OnSuccessOf"
	TriggeredBy  Dep = "TriggeredBy"
	Triggers     Dep = "Triggers"
)

// Inverse returns the dependency kind that the target of d records, or "" if
// d has no inverse.
func (d Dep) Inverse() Dep {
	switch d {
	case Requires:
		return RequiredBy
	case Requisite:
		return RequisiteOf
	case Wants:
		return WantedBy
	case BindsTo:
		return BoundBy
	case PartOf:
		return ConsistsOf
	case Upholds:
		return UpheldBy
	case Conflicts:
		return ConflictedBy
	case OnFailure:
		return OnFailureOf
	case OnSuccess:
		return OnSuccessOf
	case After:
		return Before
	case Before:
		return After
	case Triggers:
		return TriggeredBy
	case TriggeredBy:
		return Triggers
	case PropagatesReloadTo:
		return ReloadPropagatedFrom
	case ReloadPropagatedFrom:
		return PropagatesReloadTo
	}
	return ""
}

// Warning is a non-fatal problem in a unit file: an unknown or unsupported
// directive. It always names the file and line so that the user can find it.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string {
	return w.File + ":" + strconv.Itoa(w.Line) + ": " + w.Msg
}

// Unit is one loaded unit: the merged result of its fragment file, its
// drop-ins and the .wants/.requires directories that point at it.
type Unit struct {
	Name      string   // full name, e.g. "getty@tty1.service"
	Type      Type     //
	Aliases   []string // other names that resolve to this unit (symlinks, Alias=)
	Path      string   // the fragment file ("" for transient or not-found units)
	DropIns   []string // drop-in files applied, in order
	LoadState LoadState
	LoadError string // why LoadState is not "loaded": names file and line where known
	Warnings  []Warning
	Transient bool // created through the API (CRI containers), not from a file

	Description   string
	Documentation []string

	// Deps holds every dependency, forward and inverse, as unit names.
	Deps map[Dep][]string

	DefaultDependencies bool // default true
	StopWhenUnneeded    bool
	RefuseManualStart   bool
	RefuseManualStop    bool
	AllowIsolate        bool
	IgnoreOnIsolate     bool
	JobTimeout          time.Duration // JobTimeoutSec=, 0 = none
	OnFailureJobMode    string        // default "replace"

	StartLimitInterval time.Duration // StartLimitIntervalSec=, default 10s
	StartLimitBurst    int           // default 5

	Conditions []Condition // Condition*= and Assert*=

	Install Install

	// Exactly one of these is set, matching Type.
	Service *Service
	Socket  *Socket
	Slice   *Slice // only Resources; targets have no section of their own
	Mount   *Mount
}

// DepsOf is a nil-safe accessor used by the job engine.
func (u *Unit) DepsOf(d Dep) []string {
	if u == nil || u.Deps == nil {
		return nil
	}
	return u.Deps[d]
}

// Condition is one Condition*= or Assert*= check. Conditions skip a unit
// silently; asserts fail its start job.
type Condition struct {
	Kind    string // e.g. "PathExists", "FileNotEmpty"
	Assert  bool
	Negate  bool // value started with '!'
	Trigger bool // value started with '|'
	Value   string
}

// Install is the [Install] section, consumed only by enable/disable.
type Install struct {
	WantedBy        []string
	RequiredBy      []string
	UpheldBy        []string
	Alias           []string
	Also            []string
	DefaultInstance string
}

// CommandFlags are the special prefixes of Exec*= lines.
type CommandFlags uint8

// Exec prefixes as systemd.service(5) defines them.
const (
	IgnoreFailure  CommandFlags = 1 << iota // '-': a non-zero exit is not a failure
	Argv0                                   // '@': second word is argv[0]
	FullPrivileges                          // '+': run without User=/sandboxing
	NoEnvExpand                             // ':': no environment variable substitution
)

// Command is one Exec*= line. Args[0] is argv[0] (which differs from Path
// only with the '@' prefix). $VAR and ${VAR} references are left in place:
// they are expanded at spawn time against the final environment, as systemd
// does, unless NoEnvExpand is set.
type Command struct {
	Path  string
	Args  []string
	Flags CommandFlags
}

// ServiceType is Type= of a service.
type ServiceType string

// Service types.
const (
	Simple   ServiceType = "simple"
	ExecType ServiceType = "exec"
	Forking  ServiceType = "forking"
	Oneshot  ServiceType = "oneshot"
	Notify   ServiceType = "notify"
	Idle     ServiceType = "idle"
	Dbus     ServiceType = "dbus" // accepted, run as simple with a warning
)

// RestartPolicy is Restart=.
type RestartPolicy string

// Restart policies.
const (
	RestartNo         RestartPolicy = "no"
	RestartAlways     RestartPolicy = "always"
	RestartOnSuccess  RestartPolicy = "on-success"
	RestartOnFailure  RestartPolicy = "on-failure"
	RestartOnAbnormal RestartPolicy = "on-abnormal"
	RestartOnAbort    RestartPolicy = "on-abort"
	RestartOnWatchdog RestartPolicy = "on-watchdog"
)

// KillMode is KillMode=.
type KillMode string

// Kill modes.
const (
	KillControlGroup KillMode = "control-group"
	KillMixed        KillMode = "mixed"
	KillProcess      KillMode = "process"
	KillNone         KillMode = "none"
)

// NotifyAccess is NotifyAccess=.
type NotifyAccess string

// Notify access levels.
const (
	NotifyNone       NotifyAccess = "none"
	NotifyMain       NotifyAccess = "main"
	NotifyExecAccess NotifyAccess = "exec"
	NotifyAll        NotifyAccess = "all"
)

// ExitStatusSet is SuccessExitStatus= / RestartPreventExitStatus=: exit codes
// and signal numbers.
type ExitStatusSet struct {
	Codes   []int
	Signals []int // syscall.Signal numbers
}

// Output is StandardOutput=/StandardError=.
type Output struct {
	Kind string // "journal" (also kmsg, syslog, journal+console…), "null", "inherit", "file", "append", "truncate", "tty", "socket"
	Path string // for file:/append:/truncate:
}

// Rlimit is one Limit*= directive.
type Rlimit struct {
	Resource int    // unix.RLIMIT_*
	Cur, Max uint64 // unix.RLIM_INFINITY for "infinity"
}

// Exec is the execution environment shared by services and sockets
// (systemd.exec(5)).
type Exec struct {
	User, Group         string
	SupplementaryGroups []string
	DynamicUser         bool // accepted with a warning, treated as root-less "nobody"

	Environment      []string // KEY=VALUE in order; later wins
	EnvironmentFiles []EnvFile
	UnsetEnvironment []string
	PassEnvironment  []string

	WorkingDirectory   string // "" = "/" (or home with "~")
	WorkingDirOptional bool   // '-' prefix
	RootDirectory      string
	UMask              *uint32
	Nice               *int
	OOMScoreAdjust     *int
	Limits             []Rlimit

	RuntimeDirectory                                            []string
	StateDirectory                                              []string
	LogsDirectory                                               []string
	CacheDirectory                                              []string
	ConfigurationDirectory                                      []string
	RuntimeDirectoryMode, StateDirectoryMode, LogsDirectoryMode uint32 // default 0755
	RuntimeDirectoryPreserve                                    string // "no" | "yes" | "restart"

	StandardInput    string // "null" (default), "tty", "socket"...
	StandardOutput   Output // default journal
	StandardError    Output // default inherit (= same as stdout)
	TTYPath          string
	SyslogIdentifier string
	// TTYReset, TTYVHangup and TTYVTDisallocate clean the terminal
	// before the program gets it (getty units set them).
	TTYReset, TTYVHangup, TTYVTDisallocate bool

	NoNewPrivileges       bool
	PrivateTmp            bool
	PrivateDevices        bool
	PrivateNetwork        bool
	ProtectSystem         string
	ProtectHome           string
	CapabilityBoundingSet []string // names; "~" prefix inverted by the parser into Drop
	AmbientCapabilities   []string
}

// EnvFile is one EnvironmentFile= entry.
type EnvFile struct {
	Path     string
	Optional bool // '-' prefix
}

// Service is the [Service] section.
type Service struct {
	Exec
	Type            ServiceType
	ExitType        string // "main" | "cgroup"
	RemainAfterExit bool
	GuessMainPID    bool
	PIDFile         string
	BusName         string

	ExecCondition []Command
	ExecStartPre  []Command
	ExecStart     []Command // more than one only for Type=oneshot
	ExecStartPost []Command
	ExecReload    []Command
	ExecStop      []Command
	ExecStopPost  []Command

	Restart                  RestartPolicy
	RestartSec               time.Duration // default 100ms
	RestartPreventExitStatus ExitStatusSet
	RestartForceExitStatus   ExitStatusSet
	SuccessExitStatus        ExitStatusSet

	TimeoutStartSec time.Duration // 0 = infinity; default 90s
	TimeoutStopSec  time.Duration // 0 = infinity; default 90s
	TimeoutAbortSec time.Duration
	RuntimeMaxSec   time.Duration // 0 = infinity
	WatchdogSec     time.Duration

	KillMode          KillMode // default control-group
	KillSignal        int      // default SIGTERM
	RestartKillSignal int      // default KillSignal
	FinalKillSignal   int      // default SIGKILL
	SendSIGKILL       bool     // default true
	SendSIGHUP        bool

	NotifyAccess           NotifyAccess // default none (main for Type=notify)
	Sockets                []string     // Sockets=: socket units whose fds this service gets
	FileDescriptorStoreMax int

	Resources Resources
	Slice     string // Slice=, default "system.slice"
}

// SocketListen is one Listen*= directive.
type SocketListen struct {
	Kind    string // "stream", "datagram", "seqpacket", "fifo", "special", "netlink", "mqueue"
	Address string // as written (path, "@abstract", "port", "ip:port", "[v6]:port")
}

// Socket is the [Socket] section.
type Socket struct {
	Exec
	Listen                  []SocketListen
	Accept                  bool
	Service                 string // Service=, default same name with .service
	SocketMode              uint32 // default 0666
	DirectoryMode           uint32 // default 0755
	SocketUser              string
	SocketGroup             string
	FileDescriptorName      string // default the socket unit name without suffix
	Backlog                 int    // default SOMAXCONN
	BindIPv6Only            string
	ReusePort               bool
	FreeBind                bool
	Transparent             bool
	Broadcast               bool
	PassCredentials         bool
	PassSecurity            bool
	KeepAlive               bool
	NoDelay                 bool
	ReceiveBuffer           int
	SendBuffer              int
	RemoveOnStop            bool
	Symlinks                []string
	MaxConnections          int // default 64
	MaxConnectionsPerSource int
	TriggerLimitIntervalSec time.Duration
	TriggerLimitBurst       int
	PollLimitIntervalSec    time.Duration
	PollLimitBurst          int
	Timeout                 time.Duration

	ExecStartPre  []Command
	ExecStartPost []Command
	ExecStopPre   []Command
	ExecStopPost  []Command
	TimeoutSec    time.Duration
	KillMode      KillMode
	KillSignal    int

	Resources Resources
	Slice     string
}

// Slice is the [Slice] section.
type Slice struct {
	Resources Resources
}

// Mount is the [Mount] section (systemd.mount(5)). Options stays the raw
// comma-separated string: the runtime splits it into mount(2) flags and
// filesystem data, because which options are flags is the kernel's business,
// not the parser's.
type Mount struct {
	What          string
	Where         string // absolute, cleaned; must match the unit name
	Type          string // "" = let the kernel probe (mount(8) would try /etc/filesystems)
	Options       string
	SloppyOptions bool
	LazyUnmount   bool
	ForceUnmount  bool
	ReadWriteOnly bool
	DirectoryMode uint32        // for creating Where= and its parents, default 0755
	TimeoutSec    time.Duration // default 90s
}

// Resources is the resource-control part of a unit (systemd.resource-control(5)),
// applied to its cgroup. Zero values mean "not set".
type Resources struct {
	CPUQuotaPerSec     time.Duration // CPUQuota=50% → 500ms per second
	CPUQuotaPeriod     time.Duration // CPUQuotaPeriodSec=, default 100ms
	CPUWeight          uint64        // CPUWeight= (v2 scale 1..10000)
	CPUShares          uint64        // CPUShares= (v1 scale 2..262144)
	MemoryMax          uint64        // MemoryMax= / MemoryLimit= in bytes; 0 = unset
	MemoryHigh         uint64
	MemoryLow          uint64
	MemoryMin          uint64
	MemorySwapMax      uint64
	TasksMax           uint64 // 0 = unset
	IOWeight           uint64
	AllowedCPUs        string
	AllowedMemoryNodes string
	Delegate           bool
}
