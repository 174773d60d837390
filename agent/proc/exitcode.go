package proc

// Exit codes of a child whose set-up failed before exec, as systemd defines
// them (systemd.exec(5), "Process Exit Codes"), so that a unit's status reads
// the same as under systemd ("status=203/EXEC").
const (
	ExitChdir                  = 200
	ExitNice                   = 201
	ExitFDs                    = 202
	ExitExec                   = 203
	ExitMemory                 = 204
	ExitLimits                 = 205
	ExitOOMAdjust              = 206
	ExitSignalMask             = 207
	ExitStdin                  = 208
	ExitStdout                 = 209
	ExitChroot                 = 210
	ExitIOPrio                 = 211
	ExitTimerSlack             = 212
	ExitSecureBits             = 213
	ExitSetScheduler           = 214
	ExitCPUAffinity            = 215
	ExitGroup                  = 216
	ExitUser                   = 217
	ExitCapabilities           = 218
	ExitCgroup                 = 219
	ExitSetsid                 = 220
	ExitConfirm                = 221
	ExitStderr                 = 222
	ExitPAM                    = 224
	ExitNetwork                = 225
	ExitNamespace              = 226
	ExitNoNewPrivileges        = 227
	ExitSeccomp                = 228
	ExitSELinuxContext         = 229
	ExitPersonality            = 230
	ExitApparmorProfile        = 231
	ExitAddressFamilies        = 232
	ExitRuntimeDirectory       = 233
	ExitChown                  = 235
	ExitSmackProcessLabel      = 236
	ExitKeyring                = 237
	ExitStateDirectory         = 238
	ExitCacheDirectory         = 239
	ExitLogsDirectory          = 240
	ExitConfigurationDirectory = 241
	ExitNUMAPolicy             = 242
	ExitCredentials            = 243
	ExitBPF                    = 245
)

var exitNames = map[int]string{
	// LSB (init scripts) and the generic ones.
	0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 3: "NOTIMPLEMENTED",
	4: "NOPERMISSION", 5: "NOTINSTALLED", 6: "NOTCONFIGURED", 7: "NOTRUNNING",
	// BSD sysexits.h.
	64: "USAGE", 65: "DATAERR", 66: "NOINPUT", 67: "NOUSER", 68: "NOHOST",
	69: "UNAVAILABLE", 70: "SOFTWARE", 71: "OSERR", 72: "OSFILE",
	73: "CANTCREAT", 74: "IOERR", 75: "TEMPFAIL", 76: "PROTOCOL",
	77: "NOPERM", 78: "CONFIG",
	// systemd.
	ExitChdir: "CHDIR", ExitNice: "NICE", ExitFDs: "FDS", ExitExec: "EXEC",
	ExitMemory: "MEMORY", ExitLimits: "LIMITS", ExitOOMAdjust: "OOM_ADJUST",
	ExitSignalMask: "SIGNAL_MASK", ExitStdin: "STDIN", ExitStdout: "STDOUT",
	ExitChroot: "CHROOT", ExitIOPrio: "IOPRIO", ExitTimerSlack: "TIMERSLACK",
	ExitSecureBits: "SECUREBITS", ExitSetScheduler: "SETSCHEDULER",
	ExitCPUAffinity: "CPUAFFINITY", ExitGroup: "GROUP", ExitUser: "USER",
	ExitCapabilities: "CAPABILITIES", ExitCgroup: "CGROUP", ExitSetsid: "SETSID",
	ExitConfirm: "CONFIRM", ExitStderr: "STDERR", ExitPAM: "PAM",
	ExitNetwork: "NETWORK", ExitNamespace: "NAMESPACE",
	ExitNoNewPrivileges: "NO_NEW_PRIVILEGES", ExitSeccomp: "SECCOMP",
	ExitSELinuxContext: "SELINUX_CONTEXT", ExitPersonality: "PERSONALITY",
	ExitApparmorProfile: "APPARMOR_PROFILE", ExitAddressFamilies: "ADDRESS_FAMILIES",
	ExitRuntimeDirectory: "RUNTIME_DIRECTORY", ExitChown: "CHOWN",
	ExitSmackProcessLabel: "SMACK_PROCESS_LABEL", ExitKeyring: "KEYRING",
	ExitStateDirectory: "STATE_DIRECTORY", ExitCacheDirectory: "CACHE_DIRECTORY",
	ExitLogsDirectory: "LOGS_DIRECTORY", ExitConfigurationDirectory: "CONFIGURATION_DIRECTORY",
	ExitNUMAPolicy: "NUMA_POLICY", ExitCredentials: "CREDENTIALS", ExitBPF: "BPF",
}

// ExitCodeName names an exit code the way systemd does (203 → "EXEC",
// 1 → "FAILURE"), or returns "" for a code with no name.
func ExitCodeName(code int) string { return exitNames[code] }
