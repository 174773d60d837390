package sysinit

import (
	"slices"
	"strings"
	"testing"
)

func TestReadModulesKeepsOnlyWanted(t *testing.T) {
	dep := "kernel/drivers/acpi/button.ko.xz:\n" +
		"kernel/drivers/input/evdev.ko: kernel/drivers/input/input-core.ko\n" +
		"kernel/sound/snd-hda.ko.gz: kernel/sound/snd.ko\n" +
		"kernel/" + strings.Repeat("long/", 2000) + "x.ko: a.ko\n" // longer than bufio's default line
	tests := []struct {
		names []string
		want  []string
	}{
		{nil, []string{"button", "evdev", "snd_hda", "x"}},
		{[]string{"evdev", "snd-hda"}, []string{"evdev", "snd_hda"}},
		{[]string{"button.ko"}, []string{"button"}},
		{[]string{"nope"}, nil},
	}
	for _, tt := range tests {
		m, err := ReadModulesDep(strings.NewReader(dep), tt.names...)
		if err != nil {
			t.Fatalf("ReadModulesDep(%q): %v", tt.names, err)
		}
		var got []string
		for k := range m {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("ReadModulesDep(%q) kept %q, want %q", tt.names, got, tt.want)
		}
	}
	if m, _ := ReadModulesDep(strings.NewReader(dep), "evdev"); !slices.Equal(m.LoadOrder("evdev"), []string{"kernel/drivers/input/input-core.ko", "kernel/drivers/input/evdev.ko"}) {
		t.Errorf("filtered LoadOrder(evdev) = %q", m.LoadOrder("evdev"))
	}
	b, err := ReadModulesBuiltin(strings.NewReader("kernel/drivers/acpi/button.ko\n\nkernel/x/evdev.ko\nkernel/y/z.ko\n"), "button", "evdev")
	if err != nil || !b["button"] || !b["evdev"] || b["z"] || len(b) != 2 {
		t.Errorf("ReadModulesBuiltin = %v, %v", b, err)
	}
}
