package main

import "strings"

// unitTypes are the suffixes that make a name complete.
var unitTypes = []string{"service", "socket", "target", "slice", "timer", "path", "mount", "device", "scope", "swap", "automount"}

// mangle completes a unit name the way systemctl does: a name without a
// known type suffix gets suffix (".service" for most verbs, ".target" for
// isolate). Globs are left alone so that patterns keep matching every type.
func mangle(name, suffix string) string {
	if strings.ContainsAny(name, "*?[") {
		return name
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		for _, t := range unitTypes {
			if name[i+1:] == t {
				return name
			}
		}
	}
	return name + suffix
}

func mangleAll(names []string, suffix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = mangle(n, suffix)
	}
	return out
}
